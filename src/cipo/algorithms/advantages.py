"""Group-relative advantages for the main and the correction stream (method sheet steps 3, 7-8).

``group_advantages`` serves both streams; ``correction_advantages`` is the correction stream's
whole scoring (risk-averse shaping, then group advantages per anchor).

Rewards arrive laid out group by group: rows ``[g * G, (g + 1) * G)`` are the ``G``
samples of one prompt (main stream) or the ``M`` revisions of one anchor (correction
stream). One scalar advantage per sequence comes out; the loss broadcasts it over tokens.

Variants (``method``):
  grpo     A_i = (r_i - mean_g) / (std_g + eps)       GRPO (Shao et al., 2024)
  dr_grpo  A_i =  r_i - mean_g                         Dr. GRPO (Liu et al., 2025): no std
  rloo     A_i =  r_i - (sum_g - r_i) / (G - 1)        REINFORCE leave-one-out (Ahmadian 2024)

Choices made here:
  * ``std_g`` is the *sample* standard deviation (Bessel-corrected, ``unbiased=True``),
    matching TRL's GRPOTrainer and verl's GRPO estimator. The paper does not say.
  * A group is "zero-variance" when all its rewards are bit-identical (max == min). Its
    advantages are set to exactly 0 for every method, instead of relying on
    ``r - mean`` to cancel (float rounding of the mean leaves ~1e-8 residue otherwise).
    Groups of one are zero-variance by this definition, so they also get 0 (our choice:
    a lone sample has no baseline to be compared against).
  * The default ``eps = 1e-6`` (TRL uses 1e-4, verl 1e-6) is our choice.
  * ``std_scope="batch"`` (grpo only) keeps each group's own mean as the baseline but divides
    by one *pooled* within-group std over the batch's non-constant groups,
    sqrt(sum (r - mean_g)^2 / (varying_groups * (G - 1))).
    The correction stream uses it by default (our choice): every revision of one anchor shares
    the anchor's verdict, so risk-averse shaping maps a group's rewards {1, 0} to {1, -lambda},
    an affine change that a per-group std normalises away exactly. With a pooled std, lambda
    keeps its meaning: breaking a right answer weighs (1 + lambda) times a plain miss.
"""

from __future__ import annotations

import torch
from torch import Tensor

from cipo.algorithms.correction import shape_correction_rewards

ADVANTAGE_METHODS: tuple[str, ...] = ("grpo", "dr_grpo", "rloo")
STD_SCOPES: tuple[str, ...] = ("group", "batch")


def _grouped(values: Tensor, group_size: int, name: str) -> Tensor:
    """Validate a flat ``(N,)`` tensor and view it as ``(N // group_size, group_size)``."""
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
        raise ValueError(f"group_size must be an int >= 1, got {group_size!r}")
    if values.dim() != 1:
        raise ValueError(f"{name} must be 1-D (N,), got shape {tuple(values.shape)}")
    n = values.shape[0]
    if n % group_size != 0:
        raise ValueError(f"{name} length N={n} is not a multiple of group_size={group_size}")
    return values.view(n // group_size, group_size)


def group_advantages(
    rewards: Tensor, group_size: int, method: str = "grpo", eps: float = 1e-6, std_scope: str = "group"
) -> Tensor:
    """Per-sequence group-relative advantages.

    Args:
        rewards: (N,) float, group by group, ``N = num_groups * group_size``.
        group_size: G, samples per group (>= 1).
        method: one of ``ADVANTAGE_METHODS``.
        eps: added to the std in ``grpo`` (>= 0).
        std_scope: ``group`` (each group's std) or ``batch`` (one pooled within-group std);
            only ``grpo`` divides by a std.

    Returns:
        (N,) advantages, same dtype as ``rewards`` (float32 if ``rewards`` is not float),
        detached from any graph: advantages are constants for the policy gradient.
    """
    if method not in ADVANTAGE_METHODS:
        raise ValueError(f"method must be one of {ADVANTAGE_METHODS}, got {method!r}")
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps!r}")
    if std_scope not in STD_SCOPES:
        raise ValueError(f"std_scope must be one of {STD_SCOPES}, got {std_scope!r}")
    r = rewards.detach()
    if not r.is_floating_point():
        r = r.float()
    grouped = _grouped(r, group_size, "rewards")
    if grouped.numel() == 0 or group_size == 1:
        # Groups of one have no baseline (and an undefined unbiased std / RLOO mean).
        return torch.zeros_like(r)

    mean = grouped.mean(dim=1, keepdim=True)
    zero_var = grouped.amax(dim=1) == grouped.amin(dim=1)  # (num_groups,)
    if method == "grpo" and std_scope == "batch":
        # pooled over the groups that vary: constant groups carry no signal and would only
        # shrink the pooled std (and so inflate everyone else's advantages)
        centered = grouped - mean
        varying = int((~zero_var).sum())
        pooled = (centered[~zero_var].pow(2).sum() / max(varying * (group_size - 1), 1)).sqrt()
        adv = centered / (pooled + eps)
    elif method == "grpo":
        std = grouped.std(dim=1, unbiased=True, keepdim=True)
        adv = (grouped - mean) / (std + eps)
    elif method == "dr_grpo":
        adv = grouped - mean
    else:  # rloo
        total = grouped.sum(dim=1, keepdim=True)
        adv = grouped - (total - grouped) / (group_size - 1)

    adv = torch.where(zero_var.unsqueeze(1), torch.zeros_like(adv), adv)
    return adv.reshape(-1)


