"""Pure RL math of cipo: advantages, losses, the whole objective, the CIPO correction stream and
its replay control.

Tensors and scalars in, tensors (+ float metrics) out; no lightning, hydra, vllm or
transformers here (tests/test_layering.py enforces it).
"""

from cipo.algorithms.advantages import (
    ADVANTAGE_METHODS,
    correction_advantages,
    frac_zero_std_groups,
    group_advantages,
    group_outcome_fractions,
)
from cipo.algorithms.anchors import select_anchors
from cipo.algorithms.correction import (
    PROMPT_FIELDS,
    CorrectionCounts,
    build_correction_prompts,
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
from cipo.algorithms.objective import Denominators, StreamMasks, cipo_objective, objective_denominators, stream_masks
from cipo.algorithms.replay import ReplayControl, ReplayState, initial_replay_state, update_replay_ratio

__all__ = [
    "ADVANTAGE_METHODS",
    "KL_ESTIMATORS",
    "LOSS_AGG_MODES",
    "PROMPT_FIELDS",
    "CorrectionCounts",
    "Denominators",
    "ReplayControl",
    "ReplayState",
    "StreamMasks",
    "aggregate_loss",
    "build_correction_prompts",
    "cipo_objective",
    "clipped_surrogate",
    "correction_advantages",
    "frac_zero_std_groups",
    "group_advantages",
    "group_outcome_fractions",
    "initial_replay_state",
    "kl_penalty",
    "loss_denominator",
    "objective_denominators",
    "select_anchors",
    "sft_nll",
    "shape_correction_rewards",
    "stream_masks",
    "update_replay_ratio",
]
