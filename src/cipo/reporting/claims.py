"""The paper's three claims, each as one measured difference with its interval and a plain verdict.

CIPO's paper claims that, against GRPO, it gives (1) better first attempts, (2) a pass@k gap that
grows with k, and (3) better correction (second attempt minus first) without hurting first
attempts. Each claim is tested here as a difference ``method - baseline`` paired by unit:

    better first attempts         final held-out accuracy (pass@1), and its mean over the last quarter
    pass@k gap grows with k       the gap at k = 1 and at the largest k, and the growth itself:
                                  (pass@K - pass@1) of the method minus that of the baseline, which is
                                  exactly gap(K) - gap(1) of each unit
    better correction ...         Delta(t1, t2) (second minus first attempt on the same problems)
    ... without hurting t1        Acc@t1 (first attempts of the revised problems)

A unit is one seed of one task, so ``pooled`` pairs over every (task, seed) both configurations
ran: a task's seeds are paired within the task, never across tasks. Per-task differences are
given next to the pooled one, so a claim carried by one task alone is visible.

Verdicts read the interval only: ``supports`` (it excludes 0 on the claimed side), ``contradicts``
(it excludes 0 on the other side), ``not separated`` (it contains 0; ``no harm detected`` for the
non-inferiority row, whose interval says how much harm the data rules out), ``too few pairs``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cipo.reporting.endpoints import ENDPOINTS, final_value, last_quarter_mean
from cipo.reporting.paired import PairedDifference
from cipo.reporting.pooled import StudyRuns, common_tasks, format_difference, largest_k, pooled_difference
from cipo.reporting.runs import Scalars


def _final(tag: str) -> Callable[[Scalars], float]:
    """``tag`` at a run's last logged step (``endpoints.final_value``)."""
    return lambda scalars: final_value(scalars, tag)


def _pass_gain(k: int) -> Callable[[Scalars], float]:
    """pass@k - pass@1 of one run: what k samples add over one."""
    pass_k, accuracy = _final(f"val/pass@{k}"), _final("val/accuracy")
    return lambda scalars: pass_k(scalars) - accuracy(scalars)


@dataclass(frozen=True)
class Claim:
    claim: str  # the paper's claim this row tests
    quantity: str  # what is measured
    value_of: Callable[[Scalars], float]
    direction: int  # +1: the claim predicts method > baseline
    non_inferiority: bool = False  # the claim is "not worse", which no interval can prove


def claims(k: int | None) -> list[Claim]:
    """The claim rows; the pass@k ones when a largest k > 1 is known."""
    first, growth, correction = "better first attempts", "pass@k gap grows with k", "better correction"
    rows = [
        Claim(first, "held-out accuracy (pass@1), final", ENDPOINTS["final_accuracy"][2], +1),
        Claim(first, "held-out accuracy, mean of the last quarter", last_quarter_mean, +1),
    ]
    if k is not None:
        rows += [
            Claim(growth, f"gap at k = {k}: pass@{k}", _final(f"val/pass@{k}"), +1),
            Claim(growth, f"growth of the gap from k = 1 to {k}: pass@{k} - pass@1", _pass_gain(k), +1),
        ]
    rows += [
        Claim(correction, "second minus first attempt, Delta(t1,t2)", ENDPOINTS["delta_t1_t2"][2], +1),
        Claim(correction, "share wrong -> right, Delta i->c", ENDPOINTS["delta_i_to_c"][2], +1),
        Claim(correction, "... without hurting first attempts: Acc@t1", ENDPOINTS["acc_t1"][2], +1, True),
    ]
    return rows


def verdict(claim: Claim, difference: PairedDifference) -> str:
    if math.isnan(difference.low):
        return "too few pairs"
    if difference.excludes_zero:
        agrees = (difference.mean > 0) == (claim.direction > 0)
        return "supports" if agrees else "contradicts"
    return "no harm detected" if claim.non_inferiority else "not separated"


@dataclass(frozen=True)
class ClaimRow:
    claim: Claim
    pooled: PairedDifference
    by_task: dict[str, PairedDifference]
    verdict: str


def claim_rows(
    study: StudyRuns, method: str, baseline: str, interval: str = "t", test: str = "t", level: float = 0.95
) -> list[ClaimRow]:
    """``method - baseline`` for every claim, pooled over the tasks both ran and per task (empty if none)."""
    tasks = common_tasks(study, baseline, method)
    if not tasks:
        return []
    k = largest_k([run for task in tasks for config in (method, baseline) for run in study[task][config]])
    rows = []
    for claim in claims(k):
        difference = pooled_difference(study, baseline, method, claim.value_of, interval, test, level)
        rows.append(ClaimRow(claim, difference.pooled, difference.by_task, verdict(claim, difference.pooled)))
    return rows


def claims_markdown(rows: Sequence[ClaimRow], method: str, baseline: str, level: float = 0.95) -> str:
    """The rows as a Markdown table: pooled difference, verdict, then each task's difference."""
    if not rows:
        return f"(no task has complete runs of both {method} and {baseline})"
    tasks = list(rows[0].by_task)
    percent = f"{level * 100:g}%"
    lines = [
        f"| claim | quantity | pooled: {method} - {baseline} [{percent} CI] | verdict | " + " | ".join(tasks) + " |",
        "|---|---|---|---|" + "---|" * len(tasks),
    ]
    for row in rows:
        cells = [format_difference(row.by_task[task], p=False) for task in tasks]
        lines.append(
            f"| {row.claim.claim} | {row.claim.quantity} | {format_difference(row.pooled)} | {row.verdict} | "
            + " | ".join(cells)
            + " |"
        )
    lines += [
        "",
        f"Pooled: paired over every (task, seed) both ran; n is the number of pairs. Bold: the {percent} "
        "interval excludes 0. Verdicts read the pooled interval.",
    ]
    return "\n".join(lines)
