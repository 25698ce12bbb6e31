"""Transplant (``algorithm.correction.transplant``): a fixed revision also answers its original prompt.

The first successful revision of each failed anchor (``correction.transplant_rows``) joins the
group of the prompt the anchor came from, as an off-policy row: that group's advantages are
recomputed over its G samples plus the transplanted ones (``group_advantages_with_extra``, LUFFY's
mixed groups) and the row is trained with policy shaping (``losses.policy_shaped_loss``), flagged
by ``RolloutBatch.is_transplant``. The direct route from the correction stream to first attempts.
"""

from __future__ import annotations

import torch

from cipo.algorithms.advantages import group_advantages_with_extra
from cipo.algorithms.config import AlgorithmConfig
from cipo.algorithms.correction import transplant_rows
from cipo.rollout.streams import Stream


def transplant(main: Stream, correction: Stream, anchors: list[int], group_size: int, algorithm: AlgorithmConfig) -> Stream:
    """The transplanted rows (prompt = the anchor's own prompt ids), and ``main.advantages``
    recomputed for the groups that receive one (rows of dropped groups stay at 0)."""
    m = algorithm.correction.samples_per_anchor
    rows = transplant_rows(main.success[anchors], correction.success, m, correction.keep).tolist()
    if not rows:
        return Stream()
    sources = [anchors[row // m] for row in rows]
    groups = torch.tensor([source // group_size for source in sources], dtype=torch.long)
    rewards = torch.tensor([correction.results[row].reward for row in rows], dtype=torch.float32)
    main_advantages, advantages = group_advantages_with_extra(
        main.rewards, group_size, rewards, groups, algorithm.advantage
    )
    main.advantages = main_advantages * main.keep
    return Stream(
        prompts=[main.prompts[source] for source in sources],
        prompt_ids=[main.prompt_ids[source] for source in sources],
        references=[correction.references[row] for row in rows],
        completions=[correction.completions[row] for row in rows],
        results=[correction.results[row] for row in rows],
        rewards=rewards,
        advantages=advantages,
        keep=torch.ones(len(rows), dtype=torch.bool),
        sft=torch.zeros(len(rows), dtype=torch.bool),
    )
