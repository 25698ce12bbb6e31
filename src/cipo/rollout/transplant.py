"""Transplant (``algorithm.correction.transplant``): a fixed revision also answers its original prompt.

The first successful revision of each failed anchor (``correction.transplant_rows``) joins the
group of the prompt the anchor came from, as an off-policy row: that group's advantages are
recomputed over its G samples plus the transplanted ones (``group_advantages_with_extra``, LUFFY's
mixed groups) and the row is trained with policy shaping (``losses.policy_shaped_loss``), flagged
by ``RolloutBatch.is_transplant``. The direct route from the correction stream to first attempts.

Two forms (``data.transplant_as``): ``answer``, the revision answers the bare prompt (prompt ids,
then the revision's sampled ids); ``inline_check`` (the missing-operand task, whose correction
template is ``{problem}{attempt}\nCheck:``), the revision continues its attempt: prompt ids + the
attempt's sampled ids are context, the template's fixed suffix and the revision are the trained
completion, so the decision to write ``Check:`` is trained too. Both are the exact ids the engine
saw (token in, token out): the inline row is the correction row itself with its suffix moved from
the prompt into the completion.
"""

from __future__ import annotations

import torch

from cipo.algorithms.advantages import group_advantages_with_extra
from cipo.algorithms.config import AlgorithmConfig
from cipo.algorithms.correction import transplant_rows
from cipo.rollout.correction_prompts import attempt_ids
from cipo.rollout.streams import Stream
from cipo.types import Completion


def transplant(
    main: Stream,
    correction: Stream,
    anchors: list[int],
    group_size: int,
    algorithm: AlgorithmConfig,
    inline_check: bool = False,
    tokenizer=None,
) -> Stream:
    """The transplanted rows, and ``main.advantages`` recomputed for the groups that receive one
    (rows of dropped groups stay at 0). ``inline_check`` needs ``tokenizer`` (its EOS id)."""
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
    moved = Stream(
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
    return inline_checks(moved, main, correction, sources, rows, tokenizer) if inline_check else moved


def inline_checks(
    moved: Stream, main: Stream, correction: Stream, sources: list[int], rows: list[int], tokenizer
) -> Stream:
    """``moved``'s rows as continuations of their attempts: each correction row's ids split after
    the attempt (prompt + attempt = context; the template's suffix + the revision = completion)."""
    prompt_ids, completions = [], []
    for source, row in zip(sources, rows):
        context = list(main.prompt_ids[source]) + attempt_ids(main.completions[source], tokenizer.eos_token_id)
        full = list(correction.prompt_ids[row])
        if full[: len(context)] != context:
            raise ValueError(
                "data.transplant_as=inline_check: a correction prompt does not start with its problem's and "
                "attempt's ids (the correction template must start with {problem}{attempt})"
            )
        suffix, revision = full[len(context) :], correction.completions[row]
        prompt_ids.append(context)
        # no engine log-probs: a transplanted row is off-policy and stays out of the ratio statistics
        completions.append(
            Completion(
                tokenizer.decode(suffix) + revision.text, suffix + list(revision.token_ids), [], revision.finished
            )
        )
    moved.prompt_ids, moved.completions = prompt_ids, completions
    moved.prompts = [main.prompts[source] + main.completions[source].text for source in sources]
    return moved
