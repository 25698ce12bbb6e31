"""The whole CIPO objective of one micro-batch, as one pure function (method sheet step 9).

    loss = L_pg(main) + alpha * (L_pg(corrections) + NLL(sft rows)) + beta * KL(policy || reference)

Rows of one packed batch belong to one of three streams (``stream_masks``): main-stream samples,
correction episodes trained with the clipped surrogate, and correction episodes trained with a
supervised NLL (``objective: sft``, the rejection-sampling baseline; their advantage is unused).
Main-stream rows may be *transplanted* revisions (``correction.transplant``): off-policy, so their
tokens take ``losses.policy_shaped_loss`` -p/(p + gamma) * A instead of the clipped ratio.
The per-token surrogate is ``losses.clipped_surrogate`` with optional importance weights between
the engine and the trainer (``is_weights_cap`` / ``is_weights_mode``, ``importance.py``); each
stream is reduced on its own (``losses.aggregate_loss``) and divided by a count over the WHOLE
mini-batch (``Denominators``, summed over micro-batches and ranks by the caller), so the
micro-batch split and the number of processes change memory and speed, never the gradient. Which
count (``stream_weighting``, ``losses.stream_denominators``): ``joint``, every trained row's (one
token mean over both streams), or ``per_stream``, each stream's own (the correction stream a fixed
share alpha / (1 + alpha) of the update whatever its size). The KL term is reduced over every
trained token.

Our choices (the paper's text was unavailable to us):
  * ``joint`` is the config default (docs/method.md); the function's default is ``per_stream``.
  * NLL rows count in the correction term (alpha * (L_pg + NLL)), normalised by their own tokens
    (per_stream) or by every trained row's count (joint).
  * With one update per batch the ratio is 1 and clipping is inert; it binds only with
    ``ppo_epochs`` or ``num_mini_batches`` > 1.

Shapes: ``N`` rows, ``T`` positions (prompt + completion, right padded).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from torch import Tensor

from cipo.algorithms.importance import engine_is_weights
from cipo.algorithms.losses import (
    aggregate_loss,
    clipped_surrogate,
    kl_penalty,
    loss_denominator,
    policy_shaped_loss,
    sft_nll,
    stream_denominators,
)

CLIP_STATS = ("clipfrac", "clipfrac_low", "clipfrac_high", "ratio_mean", "approx_kl")


@dataclass(frozen=True)
class StreamMasks:
    """(N, T) float masks, 1 on the tokens each term of the objective sees."""

    main: Tensor  # transplanted rows included
    correction: Tensor  # trained with the clipped surrogate
    sft: Tensor  # trained with NLL
    transplant: Tensor  # the main stream's off-policy rows (policy shaping)

    @property
    def rl(self) -> Tensor:
        """Tokens of the policy-gradient terms (main + correction)."""
        return self.main + self.correction

    @property
    def on_policy(self) -> Tensor:
        """Tokens of the clipped surrogate (the policy-gradient tokens but transplanted ones)."""
        return self.rl - self.transplant


def stream_masks(
    loss_mask: Tensor, is_correction: Tensor, sft_mask: Tensor, is_transplant: Tensor | None = None
) -> StreamMasks:
    """Split ``loss_mask`` (N, T) by the row flags ``is_correction``, ``sft_mask`` and
    ``is_transplant`` (N,) bool (a transplanted row is a main-stream row)."""
    corr, sft = is_correction[:, None], sft_mask[:, None]
    transplant = (is_transplant[:, None] & ~corr) if is_transplant is not None else corr & False
    return StreamMasks(
        main=loss_mask * ~corr,
        correction=loss_mask * (corr & ~sft),
        sft=loss_mask * sft,
        transplant=loss_mask * transplant,
    )


@dataclass(frozen=True)
class Denominators:
    """Normalisers of the whole mini-batch: ``aggregate_loss``'s per stream, tokens for NLL,
    ``all`` for the KL term, ``tokens`` (trained tokens) for the per-token statistics."""

    main: float
    correction: float
    sft: float
    all: float
    tokens: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, float]) -> Denominators:
        return cls(**{f.name: float(values[f.name]) for f in fields(cls)})


def objective_denominators(masks: StreamMasks, loss_mask: Tensor, loss_agg: str) -> Denominators:
    """This (micro-)batch's share of the denominators; sum them over micro-batches and ranks."""
    return Denominators(
        main=loss_denominator(masks.main, loss_agg),
        correction=loss_denominator(masks.correction, loss_agg),
        sft=float(masks.sft.sum()),
        all=loss_denominator(loss_mask, loss_agg),
        tokens=float(loss_mask.sum()),
    )


