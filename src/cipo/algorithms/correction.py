"""CIPO correction stream (method sheet steps 4-10).

Step 4, anchors (``select_anchors``): a difficulty-aware choice of earlier attempts to revise,
``round(rho * K)`` correct attempts (replay) and the rest failed ones. The preference
(``preference``):
  closeness  (default in config, **our choice**) prompts ranked by |acc(q) - 1/2|: one anchor per
             prompt first, the prompts closest to a pass rate of 1/2 first, then a second per
             prompt, ... At G = 8 this really picks medium pass rates (the [1/8, 7/8] band is every
             mixed group and changes nothing: shared/notes/method-audit.md).
  band       prompts with acc in [acc_low, acc_high] first (inclusive), then the others; within
             a tier one anchor per prompt first (the published form, with [1/8, 7/8]).
  uniform    no preference (the ablation).
``all_wrong_share``: that share of the failed anchors comes from all-wrong prompts first (no GRPO
signal there; 0 by default, topped up from the others when there are fewer).
Step 5, prompts (``build_correction_prompts``): c = T(q, anchor), a ``str.format`` template
with fields {problem}, {attempt}, for the reveal-verdict ablation only {verdict}, and
optionally {feedback} (the verifier's feedback on the anchor, e.g. a failing test's output).
Step 7, the published risk-averse reward (``shape_correction_rewards``):
    r_c = s_c - lambda * s_a * (1 - s_c)
(the default applies the penalty after normalisation instead: ``advantages.correction_advantages``).
Correction ability (``CorrectionCounts``): fix rate, retention, break rate, from outcome counts.
Step 10, the adaptive replay ratio that feeds ``select_anchors``, lives in ``replay.py``.

Our choices (the paper's text was unavailable; see /work/shared/cipo-method.md):
  * The band test is inclusive (with a 1e-9 tolerance so that acc_low = 1/3 matches a group
    with 1 of 3 correct).
  * The correct-anchor target is round-half-up(rho * K). A kind that runs short is topped
    up with the other kind, except across the extremes: rho = 0 never yields correct
    anchors (the failed-only ablation) and rho = 1 never yields failed ones.
  * ``eligible`` rows only (e.g. not from a group whose reference was unusable): ineligible
    rows are never picked, so the K anchors are filled from the rest and counted as chosen.
  * lambda's default (1.0) lives in config (``algorithm.correction.penalty``).
"""

from __future__ import annotations

import math
import string
from dataclasses import astuple, dataclass

import torch
from torch import Tensor

_BAND_TOL = 1e-9
PROMPT_FIELDS: tuple[str, ...] = ("problem", "attempt", "verdict", "feedback")
ANCHOR_PREFERENCES: tuple[str, ...] = ("closeness", "band", "uniform")
# Pass-rate buckets of the anchors' prompts (logged as counts): 0, (0, 3/8), [3/8, 5/8], (5/8, 1), 1.
PASS_RATE_BUCKETS: tuple[str, ...] = ("0", "low", "mid", "high", "1")


def _as_bool(x: Tensor, name: str) -> Tensor:
    """Validate a (N,) bool or 0/1 tensor; return it as detached bool."""
    if x.dim() != 1:
        raise ValueError(f"{name} must be 1-D (N,), got shape {tuple(x.shape)}")
    if x.dtype != torch.bool and not bool(((x == 0) | (x == 1)).all()):
        raise ValueError(f"{name} must be bool or 0/1, got values {x.unique().tolist()}")
    return x.detach().bool()


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
    s = _as_bool(success, "success")
    n = s.numel()
    if n % group_size != 0:
        raise ValueError(f"success length N={n} is not a multiple of group_size={group_size}")
    ok = torch.ones(n, dtype=torch.bool) if eligible is None else _as_bool(eligible, "eligible")
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


def _template_fields(template: str) -> set[str]:
    """Top-level field names in a ``str.format`` template (nested specs included)."""
    names: set[str] = set()
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as err:
        raise ValueError(f"template is not a valid str.format template: {err}") from err
    for _, name, spec, _ in parsed:
        if name is None:
            continue
        # "problem.attr" / "problem[0]" still refer to the field "problem".
        names.add(name.split(".", 1)[0].split("[", 1)[0])
        if spec:
            names |= _template_fields(spec)
    return names


