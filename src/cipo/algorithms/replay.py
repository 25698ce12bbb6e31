"""Adaptive replay ratio rho of correct anchors (method sheet step 10).

After each step rho is updated from the evidence of that step (``RetentionCounts``): how many
revisions of correct anchors stayed correct (retention), and how often *re-solving* those anchors'
prompts is right (the other samples of the same prompts: a leave-one-out pass rate). Two rules:

``resolve_gap`` (default, **our choice**): a proportional regulator on smoothed counts,

    Ret_s  = S(kept) / S(revised),   Base_s = S(resolve_correct) / S(resolve_samples)
    rho'   = clip(center - gain * ((Ret_s - Base_s) - margin), min, max)

where S(x) <- (1 - eta) S(x) + eta x is an exponential moving sum (eta = ``smoothing``). rho is a
fixed, decreasing function of the smoothed retention *gap over re-solving*: a policy that keeps
right answers no better than it would re-solve them (gap <= 0) is breaking them, so more correct
anchors are replayed; one that keeps them clearly better (gap > margin) spends the stream on
failures. Because nothing integrates, a constant true retention gives a stable interior rho that
moves monotonically with it; the update is linear in the counts, so noise averages out instead of
ratcheting; and the reference point is what re-solving achieves, reachable without copying
(tests/algorithms/test_replay_simulation.py checks all four with the step's real sample counts).
A step without correct anchors decays both sums alike, which leaves the ratios and rho unchanged.
``min`` > 0 (default 0.1) keeps at least one correct anchor per step at K = 8, so the evidence never dries up.

``published`` (one public re-implementation of the paper, kept for the ablation
``algorithm=cipo_published_replay``):

    rho' = clip(rho * (1 + w1 (tau - Ret) + w2 max(0, Ret_prev - Ret) + w3 min(c, c_max)), min, max)

with c the run of steps with Ret < tau including this one (our reading); defaults rho0 = 0.3,
[0.2, 0.8], tau = 0.8, w = (0.8, 0.3, 0.05), c_max = 3. Its drop and streak terms are never
negative, so noise around tau ratchets rho upwards, and tau = 0.8 is reachable only by copying
(shared/notes/method-audit.md); that is why it is not the default.

With ``adaptive: false`` rho stays at ``initial`` (the fixed-replay ablation); ``min = initial =
max = 0`` is the failed-only ablation under either rule.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

REPLAY_RULES: tuple[str, ...] = ("resolve_gap", "published")


@dataclass(frozen=True)
class RetentionCounts:
    """One step's evidence for the controller (counts, so that ranks and steps add up).

    kept / revised: revisions of correct anchors that stayed correct / all of them.
    resolve_correct / resolve_samples: the *other* samples of those anchors' prompts (G - 1 per
    correct anchor) that were correct / all of them: how often re-solving the prompt is right.
    """

    kept: float
    revised: float
    resolve_correct: float
    resolve_samples: float

    def __post_init__(self) -> None:
        for name in ("kept", "revised", "resolve_correct", "resolve_samples"):
            if getattr(self, name) < 0:
                raise ValueError(f"RetentionCounts.{name} must be >= 0, got {getattr(self, name)!r}")
        if self.kept > self.revised or self.resolve_correct > self.resolve_samples:
            raise ValueError(f"RetentionCounts: a count of successes exceeds its total: {self}")

    @property
    def retention(self) -> float | None:
        return self.kept / self.revised if self.revised else None

    @property
    def resolve_rate(self) -> float | None:
        return self.resolve_correct / self.resolve_samples if self.resolve_samples else None


@dataclass(frozen=True)
class ReplayControl:
    """Hyper-parameters of the replay ratio (step 10); see the module docstring."""

    rule: str = "resolve_gap"
    initial: float = 0.3
    min: float = 0.1
    max: float = 0.8
    adaptive: bool = True
    # resolve_gap
    center: float = 0.3
    gain: float = 1.0
    margin: float = 0.1
    smoothing: float = 0.05
    # published
    target: float = 0.8
    w_gap: float = 0.8
    w_drop: float = 0.3
    w_streak: float = 0.05
    max_streak: int = 3

    def __post_init__(self) -> None:
        if self.rule not in REPLAY_RULES:
            raise ValueError(f"ReplayControl.rule must be one of {REPLAY_RULES}, got {self.rule!r}")
        for name in ("min", "initial", "max", "target", "center"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"ReplayControl.{name} must be in [0, 1], got {value!r}")
        if not self.min <= self.initial <= self.max:
            raise ValueError(
                f"ReplayControl needs min <= initial <= max, got min={self.min!r}, "
                f"initial={self.initial!r}, max={self.max!r}"
            )
        for name in ("w_gap", "w_drop", "w_streak", "max_streak", "gain"):
            value = getattr(self, name)
            if value < 0:
                raise ValueError(f"ReplayControl.{name} must be >= 0, got {value!r}")
        if not 0.0 < self.smoothing <= 1.0:
            raise ValueError(f"ReplayControl.smoothing must be in (0, 1], got {self.smoothing!r}")
        if not -1.0 <= self.margin <= 1.0:
            raise ValueError(f"ReplayControl.margin must be in [-1, 1], got {self.margin!r}")


@dataclass(frozen=True)
class ReplayState:
    """The controller's memory between steps; checkpoint it with ``as_dict``.

    ``prev_retention`` / ``low_streak``: the published rule's; ``kept`` ... ``resolve_samples``:
    the moving sums of ``RetentionCounts`` (resolve_gap; 0 until the first correct anchor).
    """

    ratio: float
    prev_retention: float | None = None
    low_streak: int = 0
    kept: float = 0.0
    revised: float = 0.0
    resolve_correct: float = 0.0
    resolve_samples: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReplayState:
        """Checkpoints written before the moving sums existed load with sums of 0."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"ReplayState.from_dict got unknown key(s) {unknown}; known: {sorted(known)}")
        if "ratio" not in data:
            raise ValueError("ReplayState.from_dict needs the key 'ratio'")
        prev = data.get("prev_retention")
        sums = {name: float(data.get(name, 0.0)) for name in ("kept", "revised", "resolve_correct", "resolve_samples")}
        return cls(
            ratio=float(data["ratio"]),
            prev_retention=None if prev is None else float(prev),
            low_streak=int(data.get("low_streak", 0)),
            **sums,
        )


