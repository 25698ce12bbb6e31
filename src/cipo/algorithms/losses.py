"""Policy-gradient objective, split into a per-token term and its reduction (step 9).

Per token (PPO clipped surrogate, Schulman et al. 2017, with DAPO's "clip-higher"):
    ratio_t = exp(logp_t - old_logp_t)
    loss_t  = -min(ratio_t * A, clip(ratio_t, 1 - clip_low, 1 + clip_high) * A) * w_t
where ``A`` is the sequence's advantage and ``w_t`` an optional, detached importance weight
between the sampling engine and the trainer (``is_weights``; 1 when absent).

KL to a reference (Schulman, "Approximating KL divergence", 2020), per token, samples
from the policy, log-ratio ``d = logp - ref``:
    k1 = d      k2 = d^2 / 2      k3 = exp(-d) + d - 1   (unbiased, low variance, >= 0)

Reductions (``aggregate_loss``; verl's ``agg_loss`` idea), ``m`` the loss mask:
    token_mean               sum_{i,t} l m / sum_{i,t} m              (default, DAPO)
    seq_mean_token_mean      mean_i [ sum_t l m / sum_t m ]           (original GRPO)
    seq_mean_token_sum_norm  mean_i [ sum_t l m / max_len ]           (Dr. GRPO)
Each takes an optional ``denominator`` so that micro-batches can be normalised by the
whole mini-batch's count (``loss_denominator`` summed over micro-batches); then the sum
of the micro-batch losses equals the loss of the full batch.

Stream weighting (``stream_denominators``, method sheet step 9), for
L = L(main) + alpha * L(corrections):
    per_stream  each stream divided by its own count: the correction stream is a fixed share
                of the update (alpha / (1 + alpha)) whatever its size (the published form)
    joint       both streams divided by one count over all trained tokens (or sequences): a
                token weighs the same in either stream (times alpha), so a stream's share of the
                update is its share of the tokens (our default)

Transplanted rows (``policy_shaped_loss``): off-policy tokens (a revision trained as the answer
to the original prompt) carry no sampling ratio; LUFFY's policy shaping (Yan et al., 2025, as in
Critique-GRPO) uses f(p) = p / (p + gamma) of the current token probability instead:
    loss_t = -p_t / (p_t + gamma) * A,    gradient  -gamma / (p_t + gamma)^2 * dp_t * A
which lifts the weight of low-probability tokens that plain likelihood would under-train.

Choices made here (not the paper's, which is unavailable to us):
  * The log-ratio is clamped to [-20, 20] before ``exp`` (verl does the same) so a stray
    token cannot overflow to inf; it changes nothing for ratios within ~[2e-9, 5e8].
  * ``approx_kl`` in the metrics is the k3 estimate of KL(old || new) with samples from
    the old policy: (ratio - 1) - log(ratio) >= 0.
  * Positions outside the mask are replaced by 0 *before* any arithmetic, so padding that
    holds -inf / NaN logprobs can neither leak into the loss nor into the gradient.
"""

from __future__ import annotations

import torch
from torch import Tensor

LOSS_AGG_MODES: tuple[str, ...] = ("token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm")
STREAM_WEIGHTINGS: tuple[str, ...] = ("joint", "per_stream")
KL_ESTIMATORS: tuple[str, ...] = ("k1", "k2", "k3")
_LOG_RATIO_CLAMP = 20.0


def _check_same_shape(ref_name: str, ref: Tensor, **others: Tensor | None) -> None:
    for name, t in others.items():
        if t is not None and t.shape != ref.shape:
            raise ValueError(f"{name} must have the shape of {ref_name} {tuple(ref.shape)}, got {tuple(t.shape)}")


def _masked_mean(values: Tensor, mask: Tensor, count: float) -> float:
    """Mean of ``values`` over ``mask`` as a detached float; 0.0 when nothing is masked in."""
    if count <= 0:
        return 0.0
    return float((torch.where(mask, values, torch.zeros_like(values)).sum() / count).item())


def check_clip_range(clip_low: float, clip_high: float) -> None:
    """The one definition of a valid clip range (``AlgorithmConfig`` checks its keys with it):
    the ratio is clipped to [1 - clip_low, 1 + clip_high], so clip_low in [0, 1] (1: no lower
    clip, as a ratio is never negative) and clip_high >= 0."""
    if not 0.0 <= clip_low <= 1.0:
        raise ValueError(f"clip_low must be in [0, 1], got {clip_low!r}")
    if clip_high < 0.0:
        raise ValueError(f"clip_high must be >= 0, got {clip_high!r}")


