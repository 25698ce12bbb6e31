"""Clipped surrogate, KL estimators, reductions: hand-computed values and invariants."""

import math

import pytest
import torch

from cipo.algorithms.losses import (
    LOSS_AGG_MODES,
    aggregate_loss,
    clipped_surrogate,
    kl_penalty,
    loss_denominator,
    policy_shaped_loss,
    sft_nll,
    stream_denominators,
)


def _case():
    ratios = torch.tensor([[1.5, 1.0], [1.5, 1.0], [0.5, 1.0], [0.5, 1.0]], dtype=torch.double)
    logp = ratios.log().requires_grad_(True)
    old = torch.zeros(4, 2, dtype=torch.double)
    adv = torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=torch.double)
    mask = torch.tensor([[1, 0], [1, 1], [1, 1], [1, 0]], dtype=torch.bool)
    return logp, old, adv, mask


def test_surrogate_hand_computed():
    logp, old, adv, mask = _case()
    loss, m = clipped_surrogate(logp, old, adv, mask)
    # (A>0, r=1.5) clipped to 1.2; (A<0, r=1.5) not; (A<0, r=0.5) clipped to 0.8; (A>0, r=0.5) not
    want = torch.tensor([[-1.2, 0.0], [1.5, 1.0], [0.8, 1.0], [-0.5, 0.0]], dtype=torch.double)
    torch.testing.assert_close(loss, want)
    assert m["clipfrac"] == pytest.approx(2 / 6)
    assert m["clipfrac_high"] == pytest.approx(1 / 6)
    assert m["clipfrac_low"] == pytest.approx(1 / 6)
    assert m["ratio_mean"] == pytest.approx(1.0)
    kl = 2 * (0.5 - math.log(1.5)) + 2 * (-0.5 - math.log(0.5))
    assert m["approx_kl"] == pytest.approx(kl / 6)
    assert all(isinstance(v, float) for v in m.values())


def test_gradient_zero_on_clipped_and_masked_tokens():
    logp, old, adv, mask = _case()
    loss, _ = clipped_surrogate(logp, old, adv, mask)
    loss.sum().backward()
    # d(-r A)/d logp = -r A on unclipped tokens
    want = torch.tensor([[0.0, 0.0], [1.5, 1.0], [0.0, 1.0], [-0.5, 0.0]], dtype=torch.double)
    torch.testing.assert_close(logp.grad, want)


def test_clip_higher_asymmetry():
    logp = torch.tensor([[math.log(1.25)], [math.log(0.75)]])
    old = torch.zeros(2, 1)
    mask = torch.ones(2, 1)
    adv = torch.tensor([1.0, -1.0])
    sym, m_sym = clipped_surrogate(logp, old, adv, mask, clip_low=0.2, clip_high=0.2)
    asym, m_asym = clipped_surrogate(logp, old, adv, mask, clip_low=0.2, clip_high=0.28)
    torch.testing.assert_close(sym, torch.tensor([[-1.2], [0.8]]))
    torch.testing.assert_close(asym, torch.tensor([[-1.25], [0.8]]))  # upper clip moved
    assert m_sym["clipfrac_high"] == 0.5 and m_asym["clipfrac_high"] == 0.0
    assert m_sym["clipfrac_low"] == m_asym["clipfrac_low"] == 0.5


def test_is_weights_scale_and_are_detached():
    logp, old, adv, mask = _case()
    w = torch.full((4, 2), 0.5, dtype=torch.double, requires_grad=True)
    base, _ = clipped_surrogate(logp, old, adv, mask)
    weighted, _ = clipped_surrogate(logp, old, adv, mask, is_weights=w)
    torch.testing.assert_close(weighted, 0.5 * base)
    weighted.sum().backward()
    assert w.grad is None


def test_token_level_advantages_and_padding_with_inf():
    logp = torch.tensor([[0.0, -float("inf")]], requires_grad=True)
    old = torch.tensor([[0.0, -float("inf")]])
    loss, m = clipped_surrogate(logp, old, torch.tensor([[2.0, 5.0]]), torch.tensor([[1, 0]]))
    loss.sum().backward()
    assert torch.isfinite(loss).all() and torch.isfinite(logp.grad).all()
    torch.testing.assert_close(loss, torch.tensor([[-2.0, 0.0]]))
    assert m["ratio_mean"] == 1.0


def test_all_masked_surrogate_metrics_are_zero():
    logp = torch.zeros(2, 3, requires_grad=True)
    loss, m = clipped_surrogate(logp, torch.zeros(2, 3), torch.ones(2), torch.zeros(2, 3))
    assert torch.equal(loss, torch.zeros(2, 3))
    assert m == {k: 0.0 for k in m} and not any(math.isnan(v) for v in m.values())


