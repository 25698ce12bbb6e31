"""Compare cipo-train runs: seed-pooled curves (PNG) and a Markdown table from their TensorBoard logs.

    python scripts/compare_runs.py logs/builtin_compare/multiruns/ablations
    python scripts/compare_runs.py logs/train/runs/A logs/train/runs/B --out cmp --group-by algorithm.name

Each input is a run folder or any folder above run folders (a multirun, logs/<task_name>/). Runs
are grouped by their command-line overrides minus the seed (or by --group-by config keys); every
plot shows the mean over seeds with a min-max band (--band std: +- one sample std). Written to
--out (default: <the one input>/comparison):

    val_accuracy_vs_step.png, val_accuracy_vs_tokens.png (cumulative rollout/generated_tokens),
    val_accuracy_vs_time.png (cumulative time/step_s), pass_at_k.png (final val/pass@k vs k),
    correction_rates.png (val/fix_rate, val/retention, val/break_rate, correction/replay_ratio),
    reward_mean.png (rollout/reward_mean), comparison.md (the table, the groups, skipped runs)

Runs that crashed (fewer RL steps logged than trainer.max_epochs), never validated or hold no
events are listed as skipped with the reason (--keep-incomplete keeps partial runs).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on a server or in CI
import matplotlib.pyplot as plt  # noqa: E402

from cipo.reporting.aggregate import (  # noqa: E402
    cumulative_at,
    final_values,
    markdown_table,
    mean_std,
    pass_ks,
    seed_curve,
    table_rows,
)
from cipo.reporting.runs import Run, load_runs, select  # noqa: E402

Groups = dict[str, list[Run]]


def cost_axis(tag: str):
    """x = cumulative ``tag`` (a per-step cost) at each validation point; {} when not logged."""

    def x_of(scalars, steps):
        return cumulative_at(scalars[tag], steps) if tag in scalars else {}

    return x_of


def plot_curves(ax, groups: Groups, tag: str, band: str, x_of=None) -> bool:
    drawn = False
    for index, (label, runs) in enumerate(groups.items()):
        if tag.startswith("correction/"):  # GRPO logs the idle controller's ratio: not a curve to compare
            runs = [run for run in runs if select(run.config, "algorithm.correction.enabled") is not False]
        curve = seed_curve(runs, tag, x_of, band)
        if curve is None or not curve.x:
            continue
        color = f"C{index % 10}"
        n = max(curve.count)
        ax.plot(curve.x, curve.mean, marker="o", markersize=3, color=color, label=f"{label} (n={n})")
        ax.fill_between(curve.x, curve.low, curve.high, color=color, alpha=0.2, linewidth=0)
        drawn = True
    ax.set_title(tag)
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(fontsize=7)
    return drawn


def save_figure(fig, path: Path, written: list[Path]) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    written.append(path)


def plot_all(groups: Groups, out: Path, band: str) -> list[Path]:
    """Write every plot whose tags exist; returns the files written."""
    written: list[Path] = []
    axes_specs = [
        ("val_accuracy_vs_step.png", None, "RL steps completed"),
        ("val_accuracy_vs_tokens.png", cost_axis("rollout/generated_tokens"), "generated tokens (cumulative)"),
        ("val_accuracy_vs_time.png", cost_axis("time/step_s"), "wall time of the RL steps (s, cumulative)"),
    ]
    for name, x_of, xlabel in axes_specs:
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        if plot_curves(ax, groups, "val/accuracy", band, x_of):
            ax.set_xlabel(xlabel)
            save_figure(fig, out / name, written)
        else:
            plt.close(fig)

    ks = pass_ks(groups)
    if ks:
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for index, (label, runs) in enumerate(groups.items()):
            stats = [mean_std(final_values(runs, f"val/pass@{k}")) for k in ks]
            ax.errorbar(ks, [m for m, _ in stats], yerr=[s for _, s in stats], marker="o", capsize=3,
                        color=f"C{index % 10}", label=f"{label} (n={len(runs)})")  # fmt: skip
        ax.set_xscale("log", base=2)
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.set(title="final val/pass@k (mean ± std over seeds)", xlabel="k", ylabel="pass@k")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        save_figure(fig, out / "pass_at_k.png", written)

    tags = ["val/fix_rate", "val/retention", "val/break_rate", "correction/replay_ratio"]
    fig, axes = plt.subplots(1, len(tags), figsize=(4.2 * len(tags), 3.8))
    drawn = [plot_curves(ax, groups, tag, band) for ax, tag in zip(axes, tags)]
    for ax, tag in zip(axes, tags):
        ax.set_xlabel("RL steps completed" if tag.startswith("val/") else "RL step")
    if any(drawn):
        save_figure(fig, out / "correction_rates.png", written)
    else:
        plt.close(fig)

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    if plot_curves(ax, groups, "rollout/reward_mean", band):
        ax.set_xlabel("RL step")
        save_figure(fig, out / "reward_mean.png", written)
    else:
        plt.close(fig)
    return written


def report(groups: Groups, skipped: list[tuple[Path, str]], plots: list[Path]) -> str:
    lines = [
        "# Run comparison",
        "",
        "Final values (each run's last logged point): mean ± sample std over the runs of a group.",
        "",
    ]
    lines += [markdown_table(table_rows(groups)), "", "## Groups", ""]
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
    out.mkdir(parents=True, exist_ok=True)
    plots = plot_all(groups, out, args.band)
    text = report(groups, skipped, plots)
    (out / "comparison.md").write_text(text)
    print(text)
    print(f"wrote {len(plots)} plots and comparison.md to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
