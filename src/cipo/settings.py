"""The ``cipo-train`` config, validated once into typed settings before any work is done.

``read_train_settings(cfg)`` checks the whole resolved config (a plain dict): the top-level keys,
``module``, ``validation``, ``checkpoint``, that the verifier fits the data (``check_data_verifier``),
``trainer.max_epochs``, ``algorithm`` and the sampling keys of ``rollout``. An unknown key, a wrong
type or an out-of-range value raises a ``ValueError`` that names the full key and says what would be
valid. What it returns is handed, typed, to
``CIPOModule`` and ``RolloutCallback``; nothing downstream re-reads the raw config for these keys.
Sections that are ``_target_`` objects (``trainer``, ``data``, ``optimizer``, ...) are checked by
the classes they build.

One home per default: the dataclass field default below (or in ``AlgorithmConfig`` /
``SamplingSettings``). ``conf/*.yaml`` repeat the values so that the command line can override
them; tests/test_settings.py fails when a YAML value and its dataclass default differ.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cipo.algorithms.config import AlgorithmConfig
from cipo.schema import build_dataclass
from cipo.types import SamplingSettings

# Every top-level key of conf/train.yaml (tests/test_settings.py keeps this list in step with it).
ROOT_KEYS = frozenset(
    {
        "paths", "model", "data", "verifier", "algorithm", "rollout", "trainer", "logger", "callbacks",
        "task_name", "seed", "num_threads", "ckpt_path", "export_policy",
        "module", "optimizer", "scheduler", "validation", "checkpoint",
    }
)  # fmt: skip
RUN_KEYS = ("task_name", "seed", "num_threads", "ckpt_path", "export_policy")
SAMPLING_KEYS = ("max_new_tokens", "temperature", "top_p")


def _require(condition: bool, key: str, message: str) -> None:
    if not condition:
        raise ValueError(f"{key}: {message}")


@dataclass(frozen=True)
class ModuleSettings:
    micro_batch_size: int = 64  # sequences per forward/backward: memory only, never the gradient
    max_grad_norm: float = 1.0
    max_consecutive_skips: int = 5  # non-finite updates in a row before the run stops

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
    every: int = 10  # RL steps between held-out evaluations (0: never)
    samples: int = 4
    ks: list[int] | None = None  # pass@k's k values (None: 1, 2, 4, .., samples)
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
        if self.ks is not None:
            ks = list(self.ks)
            _require(
                all(isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in ks),
                f"validation.ks={ks}",
                "every k must be an integer >= 1",
            )
            _require(
                max(ks, default=0) <= self.samples,
                f"validation.ks={ks}",
                f"every k must be <= validation.samples={self.samples}",
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


@dataclass(frozen=True)
class TrainSettings:
    """Everything cipo reads itself from a ``cipo-train`` config, validated."""

    run: RunSettings
    module: ModuleSettings
    validation: ValidationSettings
    checkpoint: CheckpointSettings
    algorithm: AlgorithmConfig
    sampling: SamplingSettings
    max_epochs: int


def sampling_settings(rollout: Mapping[str, Any]) -> SamplingSettings:
    """The sampling keys of a ``rollout`` section (the engine's own keys are the engine's to check)."""
    return build_dataclass(SamplingSettings, {key: rollout[key] for key in SAMPLING_KEYS if key in rollout}, "rollout")


def check_data_verifier(data: Mapping[str, Any], verifier: Mapping[str, Any]) -> None:
    """The run's verifier must be the one the data set's references are written for.

    The verifier is chosen explicitly (``verifier=math``, or by an experiment file); a data config
    states which one its references need (``data.verifier``, a ``_target_``). A math data set
    scored by the integer verifier would score every answer wrong without an error.
    """
    wanted, chosen = data.get("verifier"), verifier.get("_target_")
    if wanted is not None and chosen != wanted:
        raise ValueError(
            f"data.verifier: this data set's references are written for {wanted}, but the run's verifier is "
            f"{chosen}: choose the verifier config with that _target_ on the command line (verifier=math, "
            "verifier=code or verifier=exact_integer; conf/verifier/). Experiment files choose it for you"
        )


def read_train_settings(cfg: dict[str, Any]) -> TrainSettings:
    """Validate a resolved ``cipo-train`` config (a plain dict) and return its typed settings."""
    unknown = sorted(set(cfg) - ROOT_KEYS)
    if unknown:
        raise ValueError(
            f"unknown top-level config key(s) {unknown}; known: {sorted(ROOT_KEYS)} (a typo? keys inside a "
            "section are written section.key, e.g. trainer.max_epochs=50)"
        )
    try:
        run = build_dataclass(RunSettings, {key: cfg[key] for key in RUN_KEYS if key in cfg}, "<root>")
    except ValueError as error:  # top-level keys have no section to name
        raise ValueError(str(error).removeprefix("<root>: ").removeprefix("<root>.")) from None
    section_types = {"module": ModuleSettings, "validation": ValidationSettings, "checkpoint": CheckpointSettings}
    sections = {key: build_dataclass(cls, cfg.get(key, {}), key) for key, cls in section_types.items()}
    check_data_verifier(cfg.get("data") or {}, cfg.get("verifier") or {})
    max_epochs = (cfg.get("trainer") or {}).get("max_epochs")
    _require(
        isinstance(max_epochs, int) and not isinstance(max_epochs, bool) and max_epochs >= 1,
        "trainer.max_epochs",
        f"the number of RL steps must be an integer >= 1, got {max_epochs!r}",
    )
    return TrainSettings(
        run=run,
        **sections,
        algorithm=AlgorithmConfig.from_dict(cfg.get("algorithm", {})),
        sampling=sampling_settings(cfg.get("rollout") or {}),
        max_epochs=max_epochs,
    )