def test_surrogate_validation():
    z = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="old_logprobs"):
        clipped_surrogate(z, torch.zeros(2, 4), torch.zeros(2), z)
    with pytest.raises(ValueError, match="advantages"):
        clipped_surrogate(z, z, torch.zeros(3), z)
    with pytest.raises(ValueError, match="clip_low.*1.5"):
        clipped_surrogate(z, z, torch.zeros(2), z, clip_low=1.5)
    with pytest.raises(ValueError, match="clip_high.*-0.1"):
        clipped_surrogate(z, z, torch.zeros(2), z, clip_high=-0.1)


def test_kl_estimators_hand_values():
    ln2 = math.log(2.0)
    logp = torch.tensor([[0.0, ln2]], dtype=torch.double)
    ref = torch.tensor([[ln2, 0.0]], dtype=torch.double)

    def t(*xs):
        return torch.tensor([xs], dtype=torch.double)

    torch.testing.assert_close(kl_penalty(logp, ref, "k1"), t(-ln2, ln2))
    torch.testing.assert_close(kl_penalty(logp, ref, "k2"), t(0.5 * ln2**2, 0.5 * ln2**2))
    torch.testing.assert_close(kl_penalty(logp, ref), t(1 - ln2, ln2 - 0.5))  # k3 default


def test_k3_nonnegative_and_zero_at_equality():
    gen = torch.Generator().manual_seed(0)
    logp, ref = torch.randn(16, 32, generator=gen) * 3, torch.randn(16, 32, generator=gen) * 3
    assert (kl_penalty(logp, ref, "k3") >= 0).all()
    assert torch.equal(kl_penalty(ref, ref, "k3"), torch.zeros_like(ref))


def test_kl_unknown_estimator():
    with pytest.raises(ValueError, match="'k1', 'k2', 'k3'.*'k4'"):
        kl_penalty(torch.zeros(1, 1), torch.zeros(1, 1), "k4")


PT = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])
MASK = torch.tensor([[1, 1, 0], [1, 0, 0], [0, 0, 0]])


@pytest.mark.parametrize(
    "mode,want,denom",
    [
        ("token_mean", 7 / 3, 3.0),
        ("seq_mean_token_mean", (1.5 + 4.0) / 2, 2.0),
        ("seq_mean_token_sum_norm", (3 / 3 + 4 / 3) / 3, 3.0),
    ],
)
def test_aggregate_hand_computed(mode, want, denom):
    assert aggregate_loss(PT, MASK, mode).item() == pytest.approx(want)
    assert loss_denominator(MASK, mode) == denom
    scaled = aggregate_loss(PT, MASK, mode, denominator=10.0).item()
    assert scaled == pytest.approx(want * denom / 10)


def test_sum_norm_max_len():
    out = aggregate_loss(PT, MASK, "seq_mean_token_sum_norm", max_len=4)
    assert out.item() == pytest.approx(7 / 12)


