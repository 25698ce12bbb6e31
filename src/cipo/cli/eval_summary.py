"""``cipo-eval``'s outputs: ``problems.jsonl`` rows, the counts behind every rate, the console table.

A rate alone hides how much it rests on: "fix_rate 0.0000" may be 0 of 15 or 0 of 1. The
table prints each rate with its numerator and denominator (``0.0000  0/15``), taken from
``summary["counts"]`` (first attempts) and from the per-round counts (``fixed``, ``kept``,
``broken``, ``unfixed``) of ``rollout.evaluate.summarize``. pass@k and the chance accuracy
are estimates, not ratios of counts, and are printed alone.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from cipo.rollout.evaluate import ProblemResult
from cipo.types import Record

log = logging.getLogger(__name__)


def outcome_counts(results: list[ProblemResult]) -> dict[str, int]:
    """Counts over the first attempts: problems, samples, correct samples, mixed problems
    (some but not all samples correct), samples per verifier status, per difficulty level,
    and correct greedy answers."""
    counts: dict[str, int] = {"problems": len(results), "samples": 0, "correct": 0, "mixed_problems": 0}
    for result in results:
        n, c = len(result.samples), result.num_correct
        counts["samples"] += n
        counts["correct"] += c
        counts["mixed_problems"] += int(0 < c < n)
        for verdict in result.samples:
            counts[f"status_{verdict.status}"] = counts.get(f"status_{verdict.status}", 0) + 1
        if result.level is not None:
            for name, value in ((f"level_{result.level}_correct", c), (f"level_{result.level}_samples", n)):
                counts[name] = counts.get(name, 0) + value
        if result.greedy is not None:
            counts["greedy_correct"] = counts.get("greedy_correct", 0) + int(result.greedy.success)
    return counts


def problem_row(result: ProblemResult, record: Record, save_texts: bool) -> dict[str, Any]:
    """One problems.jsonl line: the problem and its gold answer, and enough to recompute every
    metric of the summary."""

    def verdict(v, **extra) -> dict[str, Any]:
        return {**extra, "success": v.success, "status": v.status, **({"text": v.text} if save_texts else {})}

    row: dict[str, Any] = {"id": result.id, "level": result.level}
    if save_texts:
        row["prompt"] = record.prompt
    row["reference"] = record.reference  # the verifier's gold answer (a number, or a code test spec)
    row.update(
        n=len(result.samples),
        c=result.num_correct,
        verdicts=[v.success for v in result.samples],
        statuses=[v.status for v in result.samples],
    )
    if save_texts:
        row["texts"] = [v.text for v in result.samples]
    if result.greedy is not None:
        row["greedy"] = verdict(result.greedy)
    if result.attempt is not None:
        row["attempt"] = verdict(result.attempt, source=result.attempt_source)
        row["rounds"] = [verdict(v, round=r) for r, v in enumerate(result.revisions, start=1)]
    return row


def write_outputs(
    folder: Path, summary: dict[str, Any], results: list[ProblemResult], records: list[Record], save_texts: bool
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    with open(folder / "problems.jsonl", "w") as handle:
        for result, record in zip(results, records):
            handle.write(json.dumps(problem_row(result, record, save_texts)) + "\n")
    log.info("wrote %s and %s", folder / "summary.json", folder / "problems.jsonl")


def _first_attempt_fractions(counts: dict[str, int]) -> dict[str, tuple[int, int]]:
    """metric name -> (numerator, denominator) for the first-attempt rates."""
    fractions = {
        "accuracy": (counts["correct"], counts["samples"]),
        "frac_mixed": (counts["mixed_problems"], counts["problems"]),
    }
    if "greedy_correct" in counts:
        fractions["greedy_accuracy"] = (counts["greedy_correct"], counts["problems"])
    for name, value in counts.items():
        if name.startswith("status_"):
            fractions[name] = (value, counts["samples"])
        elif name.startswith("level_") and name.endswith("_correct"):
            level = name.removeprefix("level_").removesuffix("_correct")
            fractions[f"accuracy_level_{level}"] = (value, counts[f"level_{level}_samples"])
    return fractions


def _round_fractions(row: dict[str, Any], previous: dict[str, Any] | None) -> dict[str, tuple[int, int]]:
    """(numerator, denominator) of a revision round's rates, from its outcome counts."""
    if "fixed" not in row:  # round 0: the revised attempts, counted by round 1
        if previous is None:
            return {}
        kept, broken, fixed, unfixed = (int(previous[k]) for k in ("kept", "broken", "fixed", "unfixed"))
        return {"accuracy": (kept + broken, kept + broken + fixed + unfixed)}
    kept, broken, fixed, unfixed = (int(row[k]) for k in ("kept", "broken", "fixed", "unfixed"))
    return {
        "accuracy": (kept + fixed, kept + broken + fixed + unfixed),
        "fix_rate": (fixed, fixed + unfixed),
        "retention": (kept, kept + broken),
        "break_rate": (broken, kept + broken),
    }


def format_summary(summary: dict[str, Any]) -> str:
    """The console table: first-attempt metrics, then one row per revision round; each rate
    with the counts it is made of."""
    s, m = summary["settings"], summary["metrics"]
    fractions = _first_attempt_fractions(summary.get("counts") or {}) if summary.get("counts") else {}
    lines = [
        f"cipo-eval: {summary['policy']}",
        f"{summary['num_problems']} {summary['split']} problems, n={s['samples']}, T={s['temperature']}, "
        f"max_new_tokens={s['max_new_tokens']}, engine {s['engine'].rsplit('.', 1)[-1]}",
        "",
    ]
    first = ["accuracy", *(f"pass@{k}" for k in s["ks"]), "frac_mixed", "greedy_accuracy", "chance_accuracy"]
    first += sorted(k for k in m if k.startswith(("accuracy_level_", "status_")))
    for name in (name for name in first if name in m):
        count = f"  {fractions[name][0]}/{fractions[name][1]}" if name in fractions else ""
        lines.append(f"  {name:<22}{m[name]:.4f}{count}")
    if summary["rounds"]:
        columns = ["accuracy", "fix_rate", "retention", "break_rate", "delta"]
        lines += ["", f"  revisions of the {s['attempts']} attempts (verdict hidden)"]
        lines.append(("  " + "round".ljust(8) + "".join(c.ljust(18) for c in columns)).rstrip())
        rounds = summary["rounds"]
        for index, row in enumerate(rounds):
            counted = _round_fractions(row, rounds[1] if index == 0 and len(rounds) > 1 else None)
            cells = []
            for column in columns:
                if column not in row:
                    cells.append("-")
                elif column == "delta":
                    cells.append(f"{row[column]:+.4f}")
                elif column in counted:
                    cells.append(f"{row[column]:.4f} {counted[column][0]}/{counted[column][1]}")
                else:
                    cells.append(f"{row[column]:.4f}")
            lines.append(("  " + str(row["round"]).ljust(8) + "".join(cell.ljust(18) for cell in cells)).rstrip())
    return "\n".join(lines)
