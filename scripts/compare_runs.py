"""Compare cipo-train runs: seed-pooled curves (PNG), a Markdown table and paired differences
with confidence intervals, from their TensorBoard logs.

    python scripts/compare_runs.py logs/builtin_compare/multiruns/ablations
    python scripts/compare_runs.py logs/train/runs/A logs/train/runs/B --out cmp --group-by algorithm.name
    python scripts/compare_runs.py SWEEP --group-by algorithm.name --baseline grpo --test sign-flip

Each input is a run folder or any folder above run folders (a multirun, logs/<task_name>/). Runs
are grouped by their command-line overrides minus the seed (or by --group-by config keys); every
plot shows the mean over seeds with a min-max band (--band std: +- one sample std). Written to
--out (default: <the one input>/comparison):

    val_accuracy_vs_step.png and against the compute axes: val_accuracy_vs_tokens.png (generated),
    val_accuracy_vs_processed_tokens.png, val_accuracy_vs_time.png (RL step seconds),
    pass_at_k.png (final val/pass@k vs k), correction_rates.png (val/fix_rate, val/retention,
    val/break_rate, correction/replay_ratio), reward_mean.png (rollout/reward_mean),
    comparison.md: the table; each group's seed spread next to its evaluation error; for every
    group against the baseline (--baseline: the group whose label contains it; default the
    first), differences paired by seed with --level intervals (--interval t | bootstrap) and
    p-values (--test t | sign-flip), marking those whose interval excludes zero; the groups
    and skipped runs.

Runs that crashed (fewer RL steps logged than trainer.max_epochs), never validated or hold no
events are listed as skipped with the reason (--keep-incomplete keeps partial runs).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from cipo.reporting.aggregate import markdown_table, table_rows
from cipo.reporting.comparison import compute_markdown, noise_markdown, paired_markdown, paired_rows
from cipo.reporting.plots import Groups, plot_all
from cipo.reporting.runs import load_runs


def pick_baseline(groups: Groups, wanted: str | None) -> str:
    """The group label equal to ``wanted``, else the one label containing it; the first group by default."""
    if wanted is None:
        return next(iter(groups))
    if wanted in groups:
        return wanted
    matches = [label for label in groups if wanted in label]
    if len(matches) != 1:
        found = "no group" if not matches else f"{len(matches)} groups ({matches})"
        raise ValueError(f"--baseline {wanted!r} matches {found}; groups: {list(groups)}")
    return matches[0]


def paired_sections(groups: Groups, baseline: str, interval: str, test: str, level: float) -> list[str]:
    lines = []
    for label, runs in groups.items():
        if label == baseline:
            continue
        rows = paired_rows(groups[baseline], runs, interval, test, level)
        lines += ["", f"### {label} vs {baseline}", "", paired_markdown(rows, baseline, label, level)]
    return lines


def report(groups: Groups, skipped: list[tuple[Path, str]], plots: list[Path], paired: list[str] = ()) -> str:
    lines = [
        "# Run comparison",
        "",
        "Final values (each run's last logged point): mean ± sample std over the runs of a group.",
        "",
    ]
    lines += [markdown_table(table_rows(groups)), "", "## Seed spread and evaluation error", ""]
    lines += [noise_markdown(groups), "", "## Compute up to the last validation", "", compute_markdown(groups)]
    if paired:
        lines += ["", "## Paired differences", *paired]
    lines += ["", "## Groups", ""]
    lines += [f"- **{label}**: " + ", ".join(str(run.path) for run in runs) for label, runs in groups.items()]
    notes = [f"- {run.path}: {note}" for runs in groups.values() for run in runs for note in run.notes]
    if notes:
        lines += ["", "## Kept although", "", *notes]
    if skipped:
        lines += ["", "## Skipped", "", *(f"- {path}: {reason}" for path, reason in skipped)]
    lines += ["", "## Plots", "", *(f"![{p.stem}]({p.name})" for p in plots)]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", help="run folders, multirun folders or any folder above runs")
    parser.add_argument("--out", help="output folder (default: <the one input>/comparison)")
    parser.add_argument("--group-by", help="comma-separated config keys to group by (default: overrides minus seed)")
    parser.add_argument("--band", choices=("minmax", "std"), default="minmax", help="spread over seeds")
    parser.add_argument("--keep-incomplete", action="store_true", help="keep runs that logged fewer steps")
    parser.add_argument("--baseline", help="group (label or a unique part of it) the others are compared with")
    parser.add_argument("--interval", choices=("t", "bootstrap"), default="t", help="confidence interval over seeds")
    parser.add_argument("--test", choices=("t", "sign-flip"), default="t", help="paired t-test or sign-flip test")
    parser.add_argument("--level", type=float, default=0.95, help="confidence level of the intervals")
    args = parser.parse_args(argv)
    if args.out is None and len(args.paths) != 1:
        parser.error("with several inputs, say where to write: --out FOLDER")
    out = Path(args.out) if args.out else Path(args.paths[0]) / "comparison"
    group_by = [key.strip() for key in args.group_by.split(",")] if args.group_by else None
    groups, skipped = load_runs(args.paths, group_by, args.keep_incomplete)
    for path, reason in skipped:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    if not groups:
        print("no comparable runs found", file=sys.stderr)
        return 1
    try:
        baseline = pick_baseline(groups, args.baseline)
    except ValueError as error:
        parser.error(str(error))
    out.mkdir(parents=True, exist_ok=True)
    plots = plot_all(groups, out, args.band)
    paired = paired_sections(groups, baseline, args.interval, args.test, args.level) if len(groups) > 1 else []
    text = report(groups, skipped, plots, paired)
    (out / "comparison.md").write_text(text)
    print(text)
    print(f"wrote {len(plots)} plots and comparison.md to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
