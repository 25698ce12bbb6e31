"""Dynamic sampling's extra generation rounds (``algorithm.dynamic_sampling``; the selection rules
are ``algorithms/dynamic_sampling.py``'s).

After the step's first round, groups whose rewards are all equal carry no GRPO signal. While fewer
than ``batch_size`` informative groups are in hand and extra rounds remain, more prompts are drawn
(sized by the informative share seen so far), generated and verified, and their rows appended.
The caller trains the first ``batch_size`` informative groups and chooses anchors from every
generated group.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from cipo.algorithms.dynamic_sampling import informative_groups, keep_first, refill_prompts
from cipo.rollout.streams import Stream


@dataclass(frozen=True)
class Filled:
    generated: Stream  # every row of every round, group by group
    trained_groups: torch.Tensor  # (groups,) bool: the groups the main stream trains on
    extra_rounds: int


def fill_informative_groups(
    first: Stream,
    more: Callable[[int, int], Stream],
    group_size: int,
    batch_size: int,
    max_extra_rounds: int,
) -> Filled:
    """``more(count, round)`` generates and verifies ``count`` new prompts' groups (round 1, 2, ...);
    it may return fewer (an empty stream ends the refill)."""
    generated, extra_rounds = first, 0
    while True:
        usable = generated.keep.view(-1, group_size).all(dim=1)  # a group with a skipped row never trains
        informative = informative_groups(generated.rewards, group_size) & usable
        trained = keep_first(informative, batch_size)
        missing = batch_size - int(trained.sum())
        if missing <= 0 or extra_rounds >= max_extra_rounds:
            return Filled(generated, trained, extra_rounds)
        count = refill_prompts(missing, int(informative.sum()), int(informative.numel()), batch_size)
        extra = more(count, extra_rounds + 1)
        if not extra.completions:
            return Filled(generated, trained, extra_rounds)
        generated, extra_rounds = generated.concat(extra), extra_rounds + 1