def clipped_surrogate(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    mask: Tensor,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    is_weights: Tensor | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """Per-token PPO clipped surrogate loss (to be minimised).

    Args:
        logprobs: (N, T) log-probs of the taken tokens under the current policy (grad).
        old_logprobs: (N, T) log-probs under the policy that produced the rollout.
        advantages: (N,) one per sequence (broadcast over T), or (N, T).
        mask: (N, T) bool or 0/1; tokens that count.
        clip_low, clip_high: ratio is clipped to [1 - clip_low, 1 + clip_high].
        is_weights: optional (N, T) importance weights, detached before use.

    Returns:
        loss: (N, T), 0 where ``mask`` is 0.
        metrics: floats over masked tokens: ``clipfrac`` (= clipfrac_low + clipfrac_high,
        the share where the clipped branch is strictly smaller and so active),
        ``clipfrac_low`` (A < 0 and ratio < 1 - clip_low), ``clipfrac_high`` (A > 0 and
        ratio > 1 + clip_high), ``ratio_mean``, ``approx_kl`` (k3 of KL(old || new)).
        All 0.0 when no token is masked in.
    """
    if logprobs.dim() != 2:
        raise ValueError(f"logprobs must be (N, T), got shape {tuple(logprobs.shape)}")
    _check_same_shape("logprobs", logprobs, old_logprobs=old_logprobs, mask=mask, is_weights=is_weights)
    if advantages.dim() == 1:
        if advantages.shape[0] != logprobs.shape[0]:
            raise ValueError(f"advantages (N,) must have N={logprobs.shape[0]}, got {tuple(advantages.shape)}")
        advantages = advantages.unsqueeze(1).expand_as(logprobs)
    else:
        _check_same_shape("logprobs", logprobs, advantages=advantages)
    check_clip_range(clip_low, clip_high)

    m = mask.bool()
    adv = advantages.detach().to(logprobs.dtype)
    zeros = torch.zeros_like(logprobs)
    log_ratio = torch.where(m, logprobs - old_logprobs.detach(), zeros)
    log_ratio = log_ratio.clamp(-_LOG_RATIO_CLAMP, _LOG_RATIO_CLAMP)
    ratio = torch.exp(log_ratio)
    unclipped = ratio * adv
    clipped = ratio.clamp(1.0 - clip_low, 1.0 + clip_high) * adv
    loss = -torch.minimum(unclipped, clipped)
    if is_weights is not None:
        loss = loss * torch.where(m, is_weights.detach().to(loss.dtype), zeros)
    loss = torch.where(m, loss, zeros)

    with torch.no_grad():
        count = float(m.sum().item())
        r = ratio.detach()
        high = (adv > 0) & (r > 1.0 + clip_high)
        low = (adv < 0) & (r < 1.0 - clip_low)
        metrics = {
            "clipfrac": _masked_mean((high | low).to(r.dtype), m, count),
            "clipfrac_low": _masked_mean(low.to(r.dtype), m, count),
            "clipfrac_high": _masked_mean(high.to(r.dtype), m, count),
            "ratio_mean": _masked_mean(r, m, count),
            "approx_kl": _masked_mean((r - 1.0) - log_ratio.detach(), m, count),
        }
    return loss, metrics


def kl_penalty(logprobs: Tensor, ref_logprobs: Tensor, estimator: str = "k3") -> Tensor:
    """Per-token estimate of KL(policy || reference) from policy samples.

    Args:
        logprobs: (N, T) policy log-probs of the sampled tokens (grad flows here).
        ref_logprobs: (N, T) reference-model log-probs of the same tokens (detached).
        estimator: ``"k1"`` (d), ``"k2"`` (d^2 / 2) or ``"k3"`` (exp(-d) + d - 1), d = logp - ref.

    Returns:
        (N, T) unmasked; reduce it with ``aggregate_loss``.
    """
    if estimator not in KL_ESTIMATORS:
        raise ValueError(f"estimator must be one of {KL_ESTIMATORS}, got {estimator!r}")
    _check_same_shape("logprobs", logprobs, ref_logprobs=ref_logprobs)
    d = logprobs - ref_logprobs.detach()
    if estimator == "k1":
        return d
    if estimator == "k2":
        return 0.5 * d * d
    d = d.clamp(-_LOG_RATIO_CLAMP, _LOG_RATIO_CLAMP)
    return torch.exp(-d) + d - 1.0


def loss_denominator(mask: Tensor, mode: str = "token_mean") -> float:
    """The local normaliser of ``aggregate_loss`` for ``mask`` (N, T).

    token_mean: masked tokens; seq_mean_token_mean: sequences with >= 1 masked token;
    seq_mean_token_sum_norm: sequences. Sum it over the micro-batches of a mini-batch and
    pass the total as ``denominator`` to every micro-batch's ``aggregate_loss``.
    """
    if mode not in LOSS_AGG_MODES:
        raise ValueError(f"mode must be one of {LOSS_AGG_MODES}, got {mode!r}")
    if mask.dim() != 2:
        raise ValueError(f"mask must be (N, T), got shape {tuple(mask.shape)}")
    m = mask.bool()
    if mode == "token_mean":
        return float(m.sum().item())
    if mode == "seq_mean_token_mean":
        return float(m.any(dim=1).sum().item())
    return float(m.shape[0])


def aggregate_loss(
    per_token: Tensor,
    mask: Tensor,
    mode: str = "token_mean",
    denominator: float | None = None,
    max_len: int | None = None,
) -> Tensor:
    """Reduce a per-token loss (N, T) over ``mask`` (N, T) to a scalar.

    Args:
        per_token: (N, T) loss terms.
        mask: (N, T) bool or 0/1.
        mode: one of ``LOSS_AGG_MODES`` (see module docstring).
        denominator: overrides the local normaliser (see ``loss_denominator``); >= 0.
        max_len: Dr. GRPO's constant length for ``seq_mean_token_sum_norm``; defaults to T.
            Pass it explicitly when micro-batches are padded to different lengths.

    Returns:
        () scalar. A batch with nothing to normalise by returns a graph-connected 0
        (``(per_token * 0).sum()``), never NaN, so ``backward`` still works.
    """
    if mode not in LOSS_AGG_MODES:
        raise ValueError(f"mode must be one of {LOSS_AGG_MODES}, got {mode!r}")
    if per_token.dim() != 2:
        raise ValueError(f"per_token must be (N, T), got shape {tuple(per_token.shape)}")
    _check_same_shape("per_token", per_token, mask=mask)
    if denominator is not None and denominator < 0:
        raise ValueError(f"denominator must be >= 0, got {denominator!r}")
    if max_len is not None and max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len!r}")

    m = mask.bool()
    masked = torch.where(m, per_token, torch.zeros_like(per_token))
    denom = loss_denominator(m, mode) if denominator is None else float(denominator)
    if denom == 0:
        return (masked * 0).sum()

    if mode == "token_mean":
        return masked.sum() / denom
    seq_sum = masked.sum(dim=1)  # (N,)
    if mode == "seq_mean_token_mean":
        counts = m.sum(dim=1)
        # Rows with no masked token would be 0/0; they contribute 0 instead.
        seq_mean = seq_sum / counts.clamp(min=1).to(seq_sum.dtype)
        return seq_mean.sum() / denom
    length = per_token.shape[1] if max_len is None else max_len
    return (seq_sum / length).sum() / denom


