"""Importance weights for the sampler/trainer mismatch (``algorithm.is_weights_mode`` / ``_cap``).

The engine that sampled a rollout (vLLM: other kernels, often bf16) scores its tokens slightly
differently from the trainer. With ``d_t = trainer_logp_t - engine_logp_t`` over the completion's
tokens (mask ``m``), the weight that moves a token from the engine's distribution to the
trainer's is ``exp(d_t)``; it multiplies the per-token policy-gradient loss, detached.

Modes (the names and semantics of TRL's ``vllm_importance_sampling_mode``, cap
``vllm_importance_sampling_cap`` / ``_clip_max``; verl's ``algorithm.rollout_correction.rollout_is``
= token | sequence with ``rollout_is_threshold`` is the ``*_truncate`` pair, its rejection
sampling ``rollout_rs`` the ``*_mask`` idea):

    token_truncate     w_t = min(exp(d_t), C)                        (TIS)
    token_mask         w_t = exp(d_t) if exp(d_t) <= C else 0
    sequence_truncate  w_t = min(exp(sum_s m_s d_s), C)             one weight per sequence
    sequence_mask      w_t = exp(sum_s m_s d_s) if that <= C else 0   (the whole sequence dropped)

Computed in log space (``exp(min(log w, log C))``), so a long sequence's summed log-ratio cannot
overflow; a masked-out weight is exactly 0. Positions outside the mask get weight 0.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

IS_MODES: tuple[str, ...] = ("token_truncate", "token_mask", "sequence_truncate", "sequence_mask")


def engine_is_weights(
    trainer_logprobs: Tensor, engine_logprobs: Tensor, mask: Tensor, mode: str, cap: float
) -> tuple[Tensor, Tensor]:
    """Importance weights, detached, and where the cap acted.

    Args:
        trainer_logprobs: (N, T) the trainer's log-probs of the sampled tokens (old policy).
        engine_logprobs: (N, T) the sampling engine's log-probs of the same tokens.
        mask: (N, T) bool or 0/1, the tokens that count (the completion).
        mode: one of ``IS_MODES``.
        cap: C > 0, the truncation / masking threshold.

    Returns:
        weights: (N, T) float32, 0 outside ``mask``.
        capped: (N, T) bool, masked-in tokens whose raw ratio exceeded ``cap`` (truncated or
        masked; for sequence modes every token of such a sequence), for the capped share metric.
    """
    if mode not in IS_MODES:
        raise ValueError(f"mode must be one of {IS_MODES}, got {mode!r}")
    if not cap > 0:
        raise ValueError(f"cap must be > 0, got {cap!r}")
    if trainer_logprobs.shape != engine_logprobs.shape or trainer_logprobs.shape != mask.shape:
        raise ValueError(
            f"trainer_logprobs {tuple(trainer_logprobs.shape)}, engine_logprobs {tuple(engine_logprobs.shape)} "
            f"and mask {tuple(mask.shape)} must have one (N, T) shape"
        )
    m = mask.bool()
    log_ratio = torch.where(m, (trainer_logprobs.detach() - engine_logprobs.detach()).float(), 0.0)
    if mode.startswith("sequence"):
        log_ratio = log_ratio.sum(dim=1, keepdim=True).expand_as(log_ratio)
    log_cap = math.log(cap)
    weights = torch.exp(log_ratio.clamp(max=log_cap))
    capped = (log_ratio > log_cap) & m
    if mode.endswith("mask"):
        weights = torch.where(capped, 0.0, weights)
    return torch.where(m, weights, 0.0), capped
