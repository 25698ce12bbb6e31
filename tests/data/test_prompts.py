"""Prompt formatting: plain text vs a chat template (small jinja templates on the character
tokenizer), and the correction templates derived from them."""

from __future__ import annotations

import dataclasses

import pytest

from cipo.algorithms.correction import build_correction_prompts
from cipo.data.prompts import PromptStyle
from cipo.models.builtin import build_tokenizer
from cipo.types import Record

SIMPLE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
# Like Qwen3: the generation prompt carries an empty think block in non-thinking mode, but
# earlier assistant turns are rendered without one.
QWEN3_LIKE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}{% endif %}"
)
USER_TURNS_ONLY = "{% for m in messages %}{% if m['role'] == 'user' %}{{ m['content'] }}\n{% endif %}{% endfor %}"
STYLE = PromptStyle(
    instruction=r"Put the answer in \boxed{}.",
    check="Check it.",
    verdict="It is {verdict}. Check it.",
    feedback="Tests: {feedback}",
)


def tokenizer_with(template: str | None):
    tokenizer = build_tokenizer()
    tokenizer.chat_template = template
    return tokenizer


def correction(template: str, problem: str, attempt: str, **extra) -> str:
    verdicts = [extra["verdict"]] if "verdict" in extra else None
    feedback = [extra["feedback"]] if "feedback" in extra else None
    return build_correction_prompts([problem], [attempt], template, verdicts, feedback=feedback)[0]


def test_plain_format():
    formatter = STYLE.build(tokenizer_with(None))  # auto without a chat template -> plain
    assert formatter.kind == "plain"
    prompt = formatter.prompt("What is 2+2?")
    assert prompt == "What is 2+2?\n\nPut the answer in \\boxed{}.\n\n"
    assert correction(formatter.correction_template, prompt, "4") == prompt + "4\n\nCheck it.\n\n"
    assert (
        correction(formatter.verdict_template, prompt, "5", verdict=False)
        == prompt + "5\n\nIt is incorrect. Check it.\n\n"
    )
    assert PromptStyle(format="plain", system="Be brief.").build(None).prompt("Q") == "Be brief.\n\nQ\n\n"


def test_chat_prompt_and_correction_match_the_rendered_conversation():
    tokenizer = tokenizer_with(SIMPLE)
    formatter = dataclasses.replace(STYLE, system="You are careful.").build(tokenizer)
    assert formatter.kind == "chat"
    first = [
        {"role": "system", "content": "You are careful."},
        {"role": "user", "content": "Find {x}.\n\nPut the answer in \\boxed{}."},
    ]
    prompt = formatter.prompt("Find {x}.")
    assert prompt == tokenizer.apply_chat_template(first, add_generation_prompt=True, tokenize=False)
    assert prompt.startswith("<|system|>\nYou are careful.</s>\n<|user|>\nFind {x}.") and prompt.endswith(
        "<|assistant|>\n"
    )
    conversation = first + [{"role": "assistant", "content": "x = {1}"}, {"role": "user", "content": "Check it."}]
    expected = tokenizer.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
    assert correction(formatter.correction_template, prompt, "x = {1}") == expected
    conversation[-1]["content"] = "It is correct. Check it."
    expected = tokenizer.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
    assert correction(formatter.verdict_template, prompt, "x = {1}", verdict=True) == expected


def test_feedback_turn_only_when_asked():
    tokenizer = tokenizer_with(SIMPLE)
    assert "{feedback}" not in STYLE.build(tokenizer).correction_template
    formatter = dataclasses.replace(STYLE, show_feedback=True).build(tokenizer)
    prompt = formatter.prompt("Q")
    text = correction(formatter.correction_template, prompt, "A", feedback="NameError: y")
    assert text == prompt + "A</s>\n<|user|>\nTests: NameError: y\n\nCheck it.</s>\n<|assistant|>\n"
    text = correction(formatter.verdict_template, prompt, "A", verdict=False, feedback="f")
    assert text.endswith("<|user|>\nTests: f\n\nIt is incorrect. Check it.</s>\n<|assistant|>\n")


def test_a_template_that_renders_history_differently_continues_the_sampled_prompt():
    tokenizer = tokenizer_with(QWEN3_LIKE)
    formatter = PromptStyle(check="Check it.", chat_template_kwargs={"enable_thinking": False}).build(tokenizer)
    prompt = formatter.prompt("Q")
    assert prompt == "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    text = correction(formatter.correction_template, prompt, "A")
    # what the policy saw, its attempt, then the end of turn, the check turn and a fresh generation prompt
    assert (
        text
        == prompt + "A<|im_end|>\n<|im_start|>user\nCheck it.<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    )
    thinking = PromptStyle(check="Check it.").build(tokenizer)  # no kwargs: no think block anywhere
    assert thinking.prompt("Q").endswith("<|im_start|>assistant\n")


def test_templates_that_cannot_express_a_correction_fail_clearly():
    with pytest.raises(ValueError, match=r"does not render a \[user, assistant, user\] conversation"):
        PromptStyle(format="chat").build(tokenizer_with(USER_TURNS_ONLY))
    with pytest.raises(ValueError, match="format=chat but the tokenizer has no chat template"):
        PromptStyle(format="chat").build(tokenizer_with(None))
    with pytest.raises(ValueError, match=r"format=auto needs the policy's tokenizer: call datamodule.attach_tokenizer"):
        PromptStyle().build(None)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"format": "markdown"}, r"data.prompt.format='markdown'"),
        ({"check": " "}, "data.prompt.check is empty"),
        ({"check": "It is {verdict}."}, r"data.prompt.check may not contain \{verdict\}"),
        ({"verdict": "Check it."}, r"data.prompt.verdict must contain \{verdict\}"),
        ({"show_feedback": True, "feedback": "no placeholder"}, r"data.prompt.feedback must contain \{feedback\}"),
    ],
)
def test_style_validation_names_the_key(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PromptStyle(**kwargs)


def test_format_records_keeps_the_problem_text():
    formatter = PromptStyle(format="plain", instruction="Go.").build(None)
    (record,) = formatter.format_records([Record("a", "1+1?", "2", {"level": 1})])
    assert record == Record("a", "1+1?\n\nGo.\n\n", "2", {"level": 1, "problem_text": "1+1?"})