def build_correction_prompts(
    problems: list[str],
    attempts: list[str],
    template: str,
    verdicts: list[bool] | None = None,
    verdict_words: tuple[str, str] = ("correct", "incorrect"),
    feedback: list[str] | None = None,
) -> list[str]:
    """Fill the correction template once per anchor.

    Args:
        problems, attempts: one per anchor (same length K).
        template: ``str.format`` template using {problem}, {attempt} and optionally
            {verdict}; write literal braces as ``{{`` / ``}}``.
        verdicts: anchor correctness, required iff the template uses {verdict} (passing
            them to a template without {verdict} is an error: it would silently turn the
            reveal-verdict ablation off).
        verdict_words: the words for True / False.
        feedback: one text per anchor, required iff the template uses {feedback} (same rule
            as ``verdicts``).

    Returns:
        K prompt strings. Braces inside problems and attempts are kept verbatim.
    """
    used = _template_fields(template)
    unknown = sorted(used - set(PROMPT_FIELDS))
    if unknown:
        raise ValueError(f"template uses unknown field(s) {unknown}; allowed fields are {list(PROMPT_FIELDS)}")
    if "verdict" in used and verdicts is None:
        raise ValueError("template uses {verdict} but verdicts is None")
    if "verdict" not in used and verdicts is not None:
        raise ValueError("verdicts were given but template has no {verdict} field")
    if len(problems) != len(attempts):
        raise ValueError(f"problems and attempts must have the same length, got {len(problems)} and {len(attempts)}")
    if verdicts is not None and len(verdicts) != len(problems):
        raise ValueError(f"verdicts must have one entry per problem ({len(problems)}), got {len(verdicts)}")
    if "feedback" in used and feedback is None:
        raise ValueError("template uses {feedback} but feedback is None")
    if "feedback" not in used and feedback is not None:
        raise ValueError("feedback was given but template has no {feedback} field")
    if feedback is not None and len(feedback) != len(problems):
        raise ValueError(f"feedback must have one entry per problem ({len(problems)}), got {len(feedback)}")
    if len(verdict_words) != 2:
        raise ValueError(f"verdict_words must be a pair (true_word, false_word), got {verdict_words!r}")
    out = []
    for i, (problem, attempt) in enumerate(zip(problems, attempts)):
        values = {"problem": problem, "attempt": attempt}
        if verdicts is not None:
            values["verdict"] = verdict_words[0] if verdicts[i] else verdict_words[1]
        if feedback is not None:
            values["feedback"] = feedback[i]
        out.append(template.format(**values))
    return out


def training_correction_template(correction_template: str, verdict_template: str, reveal_verdict: bool) -> str:
    """The template the correction stream trains with; a hidden-verdict template must not use {feedback}.

    The verifier's feedback is empty on a pass and describes the failure otherwise, so a
    {feedback} field tells the model whether its attempt was right: that is the reveal-verdict
    ablation, and it must be asked for as one.
    """
    if reveal_verdict:
        return verdict_template
    if "feedback" in _template_fields(correction_template):
        raise ValueError(
            "the correction template uses {feedback}, which reveals the verdict (the feedback is empty on a "
            "pass). Set algorithm.correction.reveal_verdict=true to train with it as the reveal-verdict "
            "ablation, or remove {feedback} (data.prompt.show_feedback=false, or data.correction_template)"
        )
    return correction_template


def _paired(anchor_success: Tensor, correction_success: Tensor) -> tuple[Tensor, Tensor]:
    s_a = _as_bool(anchor_success, "anchor_success")
    s_c = _as_bool(correction_success, "correction_success")
    if s_a.shape != s_c.shape:
        raise ValueError(f"anchor_success {tuple(s_a.shape)} and correction_success {tuple(s_c.shape)} differ in shape")
    return s_a, s_c


