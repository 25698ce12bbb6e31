"""Anchor selection of the correction stream (method sheet steps 4 and 11): which earlier attempts to revise.

``select_anchors`` takes ``round(rho * K)`` correct attempts (replay) and the rest failed ones. The
difficulty preference (``preference``):
  closeness  (default in config, **our choice**) prompts ranked by |acc(q) - 1/2|: one anchor per
             prompt first, the prompts closest to a pass rate of 1/2 first, then a second per
             prompt, ... At G = 8 this really picks medium pass rates (the [1/8, 7/8] band is every
             mixed group and changes nothing: shared/notes/method-audit.md).
  band       prompts with acc in [acc_low, acc_high] first (inclusive), then the others; within
             a tier one anchor per prompt first (the published form, with [1/8, 7/8]).
  uniform    no preference (the ablation).
``all_wrong_share``: that share of the failed anchors comes from all-wrong prompts first (no GRPO
signal there; 0 by default, topped up from the others when there are fewer).

Our choices (the paper's text was unavailable; see /work/shared/cipo-method.md):
  * The band test is inclusive (with a 1e-9 tolerance so that acc_low = 1/3 matches a group
    with 1 of 3 correct).
  * The correct-anchor target is round-half-up(rho * K). A kind that runs short is topped
    up with the other kind, except across the extremes: rho = 0 never yields correct
    anchors (the failed-only ablation) and rho = 1 never yields failed ones.
  * ``eligible`` rows only (e.g. not from a group whose reference was unusable): ineligible
    rows are never picked, so the K anchors are filled from the rest and counted as chosen.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from cipo.algorithms.correction import as_bool

_BAND_TOL = 1e-9
ANCHOR_PREFERENCES: tuple[str, ...] = ("closeness", "band", "uniform")
# Pass-rate buckets of the anchors' prompts (logged as counts): 0, (0, 3/8), [3/8, 5/8], (5/8, 1), 1.
PASS_RATE_BUCKETS: tuple[str, ...] = ("0", "low", "mid", "high", "1")


def _spread_order(
    idx: Tensor, group: Tensor, tier: Tensor, generator: torch.Generator | None, round_first: bool = False
) -> Tensor:
    """Order candidates ``idx`` by (tier, round within their group, random position), or by
    (round, tier, position) with ``round_first``."""
    perm = torch.randperm(idx.numel(), generator=generator)
    idx, group, tier = idx[perm], group[perm], tier[perm]
    # Round = how many candidates of the same group come earlier in the random order:
    # a stable sort by group keeps that order, so the rank inside each run is the round.
    pos = torch.arange(idx.numel())
    _, by_group = torch.sort(group, stable=True)
    _, run_len = torch.unique_consecutive(group[by_group], return_counts=True)
    run_start = torch.repeat_interleave(torch.cumsum(run_len, 0) - run_len, run_len)
    rnd = torch.empty_like(idx)
    rnd[by_group] = pos - run_start
    n = max(idx.numel(), 1)
    num_tiers = int(tier.max()) + 1 if tier.numel() else 1
    key = ((rnd * num_tiers + tier) * n + pos) if round_first else ((tier * n + rnd) * n + pos)
    return idx[torch.argsort(key)]


def pass_rate_bucket_counts(acc: Tensor) -> dict[str, float]:
    """Counts of ``acc`` (K,) float pass rates per bucket of ``PASS_RATE_BUCKETS``."""
    low, high = 3 / 8 - _BAND_TOL, 5 / 8 + _BAND_TOL
    masks = {
        "0": acc <= _BAND_TOL,
        "low": (acc > _BAND_TOL) & (acc < low),
        "mid": (acc >= low) & (acc <= high),
        "high": (acc > high) & (acc < 1 - _BAND_TOL),
        "1": acc >= 1 - _BAND_TOL,
    }
    return {f"num_anchors_pass_{name}": float(masks[name].sum()) for name in PASS_RATE_BUCKETS}


def _check_anchor_args(group_size, num_anchors, replay_ratio, acc_low, acc_high, preference, all_wrong_share) -> None:
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
        raise ValueError(f"group_size must be an int >= 1, got {group_size!r}")
    if isinstance(num_anchors, bool) or not isinstance(num_anchors, int) or num_anchors < 0:
        raise ValueError(f"num_anchors must be an int >= 0, got {num_anchors!r}")
    if not 0.0 <= replay_ratio <= 1.0:
        raise ValueError(f"replay_ratio must be in [0, 1], got {replay_ratio!r}")
    for name, value in (("acc_low", acc_low), ("acc_high", acc_high), ("all_wrong_share", all_wrong_share)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    if acc_low > acc_high:
        raise ValueError(f"acc_low ({acc_low!r}) must be <= acc_high ({acc_high!r})")
    if preference not in ANCHOR_PREFERENCES:
        raise ValueError(f"preference must be one of {ANCHOR_PREFERENCES}, got {preference!r}")


def select_anchors(
    success: Tensor,
    group_size: int,
    num_anchors: int,
    replay_ratio: float,
    acc_low: float = 0.125,
    acc_high: float = 0.875,
    *,
    preference: str = "band",
    all_wrong_share: float = 0.0,
    eligible: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """Pick rollouts to revise.

    Args:
        success: (N,) bool, group by group (``N = B * G``).
        group_size: G (>= 1).
        num_anchors: K, the most anchors to return (>= 0).
        replay_ratio: rho in [0, 1], the target share of correct anchors.
        acc_low, acc_high: the band of group accuracy (inclusive) that ``band`` prefers.
        preference: ``closeness``, ``band`` or ``uniform`` (module docstring).
        all_wrong_share: share of the failed anchors taken from all-wrong prompts first.
        eligible: (N,) bool, rows that may be anchors (default: all).
        generator: seeds the random order; same seed, same anchors.

    Returns:
        indices: (K',) long, K' <= K, rollout rows in ascending order.
        metrics: ``num_anchors``, ``num_correct_anchors``, ``num_failed_anchors``,
        ``band_occupancy`` (share of groups in band), ``frac_anchors_in_band``, the counts
        behind the two shares, ``num_anchors_in_band`` and ``num_groups_in_band``, and
        ``num_anchors_pass_<bucket>`` for the buckets of ``PASS_RATE_BUCKETS``.
    """
    _check_anchor_args(group_size, num_anchors, replay_ratio, acc_low, acc_high, preference, all_wrong_share)
    s = as_bool(success, "success")
    n = s.numel()
    if n % group_size != 0:
        raise ValueError(f"success length N={n} is not a multiple of group_size={group_size}")
    ok = torch.ones(n, dtype=torch.bool) if eligible is None else as_bool(eligible, "eligible")
    if ok.shape != s.shape:
        raise ValueError(f"eligible {tuple(ok.shape)} and success {tuple(s.shape)} differ in shape")

    num_groups = n // group_size
    acc = s.view(num_groups, group_size).double().mean(dim=1)
    band = (acc >= acc_low - _BAND_TOL) & (acc <= acc_high + _BAND_TOL)  # (num_groups,)
    group = torch.arange(n) // group_size
    in_band = band[group]  # (N,)
    if preference == "band":
        tier = (~in_band).long()
    elif preference == "closeness":  # |acc - 1/2| in steps of 1/(2G): exact for every group size
        tier = ((acc[group] - 0.5).abs() * 2 * group_size).round().long()
    else:
        tier = torch.zeros(n, dtype=torch.long)
    all_wrong = (acc == 0)[group]

    chosen = torch.zeros(0, dtype=torch.long)
    if num_anchors > 0 and n > 0:
        order = {}
        for kind, sel in (("correct", s & ok), ("failed", ~s & ok)):
            idx = sel.nonzero(as_tuple=True)[0]
            order[kind] = _spread_order(idx, group[idx], tier[idx], generator, round_first=preference == "closeness")
        want_c = math.floor(replay_ratio * num_anchors + 0.5)
        failed_order = order["failed"]
        if all_wrong_share > 0:  # the share from all-wrong prompts goes first, the rest keep their rank
            want_all_wrong = math.floor(all_wrong_share * (num_anchors - want_c) + 0.5)
            first = torch.zeros(failed_order.numel(), dtype=torch.bool)
            first[all_wrong[failed_order].nonzero(as_tuple=True)[0][:want_all_wrong]] = True
            failed_order = torch.cat([failed_order[first], failed_order[~first]])
        n_c = min(want_c, order["correct"].numel())
        n_f = min(num_anchors - want_c, failed_order.numel())
        spare = num_anchors - n_c - n_f
        if replay_ratio < 1.0:  # top up with failed ones (never in the correct-only extreme)
            extra = min(spare, failed_order.numel() - n_f)
            n_f, spare = n_f + extra, spare - extra
        if replay_ratio > 0.0:  # ... and with correct ones (never in the failed-only one)
            n_c += min(spare, order["correct"].numel() - n_c)
        chosen = torch.cat([order["correct"][:n_c], failed_order[:n_f]]).sort().values

    k = chosen.numel()
    metrics = {
        "num_anchors": float(k),
        "num_correct_anchors": float(s[chosen].sum().item()),
        "num_failed_anchors": float(k - s[chosen].sum().item()),
        "band_occupancy": float(band.double().mean().item()) if num_groups else 0.0,
        "frac_anchors_in_band": float(in_band[chosen].double().mean().item()) if k else 0.0,
        "num_anchors_in_band": float(in_band[chosen].sum().item()),
        "num_groups_in_band": float(band.sum().item()),
        **pass_rate_bucket_counts(acc[group[chosen]] if k else torch.zeros(0)),
    }
    return chosen, metrics
