"""One number per run for each quantity a study compares, read from its logged scalars.

Each endpoint is a function of one run's ``{tag: {step: value}}`` (TensorBoard or a study CSV
read back, ``cipo.reporting.curves_csv``), nan when the run did not log what it needs:

    final_accuracy          val/accuracy at the last validation
    last_quarter_accuracy   mean of val/accuracy over the validations at steps >= 3/4 of the last
    pass@k                  final val/pass@k (k > 1; pass@1 is the accuracy)
    fix_rate, retention     final val/fix_rate, val/retention (the revised first sample)
    acc_t1, acc_t2          SCoRe's Acc@t1 / Acc@t2: final val/first_attempt_accuracy and
                            val/second_attempt_accuracy, on the same problems
    delta_t1_t2             SCoRe's Delta(t1, t2) = Acc@t2 - Acc@t1: (fixed - broken) / problems
                            from the counts; runs from before the counts were logged fall back
                            to val/second_attempt_accuracy - val/accuracy (same expectation,
                            noisier: the attempts are not the revised ones)
    delta_i_to_c            SCoRe's Delta i->c: problems wrong at t1 and right at t2 / problems
    delta_c_to_i            SCoRe's Delta c->i: problems right at t1 and wrong at t2 / problems

Compute axes (``AXES``): a run's cumulative cost at each validation point. Runs log running
totals ``compute/<axis>`` at the 0-based index of the step that completed them, so reaching
validation point k (k steps done) cost ``compute/<axis>[k - 1]`` (0 at k = 0); runs from
before the totals fall back to summing the per-step tag (``cumulative_at``).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from cipo.reporting.aggregate import cumulative_at
from cipo.reporting.paired import binomial_se
from cipo.reporting.runs import Scalars


@dataclass(frozen=True)
class Axis:
    total: str | None  # the running-total tag
    per_step: str | None  # the per-step tag summed for runs without the total
    name: str  # short, for table rows
    label: str  # for plot axes


AXES = {
    "step": Axis(None, None, "RL steps", "RL steps completed"),
    "generated_tokens": Axis(
        "compute/generated_tokens", "rollout/generated_tokens", "generated tokens", "generated tokens (cumulative)"
    ),
    "processed_tokens": Axis(
        "compute/processed_tokens", None, "processed tokens", "processed tokens: training forward (cumulative)"
    ),
    "step_s": Axis(
        "compute/step_s", "time/step_s", "RL step seconds", "RL step time, s (cumulative, validation excluded)"
    ),
}
COUNTS = ("num_fixed", "num_kept", "num_broken", "num_unfixed")


def cost_at(scalars: Scalars, axis: str, points: Sequence[int]) -> dict[int, float]:
    """{k: cost of reaching validation point k} for the ``points`` the run logged; {} when unknown."""
    if axis not in AXES:
        raise ValueError(f"axis must be one of {sorted(AXES)}, got {axis!r}")
    total, per_step = AXES[axis].total, AXES[axis].per_step
    if total is None:
        return {k: float(k) for k in points}
    if scalars.get(total):
        series = scalars[total]
        return {k: 0.0 if k == 0 else series[k - 1] for k in points if k == 0 or k - 1 in series}
    if per_step and scalars.get(per_step):
        return cumulative_at(scalars[per_step], points)
    return {}


def final_value(scalars: Scalars, tag: str) -> float:
    """``tag`` at the run's last logged step (nan when it never logged it)."""
    series = scalars.get(tag)
    return series[max(series)] if series else math.nan


def last_quarter_mean(scalars: Scalars, tag: str = "val/accuracy") -> float:
    """Mean of ``tag`` over its points at steps >= 3/4 of its last step (the last point at least)."""
    series = scalars.get(tag)
    if not series:
        return math.nan
    last = max(series)
    return statistics.fmean(value for step, value in series.items() if step >= 0.75 * last)


def _counts(scalars: Scalars) -> dict[str, float] | None:
    """The final validation's revision outcome counts (None if not logged)."""
    if not all(scalars.get(f"val/{name}") for name in COUNTS):
        return None
    return {name: final_value(scalars, f"val/{name}") for name in COUNTS}


def _delta(scalars: Scalars) -> float:
    counts = _counts(scalars)
    if counts is None:
        return final_value(scalars, "val/second_attempt_accuracy") - final_value(scalars, "val/accuracy")
    problems = sum(counts.values())
    return (counts["num_fixed"] - counts["num_broken"]) / problems if problems else math.nan


def _share(name: str) -> Callable[[Scalars], float]:
    def share(scalars: Scalars) -> float:
        counts = _counts(scalars)
        problems = sum(counts.values()) if counts else 0
        return counts[name] / problems if problems else math.nan

    return share


# key -> (our name, SCoRe's name or "", function of one run's scalars)
ENDPOINTS: dict[str, tuple[str, str, Callable[[Scalars], float]]] = {
    "final_accuracy": ("held-out accuracy, final", "", lambda s: final_value(s, "val/accuracy")),
    "last_quarter_accuracy": ("held-out accuracy, mean of the last quarter", "", last_quarter_mean),
    "fix_rate": ("fix rate (wrong -> right)", "", lambda s: final_value(s, "val/fix_rate")),
    "retention": ("retention (right -> right)", "", lambda s: final_value(s, "val/retention")),
    "acc_t1": (
        "first-attempt accuracy of the revised samples",
        "Acc@t1",
        lambda s: final_value(s, "val/first_attempt_accuracy"),
    ),
    "acc_t2": ("second-attempt accuracy", "Acc@t2", lambda s: final_value(s, "val/second_attempt_accuracy")),
    "delta_t1_t2": ("second minus first attempt", "Delta(t1,t2)", _delta),
    "delta_i_to_c": ("share wrong -> right", "Delta i->c", _share("num_fixed")),
    "delta_c_to_i": ("share right -> wrong", "Delta c->i", _share("num_broken")),
}


def pass_at_k_endpoints(scalars_of_runs: Sequence[Scalars]) -> dict[str, tuple[str, str, Callable[[Scalars], float]]]:
    """pass@k endpoints for every k > 1 that any of the runs logged."""
    ks = sorted(
        {int(tag.removeprefix("val/pass@")) for s in scalars_of_runs for tag in s if tag.startswith("val/pass@")}
    )
    return {f"pass@{k}": (f"pass@{k}", "", lambda s, k=k: final_value(s, f"val/pass@{k}")) for k in ks if k > 1}


def accuracy_at_cost(scalars: Scalars, axis: str, budget: float, tag: str = "val/accuracy") -> float:
    """``tag`` linearly interpolated at cumulative cost ``budget`` on ``axis`` (nan beyond the run's last point)."""
    series = scalars.get(tag) or {}
    costs = cost_at(scalars, axis, sorted(series))
    points = sorted((costs[k], series[k]) for k in costs)
    if not points or not points[0][0] <= budget <= points[-1][0]:
        return math.nan
    return float(np.interp(budget, [c for c, _ in points], [v for _, v in points]))


def final_cost(scalars: Scalars, axis: str) -> float:
    """The run's cost at its last validation point (nan when the axis is not logged)."""
    series = scalars.get("val/accuracy") or {}
    costs = cost_at(scalars, axis, sorted(series))
    return costs[max(costs)] if costs else math.nan


def evaluation_se(scalars: Scalars) -> float:
    """The final validation's binomial standard error (``binomial_se``; nan without its counts)."""
    return binomial_se(
        final_value(scalars, "val/accuracy"),
        final_value(scalars, "val/num_problems"),
        final_value(scalars, "val/samples_per_problem"),
    )