def sft_nll(logprobs: Tensor, mask: Tensor, denominator: float | None = None) -> Tensor:
    """Token-mean negative log-likelihood over ``mask`` (SFT-on-successful-corrections).

    Args:
        logprobs: (N, T) log-probs of the target tokens.
        mask: (N, T) tokens that count.
        denominator: as in ``aggregate_loss`` (token count of the whole mini-batch).

    Returns:
        () scalar; a graph-connected 0 when nothing is masked in.
    """
    return aggregate_loss(-logprobs, mask, "token_mean", denominator=denominator)


def stream_denominators(main: float, correction: float, sft: float, all_rows: float, weighting: str) -> tuple:
    """(main, correction, sft) normalisers for ``weighting`` (module docstring).

    ``main``, ``correction``: each stream's ``loss_denominator``; ``sft``: its token count;
    ``all_rows``: the ``loss_denominator`` of every trained row (both streams). All are the whole
    mini-batch's counts, so micro-batching never changes the result.
    """
    if weighting not in STREAM_WEIGHTINGS:
        raise ValueError(f"weighting must be one of {STREAM_WEIGHTINGS}, got {weighting!r}")
    if weighting == "joint":
        return all_rows, all_rows, all_rows
    return main, correction, sft


def policy_shaped_loss(logprobs: Tensor, advantages: Tensor, mask: Tensor, gamma: float = 0.1) -> Tensor:
    """Per-token loss -p/(p + gamma) * A of off-policy rows (module docstring).

    Args:
        logprobs: (N, T) current log-probs of the rows' tokens (grad flows here).
        advantages: (N,) one per sequence.
        mask: (N, T) tokens that count.
        gamma: > 0; LUFFY uses 0.1.

    Returns:
        (N, T), 0 where ``mask`` is 0; reduce it with ``aggregate_loss``.
    """
    if gamma <= 0:
        raise ValueError(f"gamma must be > 0, got {gamma!r}")
    if logprobs.dim() != 2 or advantages.shape != logprobs.shape[:1]:
        raise ValueError(
            f"need logprobs (N, T) and advantages (N,), got {tuple(logprobs.shape)}, {tuple(advantages.shape)}"
        )
    _check_same_shape("logprobs", logprobs, mask=mask)
    m = mask.bool()
    zeros = torch.zeros_like(logprobs)
    p = torch.exp(torch.where(m, logprobs, zeros).clamp(max=0.0))
    loss = -(p / (p + gamma)) * advantages.detach().to(logprobs.dtype).unsqueeze(1)
    return torch.where(m, loss, zeros)
