"""Adaptive replay ratio of correct anchors (method sheet step 10).

After each step rho is updated from the *retention* rate Ret (share of corrections of correct
anchors that stay correct), after one published re-implementation:

    rho' = clip(rho * (1 + w1 (tau - Ret) + w2 max(0, Ret_prev - Ret) + w3 min(c, c_max)),
                rho_min, rho_max)

Our choices (the paper's text was unavailable; see shared/cipo-method.md):
  * c counts consecutive steps with Ret < tau *including* the current one; a step without
    correct anchors (Ret undefined) leaves the state unchanged and does not break a run.
  * Defaults rho0 = 0.3, [0.2, 0.8], tau = 0.8, w = (0.8, 0.3, 0.05), c_max = 3 are that
    re-implementation's, not necessarily the paper's.
  * rho * (...) keeps rho = 0 at 0, so min = initial = 0 is the failed-only ablation.
The controller is a plain function of (state, retention, control): swap it for another rule
by writing a function with the same signature.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True)
class ReplayControl:
    """Hyper-parameters of the adaptive replay ratio (step 10); see the module docstring."""

    initial: float = 0.3
    min: float = 0.2
    max: float = 0.8
    target: float = 0.8
    w_gap: float = 0.8
    w_drop: float = 0.3
    w_streak: float = 0.05
    max_streak: int = 3
    adaptive: bool = True

    def __post_init__(self) -> None:
        for name in ("min", "initial", "max", "target"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"ReplayControl.{name} must be in [0, 1], got {value!r}")
        if not self.min <= self.initial <= self.max:
            raise ValueError(
                f"ReplayControl needs min <= initial <= max, got min={self.min!r}, "
                f"initial={self.initial!r}, max={self.max!r}"
            )
        for name in ("w_gap", "w_drop", "w_streak", "max_streak"):
            value = getattr(self, name)
            if value < 0:
                raise ValueError(f"ReplayControl.{name} must be >= 0, got {value!r}")


@dataclass(frozen=True)
class ReplayState:
    """The controller's memory between steps; checkpoint it with ``as_dict``."""

    ratio: float
    prev_retention: float | None = None
    low_streak: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReplayState:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"ReplayState.from_dict got unknown key(s) {unknown}; known: {sorted(known)}")
        if "ratio" not in data:
            raise ValueError("ReplayState.from_dict needs the key 'ratio'")
        prev = data.get("prev_retention")
        return cls(
            ratio=float(data["ratio"]),
            prev_retention=None if prev is None else float(prev),
            low_streak=int(data.get("low_streak", 0)),
        )


def initial_replay_state(control: ReplayControl) -> ReplayState:
    """The state before the first step: rho = rho0, no retention seen yet."""
    return ReplayState(ratio=control.initial)


def update_replay_ratio(state: ReplayState, retention: float | None, control: ReplayControl) -> ReplayState:
    """One step of the replay controller; returns the new state (the input is unchanged).

    ``retention`` is this step's right -> right share, None when no correct anchor was
    revised (then nothing is learnt and ``state`` is returned as is). With
    ``control.adaptive`` False the ratio stays at ``control.initial``.
    """
    if retention is None:
        return state
    if not 0.0 <= retention <= 1.0:
        raise ValueError(f"retention must be in [0, 1] or None, got {retention!r}")
    streak = state.low_streak + 1 if retention < control.target else 0
    if not control.adaptive:
        return ReplayState(ratio=control.initial, prev_retention=retention, low_streak=streak)
    drop = 0.0 if state.prev_retention is None else max(0.0, state.prev_retention - retention)
    factor = (
        1.0
        + control.w_gap * (control.target - retention)
        + control.w_drop * drop
        + control.w_streak * min(streak, control.max_streak)
    )
    ratio = min(max(state.ratio * factor, control.min), control.max)
    return ReplayState(ratio=ratio, prev_retention=retention, low_streak=streak)
