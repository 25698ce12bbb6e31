"""The comparison plots of grouped runs (PNG files), for scripts/compare_runs.py and scripts/study_report.py.

Every curve is the mean over a group's seeds with a band (min-max, or +- one sample std):

    val_accuracy_vs_step.png              held-out accuracy against RL steps and against each
    val_accuracy_vs_tokens.png            compute axis (``endpoints.AXES``): generated tokens,
    val_accuracy_vs_processed_tokens.png  processed tokens, RL step seconds
    val_accuracy_vs_time.png
    pass_at_k.png                         final val/pass@k against k (mean +- std)
    correction_rates.png                  val/fix_rate, val/retention, val/break_rate, correction/replay_ratio
    reward_mean.png                       rollout/reward_mean
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on a server or in CI
import matplotlib.pyplot as plt  # noqa: E402

from cipo.reporting.aggregate import final_values, mean_std, pass_ks, seed_curve  # noqa: E402
from cipo.reporting.endpoints import AXES, cost_at  # noqa: E402
from cipo.reporting.runs import Run, select  # noqa: E402

Groups = dict[str, list[Run]]
ACCURACY_PLOTS = {  # file -> compute axis
    "val_accuracy_vs_step.png": "step",
    "val_accuracy_vs_tokens.png": "generated_tokens",
    "val_accuracy_vs_processed_tokens.png": "processed_tokens",
    "val_accuracy_vs_time.png": "step_s",
}


def cost_axis(axis: str):
    """x = the run's cumulative cost on ``axis`` at each validation point ({} when not logged)."""

    def x_of(scalars, steps):
        return cost_at(scalars, axis, steps)

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


def plot_all(groups: Groups, out: Path, band: str = "minmax", prefix: str = "") -> list[Path]:
    """Write every plot whose tags exist into ``out`` (file names start with ``prefix``)."""
    written: list[Path] = []
    for name, axis in ACCURACY_PLOTS.items():
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        if plot_curves(ax, groups, "val/accuracy", band, cost_axis(axis) if axis != "step" else None):
            ax.set_xlabel(AXES[axis].label)
            save_figure(fig, out / f"{prefix}{name}", written)
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
        save_figure(fig, out / f"{prefix}pass_at_k.png", written)

    tags = ["val/fix_rate", "val/retention", "val/break_rate", "correction/replay_ratio"]
    fig, axes = plt.subplots(1, len(tags), figsize=(4.2 * len(tags), 3.8))
    drawn = [plot_curves(ax, groups, tag, band) for ax, tag in zip(axes, tags)]
    for ax, tag in zip(axes, tags):
        ax.set_xlabel("RL steps completed" if tag.startswith("val/") else "RL step")
    if any(drawn):
        save_figure(fig, out / f"{prefix}correction_rates.png", written)
    else:
        plt.close(fig)

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    if plot_curves(ax, groups, "rollout/reward_mean", band):
        ax.set_xlabel("RL step")
        save_figure(fig, out / f"{prefix}reward_mean.png", written)
    else:
        plt.close(fig)
    return written
