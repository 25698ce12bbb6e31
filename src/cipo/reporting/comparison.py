"""Tables that compare groups of runs: paired differences with intervals, evaluation noise, compute.

``paired_rows(a, b)`` computes, for every endpoint (``cipo.reporting.endpoints``) and for
held-out accuracy at equal compute (interpolated at the smallest final cost of the two groups,
so every run reaches it), the difference ``b - a`` paired by seed (``cipo.reporting.paired``).
``paired_markdown`` renders them with the difference in bold and a check mark where its interval
excludes zero; the other tables give each group's seed spread next to the per-run binomial
standard error of its held-out accuracy, and what the runs cost.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from cipo.reporting.aggregate import mean_std
from cipo.reporting.endpoints import (
    AXES,
    ENDPOINTS,
    accuracy_at_cost,
    evaluation_se,
    final_cost,
    pass_at_k_endpoints,
)
from cipo.reporting.paired import PairedDifference, paired_difference
from cipo.reporting.runs import Run, select
from cipo.reporting.study import sequences_per_step

EQUAL_COST_AXES = ("generated_tokens", "processed_tokens", "step_s")


@dataclass(frozen=True)
class PairedRow:
    key: str
    label: str
    score_name: str
    mean_a: float
    mean_b: float
    difference: PairedDifference


def _by_seed(runs: Sequence[Run], value_of) -> dict[object, float]:
    return {run.seed: value_of(run.scalars) for run in runs}


def _mean(values: dict[object, float]) -> float:
    finite = [v for v in values.values() if not math.isnan(v)]
    return statistics.fmean(finite) if finite else math.nan


def paired_rows(
    a: Sequence[Run], b: Sequence[Run], interval: str = "t", test: str = "t", level: float = 0.95, seed: int = 0
) -> list[PairedRow]:
    """``b - a`` for every endpoint either group has, paired by seed (rows with no pair left out)."""
    endpoints = dict(ENDPOINTS)
    endpoints.update(pass_at_k_endpoints([run.scalars for run in (*a, *b)]))
    for axis in EQUAL_COST_AXES:
        budget = min((final_cost(run.scalars, axis) for run in (*a, *b)), default=math.nan)
        if not math.isnan(budget):
            label = f"held-out accuracy at equal {AXES[axis].name} ({budget:,.0f})"
            endpoints[f"accuracy_at_{axis}"] = (label, "", lambda s, axis=axis, x=budget: accuracy_at_cost(s, axis, x))
    rows = []
    for key, (label, score_name, value_of) in endpoints.items():
        values_a, values_b = _by_seed(a, value_of), _by_seed(b, value_of)
        difference = paired_difference(values_a, values_b, interval, test, level, seed=seed)
        if difference.seeds:
            rows.append(PairedRow(key, label, score_name, _mean(values_a), _mean(values_b), difference))
    return rows


def _number(value: float, digits: int = 3, sign: bool = False) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def paired_markdown(rows: Sequence[PairedRow], label_a: str, label_b: str, level: float = 0.95) -> str:
    """The rows as a Markdown table; a difference whose interval excludes zero is bold and checked."""
    if not rows:
        return "(no seed in common: nothing to pair)"
    first = rows[0].difference
    method = {"t": "t interval", "bootstrap": "percentile bootstrap over seeds"}[first.interval]
    test = {"t": "paired t-test", "sign-flip": "sign-flip permutation test"}[first.test]
    percent = f"{level * 100:g}%"
    lines = [
        f"| quantity | SCoRe | {label_a} | {label_b} | difference [{percent} CI] | p | seeds | excludes 0 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        d = row.difference
        diff = f"{_number(d.mean, sign=True)} [{_number(d.low, sign=True)}, {_number(d.high, sign=True)}]"
        if d.excludes_zero:
            diff = f"**{diff}**"
        p = "-" if math.isnan(d.p_value) else f"{d.p_value:.3f}" if d.p_value >= 0.001 else "<0.001"
        seeds = str(len(d.seeds)) + (f" (unpaired: {', '.join(map(str, d.unpaired))})" if d.unpaired else "")
        lines.append(
            f"| {row.label} | {row.score_name or '-'} | {_number(row.mean_a)} | {_number(row.mean_b)} | {diff} "
            f"| {p} | {seeds} | {'✓' if d.excludes_zero else ''} |"
        )
    lines += ["", f"Differences are {label_b} minus {label_a}, paired by seed; {percent} {method}, {test}."]
    return "\n".join(lines)


def noise_markdown(groups: dict[str, list[Run]]) -> str:
    """Each group's final held-out accuracy: seed spread next to the per-run evaluation error."""
    lines = [
        "| group | seeds | final held-out accuracy | seed std | evaluation SE per run (binomial) |",
        "|---|---|---|---|---|",
    ]
    for label, runs in groups.items():
        accuracy = [v for v in (ENDPOINTS["final_accuracy"][2](run.scalars) for run in runs) if not math.isnan(v)]
        mean, std = mean_std(accuracy)
        errors = [e for e in (evaluation_se(run.scalars) for run in runs) if not math.isnan(e)]
        error = statistics.fmean(errors) if errors else math.nan
        lines.append(f"| {label} | {len(runs)} | {_number(mean)} | {_number(std)} | {_number(error)} |")
    lines += [
        "",
        "The evaluation SE is sqrt(p (1 - p) / (problems x samples)) of each run's final evaluation, averaged "
        "over the group: an upper bound on the noise of re-sampling the same held-out problems. A seed std "
        "well above it is training variance; one close to it is mostly evaluation noise.",
    ]
    return "\n".join(lines)


def compute_markdown(groups: dict[str, list[Run]]) -> str:
    """What each group's runs cost up to their last validation (mean ± std over seeds)."""
    lines = [
        "| group | sequences per step | generated tokens | processed tokens | RL step time (s) |",
        "|---|---|---|---|---|",
    ]
    for label, runs in groups.items():
        cells = []
        for axis in EQUAL_COST_AXES:
            mean, std = mean_std([c for c in (final_cost(run.scalars, axis) for run in runs) if not math.isnan(c)])
            digits = 1 if axis == "step_s" else 0
            cells.append("-" if math.isnan(mean) else f"{mean:,.{digits}f} ± {std:,.{digits}f}")
        sequences = {_sequences(run) for run in runs} - {None}
        lines.append(f"| {label} | {', '.join(map(str, sorted(sequences))) or '-'} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _sequences(run: Run) -> int | None:
    batch_size, algorithm = select(run.config, "data.batch_size"), select(run.config, "algorithm")
    if not batch_size or algorithm is None or "group_size" not in algorithm:
        return None
    return sequences_per_step(int(batch_size), algorithm)
