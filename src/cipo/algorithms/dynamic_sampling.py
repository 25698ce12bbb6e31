"""Dynamic sampling (DAPO, Yu et al. 2025): train the GRPO loss only on groups that carry a signal.

A group whose rewards are all equal (all right or all wrong) has zero advantages: it adds no
gradient, only tokens to the denominator and compute. With ``algorithm.dynamic_sampling.enabled``
such groups leave the main stream's loss, and the step draws more prompts, at most
``max_extra_rounds`` more generation rounds, until ``batch_size`` informative groups are kept
(surplus informative groups of the last round are dropped, first come first kept). If the limit is
reached first, the step trains on what it has (logged as ``rollout/dynamic_kept_groups``).
verl's names: ``algorithm.filter_groups.enable`` / ``metric: acc`` / ``max_num_gen_batches`` (which
counts the first round too and raises when exhausted; ours trains on fewer groups instead). TRL's
GRPO has no equivalent; it logs ``frac_reward_zero_std``.

CIPO's correction stream is not filtered: all-wrong groups are exactly where the failed attempts
that anchors revise come from, so anchors are chosen from every group generated in the step.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def informative_groups(rewards: Tensor, group_size: int) -> Tensor:
    """(N,) rewards, group by group -> (N // group_size,) bool: True where the rewards differ."""
    if group_size < 1 or rewards.dim() != 1 or rewards.shape[0] % group_size:
        shape = tuple(rewards.shape)
        raise ValueError(f"rewards must be (N,) with N a multiple of group_size={group_size}, got {shape}")
    grouped = rewards.detach().view(-1, group_size)
    return grouped.amax(dim=1) != grouped.amin(dim=1)


def keep_first(informative: Tensor, room: int) -> Tensor:
    """(B,) bool -> (B,) bool: the first ``room`` informative groups (verl trims the surplus the same way)."""
    if room < 0:
        raise ValueError(f"room must be >= 0, got {room}")
    return informative & (torch.cumsum(informative.long(), dim=0) <= room)


def refill_prompts(missing: int, informative_seen: int, groups_seen: int, batch_size: int) -> int:
    """Prompts to draw in the next round for ``missing`` more informative groups.

    Scaled by the informative share seen so far this step (at least ``1 / batch_size``, so an
    unlucky first round does not ask for an unbounded number), never fewer than ``missing`` and
    never more than one ``batch_size``: a round costs what a normal step's generation costs.
    """
    if missing <= 0:
        return 0
    share = max(informative_seen / groups_seen if groups_seen else 1.0, 1.0 / batch_size)
    return min(batch_size, max(missing, math.ceil(missing / share)))
