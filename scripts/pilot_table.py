"""Per-run results of a pilot sweep as a CSV, and the per-configuration mean / spread as Markdown.

    python scripts/pilot_table.py logs/pilot/arithmetic --csv docs/results/pilot/arithmetic.csv \\
        --summary docs/results/pilot/arithmetic.md

One CSV row per run (configuration = ``algorithm.name``, seed): the held-out values at the last
validation (first-attempt accuracy over all samples, fix rate, retention, second-attempt accuracy
and its paired change over the revised attempts, val/second_attempt_accuracy -
val/first_attempt_accuracy), first-attempt accuracy averaged over the last three validations,
and training-time means over the second half of the run (rollout accuracy, replay ratio, retention,
re-solve rate, anchors per pass-rate bucket, broken revisions per step, transplanted rows). The
summary gives mean, sample std and min..max over seeds per configuration.
"""

from __future__ import annotations

import argparse
import csv
import statistics
from pathlib import Path

from cipo.reporting.aggregate import mean_std
from cipo.reporting.runs import Run, load_runs, select

HELD_OUT = {  # column -> tag, read at the last validation
    "first_attempt_accuracy": "val/accuracy",
    "fix_rate": "val/fix_rate",
    "retention": "val/retention",
    "second_attempt_accuracy": "val/second_attempt_accuracy",
    "pass@4": "val/pass@4",
}
TRAINING = {  # column -> tag, averaged over the second half of the RL steps
    "train_accuracy": "rollout/accuracy",
    "train_replay_ratio": "correction/replay_ratio",
    "train_retention": "correction/retention",
    "train_fix_rate": "correction/fix_rate",
    "train_resolve_rate": "correction/resolve_rate",
    "train_anchor_share_0": "correction/anchor_share_pass_0",
    "train_anchor_share_low": "correction/anchor_share_pass_low",
    "train_anchor_share_mid": "correction/anchor_share_pass_mid",
    "train_anchor_share_high": "correction/anchor_share_pass_high",
    "train_broken": "correction/num_broken",  # revisions the breakage penalty hits, per step
    "train_transplanted": "correction/num_transplanted",
}
SUMMARY = ["first_attempt_accuracy", "accuracy_last3", "fix_rate", "retention", "second_minus_first", "pass@4"]


def _last(series: dict[int, float]) -> tuple[int, float]:
    step = max(series)
    return step, series[step]


def run_row(run: Run) -> dict[str, object]:
    scalars = run.scalars
    step, _ = _last(scalars["val/accuracy"])
    row: dict[str, object] = {
        "config": run.config.algorithm.name,
        "data": str(select(run.config, "data.train._target_") or "").rsplit(".", 1)[-1].removesuffix("_records"),
        "seed": run.seed,
        "steps": step,
    }
    for column, tag in HELD_OUT.items():
        row[column] = scalars.get(tag, {}).get(step, "")
    revised = [scalars.get(f"val/{name}_attempt_accuracy", {}).get(step) for name in ("first", "second")]
    # paired over the revised attempts: Acc@t2 - Acc@t1 on the same problems (SCoRe's Delta)
    row["second_minus_first"] = revised[1] - revised[0] if None not in revised else ""
    evaluations = sorted(scalars["val/accuracy"].items())[-3:]
    row["accuracy_last3"] = statistics.fmean(value for _, value in evaluations)
    half = step // 2
    corrects = bool(select(run.config, "algorithm.correction.enabled"))
    for column, tag in TRAINING.items():
        if tag.startswith("correction/") and not corrects:  # grpo logs an unused replay ratio
            row[column] = ""
            continue
        values = [value for s, value in scalars.get(tag, {}).items() if s >= half]
        row[column] = statistics.fmean(values) if values else ""
    row["generated_tokens"] = sum(scalars.get("rollout/generated_tokens", {}).values())
    row["run"] = str(run.path)
    return row


def summary(rows: list[dict[str, object]]) -> str:
    configs = list(dict.fromkeys(str(row["config"]) for row in rows))
    lines = [
        "| config | seeds | " + " | ".join(SUMMARY) + " |",
        "|---|---|" + "---|" * len(SUMMARY),
    ]
    for config in configs:
        mine = [row for row in rows if row["config"] == config]
        cells = []
        for column in SUMMARY:
            values = [float(row[column]) for row in mine if row[column] != ""]
            mean, std = mean_std(values)
            cells.append(f"{mean:.3f} ± {std:.3f} ({min(values):.3f}..{max(values):.3f})" if values else "-")
        lines.append(f"| {config} | {len(mine)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\nmean ± sample std over seeds (min..max); held-out values at the last validation\n"


def main(argv: list[str] | None = None) -> list[dict[str, object]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sweep", type=Path)
    parser.add_argument("--csv", type=Path, required=True)
    parser.add_argument("--summary", type=Path)
    args = parser.parse_args(argv)
    groups, skipped = load_runs([args.sweep], group_by=["algorithm.name"])
    rows = sorted((run_row(run) for runs in groups.values() for run in runs), key=lambda r: (r["config"], r["seed"]))
    if not rows:
        raise SystemExit(f"{args.sweep}: no finished run ({len(skipped)} skipped: {skipped[:3]})")
    args.csv.parent.mkdir(parents=True, exist_ok=True)
    with args.csv.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    text = summary(rows)
    if skipped:
        text += "\nskipped: " + "; ".join(f"{path.name}: {reason}" for path, reason in skipped) + "\n"
    if args.summary:
        args.summary.write_text(text)
    print(text)
    return rows


if __name__ == "__main__":
    main()
