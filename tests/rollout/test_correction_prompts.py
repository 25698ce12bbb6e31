"""Correction prompts as ids: the attempt's sampled ids survive, with a real BPE tokenizer and chat template."""

import pytest

from cipo.algorithms.correction import build_correction_prompts
from cipo.data.prompts import PromptStyle
from cipo.rollout.correction_prompts import attempt_ids, correction_prompts
from cipo.types import Completion

CHECK = "Check your answer above. Give only the final answer, as a number in \\boxed{}."


def _completion(tokenizer, ids: list[int], finished: bool = True) -> Completion:
    ids = ids + ([tokenizer.eos_token_id] if finished else [])
    text = tokenizer.decode(ids, skip_special_tokens=True)
    return Completion(text=text, token_ids=ids, logprobs=[-0.1] * len(ids), finished=finished)


def _non_canonical_attempt(tokenizer) -> list[int]:
    """'The answer is \\boxed{12}.' sampled as 'The', ' ans', 'wer', ..., '}', '.': ids the policy can
    sample that encoding their text never gives back (BPE makes ' answer' and '}.' single tokens)."""
    pieces = ["The", "Ġans", "wer", "Ġis", "Ġ\\", "box", "ed", "{", "1", "2", "}", "."]
    ids = tokenizer.convert_tokens_to_ids(pieces)
    assert tokenizer.unk_token_id not in ids and tokenizer.decode(ids) == "The answer is \\boxed{12}."
    assert tokenizer(tokenizer.decode(ids), add_special_tokens=False)["input_ids"] != ids
    return ids


@pytest.fixture(scope="module")
def chat(smollm2_tokenizer):
    formatter = PromptStyle(format="chat", instruction="Give only the final answer.", check=CHECK).build(
        smollm2_tokenizer
    )
    problem = formatter.prompt("What is 4 plus 8?")
    return smollm2_tokenizer, formatter, problem, smollm2_tokenizer(problem, add_special_tokens=False)["input_ids"]


def test_chat_correction_prompt_keeps_the_sampled_attempt_ids(chat):
    tokenizer, formatter, problem, problem_ids = chat
    sampled = _non_canonical_attempt(tokenizer)
    attempt = _completion(tokenizer, sampled)
    [ids] = correction_prompts(tokenizer, [problem], [problem_ids], [attempt], formatter.correction_template)
    assert ids[: len(problem_ids)] == problem_ids
    assert ids[len(problem_ids) : len(problem_ids) + len(sampled)] == sampled  # not re-encoded
    # the same text as the text path: the chat template dropped nothing, the turn is closed once
    [text] = build_correction_prompts([problem], [attempt.text], formatter.correction_template)
    assert tokenizer.decode(ids) == text
    assert text.count(attempt.text) == 1 and CHECK in text and text.endswith("<|im_start|>assistant\n")
    assert ids.count(tokenizer.eos_token_id) == text.count(tokenizer.eos_token)
    # and the text path would indeed have changed the attempt's ids
    assert tokenizer(text, add_special_tokens=False)["input_ids"] != ids


def test_a_truncated_attempt_is_closed_by_the_template(chat):
    tokenizer, formatter, problem, problem_ids = chat
    attempt = _completion(tokenizer, _non_canonical_attempt(tokenizer)[:5], finished=False)
    [ids] = correction_prompts(tokenizer, [problem], [problem_ids], [attempt], formatter.correction_template)
    start = len(problem_ids)
    assert ids[start : start + 5] == attempt.token_ids and ids[start + 5] == tokenizer.eos_token_id  # <|im_end|>


def test_verdict_and_feedback_fill_the_suffix(chat):
    tokenizer, formatter, problem, problem_ids = chat
    attempts = [_completion(tokenizer, _non_canonical_attempt(tokenizer))] * 2
    prompts = correction_prompts(
        tokenizer, [problem] * 2, [problem_ids] * 2, attempts, formatter.verdict_template, verdicts=[True, False]
    )
    assert "is correct" in tokenizer.decode(prompts[0]) and "is incorrect" in tokenizer.decode(prompts[1])


def test_a_template_with_text_between_problem_and_attempt_is_filled_with_text(built_tokenizer):
    attempt = _completion(built_tokenizer, built_tokenizer("4+3=7", add_special_tokens=False)["input_ids"])
    template = "{problem}\nYour answer: {attempt}\nCheck:"
    prompts = correction_prompts(built_tokenizer, ["Q:4+3"], [[9, 9]], [attempt], template)
    assert prompts == ["Q:4+3\nYour answer: 4+3=7\nCheck:"]


def test_attempt_ids_drop_only_a_trailing_eos():
    eos = 2
    assert attempt_ids(Completion("", [5, 2], [0.0, 0.0], True), eos) == [5]
    assert attempt_ids(Completion("", [5, 6], [0.0, 0.0], False), eos) == [5, 6]
    assert attempt_ids(Completion("", [5, 6], [0.0, 0.0], False), None) == [5, 6]


def test_lengths_must_match(built_tokenizer):
    with pytest.raises(ValueError, match="1 problems, 2 id lists"):
        correction_prompts(built_tokenizer, ["p"], [[1], [2]], [], "{problem}{attempt}")
