"""Differences between two configurations pooled over a study's tasks, and the table of the ablations.

A unit is one seed of one task: ``pooled_difference`` pairs every (task, seed) both configurations
ran, a task's seeds within that task only, and gives each task's own difference next to the pooled
one, so an effect carried by one task alone stays visible. The paper's claims
(``reporting/claims.py``) are rows of this; ``comparisons_markdown`` puts the study's other
comparisons (what an ablation or the compute-matched baseline changes) in one table, each
quantity a row and each comparison a column.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from cipo.reporting.endpoints import ENDPOINTS, final_value
from cipo.reporting.paired import PairedDifference, paired_difference
from cipo.reporting.runs import Run, Scalars

# task -> configuration -> its runs (one per seed)
StudyRuns = Mapping[str, Mapping[str, Sequence[Run]]]

# the quantities of the comparisons table: ENDPOINTS keys, then pass@K (largest_k) after the accuracies
COMPARED = ("final_accuracy", "last_quarter_accuracy", "delta_t1_t2", "delta_i_to_c", "delta_c_to_i", "retention")


@dataclass(frozen=True)
class Pooled:
    pooled: PairedDifference  # over every (task, seed) unit both configurations ran
    by_task: dict[str, PairedDifference]  # each task's seeds alone


def common_tasks(study: StudyRuns, a: str, b: str) -> list[str]:
    """The tasks with complete runs of both ``a`` and ``b``, in the study's order."""
    return [task for task, configs in study.items() if configs.get(a) and configs.get(b)]


def largest_k(runs: Sequence[Run]) -> int | None:
    """The largest k > 1 of ``val/pass@k`` that every one of ``runs`` logged (None if there is none)."""
    common = None
    for run in runs:
        ks = {int(tag.removeprefix("val/pass@")) for tag in run.scalars if tag.startswith("val/pass@")}
        common = ks if common is None else common & ks
    return max((k for k in common or () if k > 1), default=None)


def _values(study: StudyRuns, config: str, value_of, tasks: Sequence[str]) -> dict[tuple[str, object], float]:
    return {(task, run.seed): value_of(run.scalars) for task in tasks for run in study[task].get(config, ())}


def pooled_difference(
    study: StudyRuns,
    a: str,
    b: str,
    value_of: Callable[[Scalars], float],
    interval: str = "t",
    test: str = "t",
    level: float = 0.95,
) -> Pooled:
    """``b - a`` of ``value_of`` (one number per run), pooled over ``common_tasks`` and per task."""
    tasks = common_tasks(study, a, b)
    values_a, values_b = _values(study, a, value_of, tasks), _values(study, b, value_of, tasks)
    pooled = paired_difference(values_a, values_b, interval, test, level)
    by_task = {
        task: paired_difference(
            {seed: v for (t, seed), v in values_a.items() if t == task},
            {seed: v for (t, seed), v in values_b.items() if t == task},
            interval,
            test,
            level,
        )
        for task in tasks
    }
    return Pooled(pooled, by_task)


def format_difference(d: PairedDifference, p: bool = True) -> str:
    """``+0.012 [-0.004, +0.028], p 0.123, n 5``; bold when the interval excludes 0, ``-`` without pairs."""
    if not d.seeds:
        return "-"
    text = f"{d.mean:+.3f}"
    if not math.isnan(d.low):
        text += f" [{d.low:+.3f}, {d.high:+.3f}]"
    if p and not math.isnan(d.p_value):
        text += f", p {d.p_value:.3f}" if d.p_value >= 0.001 else ", p <0.001"
    text += f", n {len(d.seeds)}"
    return f"**{text}**" if d.excludes_zero else text


def compared_quantities(runs: Sequence[Run]) -> list[tuple[str, Callable[[Scalars], float]]]:
    """(label, value of one run) for the comparisons table: ``COMPARED``, with pass@K after the accuracies."""
    rows = []
    for key in COMPARED:
        ours, score_name, value_of = ENDPOINTS[key]
        rows.append((f"{ours} ({score_name})" if score_name else ours, value_of))
    k = largest_k(runs)
    if k is not None:
        rows.insert(2, (f"pass@{k}, final", lambda s, k=k: final_value(s, f"val/pass@{k}")))
    return rows


def comparisons_markdown(
    study: StudyRuns, pairs: Sequence[tuple[str, str]], interval: str = "t", test: str = "t", level: float = 0.95
) -> str:
    """One row per quantity, one column per ``(a, b)`` pair: ``b - a`` pooled over the tasks both ran."""
    pairs = [(a, b) for a, b in pairs if common_tasks(study, a, b)]
    if not pairs:
        return "(no comparison has complete runs on both sides yet)"
    runs = [run for a, b in pairs for task in common_tasks(study, a, b) for c in (a, b) for run in study[task][c]]
    percent = f"{level * 100:g}%"
    lines = [
        "| quantity | " + " | ".join(f"{b} - {a}" for a, b in pairs) + " |",
        "|---|" + "---|" * len(pairs),
    ]
    for label, value_of in compared_quantities(runs):
        cells = [
            format_difference(pooled_difference(study, a, b, value_of, interval, test, level).pooled, p=False)
            for a, b in pairs
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Each cell: mean paired difference [{percent} CI], n (task, seed) pairs, pooled over the tasks both ran. "
        f"Bold: the interval excludes 0. Per-task differences: the report's paired tables.",
    ]
    return "\n".join(lines)
