"""A study: tasks x configurations x seeds at one length and one held-out evaluation.

The spec is a YAML file (``docs/results/<study>/study.yaml``; the folder also receives the
per-run CSVs and the report)::

    name: builtin                       # the folder's name; also the logs' folder
    steps: 200                          # RL steps of every run (trainer.max_epochs)
    seeds: [1, 2, 3, 4, 5]
    validation: {every: 25, samples: 16, max_problems: 512}   # any validation.* key
    baseline: grpo                      # the report compares every configuration with it ...
    comparisons: [[grpo, cipo]]         # ... or these (a, b) pairs only: b - a, paired by seed
    common: [num_threads=1]             # Hydra overrides for every run
    tasks:                              # name -> overrides (the data set and its held-out size)
      arithmetic: [data=arithmetic, data.heldout.num_records=512]
    configs:                            # name -> overrides (the setting and the algorithm)
      grpo: [experiment=builtin, algorithm=grpo]
      grpo_matched: [experiment=builtin_matched, algorithm=grpo]
      cipo: [experiment=builtin, algorithm=cipo]

A run's command line is ``common + task + config + (seed, steps, validation)``; the study's own
keys must not be repeated in the lists (an error names the list). Runs are planned seed-major
(every configuration of seed 1 first), so a study stopped half-way still has whole seeds to pair.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

SPEC_KEYS = {"name", "steps", "seeds", "validation", "baseline", "comparisons", "common", "tasks", "configs"}
STUDY_OWNED = ("seed", "trainer.max_epochs", "validation.", "hydra.run.dir", "ckpt_path", "resume")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
META_SUFFIX, CSV_SUFFIX = ".json", ".csv"  # <run id>.json (what ran) next to <run id>.csv (its curves)


@dataclass(frozen=True)
class StudySpec:
    name: str
    steps: int
    seeds: tuple[int, ...]
    validation: dict[str, object]
    tasks: dict[str, tuple[str, ...]]
    configs: dict[str, tuple[str, ...]]
    common: tuple[str, ...] = ()
    baseline: str | None = None
    comparisons: tuple[tuple[str, str], ...] = ()

    def pairs(self) -> list[tuple[str, str]]:
        """The (a, b) configuration pairs the report compares (b - a)."""
        if self.comparisons:
            return list(self.comparisons)
        baseline = self.baseline or next(iter(self.configs))
        return [(baseline, config) for config in self.configs if config != baseline]


@dataclass(frozen=True)
class PlannedRun:
    """One (task, configuration, seed) of a study and where its files go."""

    task: str
    config: str
    seed: int
    overrides: tuple[str, ...]
    run_dir: Path
    results_dir: Path

    @property
    def run_id(self) -> str:
        return f"{self.task}__{self.config}__seed{self.seed}"

    @property
    def csv_path(self) -> Path:
        return self.results_dir / f"{self.run_id}{CSV_SUFFIX}"

    @property
    def meta_path(self) -> Path:
        return self.results_dir / f"{self.run_id}{META_SUFFIX}"


def _fail(path: Path, message: str) -> None:
    raise ValueError(f"{path}: {message}")


def _study_owned(key: str) -> bool:
    return any(key == owned or (owned.endswith(".") and key.startswith(owned)) for owned in STUDY_OWNED)


def _overrides(path: Path, where: str, value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(o, str) and ("=" in o or o.startswith("~")) for o in value):
        _fail(path, f"{where} must be a list of Hydra overrides (key=value or ~key strings), got {value!r}")
    owned = [o for o in value if _study_owned(o.lstrip("+~").split("=")[0])]
    if owned:
        _fail(path, f"{where} sets {owned}: the study sets seed, steps, validation and the run folder itself")
    return tuple(value)


def _named(path: Path, key: str, value: object) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, dict) or not value:
        _fail(path, f"{key} must be a non-empty mapping of name -> overrides")
    for name in value:
        if not NAME.match(str(name)) or "__" in str(name):
            _fail(path, f"{key}.{name}: names are letters, digits, '_', '.', '-' (no '__': it separates run ids)")
    return {str(name): _overrides(path, f"{key}.{name}", overrides) for name, overrides in value.items()}


def load_spec(path: str | Path) -> StudySpec:
    """The study spec at ``path``; every mistake is an error naming the file and the key."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such study spec")
    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    if not isinstance(raw, dict):
        _fail(path, "a study spec is a mapping")
    unknown = sorted(set(raw) - SPEC_KEYS)
    if unknown:
        _fail(path, f"unknown keys {unknown}; known: {sorted(SPEC_KEYS)}")
    missing = sorted({"name", "steps", "seeds", "tasks", "configs"} - set(raw))
    if missing:
        _fail(path, f"missing keys {missing}")
    if not NAME.match(str(raw["name"])):
        _fail(path, f"name {raw['name']!r}: letters, digits, '_', '.', '-'")
    steps, seeds = raw["steps"], raw["seeds"]
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        _fail(path, f"steps must be an integer >= 1, got {steps!r}")
    if (
        not isinstance(seeds, list)
        or not seeds
        or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
    ):
        _fail(path, f"seeds must be a non-empty list of integers, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        _fail(path, f"seeds repeat: {seeds}")
    validation = raw.get("validation") or {}
    if not isinstance(validation, dict):
        _fail(path, f"validation must be a mapping of validation.* keys, got {validation!r}")
    configs = _named(path, "configs", raw["configs"])
    comparisons = tuple(tuple(pair) for pair in raw.get("comparisons") or ())
    baseline = raw.get("baseline")
    for name in [baseline, *(c for pair in comparisons for c in pair)]:
        if name is not None and name not in configs:
            _fail(path, f"baseline/comparisons name {name!r}, which is not under configs: {sorted(configs)}")
    if any(len(pair) != 2 for pair in comparisons):
        _fail(path, f"comparisons are [a, b] pairs, got {raw['comparisons']!r}")
    return StudySpec(
        name=str(raw["name"]),
        steps=steps,
        seeds=tuple(seeds),
        validation=dict(validation),
        tasks=_named(path, "tasks", raw["tasks"]),
        configs=configs,
        common=_overrides(path, "common", raw.get("common") or []),
        baseline=baseline,
        comparisons=comparisons,  # type: ignore[arg-type]
    )


def _value(value: object) -> str:
    """A Hydra override value: lists as [a,b], None as null."""
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_value(v) for v in value) + "]"
    return str(value).lower() if isinstance(value, bool) else str(value)


