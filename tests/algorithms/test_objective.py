"""The whole CIPO objective on hand-computed cases: streams, clipping, SFT rows, KL, IS weights,
whole-batch denominators, and the step's metrics from summed statistics."""

from __future__ import annotations

import math

import pytest
import torch

from cipo.algorithms.objective import (
    Denominators,
    cipo_objective,
    objective_denominators,
    objective_metrics,
    stream_masks,
)

# Three rows, three positions (position 0 is the prompt): a main row (A = +1), a correction row
# trained with the surrogate (A = -1) and a correction row trained with NLL (objective: sft).
LOSS_MASK = torch.tensor([[0, 1, 1], [0, 1, 1], [0, 1, 0]], dtype=torch.float64)
IS_CORRECTION = torch.tensor([False, True, True])
SFT = torch.tensor([False, False, True])
ADVANTAGES = torch.tensor([1.0, -1.0, 0.0], dtype=torch.float64)
OLD = torch.zeros(3, 3, dtype=torch.float64)
# ratios: main 1.5 (clipped to 1.2: A > 0) and 1.0; correction 0.5 (clipped to 0.8: A < 0) and 1.0;
# the SFT row's target token has probability 1/4.
RATIOS = [[1.0, 1.5, 1.0], [1.0, 0.5, 1.0], [1.0, 0.25, 1.0]]
OPTIONS = dict(clip_low=0.2, clip_high=0.2, loss_agg="token_mean", max_len=2, correction_coef=0.5)


def _logprobs() -> torch.Tensor:
    return torch.tensor(RATIOS, dtype=torch.float64).log().requires_grad_(True)


def _objective(logprobs, engine=None, **options):
    masks = stream_masks(LOSS_MASK, IS_CORRECTION, SFT)
    denominators = objective_denominators(masks, LOSS_MASK, options.get("loss_agg", "token_mean"))
    engine = OLD if engine is None else engine
    return cipo_objective(logprobs, OLD, engine, ADVANTAGES, masks, LOSS_MASK, denominators, **{**OPTIONS, **options})


def test_stream_masks_and_denominators_by_hand():
    masks = stream_masks(LOSS_MASK, IS_CORRECTION, SFT)
    torch.testing.assert_close(masks.main, LOSS_MASK * torch.tensor([[1.0], [0.0], [0.0]], dtype=torch.float64))
    torch.testing.assert_close(masks.correction, LOSS_MASK * torch.tensor([[0.0], [1.0], [0.0]], dtype=torch.float64))
    torch.testing.assert_close(masks.sft, LOSS_MASK * torch.tensor([[0.0], [0.0], [1.0]], dtype=torch.float64))
    assert objective_denominators(masks, LOSS_MASK, "token_mean") == Denominators(2.0, 2.0, 1.0, 5.0, 5.0)
    # per sequence: one main row, one surrogate correction row; NLL always counts tokens
    assert objective_denominators(masks, LOSS_MASK, "seq_mean_token_mean") == Denominators(1.0, 1.0, 1.0, 3.0, 5.0)


def test_combined_loss_by_hand():
    logprobs = _logprobs()
    loss, stats = _objective(logprobs)
    pg_main = (-1.2 - 1.0) / 2  # -min(r A, clip(r) A) per token, over the main stream's 2 tokens
    pg_corr = (0.8 + 1.0) / 2  # A = -1: the ratio 0.5 is clipped to 0.8
    nll = math.log(4.0)  # -log(1/4) over the SFT row's 1 token
    assert float(loss.detach()) == pytest.approx(pg_main + 0.5 * (pg_corr + nll))
    assert stats["pg_loss"] == pytest.approx(pg_main) and stats["correction_loss"] == pytest.approx(pg_corr + nll)
    assert stats["loss"] == pytest.approx(float(loss.detach())) and stats["rl_tokens"] == 4
    assert stats["clipfrac_sum"] == pytest.approx(2.0)  # 2 of the 4 surrogate tokens clipped
    assert stats["clipfrac_high_sum"] == pytest.approx(1.0) and stats["clipfrac_low_sum"] == pytest.approx(1.0)
    assert stats["ratio_mean_sum"] == pytest.approx(1.5 + 1.0 + 0.5 + 1.0)
    assert stats["logprob_diff_sum"] == pytest.approx(math.log(1.5) + math.log(2.0) + math.log(4.0))
    assert "kl" not in stats and "is_weight_sum" not in stats
    loss.backward()
    # clipped tokens get no gradient; d(-r A / 2)/dlogp = -r A / 2 on the others; NLL: -alpha / 1
    want = [[0.0, 0.0, -0.5], [0.0, 0.0, 0.5 * 0.5], [0.0, -0.5, 0.0]]
    torch.testing.assert_close(logprobs.grad, torch.tensor(want, dtype=torch.float64))


