"""The last lines of a ``cipo-train`` run: where it is, how it ended, what to run next.

    cipo-train: finished RL step 100 of 100 in 04:31
      run folder   logs/train/runs/2026-11-30_10-00-00
      held-out     val_acc 0.566 after RL step 100 (val/accuracy; all metrics: docs/metrics.md)
      view         .venv/bin/tensorboard --logdir logs/train/runs/2026-11-30_10-00-00
      evaluate     .venv/bin/cipo-eval run_dir=logs/train/runs/2026-11-30_10-00-00

A run without an exported policy (``export_policy=false``, or stopped early) is evaluated from
its last checkpoint (``ckpt=last``); a stopped run also gets its resume command. Commands are
written the way this command was called: by name when it is on ``PATH``, else by the path of
its folder (``.venv/bin/``); paths relative to the working folder when they are inside it.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cipo.callbacks.progress import format_duration


@dataclass(frozen=True)
class RunEnd:
    output_dir: Path
    steps_done: int
    max_steps: int
    elapsed_s: float
    exported: bool
    stopped: bool  # at the user's request, before max_steps
    validation_every: int  # 0: never

    @property
    def validated_at(self) -> int | None:
        """The RL step of the newest held-out validation (the last step is always validated)."""
        if not self.validation_every:
            return None
        if self.steps_done >= self.max_steps:
            return self.steps_done
        return self.steps_done // self.validation_every * self.validation_every


def shown_path(path: str | Path) -> str:
    """``path`` relative to the working folder when inside it, else absolute."""
    absolute = Path(path).absolute()
    try:
        return str(absolute.relative_to(Path.cwd()))
    except ValueError:
        return str(absolute)


def sibling_command(name: str) -> str:
    """How to call console script ``name`` (installed next to the running command)."""
    folder = Path(sys.argv[0]).absolute().parent
    candidate = folder / name
    on_path = shutil.which(name)
    if on_path and Path(on_path).absolute() == candidate:
        return name
    return shown_path(candidate) if candidate.is_file() else name


def run_end_text(end: RunEnd, metrics: Mapping[str, float]) -> str:
    folder = shown_path(end.output_dir)
    where = f"RL step {end.steps_done} of {end.max_steps}"
    head = f"stopped at your request after {where}" if end.stopped else f"finished {where}"
    lines = [f"cipo-train: {head} in {format_duration(end.elapsed_s)}", f"  run folder   {folder}"]
    if "val/accuracy" in metrics and end.validated_at is not None:
        when = f"after RL step {end.validated_at}" if end.validated_at else "of the initial policy"
        lines.append(
            f"  held-out     val_acc {metrics['val/accuracy']:.3f} {when} (val/accuracy; all metrics: docs/metrics.md)"
        )
    else:
        lines.append("  held-out     not measured (validation.every=0)")
    lines.append(f"  view         {sibling_command('tensorboard')} --logdir {folder}")
    evaluate = f"{sibling_command('cipo-eval')} run_dir={folder}"
    lines.append(f"  evaluate     {evaluate}" if end.exported else f"  evaluate     {evaluate} ckpt=last")
    if end.stopped:
        lines.append(f"  resume       {sibling_command('cipo-train')} resume={folder}")
    return "\n".join(lines)
