"""Training runs on disk -> scalars, grouped by configuration (seeds pooled).

A run is a folder with ``.hydra/config.yaml`` (``cipo-train`` writes one per run and per
multirun job) and TensorBoard event files under it. Runs are grouped by their command-line
overrides (``.hydra/overrides.yaml``) minus the ones that only change the seed or the machine
(``IGNORED_KEYS``), or by chosen config keys (``group_by=["algorithm.name"]``). Runs that cannot
be compared are returned with the reason they were skipped, never silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

# cipo.checkpointing.resume records each resume in <run>/.hydra/resumes/<time>_<pid>/ (config,
# overrides): the run's own .hydra/overrides.yaml stays the launch's (the group), while the newest
# resume's config.yaml holds what the run finally ran with (e.g. a raised trainer.max_epochs).
RESUMES = "resumes"
# Overrides that do not change what a run measures (pooled within a group).
IGNORED_KEYS = ("seed", "num_threads", "ckpt_path", "paths.", "hydra.", "trainer.devices", "trainer.accelerator")
Scalars = dict[str, dict[int, float]]


@dataclass
class Run:
    path: Path
    config: DictConfig
    overrides: list[str]
    scalars: Scalars
    group: str = ""
    seed: object = None
    notes: list[str] = field(default_factory=list)


def find_run_dirs(paths: list[str | Path]) -> list[Path]:
    """Every folder holding ``.hydra/config.yaml`` at or below ``paths``, sorted, no duplicates."""
    found: set[Path] = set()
    for path in map(Path, paths):
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such folder")
        if (path / ".hydra" / "config.yaml").is_file():
            found.add(path.resolve())
        found |= {hydra_dir.parent.parent.resolve() for hydra_dir in path.glob("**/.hydra/config.yaml")}
    return sorted(found)


def read_scalars(folder: Path) -> Scalars:
    """{tag: {step: value}} over every events file below ``folder`` (later files win, as after a resume)."""
    out: Scalars = {}
    for events in sorted(folder.glob("**/events.out.tfevents*"), key=lambda p: p.stat().st_mtime):
        accumulator = EventAccumulator(str(events), size_guidance={"scalars": 0})
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            out.setdefault(tag, {}).update({event.step: event.value for event in accumulator.Scalars(tag)})
    return out


def select(config: DictConfig, key: str) -> object:
    try:
        return OmegaConf.select(config, key)
    except OmegaConfBaseException:  # an interpolation that needs Hydra's runtime (paths.*)
        return OmegaConf.select(config, key, throw_on_resolution_failure=False)


def _relevant(override: str) -> bool:
    key = override.lstrip("+~").split("=", 1)[0]
    return not any(key == k or (k.endswith(".") and key.startswith(k)) for k in IGNORED_KEYS)


def load_run(path: Path, keep_incomplete: bool = False) -> tuple[Run | None, str | None]:
    """(run, None) or (None, why it was skipped)."""
    resumes = sorted((path / ".hydra" / RESUMES).glob("*/config.yaml"))
    config = OmegaConf.load(resumes[-1] if resumes else path / ".hydra" / "config.yaml")
    if "algorithm" not in config or "trainer" not in config:
        return None, "not a training run (no algorithm/trainer in .hydra/config.yaml)"
    overrides_file = path / ".hydra" / "overrides.yaml"
    overrides = [str(o) for o in OmegaConf.load(overrides_file)] if overrides_file.is_file() else []
    scalars = read_scalars(path)
    if not scalars:
        return None, "no TensorBoard scalars (crashed before the first step, or logger off)"
    run = Run(path, config, overrides, scalars, seed=select(config, "seed"))
    steps = max((max(series) for tag, series in scalars.items() if tag.startswith("rollout/")), default=-1) + 1
    expected = select(config, "trainer.max_epochs")
    if isinstance(expected, int) and steps < expected:
        message = f"incomplete: {steps} of trainer.max_epochs={expected} RL steps logged (crashed or still running)"
        if not keep_incomplete:
            return None, message
        run.notes.append(message)
    if "val/accuracy" not in scalars:
        return None, "no val/accuracy (validation.every=0?)"
    return run, None


def assign_groups(runs: list[Run], group_by: list[str] | None = None) -> None:
    """Label each run with its group: chosen config keys, or its overrides that differ between runs."""
    if group_by:
        for run in runs:
            run.group = " ".join(f"{key}={select(run.config, key)}" for key in group_by)
        return
    relevant = {id(run): [o for o in run.overrides if _relevant(o)] for run in runs}
    common = set.intersection(*(set(v) for v in relevant.values())) if runs else set()
    for run in runs:
        label = " ".join(o for o in relevant[id(run)] if o not in common)
        run.group = label or " ".join(sorted(common)) or "default"


def load_runs(
    paths: list[str | Path], group_by: list[str] | None = None, keep_incomplete: bool = False
) -> tuple[dict[str, list[Run]], list[tuple[Path, str]]]:
    """Groups (label -> runs, in label order) and the skipped folders with their reasons."""
    runs, skipped = [], []
    for path in find_run_dirs(paths):
        run, reason = load_run(path, keep_incomplete)
        if run is None:
            skipped.append((path, reason))
        else:
            runs.append(run)
    assign_groups(runs, group_by)
    groups: dict[str, list[Run]] = {}
    for run in sorted(runs, key=lambda r: (r.group, str(r.path))):
        groups.setdefault(run.group, []).append(run)
    return groups, skipped