def run_overrides(spec: StudySpec, task: str, config: str, seed: int) -> tuple[str, ...]:
    """The run's Hydra overrides (without its folder): common + task + config + the study's own."""
    own = [f"seed={seed}", f"trainer.max_epochs={spec.steps}"]
    own += [f"validation.{key}={_value(value)}" for key, value in spec.validation.items()]
    return (*spec.common, *spec.tasks[task], *spec.configs[config], *own)


def plan_runs(spec: StudySpec, logs_dir: str | Path, results_dir: str | Path) -> list[PlannedRun]:
    """Every run of the study, seed-major; run folders under ``logs_dir``, CSVs in ``results_dir``."""
    logs_dir, results_dir = Path(logs_dir), Path(results_dir)
    return [
        PlannedRun(
            task,
            config,
            seed,
            run_overrides(spec, task, config, seed),
            logs_dir / f"{task}__{config}__seed{seed}",
            results_dir,
        )
        for seed in spec.seeds
        for task in spec.tasks
        for config in spec.configs
    ]


def sequences_per_step(batch_size: int, algorithm: Mapping) -> int:
    """Sequences one RL step generates and trains on: B x G, plus K x M correction episodes."""
    sequences = batch_size * algorithm["group_size"]
    correction = algorithm.get("correction") or {}
    if correction.get("enabled"):
        sequences += correction["num_anchors"] * correction["samples_per_anchor"]
    return sequences