def test_kl_term_by_hand():
    logprobs = _logprobs()
    ref = torch.zeros(3, 3, dtype=torch.float64)
    base, _ = _objective(_logprobs())
    loss, stats = _objective(logprobs, ref_logprobs=ref, kl_coef=0.1, kl_estimator="k1")
    kl = (math.log(1.5) + math.log(0.5) + math.log(0.25)) / 5  # k1 = logp - ref, over all 5 trained tokens
    assert stats["kl"] == pytest.approx(kl)
    assert float(loss) == pytest.approx(float(base) + 0.1 * kl)
    with pytest.raises(ValueError, match="ref_logprobs"):
        _objective(_logprobs(), kl_coef=0.1)


def test_is_weights_scale_only_the_surrogate():
    engine = torch.full((3, 3), -math.log(2.0), dtype=torch.float64)  # exp(old - engine) = 2, capped at 1.5
    plain_loss, plain = _objective(_logprobs(), engine)
    loss, stats = _objective(_logprobs(), engine, is_weights_cap=1.5)
    assert stats["pg_loss"] == pytest.approx(1.5 * plain["pg_loss"])
    nll = math.log(4.0)
    assert stats["correction_loss"] == pytest.approx(1.5 * (plain["correction_loss"] - nll) + nll)
    assert stats["is_weight_sum"] == pytest.approx(1.5 * 4) and float(loss) != pytest.approx(float(plain_loss))


def test_whole_batch_denominators_make_micro_batches_add_up():
    """Rows split over micro-batches, each normalised by the whole batch's denominators: the
    micro-batch losses sum to the whole batch's loss (so the gradient never depends on the split)."""
    masks = stream_masks(LOSS_MASK, IS_CORRECTION, SFT)
    for mode in ("token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm"):
        options = {**OPTIONS, "loss_agg": mode}
        whole = objective_denominators(masks, LOSS_MASK, mode)
        logprobs = _logprobs().detach()
        full, _ = cipo_objective(logprobs, OLD, OLD, ADVANTAGES, masks, LOSS_MASK, whole, **options)
        parts = 0.0
        for rows in ([0], [1, 2]):
            sub = stream_masks(LOSS_MASK[rows], IS_CORRECTION[rows], SFT[rows])
            args = (logprobs[rows], OLD[rows], OLD[rows], ADVANTAGES[rows], sub, LOSS_MASK[rows], whole)
            parts += float(cipo_objective(*args, **options)[0])
        assert parts == pytest.approx(float(full)), mode


def test_objective_metrics_from_summed_stats():
    _, stats = _objective(_logprobs())
    totals = {name: 2 * value for name, value in stats.items()}  # two micro-batches' sums
    totals["entropy_sum"] = 3.0
    denominators = Denominators(2.0, 2.0, 1.0, 5.0, 10.0)
    metrics = objective_metrics(totals, denominators)
    assert metrics["train/clipfrac"] == pytest.approx(0.5) and metrics["train/ratio_mean"] == pytest.approx(1.0)
    assert metrics["train/entropy"] == pytest.approx(0.3) and metrics["train/tokens"] == 10.0
    assert metrics["train/loss"] == totals["loss"] and "train/kl" not in metrics
    assert metrics["rollout/logprob_diff_mean"] == pytest.approx(totals["logprob_diff_sum"] / 10)


