"""Tables and plots of a cipo-vs-TRL learning comparison from its CSVs (written by ``parity_vs_trl.py``).

    python scripts/parity_report.py docs/parity/before                       # table.md, accuracy.png, curves.png
    python scripts/parity_report.py docs/parity/after --compare docs/parity/before   # one table, both studies

``runs.csv``: side (cipo | trl | initial), seed, step, accuracy, eval_se, ...; ``curves.csv``: side, seed,
step, and the per-step metrics of ``parity_vs_trl.CURVE_FIELDS``. Statistics: ``parity_stats.py``.
"""

from __future__ import annotations

import argparse
import csv
import statistics
from pathlib import Path

from cipo.reporting.paired import paired_difference
from parity_stats import curve_band, mean_interval, spread_test, welch_difference

SIDES = ("cipo", "trl")
NAMES = {"cipo": "cipo algorithm=grpo", "trl": "TRL GRPOTrainer"}
CURVES = {
    "reward": "rollout reward (accuracy)",
    "completion_len": "completion length (tokens)",
    "frac_truncated": "share cut at max_new_tokens",
    "entropy": "entropy (nats/token)",
    "grad_norm": "gradient norm (before clipping)",
    "update_norm": "update norm (L2 of the parameter change)",
}


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def accuracies(runs: list[dict[str, str]], side: str, step: int) -> dict[int, float]:
    """{seed: held-out accuracy} of ``side`` at ``step``."""
    return {int(r["seed"]): float(r["accuracy"]) for r in runs if r["side"] == side and int(r["step"]) == step}