@pytest.mark.parametrize("mode", LOSS_AGG_MODES)
def test_micro_batches_sum_to_full_batch(mode):
    gen = torch.Generator().manual_seed(1)
    n, t = 8, 6
    per_token = torch.randn(n, t, generator=gen, dtype=torch.double).requires_grad_(True)
    mask = torch.rand(n, t, generator=gen) > 0.4
    mask[2] = False  # an empty row
    full = aggregate_loss(per_token, mask, mode)
    (g_full,) = torch.autograd.grad(full, per_token)

    # Micro-batches padded to their own length (trailing all-masked columns dropped)
    # must pass the global max_len for Dr. GRPO.
    splits = [(0, 3), (3, 5), (5, 8)]
    total = sum(loss_denominator(mask[a:b], mode) for a, b in splits)
    parts = []
    for a, b in splits:
        cols = int(mask[a:b].any(0).nonzero().max()) + 1
        parts.append(aggregate_loss(per_token[a:b, :cols], mask[a:b, :cols], mode, denominator=total, max_len=t))
    summed = sum(parts)
    (g_parts,) = torch.autograd.grad(summed, per_token)
    torch.testing.assert_close(summed, full, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(g_parts, g_full, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", LOSS_AGG_MODES)
def test_all_masked_batch_is_zero_with_grad(mode):
    per_token = torch.full((2, 3), float("nan")).requires_grad_(True)
    out = aggregate_loss(per_token, torch.zeros(2, 3), mode)
    assert out.item() == 0.0
    out.backward()
    assert torch.equal(per_token.grad, torch.zeros(2, 3))


def test_fully_masked_rows_contribute_nothing():
    pt = torch.tensor([[1.0, 3.0], [100.0, 100.0]])
    mask = torch.tensor([[1, 1], [0, 0]])
    assert aggregate_loss(pt, mask, "seq_mean_token_mean").item() == 2.0
    assert aggregate_loss(pt, mask, "token_mean").item() == 2.0


def test_aggregate_validation():
    with pytest.raises(ValueError, match="'token_mean'.*'seq_sum'"):
        aggregate_loss(PT, MASK, "seq_sum")
    with pytest.raises(ValueError, match="'seq_sum'"):
        loss_denominator(MASK, "seq_sum")
    with pytest.raises(ValueError, match="denominator.*-1"):
        aggregate_loss(PT, MASK, denominator=-1.0)
    with pytest.raises(ValueError, match="max_len.*0"):
        aggregate_loss(PT, MASK, "seq_mean_token_sum_norm", max_len=0)
    with pytest.raises(ValueError, match="mask"):
        aggregate_loss(PT, MASK[:, :2])


def test_sft_nll():
    logp = torch.tensor([[-1.0, -2.0], [-3.0, -float("inf")]], requires_grad=True)
    out = sft_nll(logp, torch.tensor([[1, 1], [1, 0]]))
    assert out.item() == pytest.approx(2.0)
    out.backward()
    torch.testing.assert_close(logp.grad, torch.tensor([[-1 / 3, -1 / 3], [-1 / 3, 0.0]]))
    out = sft_nll(logp, torch.tensor([[1, 1], [1, 0]]), denominator=6.0)
    assert out.item() == pytest.approx(1.0)
    empty = sft_nll(logp, torch.zeros(2, 2))
    assert empty.item() == 0.0 and not torch.isnan(empty)


# ------------------------------------------------------------------ stream weighting
def test_stream_denominators():
    assert stream_denominators(10.0, 30.0, 5.0, 45.0, "per_stream") == (10.0, 30.0, 5.0)
    assert stream_denominators(10.0, 30.0, 5.0, 45.0, "joint") == (45.0, 45.0, 45.0)
    with pytest.raises(ValueError, match="weighting must be one of"):
        stream_denominators(1.0, 1.0, 0.0, 2.0, "sum")


def test_joint_weighting_is_one_token_mean_over_both_streams():
    """alpha = 1: joint gives every token the same weight; per_stream gives the small stream's
    tokens more (each stream is half of the update whatever its size)."""
    per_token = torch.randn(6, 5)
    mask = torch.ones(6, 5)
    main, corr = mask.clone(), mask.clone()
    main[4:], corr[:4] = 0, 0  # 20 main tokens, 10 correction tokens
    dens = {n: loss_denominator(m) for n, m in (("main", main), ("corr", corr), ("all", mask))}
    for weighting, expected in (("joint", aggregate_loss(per_token, mask)), ("per_stream", None)):
        d_main, d_corr, _ = stream_denominators(dens["main"], dens["corr"], 0.0, dens["all"], weighting)
        total = aggregate_loss(per_token, main, denominator=d_main) + aggregate_loss(
            per_token, corr, denominator=d_corr
        )
        if expected is not None:
            assert torch.allclose(total, expected)
        else:
            assert torch.allclose(total, aggregate_loss(per_token, main) + aggregate_loss(per_token, corr))


# ------------------------------------------------------------- transplant: policy shaping
def test_policy_shaped_loss_value_and_gradient():
    logprobs = torch.log(torch.tensor([[0.5, 0.05, 0.9], [0.2, 0.3, 0.4]])).requires_grad_()
    advantages = torch.tensor([2.0, -1.0])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    loss = policy_shaped_loss(logprobs, advantages, mask, gamma=0.1)
    p = logprobs.detach().exp()
    expected = -(p / (p + 0.1)) * advantages[:, None] * mask
    assert torch.allclose(loss, expected)
    loss.sum().backward()
    # d/dlogp of -p/(p+g) * A = -g p / (p + g)^2 * A: small-probability tokens are not crushed
    grad = -(0.1 * p / (p + 0.1) ** 2) * advantages[:, None] * mask
    assert torch.allclose(logprobs.grad, grad)


def test_policy_shaped_loss_ignores_padding_and_checks_arguments():
    logprobs = torch.tensor([[-0.1, float("nan")]], requires_grad=True)
    loss = policy_shaped_loss(logprobs, torch.ones(1), torch.tensor([[1, 0]]))
    loss.sum().backward()
    assert torch.isfinite(loss).all() and torch.isfinite(logprobs.grad).all() and logprobs.grad[0, 1] == 0
    with pytest.raises(ValueError, match="gamma must be > 0"):
        policy_shaped_loss(logprobs, torch.ones(1), torch.ones(1, 2), gamma=0.0)
    with pytest.raises(ValueError, match=r"advantages \(N,\)"):
        policy_shaped_loss(logprobs, torch.ones(2), torch.ones(1, 2))
