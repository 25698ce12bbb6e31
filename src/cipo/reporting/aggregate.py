"""Seed statistics of grouped runs: curves with a spread band, and the comparison table.

x-axes: ``val/*`` points sit at x = RL steps completed (0 = the initial policy), while per-step
tags (``rollout/generated_tokens``, ``time/step_s``) sit at the 0-based index of the step that
produced them, so the cost of reaching validation point k is the sum of the per-step values
at steps < k (``cumulative_at``).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cipo.reporting.runs import Run, Scalars


@dataclass(frozen=True)
class Curve:
    """Mean and spread over seeds at each x; ``count`` seeds contributed to each point."""

    x: list[float]
    mean: list[float]
    low: list[float]
    high: list[float]
    count: list[int]


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value); (nan, nan) for none."""
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def cumulative_at(per_step: dict[int, float], points: Sequence[int]) -> dict[int, float]:
    """For each k in ``points``: the sum of ``per_step[s]`` over logged steps s < k."""
    ordered = sorted(per_step.items())
    return {k: sum(value for step, value in ordered if step < k) for k in points}


def seed_curve(
    runs: Sequence[Run],
    tag: str,
    x_of: Callable[[Scalars, Sequence[int]], dict[int, float]] | None = None,
    band: str = "minmax",
) -> Curve | None:
    """``tag`` over seeds at each logged step (union of steps; a point uses the seeds that have it).

    ``x_of(scalars, steps)`` maps a run's steps to another x (e.g. cumulative tokens); the point's
    x is then the mean over seeds. ``band``: ``minmax`` (min to max over seeds) or ``std`` (mean
    +- one sample std). None when no run logged ``tag``.
    """
    if band not in ("minmax", "std"):
        raise ValueError(f"band must be 'minmax' or 'std', got {band!r}")
    series = [run.scalars[tag] for run in runs if tag in run.scalars]
    if not series:
        return None
    xs_of = [
        x_of(run.scalars, sorted(run.scalars[tag])) if x_of else {s: float(s) for s in run.scalars[tag]}
        for run in runs
        if tag in run.scalars
    ]
    steps = sorted(set().union(*series))
    curve = Curve([], [], [], [], [])
    for step in steps:
        pairs = [(xs[step], values[step]) for values, xs in zip(series, xs_of) if step in values and step in xs]
        if not pairs:
            continue
        ys = [y for _, y in pairs]
        mean, std = mean_std(ys)
        curve.x.append(statistics.fmean(x for x, _ in pairs))
        curve.mean.append(mean)
        curve.low.append(min(ys) if band == "minmax" else mean - std)
        curve.high.append(max(ys) if band == "minmax" else mean + std)
        curve.count.append(len(ys))
    return curve


def final_values(runs: Sequence[Run], tag: str) -> list[float]:
    """Each run's value of ``tag`` at its last logged step (runs without the tag left out)."""
    return [run.scalars[tag][max(run.scalars[tag])] for run in runs if run.scalars.get(tag)]


def pass_ks(groups: dict[str, list[Run]]) -> list[int]:
    tags = {tag for runs in groups.values() for run in runs for tag in run.scalars if tag.startswith("val/pass@")}
    return sorted(int(tag.removeprefix("val/pass@")) for tag in tags)


TABLE_RATES = ("val/fix_rate", "val/retention", "val/break_rate")


def table_rows(groups: dict[str, list[Run]]) -> list[dict[str, object]]:
    """One row per group: seeds, and (mean, std) over seeds of the final held-out metrics, the
    total generated tokens and the mean RL step time."""
    rows = []
    for label, runs in groups.items():
        row: dict[str, object] = {"group": label, "seeds": len(runs)}
        # pass@1 is the accuracy again (n samples per problem): not repeated
        for tag in ("val/accuracy", *(f"val/pass@{k}" for k in pass_ks(groups) if k > 1), *TABLE_RATES):
            row[tag] = mean_std(final_values(runs, tag))
        tokens = [
            sum(run.scalars["rollout/generated_tokens"].values())
            for run in runs
            if "rollout/generated_tokens" in run.scalars
        ]
        step_s = [
            statistics.fmean(run.scalars["time/step_s"].values()) for run in runs if run.scalars.get("time/step_s")
        ]
        row["generated_tokens"] = mean_std(tokens)
        row["step_s"] = mean_std(step_s)
        rows.append(row)
    return rows


def _cell(value: object, digits: int) -> str:
    if not isinstance(value, tuple):
        return str(value)
    mean, std = value
    if math.isnan(mean):
        return "-"
    if digits == 0:
        return f"{mean:,.0f} ± {std:,.0f}" if std else f"{mean:,.0f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if std else f"{mean:.{digits}f}"


def markdown_table(rows: list[dict[str, object]]) -> str:
    """The rows as a Markdown table (mean ± sample std over seeds; '-' where a tag is missing)."""
    if not rows:
        return "(no runs)"
    headers = {"group": "group", "seeds": "seeds"}
    headers.update({key: f"final {key}" for key in rows[0] if key.startswith("val/")})
    costs = {"generated_tokens": "generated tokens", "step_s": "step time (s)"}
    headers.update({key: header for key, header in costs.items() if key in rows[0]})
    digits = {"generated_tokens": 0, "step_s": 2}
    lines = ["| " + " | ".join(headers.values()) + " |", "|" + "---|" * len(headers)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(key, "-"), digits.get(key, 3)) for key in headers) + " |")
    return "\n".join(lines)
