"""The last lines of a Hydra multirun (``-m``): where its jobs are and how to look at them.

A Hydra callback (``hydra.callbacks`` in ``conf/hydra/default.yaml``): Hydra calls
``on_multirun_end`` after every job of the sweep finished (not after a failed one, which has
printed its error). Each ``cipo-train`` job has printed its own summary before.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from cipo.cli.run_summary import shown_path, sibling_command

COMPARE_SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "compare_runs.py"


def sweep_end_text(sweep_dir: str | Path) -> str:
    sweep = Path(sweep_dir)
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and (p / ".hydra").is_dir())
    folder = shown_path(sweep)
    lines = [f"sweep done: {len(jobs)} job(s) in {folder}"]
    if any((job / "tensorboard").is_dir() for job in jobs):
        lines.append(f"  view       {sibling_command('tensorboard')} --logdir {folder}")
        if COMPARE_SCRIPT.is_file():
            lines.append(f"  compare    {sibling_command('python')} {shown_path(COMPARE_SCRIPT)} {folder}")
    if any((job / "summary.json").is_file() for job in jobs):
        lines.append(f"  results    {folder}/<job>/summary.json and problems.jsonl")
    return "\n".join(lines)


class SweepSummary(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        if sweep_dir.is_dir():
            print(sweep_end_text(sweep_dir), flush=True)