def accuracy_table(runs: list[dict[str, str]], label: str = "") -> list[str]:
    """Markdown rows: one per snapshot step, both sides with 95% intervals, their difference and tests."""
    initial = list(accuracies(runs, "initial", 0).values())
    steps = sorted({int(r["step"]) for r in runs if r["side"] in SIDES})
    lines = []
    for step in steps:
        a, b = accuracies(runs, "cipo", step), accuracies(runs, "trl", step)
        cells = [f"{label}{step}", mean_interval(initial).text() if len(initial) > 1 else "-"]
        for values in (a, b):
            if not values:  # a step only one side was evaluated at (runs of different lengths)
                cells.append("-")
                continue
            interval = mean_interval(list(values.values()))
            cells.append(
                f"{interval.text()} sd {interval.sd:.3f}, n {interval.n}"
                if interval.n > 1
                else f"{interval.estimate:.3f}"
            )
        if min(len(a), len(b)) < 2:  # one seed a side: no interval, no test
            cells += ["-", "-", "-"]
        else:
            welch = welch_difference(list(a.values()), list(b.values()))
            paired = paired_difference(b, a)  # a - b: cipo - TRL, over the seeds both sides have
            cells += [
                f"{welch.text()} p {welch.p_value:.2g}",
                f"{paired.mean:.3f} [{paired.low:.3f}, {paired.high:.3f}] p {paired.p_value:.2g}",
            ]
            cells.append(f"{spread_test(list(a.values()), list(b.values())):.2f}")
        ses = [float(r["eval_se"]) for r in runs if r["side"] in SIDES and int(r["step"]) == step]
        cells.append(f"{statistics.fmean(ses):.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


TABLE_HEAD = [
    "| RL steps | initial policy | cipo mean [95% CI] | TRL mean [95% CI] | cipo - TRL, Welch [95% CI] "
    "| cipo - TRL, paired by seed [95% CI] | equal spread (Brown-Forsythe p) | one evaluation's sampling SE |",
    "|---|---|---|---|---|---|---|---|",
]


def seed_table(runs: list[dict[str, str]]) -> list[str]:
    steps = sorted({int(r["step"]) for r in runs if r["side"] in SIDES})
    seeds = sorted({int(r["seed"]) for r in runs if r["side"] in SIDES})
    head = ["seed", "initial", *(f"{side} @ {step}" for step in steps for side in SIDES)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for seed in seeds:
        values = [accuracies(runs, "initial", 0).get(seed)]
        values += [accuracies(runs, side, step).get(seed) for step in steps for side in SIDES]
        cells = [str(seed), *("-" if value is None else f"{value:.3f}" for value in values)]  # -: not run
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def curves_by_seed(curves: list[dict[str, str]], side: str, field: str) -> dict[int, list[float]]:
    out: dict[int, list[float]] = {}
    for row in sorted((r for r in curves if r["side"] == side), key=lambda r: (int(r["seed"]), int(r["step"]))):
        out.setdefault(int(row["seed"]), []).append(float(row[field]))
    return out


def curve_table(curves: list[dict[str, str]], snapshots: list[int]) -> list[str]:
    """Each per-step metric averaged over a window of steps (1 to the first snapshot, then between snapshots):
    mean over the seeds that ran through the window [95% CI] per side, and the Welch difference."""
    lines = [
        "| per-step metric, mean over the steps | cipo [95% CI] | TRL [95% CI] | cipo - TRL, Welch [95% CI] |",
        "|---|---|---|---|",
    ]
    windows = list(zip([0, *snapshots[:-1]], snapshots, strict=True))
    for field, title in CURVES.items():
        by_seed = {side: curves_by_seed(curves, side, field) for side in SIDES}
        for first, last in windows:
            per_run = {
                side: [statistics.fmean(v[first:last]) for v in by_seed[side].values() if len(v) >= last]
                for side in SIDES
            }
            if any(len(values) < 2 for values in per_run.values()):
                continue
            welch = welch_difference(per_run["cipo"], per_run["trl"])
            cells = [
                f"{title}, steps {first + 1}-{last}",
                *(f"{mean_interval(per_run[side]).text(4)} n {len(per_run[side])}" for side in SIDES),
                f"{welch.text(4)} p {welch.p_value:.2g}",
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def lockstep_table(curves: list[dict[str, str]]) -> list[str]:
    """For runs where both sides drew from the same RNG stream (``--trl-sampling cipo``): per seed, how many
    steps the two sides sampled the same batches (same reward and mean length), and how far their gradient
    and update norms were apart on those steps (largest relative difference)."""
    lines = ["| seed | steps with identical batches | largest relative gap, gradient norm | ... update norm |",
             "|---|---|---|---|"]  # fmt: skip
    fields = ("reward", "completion_len", "grad_norm", "update_norm")
    sides = {side: {f: curves_by_seed(curves, side, f) for f in fields} for side in SIDES}
    for seed in sorted(set(sides["cipo"]["reward"]) & set(sides["trl"]["reward"])):
        a, b = sides["cipo"], sides["trl"]
        steps = min(len(a["reward"][seed]), len(b["reward"][seed]))  # the common prefix of runs of different lengths
        same = next(
            (i for i in range(steps) if any(a[f][seed][i] != b[f][seed][i] for f in ("reward", "completion_len"))),
            steps,
        )
        gaps = [
            max((abs(x - y) / max(abs(x), abs(y)) for x, y in zip(a[f][seed][:same], b[f][seed][:same]) if x or y),
                default=0.0)
            for f in ("grad_norm", "update_norm")
        ]  # fmt: skip
        lines.append(f"| {seed} | {same} of {steps} | {gaps[0]:.1e} | {gaps[1]:.1e} |")
    return lines


def plot(folder: Path, runs: list[dict[str, str]], curves: list[dict[str, str]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"cipo": "tab:blue", "trl": "tab:orange"}
    figure, axes = plt.subplots(2, 3, figsize=(15, 8), sharex=True)
    for ax, (field, title) in zip(axes.flat, CURVES.items(), strict=True):
        for side in SIDES:
            by_seed = curves_by_seed(curves, side, field)
            if not by_seed:
                continue
            mean, low, high = curve_band(by_seed)
            steps = range(1, len(mean) + 1)
            reach = sorted({len(v) for v in by_seed.values()})
            seeds = f"{len(by_seed)} seeds" + (f", {sum(len(v) == reach[-1] for v in by_seed.values())} to the end"
                                               if len(reach) > 1 else "")  # fmt: skip
            ax.plot(steps, mean, color=colors[side], label=f"{NAMES[side]} (mean of {seeds})")
            ax.fill_between(steps, low, high, color=colors[side], alpha=0.25, linewidth=0)
        ax.set_title(title)
        ax.set_xlabel("RL step")
    axes.flat[0].legend(fontsize=8)
    figure.suptitle("per-step curves, mean over seeds with its 95% interval")
    figure.tight_layout()
    figure.savefig(folder / "curves.png", dpi=90)
    plt.close(figure)

    figure, ax = plt.subplots(figsize=(7, 5))
    steps = sorted({int(r["step"]) for r in runs if r["side"] in SIDES})
    initial = list(accuracies(runs, "initial", 0).values())
    if len(initial) > 1:
        band = mean_interval(initial)
        ax.axhspan(band.low, band.high, color="grey", alpha=0.3, label="initial policy (95% CI)")
    for offset, side in zip((-0.8, 0.8), SIDES, strict=True):
        for step in steps:
            values = list(accuracies(runs, side, step).values())
            if not values:  # only the other side was evaluated at this step
                continue
            interval = mean_interval(values)
            x = step + offset * max(steps) / 40
            ax.scatter([x] * len(values), values, color=colors[side], alpha=0.5, s=14)
            ax.errorbar(
                [x + offset * max(steps) / 60],
                [interval.estimate],
                yerr=[[interval.estimate - interval.low], [interval.high - interval.estimate]],
                color=colors[side],
                capsize=4,
                fmt="o",
                label=NAMES[side] if step == steps[0] else None,
            )
    ax.set_xlabel("RL steps")
    ax.set_ylabel("held-out accuracy")
    ax.set_xticks(steps)
    ax.legend(fontsize=8)
    ax.set_title("held-out accuracy per seed (dots), mean and 95% CI over seeds")
    figure.tight_layout()
    figure.savefig(folder / "accuracy.png", dpi=90)
    plt.close(figure)


def report(folder: Path, compare: Path | None = None, lockstep: bool = False) -> str:
    """Write ``table.md`` and the plots into ``folder``; return the table text (also printed).

    ``lockstep``: the study ran TRL on cipo's sampling seeds; add ``lockstep_table``."""
    runs, curves = read_rows(folder / "runs.csv"), read_rows(folder / "curves.csv")
    lines = list(TABLE_HEAD)
    if compare is not None:
        lines += accuracy_table(read_rows(compare / "runs.csv"), label=f"{compare.name}: ")
        lines += accuracy_table(runs, label=f"{folder.name}: ")
    else:
        lines += accuracy_table(runs)
    snapshots = sorted({int(r["step"]) for r in runs if r["side"] in SIDES})
    lines += ["", *seed_table(runs), "", *curve_table(curves, snapshots)]
    if lockstep:
        lines += ["", *lockstep_table(curves)]
    text = "\n".join(lines) + "\n"
    (folder / "table.md").write_text(text)
    plot(folder, runs, curves)
    print(text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="a folder with runs.csv and curves.csv")
    parser.add_argument("--compare", type=Path, help="another study's folder, shown first in the table")
    parser.add_argument(
        "--lockstep", action="store_true", help="TRL ran on cipo's sampling seeds (--trl-sampling cipo)"
    )
    args = parser.parse_args()
    report(args.folder, args.compare, args.lockstep)


if __name__ == "__main__":
    main()
