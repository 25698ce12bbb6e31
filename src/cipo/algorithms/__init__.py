"""Pure RL math of cipo: advantages, losses, the CIPO correction stream and its replay control.

Tensors and scalars in, tensors (+ float metrics) out; no lightning, hydra, vllm or
transformers here (tests/test_layering.py enforces it).
"""

from cipo.algorithms.advantages import (
    ADVANTAGE_METHODS,
    frac_zero_std_groups,
    group_advantages,
    group_outcome_fractions,
)
from cipo.algorithms.correction import (
    PROMPT_FIELDS,
    build_correction_prompts,
    correction_outcomes,
    select_anchors,
    shape_correction_rewards,
)
from cipo.algorithms.losses import (
    KL_ESTIMATORS,
    LOSS_AGG_MODES,
    aggregate_loss,
    clipped_surrogate,
    kl_penalty,
    loss_denominator,
    sft_nll,
)
from cipo.algorithms.replay import ReplayControl, ReplayState, initial_replay_state, update_replay_ratio

__all__ = [
    "ADVANTAGE_METHODS",
    "KL_ESTIMATORS",
    "LOSS_AGG_MODES",
    "PROMPT_FIELDS",
    "ReplayControl",
    "ReplayState",
    "aggregate_loss",
    "build_correction_prompts",
    "clipped_surrogate",
    "correction_outcomes",
    "frac_zero_std_groups",
    "group_advantages",
    "group_outcome_fractions",
    "initial_replay_state",
    "kl_penalty",
    "loss_denominator",
    "select_anchors",
    "sft_nll",
    "shape_correction_rewards",
    "update_replay_ratio",
]
