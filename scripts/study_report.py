"""A study's tables and plots, from its committed CSVs alone (seconds, no run folders needed).

    python scripts/study_report.py docs/results/builtin
    python scripts/study_report.py docs/results/builtin --test sign-flip --interval bootstrap

Reads ``<folder>/study.yaml`` (the spec: which configurations to compare) and every
``<run id>.csv`` + ``.json`` there (``scripts/run_study.py`` writes them), and writes
``<folder>/report.md`` with, per task: final values (mean ± seed std), each configuration's seed
spread next to its evaluation's binomial standard error, what the runs cost, and the spec's
comparisons as differences paired by seed with intervals and p-values (those that exclude zero
marked); plus the plots ``<task>_*.png``. First come the paper's claims (``--method`` against each of
``--baselines``), pooled over the tasks (``cipo.reporting.claims``), then the spec's other comparisons
pooled the same way (``cipo.reporting.pooled``). ``--results-doc docs/results.md``
also rewrites that file's generated block for this study (``cipo.reporting.generated_block``): the
header, the claims and each task's final values and main plots, so the document's tables always
come from the committed CSVs. Incomplete runs are listed and left out
(--keep-incomplete keeps them). ``docs/results.md`` quotes these tables.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from cipo.reporting.aggregate import markdown_table, table_rows
from cipo.reporting.claims import claim_rows, claims_markdown
from cipo.reporting.comparison import compute_markdown, noise_markdown, paired_markdown, paired_rows
from cipo.reporting.generated_block import replace_generated_block
from cipo.reporting.plots import plot_all
from cipo.reporting.pooled import comparisons_markdown
from cipo.reporting.runs import Run
from cipo.reporting.study import StudySpec, load_spec
from cipo.reporting.study_results import load_study

SPEC_NAME = "study.yaml"
COSTS = ("generated_tokens", "step_s")  # per-step sums of TensorBoard logs; the compute table has the totals


def by_task(runs: Sequence[Run], spec: StudySpec) -> dict[str, dict[str, list[Run]]]:
    """task -> configuration -> runs, in the spec's order (runs of names no longer in it last)."""
    order = {name: index for index, name in enumerate([*spec.tasks, *spec.configs])}
    tasks: dict[str, dict[str, list[Run]]] = {}
    for run in runs:
        task, config = run.group.split(" / ", 1)
        tasks.setdefault(task, {}).setdefault(config, []).append(run)
    rank = lambda name: (order.get(name, len(order)), name)  # noqa: E731
    return {
        task: {config: sorted(configs[config], key=lambda r: str(r.seed)) for config in sorted(configs, key=rank)}
        for task, configs in sorted(tasks.items(), key=lambda item: rank(item[0]))
    }


def cost_lines(metas: list[dict]) -> list[str]:
    cpu_h = sum(m.get("cpu_s", 0.0) for m in metas) / 3600
    wall_h = sum(m.get("wall_s", 0.0) for m in metas) / 3600
    commits = sorted({m.get("commit", "unknown") for m in metas})
    loads = [m["load_average"][0] for m in metas if m.get("load_average")]
    load = f"; 1-min load average at export {min(loads):.1f}-{max(loads):.1f}" if loads else ""
    estimated = [f"{m['task']}__{m['config']}__seed{m['seed']}" for m in metas if m.get("cost_note")]
    partly = f"; partly estimated for {', '.join(estimated)}: see their cost_note" if estimated else ""
    return [
        f"- **Compute used:** {cpu_h:.1f} CPU hours, {wall_h:.1f} run-hours of wall time over {len(metas)} runs "
        f"(one thread each{load}{partly}).",
        f"- **Code:** commit(s) {', '.join(commits)}.",
    ]


def claims_section(tasks: dict[str, dict[str, list[Run]]], method: str, baselines: Sequence[str], args) -> list[str]:
    lines = ["## The paper's claims", ""]
    lines += [
        f"Each claim as `{method}` minus a baseline, paired by seed within each task and pooled over the tasks "
        "(`cipo.reporting.claims`); the per-task tables below have every other quantity."
    ]
    for baseline in baselines:
        rows = claim_rows(tasks, method, baseline, args.interval, args.test, args.level)
        lines += ["", f"### {method} vs {baseline}", "", claims_markdown(rows, method, baseline, args.level)]
    return lines


def comparisons_section(
    tasks: dict[str, dict[str, list[Run]]], pairs: Sequence[tuple[str, str]], method: str, baselines, args
) -> list[str]:
    """The spec's other comparisons (ablations, the compute-matched baseline) pooled over the tasks; the
    claims already hold ``method`` against each baseline."""
    claimed = {frozenset((method, baseline)) for baseline in baselines}
    others = [(a, b) for a, b in pairs if frozenset((a, b)) not in claimed]
    if not others:
        return []
    lines = ["## What each other comparison changes", ""]
    lines += [
        "The study's remaining comparisons (`study.yaml`), `b - a` paired by seed within each task and pooled "
        "over the tasks: what an ablation or the extra sequences alone change.",
        "",
        comparisons_markdown(tasks, others, args.interval, args.test, args.level),
    ]
    return lines


