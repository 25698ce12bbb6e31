"""The run-level parts of the ``cipo-train`` config, checked before any work is done.

``algorithm`` and ``rollout`` have their own dataclasses; this covers the rest that cipo reads
itself: the top-level keys, ``module``, ``validation``, ``checkpoint`` and the trainer's
``max_epochs``. An unknown key, a wrong type or an out-of-range value raises a ``ValueError``
that names the full key and says what would be valid. Sections that are ``_target_`` objects
(``trainer``, ``data``, ``optimizer``, ...) are checked by the classes they build.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cipo.algorithms.config import build_dataclass

# Every top-level key of conf/train.yaml (tests/test_settings.py keeps this list in step with it).
ROOT_KEYS = frozenset(
    {
        "paths", "model", "data", "verifier", "algorithm", "rollout", "trainer", "logger", "callbacks",
        "task_name", "seed", "num_threads", "ckpt_path", "export_policy",
        "module", "optimizer", "scheduler", "validation", "checkpoint",
    }
)  # fmt: skip


def _require(condition: bool, key: str, message: str) -> None:
    if not condition:
        raise ValueError(f"{key}: {message}")


@dataclass(frozen=True)
class ModuleSettings:
    micro_batch_size: int = 64
    max_grad_norm: float = 1.0
    max_consecutive_skips: int = 5

    def __post_init__(self) -> None:
        _require(self.micro_batch_size >= 1, "module.micro_batch_size", f"must be >= 1, got {self.micro_batch_size}")
        _require(self.max_grad_norm > 0, "module.max_grad_norm", f"must be > 0, got {self.max_grad_norm}")
        _require(
            self.max_consecutive_skips >= 1,
            "module.max_consecutive_skips",
            f"must be >= 1 (non-finite updates in a row before the run stops), got {self.max_consecutive_skips}",
        )


@dataclass(frozen=True)
class ValidationSettings:
    every: int = 10
    samples: int = 4
    ks: list[int] | None = None  # checked by the rollout callback against `samples`
    max_problems: int | None = None
    correction: bool = True

    def __post_init__(self) -> None:
        _require(self.every >= 0, "validation.every", f"must be >= 0 (0: never), got {self.every}")
        _require(self.samples >= 1, "validation.samples", f"must be >= 1, got {self.samples}")
        _require(
            self.max_problems is None or self.max_problems >= 1,
            "validation.max_problems",
            f"must be null (all) or >= 1, got {self.max_problems}",
        )


@dataclass(frozen=True)
class CheckpointSettings:
    every: int = 1
    snapshot_every: int = 25
    keep_last_k: int = 3

    def __post_init__(self) -> None:
        _require(self.every >= 1, "checkpoint.every", f"RL steps between checkpoints must be >= 1, got {self.every}")
        _require(self.snapshot_every >= 1, "checkpoint.snapshot_every", f"must be >= 1, got {self.snapshot_every}")
        _require(
            self.keep_last_k == -1 or self.keep_last_k >= 1,
            "checkpoint.keep_last_k",
            f"must be -1 (keep all) or >= 1, got {self.keep_last_k}",
        )


@dataclass(frozen=True)
class RunSettings:
    task_name: str = "train"
    seed: int = 0
    num_threads: int | None = None
    ckpt_path: str | None = None
    export_policy: bool = True

    def __post_init__(self) -> None:
        _require(self.seed >= 0, "seed", f"must be >= 0, got {self.seed}")
        _require(
            self.num_threads is None or self.num_threads >= 1,
            "num_threads",
            f"must be null (torch's default) or >= 1, got {self.num_threads}",
        )


def check_run_config(cfg: dict[str, Any]) -> None:
    """Validate the run-level keys of a resolved ``cipo-train`` config (a plain dict)."""
    unknown = sorted(set(cfg) - ROOT_KEYS)
    if unknown:
        raise ValueError(
            f"unknown top-level config key(s) {unknown}; known: {sorted(ROOT_KEYS)} (a typo? keys inside a "
            "section are written section.key, e.g. trainer.max_epochs=50)"
        )
    scalars = {
        key: cfg[key] for key in ("task_name", "seed", "num_threads", "ckpt_path", "export_policy") if key in cfg
    }
    try:
        build_dataclass(RunSettings, scalars, "<root>")
    except ValueError as error:  # top-level keys have no section to name
        raise ValueError(str(error).removeprefix("<root>: ").removeprefix("<root>.")) from None
    for key, cls in (
        ("module", ModuleSettings),
        ("validation", ValidationSettings),
        ("checkpoint", CheckpointSettings),
    ):
        if key in cfg:
            build_dataclass(cls, cfg[key], key)
    max_epochs = (cfg.get("trainer") or {}).get("max_epochs")
    _require(
        isinstance(max_epochs, int) and not isinstance(max_epochs, bool) and max_epochs >= 1,
        "trainer.max_epochs",
        f"the number of RL steps must be an integer >= 1, got {max_epochs!r}",
    )