def frac_zero_std_groups(rewards: Tensor, group_size: int) -> float:
    """Share of groups whose rewards are all identical (they carry no gradient signal).

    Args:
        rewards: (N,) group by group.
    Returns:
        float in [0, 1]; 0.0 for an empty batch.
    """
    grouped = _grouped(rewards.detach(), group_size, "rewards")
    if grouped.shape[0] == 0:
        return 0.0
    zero_var = grouped.amax(dim=1) == grouped.amin(dim=1)
    return int(zero_var.sum()) / grouped.shape[0]


def group_outcome_fractions(success: Tensor, group_size: int) -> dict[str, float]:
    """Share of groups that are all correct, all wrong, or mixed.

    Args:
        success: (N,) bool (or 0/1), group by group.
    Returns:
        ``{"frac_all_correct", "frac_all_wrong", "frac_mixed"}``, floats summing to 1
        (all 0.0 for an empty batch).
    """
    grouped = _grouped(success.detach().bool(), group_size, "success")
    if grouped.shape[0] == 0:
        return {"frac_all_correct": 0.0, "frac_all_wrong": 0.0, "frac_mixed": 0.0}
    num_groups = grouped.shape[0]
    all_correct = int(grouped.all(dim=1).sum())
    all_wrong = int((~grouped).all(dim=1).sum())
    return {  # integer counts over an int: exact floats, no float32 rounding
        "frac_all_correct": all_correct / num_groups,
        "frac_all_wrong": all_wrong / num_groups,
        "frac_mixed": (num_groups - all_correct - all_wrong) / num_groups,
    }


def correction_advantages(
    anchor_success: Tensor,
    revision_success: Tensor,
    valid: Tensor,
    samples_per_anchor: int,
    penalty: float,
    method: str = "grpo",
    std_scope: str = "batch",
) -> tuple[Tensor, Tensor]:
    """Rewards and advantages of the correction stream (method sheet steps 7-8).

    Rewards are risk-averse shaped (``correction.shape_correction_rewards``: breaking a right
    anchor costs ``penalty``), then group-relative within each anchor's ``M`` revisions
    (``group_advantages`` with ``std_scope``; see the module docstring for why ``batch`` is the
    correction stream's default). The correction stream is normalised on its own, never pooled
    with the main stream's groups.

    Args:
        anchor_success: (K*M,) bool, each revision's anchor's success (repeated M times).
        revision_success: (K*M,) bool, each revision's success.
        valid: (K*M,) bool, revisions that may be trained on (their advantage is set to 0 otherwise).
        samples_per_anchor: M.
        penalty: lambda >= 0.

    Returns:
        rewards: (K*M,) float32 shaped rewards; advantages: (K*M,).
    """
    rewards = shape_correction_rewards(anchor_success.float(), revision_success.float(), penalty)
    return rewards, group_advantages(rewards, samples_per_anchor, method, std_scope=std_scope) * valid
