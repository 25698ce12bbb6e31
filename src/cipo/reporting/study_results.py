"""A study's results folder: each run's curves CSV and its metadata, written and read back.

``export_run`` turns one run folder (TensorBoard events + ``.hydra/config.yaml``) into
``<run id>.csv`` (``cipo.reporting.curves_csv``) and ``<run id>.json``: what ran (task,
configuration, seed, overrides, the algorithm section and batch size, sequences per step), how
far it got (``completed_steps``, ``complete``) and what it cost (wall and CPU seconds over every
sitting that ran it, the commit, the machine's CPUs and load). ``load_study`` reads a folder
of such pairs back as ``Run`` objects, so the report needs nothing but the committed files.

What a run cost is kept in its run folder while it runs (``study_cost.json``, the cost ledger:
every earlier invocation's seconds plus the current one's so far), because a sitting can end with
the runner killed before it exports: the ledger loses at most the runner's last update interval,
and the next invocation starts from it.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from omegaconf import OmegaConf

from cipo.reporting.curves_csv import read_curves, steps_completed, write_curves
from cipo.reporting.runs import Run, read_scalars, select
from cipo.reporting.study import CSV_SUFFIX, META_SUFFIX, PlannedRun, sequences_per_step

COSTS = ("wall_s", "cpu_s")  # seconds a run took, summed over the sittings that ran it
LEDGER_NAME = "study_cost.json"


def read_ledger(run_dir: Path) -> dict[str, float] | None:
    """The run's cost so far from its ledger (None when it has none or it is unreadable)."""
    try:
        ledger = json.loads((run_dir / LEDGER_NAME).read_text())
    except (OSError, ValueError):
        return None
    return {key: float(ledger.get(key, 0.0)) for key in COSTS} if isinstance(ledger, dict) else None


def write_ledger(run_dir: Path, cost: dict[str, float]) -> None:
    """Replace the ledger in one rename, so a kill mid-write leaves the previous one."""
    partial = run_dir / (LEDGER_NAME + ".partial")
    partial.write_text(json.dumps({key: round(float(cost.get(key, 0.0)), 1) for key in COSTS}) + "\n")
    os.replace(partial, run_dir / LEDGER_NAME)


def cost_before(planned: PlannedRun) -> dict[str, float]:
    """What the run had cost before a new invocation: its ledger, else what an earlier export recorded
    (runs from before the ledger existed), else nothing."""
    meta = read_meta(planned.meta_path) or {}
    return read_ledger(planned.run_dir) or {key: float(meta.get(key, 0.0)) for key in COSTS}


def read_meta(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def is_complete(planned: PlannedRun, steps: int) -> bool:
    """The run's results (CSV + metadata) exist and cover ``steps`` RL steps."""
    meta = read_meta(planned.meta_path)
    return bool(meta and meta.get("complete") and meta.get("steps") == steps and planned.csv_path.is_file())


def _config_summary(run_dir: Path) -> dict:
    """The parts of the run's saved config a report needs (no machine paths)."""
    path = run_dir / ".hydra" / "config.yaml"
    if not path.is_file():
        return {}
    config = OmegaConf.load(path)
    algorithm = select(config, "algorithm")
    validation = select(config, "validation")
    return {
        "seed": select(config, "seed"),
        "algorithm": OmegaConf.to_container(algorithm, resolve=True) if algorithm is not None else {},
        "data": {"batch_size": select(config, "data.batch_size")},
        "trainer": {"max_epochs": select(config, "trainer.max_epochs")},
        "validation": OmegaConf.to_container(validation, resolve=True) if validation is not None else {},
    }


def export_run(
    planned: PlannedRun, steps: int, cost: dict[str, float] | None = None, provenance: dict | None = None
) -> dict:
    """Write ``planned``'s CSV and metadata from its run folder; returns the metadata.

    ``cost`` is the run's whole cost so far (``COSTS``: wall and CPU seconds over every invocation,
    ``cost_before`` plus this one's); None keeps what the run's ledger, or else an earlier export,
    says. ``provenance`` (commit, ...) is recorded as given.
    """
    scalars = read_scalars(planned.run_dir) if planned.run_dir.is_dir() else {}
    if not scalars:
        raise FileNotFoundError(f"{planned.run_dir}: no TensorBoard scalars to export (the run never logged a step)")
    write_curves(scalars, planned.csv_path)
    completed = steps_completed(scalars)
    config = _config_summary(planned.run_dir)
    validates = bool((config.get("validation") or {}).get("every"))
    finished_validation = not validates or steps in scalars.get("val/accuracy", {})
    previous = read_meta(planned.meta_path) or {}
    spent = cost if cost is not None else cost_before(planned)
    meta = {
        "task": planned.task,
        "config": planned.config,
        "seed": planned.seed,
        "steps": steps,
        "completed_steps": completed,
        "complete": completed >= steps and finished_validation,
        "overrides": list(planned.overrides),
        "config_summary": config,
        "sequences_per_step": sequences_per_step(config["data"]["batch_size"], config["algorithm"])
        if config.get("algorithm") and config["data"]["batch_size"]
        else None,
        **{key: round(float(spent.get(key, 0.0)), 1) for key in COSTS},
        **({"cost_note": previous["cost_note"]} if "cost_note" in previous else {}),  # how a cost was repaired
        "exported": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        **(provenance or {}),
    }
    planned.meta_path.write_text(json.dumps(meta, indent=1) + "\n")
    return meta


class StudyRuns:
    """A study folder read back: the runs, and the files left out with the reason."""

    def __init__(self) -> None:
        self.runs: list[Run] = []
        self.skipped: list[tuple[Path, str]] = []
        self.metas: list[dict] = []  # every run's metadata, complete or not (what the study cost)

    def groups(self) -> dict[str, list[Run]]:
        """Group label ("task / config") -> its runs, in seed order."""
        grouped: dict[str, list[Run]] = {}
        for run in sorted(self.runs, key=lambda r: (r.group, str(r.seed))):
            grouped.setdefault(run.group, []).append(run)
        return grouped


def load_study(folder: str | Path, keep_incomplete: bool = False) -> StudyRuns:
    """Every ``<run id>.json`` + ``.csv`` pair in ``folder`` as a Run grouped "task / config"."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such study folder")
    found = StudyRuns()
    for meta_path in sorted(folder.glob(f"*{META_SUFFIX}")):
        meta = json.loads(meta_path.read_text())
        csv_path = meta_path.with_suffix(CSV_SUFFIX)
        if not isinstance(meta, dict) or not {"task", "config", "seed"} <= set(meta):
            found.skipped.append((meta_path, "not a run's metadata (no task/config/seed)"))
            continue
        found.metas.append(meta)
        if not csv_path.is_file():
            found.skipped.append((meta_path, f"no {csv_path.name} next to it"))
            continue
        run = Run(
            path=csv_path,
            config=OmegaConf.create(meta.get("config_summary") or {}),
            overrides=list(meta.get("overrides") or []),
            scalars=read_curves(csv_path),
            group=f"{meta['task']} / {meta['config']}",
            seed=meta["seed"],
        )
        if not meta.get("complete"):
            message = f"incomplete: {meta.get('completed_steps')} of {meta.get('steps')} RL steps"
            if not keep_incomplete:
                found.skipped.append((csv_path, message))
                continue
            run.notes.append(message)
        found.runs.append(run)
    return found