def cipo_objective(
    logprobs: Tensor,
    old_logprobs: Tensor,
    engine_logprobs: Tensor,
    advantages: Tensor,
    masks: StreamMasks,
    loss_mask: Tensor,
    denominators: Denominators,
    *,
    clip_low: float,
    clip_high: float,
    loss_agg: str,
    max_len: int,
    correction_coef: float,
    stream_weighting: str = "per_stream",
    transplant_gamma: float = 0.1,
    is_weights_cap: float | None = None,
    is_weights_mode: str = "token_truncate",
    ref_logprobs: Tensor | None = None,
    kl_coef: float = 0.0,
    kl_estimator: str = "k3",
) -> tuple[Tensor, dict[str, float]]:
    """The loss of one micro-batch and its detached statistics.

    Args:
        logprobs: (N, T) current policy's log-probs of the taken tokens (with grad).
        old_logprobs: (N, T) the policy's log-probs before this step's first update.
        engine_logprobs: (N, T) the sampler's log-probs (importance weights, logprob_diff).
        advantages: (N,) one per row.
        masks: the rows' stream masks (``stream_masks``).
        loss_mask: (N, T) every trained token (KL term, statistics).
        denominators: the whole mini-batch's (``objective_denominators`` summed).
        clip_low, clip_high, loss_agg, max_len: the surrogate's clip range and reduction
            (``max_len``: Dr. GRPO's constant length, the generation limit).
        correction_coef: alpha.
        stream_weighting: ``joint`` or ``per_stream`` (module docstring).
        transplant_gamma: gamma of the policy shaping of transplanted tokens.
        is_weights_cap: None, or the cap C of the engine/trainer importance weights.
        is_weights_mode: how the weights use C (``importance.IS_MODES``: token/sequence x truncate/mask).
        ref_logprobs: (N, T) the frozen reference's log-probs; required when ``kl_coef`` > 0.
        kl_coef, kl_estimator: beta and the KL estimator (``losses.kl_penalty``).

    Returns:
        loss: () scalar to backpropagate.
        stats: floats that are SUMS over this micro-batch (add them over micro-batches and
        ranks, then ``objective_metrics``): ``loss``, ``pg_loss``, ``correction_loss``, ``kl``
        (if beta > 0), ``rl_tokens``, ``logprob_diff_sum``, ``<clip stat>_sum`` for each of
        ``CLIP_STATS``, ``is_weight_sum`` and ``is_capped_sum`` (tokens whose ratio passed the cap)
        when ``is_weights_cap`` is set.
    """
    if kl_coef > 0 and ref_logprobs is None:
        raise ValueError("kl_coef > 0 needs ref_logprobs (the frozen reference's log-probs)")
    on_policy = masks.on_policy
    is_weights = capped = None
    if is_weights_cap is not None:
        is_weights, capped = engine_is_weights(
            old_logprobs, engine_logprobs, on_policy, is_weights_mode, is_weights_cap
        )
    per_token, clip_stats = clipped_surrogate(
        logprobs, old_logprobs, advantages, on_policy, clip_low, clip_high, is_weights
    )
    transplanted = float(masks.transplant.sum())
    if transplanted:
        per_token = per_token + policy_shaped_loss(logprobs, advantages, masks.transplant, transplant_gamma)
    d_main, d_corr, d_sft = stream_denominators(
        denominators.main, denominators.correction, denominators.sft, denominators.all, stream_weighting
    )
    agg = dict(mode=loss_agg, max_len=max_len)
    pg_main = aggregate_loss(per_token, masks.main, denominator=d_main or None, **agg)
    pg_corr = aggregate_loss(per_token, masks.correction, denominator=d_corr or None, **agg)
    sft = sft_nll(logprobs, masks.sft, denominator=d_sft or None)
    loss = pg_main + correction_coef * (pg_corr + sft)
    on_policy_tokens = float(on_policy.sum())
    sampled = loss_mask - masks.transplant  # a transplanted row was sampled under another prompt
    stats = {
        "pg_loss": float(pg_main.detach()),
        "correction_loss": float((pg_corr + sft).detach()),
        "logprob_diff_sum": float(((logprobs.detach() - engine_logprobs).abs() * sampled).sum()),
        "logprob_diff_tokens": float(sampled.sum()),
        **{f"{name}_sum": value * on_policy_tokens for name, value in clip_stats.items()},
        "rl_tokens": on_policy_tokens,
        "transplant_tokens": transplanted,
    }
    if is_weights is not None:
        stats["is_weight_sum"] = float((is_weights * on_policy).sum())
        stats["is_capped_sum"] = float(capped.sum())
    if kl_coef > 0:
        per_token_kl = kl_penalty(logprobs, ref_logprobs, kl_estimator)
        kl = aggregate_loss(per_token_kl, loss_mask, denominator=denominators.all or None, **agg)
        loss = loss + kl_coef * kl
        stats["kl"] = float(kl.detach())
    stats["loss"] = float(loss.detach())
    return loss, stats


def objective_metrics(totals: dict[str, float], denominators: Denominators) -> dict[str, float]:
    """The step's ``train/*`` values from the summed ``cipo_objective`` statistics.

    Token statistics are means over the step's tokens: ``entropy_sum`` (the caller's, from the
    logits) and ``logprob_diff_sum`` over every trained token, the clip statistics and
    ``is_weight_sum`` over the surrogate's tokens.
    """
    tokens, rl_tokens = max(denominators.tokens, 1.0), max(totals.get("rl_tokens", 0.0), 1.0)
    metrics = {
        "train/loss": totals["loss"],
        "train/pg_loss": totals["pg_loss"],
        "train/correction_loss": totals["correction_loss"],
        "train/entropy": totals["entropy_sum"] / tokens,
        "rollout/logprob_diff_mean": totals["logprob_diff_sum"] / max(totals.get("logprob_diff_tokens", tokens), 1.0),
        "train/tokens": denominators.tokens,
    }
    for name in CLIP_STATS:
        metrics[f"train/{name}"] = totals.get(f"{name}_sum", 0.0) / rl_tokens
    if "kl" in totals:
        metrics["train/kl"] = totals["kl"]
    if "is_weight_sum" in totals:
        metrics["train/is_weight_mean"] = totals["is_weight_sum"] / rl_tokens
        metrics["train/is_capped_frac"] = totals.get("is_capped_sum", 0.0) / rl_tokens
    return metrics
