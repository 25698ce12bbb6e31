"""The algorithm's hyper-parameters as frozen, validated dataclasses.

``AlgorithmConfig.from_dict`` turns the ``algorithm`` section of the Hydra config (as a plain
dict) into these objects; an unknown key anywhere, a wrong type or an out-of-range value is a
``ValueError`` that names the full key (``algorithm.correction.penalty``) and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cipo.algorithms.advantages import ADVANTAGE_METHODS, SHAPING_PLACES, STD_SCOPES
from cipo.algorithms.anchors import ANCHOR_PREFERENCES
from cipo.algorithms.importance import IS_MODES
from cipo.algorithms.losses import KL_ESTIMATORS, LOSS_AGG_MODES, STREAM_WEIGHTINGS, check_clip_range
from cipo.algorithms.replay import ReplayControl
from cipo.schema import build_dataclass

CORRECTION_OBJECTIVES = ("rl", "sft")


def _check(condition: bool, key: str, message: str) -> None:
    if not condition:
        raise ValueError(f"{key}: {message}")


@dataclass(frozen=True)
class CorrectionConfig:
    """The correction stream (method sheet steps 4-10). ``enabled: false`` is plain GRPO.

    Defaults marked (ours) differ from the published form (``algorithm=cipo_published``); why
    is in docs/method.md.
    """

    enabled: bool = True
    coef: float = 1.0  # alpha in L = L(main) + alpha * L(corrections)
    stream_weighting: str = "joint"  # (ours) joint token mean | per_stream: alpha x each stream's own mean
    num_anchors: int = 8
    samples_per_anchor: int = 8  # M; the method's default is M = G
    anchor_preference: str = "closeness"  # (ours) closeness to pass rate 1/2 | band | uniform
    acc_low: float = 0.125  # the band of anchor_preference=band
    acc_high: float = 0.875
    all_wrong_share: float = 0.0  # share of failed anchors drawn from all-wrong prompts first
    penalty: float = 1.0  # lambda: breaking a correct anchor costs this much
    shaping: str = "advantage"  # (ours) penalty after normalisation | reward: in the reward (cancels)
    std_scope: str = "group"  # grpo: each anchor's own std | batch: one pooled std
    progress_bonus: float = 0.0  # beta of SCoRe's beta * (r_revision - r_attempt)
    transplant: bool = False  # also train a fixed revision as an answer to the original prompt
    transplant_gamma: float = 0.1  # gamma of the policy shaping p / (p + gamma) of transplanted tokens
    reveal_verdict: bool = False
    objective: str = "rl"  # "sft": supervised loss on successful corrections (rejection sampling)
    replay: ReplayControl = field(default_factory=ReplayControl)

    def __post_init__(self) -> None:
        key = "algorithm.correction"
        _check(self.coef >= 0, f"{key}.coef", f"must be >= 0, got {self.coef}")
        _check(self.num_anchors >= 0, f"{key}.num_anchors", f"must be >= 0, got {self.num_anchors}")
        _check(
            self.samples_per_anchor >= 1, f"{key}.samples_per_anchor", f"must be >= 1, got {self.samples_per_anchor}"
        )
        _check(
            0 <= self.acc_low <= self.acc_high <= 1,
            f"{key}.acc_low/acc_high",
            f"need 0 <= acc_low <= acc_high <= 1, got acc_low={self.acc_low}, acc_high={self.acc_high}",
        )
        _check(
            0 <= self.all_wrong_share <= 1, f"{key}.all_wrong_share", f"must be in [0, 1], got {self.all_wrong_share}"
        )
        _check(self.penalty >= 0, f"{key}.penalty", f"must be >= 0, got {self.penalty}")
        _check(self.progress_bonus >= 0, f"{key}.progress_bonus", f"must be >= 0, got {self.progress_bonus}")
        _check(self.transplant_gamma > 0, f"{key}.transplant_gamma", f"must be > 0, got {self.transplant_gamma}")
        for name, allowed in (
            ("std_scope", STD_SCOPES),
            ("shaping", SHAPING_PLACES),
            ("anchor_preference", ANCHOR_PREFERENCES),
            ("stream_weighting", STREAM_WEIGHTINGS),
            ("objective", CORRECTION_OBJECTIVES),
        ):
            value = getattr(self, name)
            _check(value in allowed, f"{key}.{name}", f"must be one of {allowed}, got {value!r}")
        _check(
            not (self.transplant and self.objective == "sft"),
            f"{key}.transplant",
            "needs objective=rl (transplanted revisions are trained with the policy-gradient loss)",
        )


@dataclass(frozen=True)
class DynamicSamplingConfig:
    """DAPO's dynamic sampling (``algorithms/dynamic_sampling.py``): zero-variance groups leave the
    GRPO loss and up to ``max_extra_rounds`` more generation rounds refill the step."""

    enabled: bool = False
    max_extra_rounds: int = 2

    def __post_init__(self) -> None:
        key = "algorithm.dynamic_sampling.max_extra_rounds"
        _check(self.max_extra_rounds >= 0, key, f"must be >= 0, got {self.max_extra_rounds}")


@dataclass(frozen=True)
class AlgorithmConfig:
    """GRPO's knobs plus the correction stream."""

    name: str = "cipo"
    group_size: int = 8  # G completions per prompt
    advantage: str = "grpo"
    clip_low: float = 0.2
    clip_high: float = 0.2
    loss_agg: str = "token_mean"
    kl_coef: float = 0.0
    kl_estimator: str = "k3"
    ppo_epochs: int = 1  # mu: passes over each rollout batch
    num_mini_batches: int = 1  # optimizer steps per pass
    is_weights_cap: float | None = None  # engine/trainer importance weights' cap (None: off)
    is_weights_mode: str = "token_truncate"  # TRL's vllm_importance_sampling_mode values
    mask_truncated_completions: bool = False  # TRL's name: cut-off completions leave the loss
    dynamic_sampling: DynamicSamplingConfig = field(default_factory=DynamicSamplingConfig)
    correction: CorrectionConfig = field(default_factory=CorrectionConfig)

    def __post_init__(self) -> None:
        key = "algorithm"
        _check(self.group_size >= 1, f"{key}.group_size", f"must be >= 1, got {self.group_size}")
        _check(
            self.advantage in ADVANTAGE_METHODS,
            f"{key}.advantage",
            f"must be one of {ADVANTAGE_METHODS}, got {self.advantage!r}",
        )
        try:
            check_clip_range(self.clip_low, self.clip_high)
        except ValueError as error:  # "clip_low must be ..." -> "algorithm.clip_low: must be ..."
            name, _, message = str(error).partition(" ")
            raise ValueError(f"{key}.{name}: {message}") from None
        _check(
            self.loss_agg in LOSS_AGG_MODES,
            f"{key}.loss_agg",
            f"must be one of {LOSS_AGG_MODES}, got {self.loss_agg!r}",
        )
        _check(self.kl_coef >= 0, f"{key}.kl_coef", f"must be >= 0, got {self.kl_coef}")
        _check(
            self.kl_estimator in KL_ESTIMATORS,
            f"{key}.kl_estimator",
            f"must be one of {KL_ESTIMATORS}, got {self.kl_estimator!r}",
        )
        _check(self.ppo_epochs >= 1, f"{key}.ppo_epochs", f"must be >= 1, got {self.ppo_epochs}")
        _check(self.num_mini_batches >= 1, f"{key}.num_mini_batches", f"must be >= 1, got {self.num_mini_batches}")
        cap = self.is_weights_cap
        _check(
            cap is None or (isinstance(cap, (int, float)) and not isinstance(cap, bool) and cap > 0),
            f"{key}.is_weights_cap",
            f"must be null or a number > 0 (e.g. 2.0), got {cap!r}",
        )
        _check(
            self.is_weights_mode in IS_MODES,
            f"{key}.is_weights_mode",
            f"must be one of {IS_MODES}, got {self.is_weights_mode!r}",
        )
        _check(
            not (self.dynamic_sampling.enabled and self.correction.enabled and self.correction.transplant),
            f"{key}.correction.transplant",
            "cannot be combined with dynamic_sampling.enabled: a transplant can make an uninformative "
            "group informative after dynamic sampling has dropped it (not supported)",
        )

    @property
    def updates_per_step(self) -> int:
        """Optimizer steps per RL step (per Lightning epoch)."""
        return self.ppo_epochs * self.num_mini_batches

    def objective_options(self, max_len: int) -> dict[str, Any]:
        """The scalars ``objective.cipo_objective`` takes from this config, as its keywords
        (``max_len``: Dr. GRPO's constant length, the generation limit). A new loss term adds its
        knob here and in ``cipo_objective``; the module passes the dict through unchanged."""
        return dict(
            clip_low=self.clip_low,
            clip_high=self.clip_high,
            loss_agg=self.loss_agg,
            max_len=max_len,
            correction_coef=self.correction.coef,
            stream_weighting=self.correction.stream_weighting,
            transplant_gamma=self.correction.transplant_gamma,
            is_weights_cap=self.is_weights_cap,
            is_weights_mode=self.is_weights_mode,
            kl_coef=self.kl_coef,
            kl_estimator=self.kl_estimator,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AlgorithmConfig:
        return build_dataclass(cls, data, "algorithm")
