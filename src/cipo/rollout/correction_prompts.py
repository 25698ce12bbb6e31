"""Correction prompts as token ids: the attempt goes in exactly as it was sampled (token in, token out).

A correction prompt is ``{problem}{attempt}<suffix>``: the prompt the attempt was sampled from,
the attempt, then the template's end of turn, check turn and generation prompt (``data/prompts.py``
derives that shape from the chat template; the built-in task's template has it too). Filling the
template with the attempt's *text* and re-encoding it would hand the policy other ids than the
ones it sampled: a BPE tokenizer can merge the attempt's last characters with the suffix, or split
a sampled token sequence canonically (" 1" "2" becomes " 12"), and the trainer would then score
tokens the engine never produced. So the ids are joined instead:

    prompt ids  +  attempt ids (without a trailing EOS)  +  ids of the filled suffix

The attempt's EOS is dropped because the text path never showed it (texts are decoded without
special tokens); where the EOS is the chat template's end-of-turn token, the suffix brings the
same token back. A template that does not start with ``{problem}{attempt}`` (a custom one that
puts text before or between them) is filled with texts as before, and is not token-exact.
"""

from __future__ import annotations

from cipo.algorithms.correction import build_correction_prompts
from cipo.rollout.engine import Prompt
from cipo.types import Completion

TOKEN_EXACT_PREFIX = "{problem}{attempt}"


def attempt_ids(completion: Completion, eos_token_id: int | None) -> list[int]:
    """The sampled ids of an attempt, without the EOS that ended it."""
    ids = list(completion.token_ids)
    if ids and eos_token_id is not None and ids[-1] == eos_token_id:
        ids.pop()
    return ids


def correction_prompts(
    tokenizer,
    problems: list[str],
    problem_ids: list[list[int]],
    attempts: list[Completion],
    template: str,
    verdicts: list[bool] | None = None,
    feedback: list[str] | None = None,
) -> list[Prompt]:
    """One correction prompt per anchor: token ids when the template allows it, else text.

    Args:
        problems: the rendered first prompts (text), one per anchor.
        problem_ids: the ids each attempt was sampled from (``tokenizer(problem)`` for a text prompt).
        attempts: the anchors' sampled completions.
        template, verdicts, feedback: as in ``build_correction_prompts``.
    """
    if not len(problems) == len(problem_ids) == len(attempts):
        raise ValueError(f"{len(problems)} problems, {len(problem_ids)} id lists and {len(attempts)} attempts")
    if not template.startswith(TOKEN_EXACT_PREFIX):
        texts = [attempt.text for attempt in attempts]
        return build_correction_prompts(problems, texts, template, verdicts, feedback=feedback)
    empty = [""] * len(attempts)
    suffixes = build_correction_prompts(empty, empty, template, verdicts, feedback=feedback)
    encoded = {suffix: tokenizer(suffix, add_special_tokens=False)["input_ids"] for suffix in set(suffixes)}
    eos = tokenizer.eos_token_id
    return [
        list(ids) + attempt_ids(attempt, eos) + encoded[suffix]
        for ids, attempt, suffix in zip(problem_ids, attempts, suffixes)
    ]
