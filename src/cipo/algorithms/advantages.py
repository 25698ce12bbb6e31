"""Group-relative advantages for the main and the correction stream (method sheet steps 3, 7-8).

``group_advantages`` serves both streams; ``correction_advantages`` is the correction stream's
whole scoring (group advantages per anchor, then risk-averse shaping and the progress bonus).

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
    sqrt(sum (r - mean_g)^2 / (varying_groups * (G - 1))). An option for the correction stream.

Correction stream (``correction_advantages``, method sheet steps 7-8). Every revision of one
anchor shares the anchor's verdict, so a breakage penalty added to the *reward* maps a group's
rewards {1, 0} to {1, -lambda}: an affine change that a per-anchor z-score removes exactly, and a
correct anchor whose M revisions all break would get advantage 0 (shared/notes/method-audit.md).
The default (``shaping="advantage"``, **our choice**) applies the terms after normalisation,
uncentred, where they cannot cancel:

    A_i = norm_g(r_c)_i - lambda * s_a * (1 - s_c,i) + beta * (r_c,i - r_a)

norm_g per anchor (``std_scope="group"``, default) or with the pooled std (``"batch"``); r the
verifier's ``reward`` (as in the main stream), s the binary success. So breaking a correct anchor
costs exactly lambda in every case, failed anchors are never penalised, lambda = beta = 0 is no
shaping, and beta * (r_c - r_a) is SCoRe's progress bonus (Kumar et al., 2024). ``shaping="reward"``
is the published form: both terms go into the reward before normalisation.

Transplant (``group_advantages_with_extra``): extra rows (a successful revision trained as an
answer to the original prompt) join their prompt's group for the baseline and std, as in LUFFY's
mixed-policy groups (Yan et al., 2025): the G on-policy rows and the extra ones are normalised together.
"""

from __future__ import annotations

import torch
from torch import Tensor

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


SHAPING_PLACES: tuple[str, ...] = ("advantage", "reward")


def correction_advantages(
    anchor_success: Tensor,
    anchor_reward: Tensor,
    revision_success: Tensor,
    revision_reward: Tensor,
    samples_per_anchor: int,
    *,
    method: str = "grpo",
    penalty: float = 1.0,
    progress_bonus: float = 0.0,
    shaping: str = "advantage",
    std_scope: str = "group",
    valid: Tensor | None = None,
    eps: float = 1e-6,
) -> tuple[Tensor, Tensor]:
    """Rewards and advantages of the correction stream (module docstring).

    Args:
        anchor_success, anchor_reward: (K*M,) the anchor's verdict and reward, repeated per revision.
        revision_success, revision_reward: (K*M,) each revision's, anchor by anchor.
        samples_per_anchor: M.
        penalty: lambda >= 0; progress_bonus: beta >= 0.
        shaping: ``advantage`` (after normalisation) or ``reward`` (published: before it).
        std_scope: ``group`` (per anchor) or ``batch`` (pooled over the valid anchors).
        valid: (K*M,) bool, rows of anchors that are trained (whole groups); the others get 0
            and take no part in a pooled std.

    Returns:
        rewards: (K*M,) float32, the rewards that were normalised (shaped with ``shaping="reward"``);
        advantages: (K*M,) float32, detached.
    """
    if penalty < 0 or progress_bonus < 0:
        raise ValueError(f"penalty and progress_bonus must be >= 0, got {penalty!r}, {progress_bonus!r}")
    if shaping not in SHAPING_PLACES:
        raise ValueError(f"shaping must be one of {SHAPING_PLACES}, got {shaping!r}")
    n = revision_reward.shape[0]
    for name, t in (
        ("anchor_success", anchor_success),
        ("anchor_reward", anchor_reward),
        ("revision_success", revision_success),
    ):
        if t.shape != (n,):
            raise ValueError(f"{name} must have shape ({n},) like revision_reward, got {tuple(t.shape)}")
    keep = torch.ones(n, dtype=torch.bool) if valid is None else valid.detach().bool()
    _grouped(keep, samples_per_anchor, "valid")
    broken = (anchor_success.detach().bool() & ~revision_success.detach().bool()).float()
    progress = revision_reward.detach().float() - anchor_reward.detach().float()
    terms = -penalty * broken + progress_bonus * progress
    rewards = revision_reward.detach().float()
    if shaping == "reward":
        rewards = rewards + terms
    adv = torch.zeros(n, dtype=torch.float32)
    if keep.any():
        adv[keep] = group_advantages(rewards[keep], samples_per_anchor, method, eps, std_scope)
    if shaping == "advantage":
        adv = adv + terms
    return rewards, adv * keep


def group_advantages_with_extra(
    rewards: Tensor,
    group_size: int,
    extra_rewards: Tensor,
    extra_groups: Tensor,
    method: str = "grpo",
    eps: float = 1e-6,
) -> tuple[Tensor, Tensor]:
    """Group advantages when some groups hold extra rows (transplanted revisions).

    Args:
        rewards: (B*G,) the on-policy rows, group by group.
        extra_rewards: (E,) rewards of the extra rows; extra_groups: (E,) long, their group in [0, B).

    Returns:
        (B*G,) and (E,) advantages: each group normalised over its G + e_g rows with ``method``
        (same definitions as ``group_advantages``, which this equals when E = 0).
    """
    if method not in ADVANTAGE_METHODS:
        raise ValueError(f"method must be one of {ADVANTAGE_METHODS}, got {method!r}")
    grouped = _grouped(rewards.detach().float(), group_size, "rewards")
    num_groups = grouped.shape[0]
    extra_rewards, extra_groups = extra_rewards.detach().float(), extra_groups.detach().long()
    if extra_rewards.shape != extra_groups.shape or extra_rewards.dim() != 1:
        raise ValueError(
            f"extra_rewards {tuple(extra_rewards.shape)} and extra_groups {tuple(extra_groups.shape)} "
            "must be 1-D and of one length"
        )
    if extra_groups.numel() and not bool(((extra_groups >= 0) & (extra_groups < num_groups)).all()):
        raise ValueError(f"extra_groups must be in [0, {num_groups}), got {extra_groups.tolist()}")
    if extra_groups.numel() == 0:
        return group_advantages(rewards, group_size, method, eps), torch.zeros(0)
    # (num_groups, G + E) with a mask: each extra row in its own column of its group's row
    width = group_size + extra_groups.numel()
    table = torch.zeros(num_groups, width)
    present = torch.zeros(num_groups, width, dtype=torch.bool)
    table[:, :group_size], present[:, :group_size] = grouped, True
    columns = group_size + torch.arange(extra_groups.numel())
    table[extra_groups, columns], present[extra_groups, columns] = extra_rewards, True
    count = present.sum(dim=1, keepdim=True).float()
    total = (table * present).sum(dim=1, keepdim=True)
    mean = total / count
    big, small = torch.finfo(table.dtype).max, torch.finfo(table.dtype).min
    zero_var = table.masked_fill(~present, small).amax(dim=1) == table.masked_fill(~present, big).amin(dim=1)
    centered = (table - mean) * present
    if method == "grpo":
        std = (centered.pow(2).sum(dim=1, keepdim=True) / (count - 1).clamp(min=1)).sqrt()
        adv = centered / (std + eps)
    elif method == "dr_grpo":
        adv = centered
    else:  # rloo
        adv = (table - (total - table) / (count - 1).clamp(min=1)) * present
    adv = torch.where(zero_var.unsqueeze(1), torch.zeros_like(adv), adv)
    return adv[:, :group_size].reshape(-1), adv[extra_groups, columns]