def test_is_weights_mode_reaches_the_weights():
    """sequence_mask drops a whole row whose product of ratios passes the cap; token_truncate caps each token."""
    engine = torch.full((3, 3), -math.log(2.0), dtype=torch.float64)  # each token's ratio 2
    _, truncated = _objective(_logprobs(), engine, is_weights_cap=1.5)
    loss, masked = _objective(_logprobs(), engine, is_weights_cap=1.5, is_weights_mode="sequence_mask")
    assert truncated["is_weight_sum"] == pytest.approx(1.5 * 4) and masked["is_weight_sum"] == 0.0
    assert masked["pg_loss"] == 0.0 and masked["is_capped_sum"] == truncated["is_capped_sum"] == 4
    denominators = objective_denominators(stream_masks(LOSS_MASK, IS_CORRECTION, SFT), LOSS_MASK, "token_mean")
    metrics = objective_metrics({**masked, "entropy_sum": 0.0}, denominators)
    assert metrics["train/is_capped_frac"] == 1.0 and metrics["train/is_weight_mean"] == 0.0


def test_joint_stream_weighting_divides_every_stream_by_all_trained_tokens():
    loss, stats = _objective(_logprobs(), stream_weighting="joint")
    pg_main, pg_corr, nll = (-1.2 - 1.0) / 5, (0.8 + 1.0) / 5, math.log(4.0) / 5  # 5 trained tokens in all
    assert float(loss.detach()) == pytest.approx(pg_main + 0.5 * (pg_corr + nll))
    assert stats["pg_loss"] == pytest.approx(pg_main)
    with pytest.raises(ValueError, match="weighting must be one of"):
        _objective(_logprobs(), stream_weighting="sum")


def test_transplanted_rows_take_policy_shaping_and_stay_out_of_the_ratio_statistics():
    """Two main rows with the same tokens and A = +1; the second is a transplanted revision."""
    loss_mask = torch.tensor([[0, 1, 1], [0, 1, 1]], dtype=torch.float64)
    probs = torch.tensor([[1.0, 0.5, 0.2], [1.0, 0.5, 0.2]], dtype=torch.float64)
    logprobs = probs.log().requires_grad_(True)
    old = probs.log() - math.log(1.5)  # on-policy ratio 1.5 everywhere: clipped at 1.2 for A > 0
    masks = stream_masks(
        loss_mask, torch.tensor([False, False]), torch.tensor([False, False]), torch.tensor([False, True])
    )
    torch.testing.assert_close(masks.transplant, loss_mask * torch.tensor([[0.0], [1.0]], dtype=torch.float64))
    denominators = objective_denominators(masks, loss_mask, "token_mean")
    assert denominators.main == 4.0  # a transplanted row is a main-stream row
    loss, stats = cipo_objective(
        logprobs, old, old, torch.tensor([1.0, 1.0], dtype=torch.float64), masks, loss_mask, denominators,
        **{**OPTIONS, "transplant_gamma": 0.1},
    )  # fmt: skip
    shaped = -(0.5 / 0.6) - (0.2 / 0.3)  # -p / (p + gamma) * A on the transplanted row's two tokens
    assert float(loss.detach()) == pytest.approx((-1.2 - 1.2 + shaped) / 4)
    assert stats["rl_tokens"] == 2 and stats["transplant_tokens"] == 2  # clip statistics: on-policy only
    assert stats["clipfrac_sum"] == pytest.approx(2.0) and stats["logprob_diff_tokens"] == 2
    loss.backward()
    grad = [-(0.1 * p / (p + 0.1) ** 2) / 4 for p in (0.5, 0.2)]
    torch.testing.assert_close(logprobs.grad[1, 1:], torch.tensor(grad, dtype=torch.float64))