def shape_correction_rewards(anchor_success: Tensor, correction_success: Tensor, penalty: float) -> Tensor:
    """Risk-averse correction reward r = s_c - penalty * s_a * (1 - s_c).

    Args:
        anchor_success: (K*M,) bool, the anchor's success repeated for each of its revisions.
        correction_success: (K*M,) bool, each revision's success.
        penalty: lambda >= 0; breaking a correct anchor costs lambda (0 turns shaping off).

    Returns:
        (K*M,) float32 rewards.
    """
    if penalty < 0:
        raise ValueError(f"penalty must be >= 0, got {penalty!r}")
    s_a, s_c = _paired(anchor_success, correction_success)
    s_a, s_c = s_a.float(), s_c.float()
    return s_c - penalty * s_a * (1.0 - s_c)


@dataclass(frozen=True)
class CorrectionCounts:
    """Outcomes of (attempt, revision) pairs: the one home of fix rate, retention and break rate.

    fixed: wrong -> right, unfixed: wrong -> wrong, kept: right -> right, broken: right -> wrong.
    Counts add up across steps, shards and ranks (``+``); rates are derived from the sums, never
    averaged. Used for the training rollouts (``correction/*``), validation (``val/*``) and cipo-eval.
    """

    fixed: float = 0.0
    unfixed: float = 0.0
    kept: float = 0.0
    broken: float = 0.0

    @classmethod
    def of(cls, anchor_success: Tensor, correction_success: Tensor) -> CorrectionCounts:
        """Counts over (K*M,) paired anchor / revision successes (bool or 0/1)."""
        s_a, s_c = _paired(anchor_success, correction_success)
        return cls(
            fixed=float((~s_a & s_c).sum()),
            unfixed=float((~s_a & ~s_c).sum()),
            kept=float((s_a & s_c).sum()),
            broken=float((s_a & ~s_c).sum()),
        )

    def __add__(self, other: CorrectionCounts) -> CorrectionCounts:
        return CorrectionCounts(*(a + b for a, b in zip(astuple(self), astuple(other))))

    @property
    def from_wrong(self) -> float:
        return self.fixed + self.unfixed

    @property
    def from_right(self) -> float:
        return self.kept + self.broken

    @property
    def total(self) -> float:
        return self.from_wrong + self.from_right

    def rates(self) -> dict[str, float]:
        """``fix_rate`` (per wrong attempt), ``retention`` and ``break_rate`` (per right attempt),
        ``acc1`` / ``acc2`` (accuracy of the attempts / of the revisions) and ``delta`` = (fixed -
        broken) / total (= acc2 - acc1, computed exactly from the counts). A rate whose denominator
        is 0 is absent: "no wrong attempt to fix" is not "fixed none"."""
        rates: dict[str, float] = {}
        if self.from_wrong:
            rates["fix_rate"] = self.fixed / self.from_wrong
        if self.from_right:
            rates["retention"] = self.kept / self.from_right
            rates["break_rate"] = self.broken / self.from_right
        if self.total:
            rates["acc1"] = self.from_right / self.total
            rates["acc2"] = (self.fixed + self.kept) / self.total
            rates["delta"] = (self.fixed - self.broken) / self.total
        return rates


def transplant_rows(
    anchor_success: Tensor, revision_success: Tensor, samples_per_anchor: int, valid: Tensor | None = None
) -> Tensor:
    """Revisions to transplant: the first successful revision of each failed anchor (our choice: one
    per anchor, like the one off-policy trace per group of LUFFY), from the rows in ``valid``.

    Args:
        anchor_success: (K,) bool, one per anchor.
        revision_success: (K*M,) bool, anchor by anchor.
        valid: (K*M,) bool, revisions that may be used (default: all).

    Returns:
        (T,) long, rows into the K*M revisions, ascending; T <= number of failed anchors.
    """
    s_a = _as_bool(anchor_success, "anchor_success")
    s_c = _as_bool(revision_success, "revision_success")
    if s_c.numel() != s_a.numel() * samples_per_anchor:
        raise ValueError(f"revision_success has {s_c.numel()} rows, expected K*M = {s_a.numel()}*{samples_per_anchor}")
    ok = s_c if valid is None else s_c & _as_bool(valid, "valid")
    fixed = (ok.view(-1, samples_per_anchor) & ~s_a.unsqueeze(1)).float()  # (K, M)
    has_fix = fixed.any(dim=1)
    first = fixed.argmax(dim=1)  # the first 1 in each row (argmax returns the first maximum)
    anchors = has_fix.nonzero(as_tuple=True)[0]
    return anchors * samples_per_anchor + first[anchors]