def initial_replay_state(control: ReplayControl) -> ReplayState:
    """The state before the first step: rho = rho0, no evidence seen yet."""
    return ReplayState(ratio=control.initial)


def resolve_gap_ratio(retention: float, resolve_rate: float, control: ReplayControl) -> float:
    """rho = clip(center - gain * ((retention - resolve_rate) - margin), min, max): the rule's target."""
    ratio = control.center - control.gain * ((retention - resolve_rate) - control.margin)
    return min(max(ratio, control.min), control.max)


def _published(state: ReplayState, retention: float, control: ReplayControl) -> tuple[float, int]:
    streak = state.low_streak + 1 if retention < control.target else 0
    drop = 0.0 if state.prev_retention is None else max(0.0, state.prev_retention - retention)
    factor = (
        1.0
        + control.w_gap * (control.target - retention)
        + control.w_drop * drop
        + control.w_streak * min(streak, control.max_streak)
    )
    return min(max(state.ratio * factor, control.min), control.max), streak


def update_replay_ratio(state: ReplayState, counts: RetentionCounts | None, control: ReplayControl) -> ReplayState:
    """One step of the replay controller; returns the new state (the input is unchanged).

    ``counts`` is this step's evidence; None (no correction stream ran) returns ``state`` as is.
    With ``control.adaptive`` False the ratio stays at ``control.initial`` (the evidence is still
    tracked, so the logs show what the controller would have seen).
    """
    if counts is None:
        return state
    eta = control.smoothing
    sums = {
        name: (1.0 - eta) * getattr(state, name) + eta * getattr(counts, name)
        for name in ("kept", "revised", "resolve_correct", "resolve_samples")
    }
    retention = counts.retention
    prev, streak, ratio = state.prev_retention, state.low_streak, state.ratio
    if control.rule == "published":
        if retention is not None:  # a step without correct anchors teaches the published rule nothing
            ratio, streak = _published(state, retention, control)
            prev = retention
    elif sums["revised"] > 0 and sums["resolve_samples"] > 0:
        ratio = resolve_gap_ratio(
            sums["kept"] / sums["revised"], sums["resolve_correct"] / sums["resolve_samples"], control
        )
    if not control.adaptive:
        ratio = control.initial
    return ReplayState(ratio=ratio, prev_retention=prev, low_streak=streak, **sums)