def results_doc_block(
    header: list[str], pooled: list[str], tasks: dict[str, dict[str, list[Run]]], doc: Path, out: Path, folder: Path
) -> str:
    """What ``--results-doc`` writes between its markers: the study's header, the claims and the other
    comparisons pooled over the tasks, each task's final values and its two main plots (linked relative
    to the document), and a link to the full report."""
    report = Path(os.path.relpath(out / "report.md", doc.parent)).as_posix()
    spec = Path(os.path.relpath(folder / SPEC_NAME, doc.parent)).as_posix()
    lines = [
        line.replace(f"]({SPEC_NAME})", f"]({spec})") for line in header if not line.startswith("- **Regenerate:**")
    ]
    lines += [
        f"- **Rewrite this block:** `python scripts/study_report.py {folder} --results-doc {doc}` "
        "(from the committed CSVs only, seconds).",
        f"- **Every table and plot:** [{report}]({report}).",
        "",
    ]
    lines += ["#" + line if line.startswith("#") else line for line in pooled]  # one level down in the document
    for task, configs in tasks.items():
        rows = [{k: v for k, v in row.items() if k not in COSTS} for row in table_rows(configs)]
        lines += ["", f"### Task `{task}`: final values (mean ± seed std)", "", markdown_table(rows), ""]
        for plot in ("val_accuracy_vs_step", "val_accuracy_vs_tokens"):
            path = Path(os.path.relpath(out / f"{task}_{plot}.png", doc.parent)).as_posix()
            lines.append(f"![{task} {plot.replace('_', ' ')}]({path})")
    return "\n".join(lines)


def task_section(task: str, configs: dict[str, list[Run]], pairs, out: Path, args) -> list[str]:
    lines = [f"## Task `{task}`", "", "### Final values", ""]
    rows = [{k: v for k, v in row.items() if k not in COSTS} for row in table_rows(configs)]  # see Compute
    lines += ["Each run's last validation; mean ± sample std over seeds.", "", markdown_table(rows)]
    lines += ["", "### Seed spread and evaluation error", "", noise_markdown(configs)]
    lines += ["", "### Compute up to the last validation", "", compute_markdown(configs)]
    lines += ["", "### Paired differences"]
    for a, b in pairs:
        if a not in configs or b not in configs:
            missing = [name for name in (a, b) if name not in configs]
            lines += ["", f"#### {b} vs {a}", "", f"(no complete runs of {', '.join(missing)} yet)"]
            continue
        rows = paired_rows(configs[a], configs[b], args.interval, args.test, args.level)
        lines += ["", f"#### {b} vs {a}", "", paired_markdown(rows, a, b, args.level)]
    plots = plot_all(configs, out, args.band, prefix=f"{task}_")
    lines += ["", "### Plots", "", *(f"![{p.stem}]({p.name})" for p in plots)]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", help="the study's results folder (docs/results/<study>)")
    parser.add_argument("--out", help="where report.md and the plots go (default: the folder)")
    parser.add_argument("--interval", choices=("t", "bootstrap"), default="t", help="confidence interval over seeds")
    parser.add_argument("--test", choices=("t", "sign-flip"), default="t", help="paired t-test or sign-flip test")
    parser.add_argument("--level", type=float, default=0.95, help="confidence level of the intervals")
    parser.add_argument("--band", choices=("minmax", "std"), default="minmax", help="spread over seeds in plots")
    parser.add_argument("--keep-incomplete", action="store_true", help="keep runs that did not finish")
    parser.add_argument(
        "--results-doc",
        type=Path,
        help="also rewrite this Markdown file's block for the study (between its generated-block markers)",
    )
    parser.add_argument("--method", default="cipo", help="the configuration whose claims are tested")
    parser.add_argument(
        "--baselines", default="grpo,grpo_matched", help="comma-separated configurations the claims are tested against"
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    folder = Path(args.folder)
    out = Path(args.out) if args.out else folder
    spec = load_spec(folder / SPEC_NAME)
    study = load_study(folder, args.keep_incomplete)
    if not study.runs:
        print(f"{folder}: no complete runs to report", file=sys.stderr)
        for path, reason in study.skipped:
            print(f"  {path.name}: {reason}", file=sys.stderr)
        return 1
    out.mkdir(parents=True, exist_ok=True)
    planned = len(spec.tasks) * len(spec.configs) * len(spec.seeds)
    validation = ", ".join(f"{key}={value}" for key, value in spec.validation.items())
    lines = [
        f"# Study `{spec.name}`",
        "",
        f"- **Spec:** [{SPEC_NAME}]({SPEC_NAME}): {len(spec.tasks)} task(s) x {len(spec.configs)} configurations x "
        f"seeds {list(spec.seeds)}, {spec.steps} RL steps, validation {validation}.",
        f"- **Runs:** {len(study.runs)} complete of {planned} planned.",
        *cost_lines(study.metas),
        f"- **Regenerate:** `python scripts/study_report.py {folder}` (from the CSVs here only).",
    ]
    tasks = by_task(study.runs, spec)
    baselines = [name for name in args.baselines.split(",") if name in spec.configs]
    header = lines[2:]
    claims = claims_section(tasks, args.method, baselines, args) if args.method in spec.configs and baselines else []
    pooled = [*claims, "", *comparisons_section(tasks, spec.pairs(), args.method, baselines, args)]
    lines += ["", *pooled]
    for task, configs in tasks.items():
        lines += ["", *task_section(task, configs, spec.pairs(), out, args)]
    if study.skipped:
        lines += ["", "## Left out", "", *(f"- {path.name}: {reason}" for path, reason in study.skipped)]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    if args.results_doc:  # after the plots exist; the document's other text is left as it is
        block = results_doc_block(header, pooled, tasks, args.results_doc, out, folder)
        text = replace_generated_block(args.results_doc.read_text(), spec.name, block)
        args.results_doc.write_text(text)
        print(f"rewrote the {spec.name} block of {args.results_doc}", file=sys.stderr)
    print("\n".join(lines))
    print(f"wrote {out / 'report.md'} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
