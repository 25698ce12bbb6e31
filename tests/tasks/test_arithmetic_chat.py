"""The chat version of the arithmetic task: same problems and split as data=arithmetic, asked in words."""

import pytest

from cipo.tasks.arithmetic import arithmetic_records, evaluate
from cipo.tasks.arithmetic_chat import arithmetic_chat_records, word_problem
from cipo.verifiers.math_answer import extract_answer


@pytest.mark.parametrize(
    "expression, text",
    [("4+3", "What is 4 plus 3?"), ("4+3-6", "What is 4 plus 3 minus 6?"), ("12-9+1", "What is 12 minus 9 plus 1?")],
)
def test_word_problem(expression, text):
    assert word_problem(expression) == text


@pytest.mark.parametrize("split", ["train", "heldout"])
def test_same_problems_and_split_as_the_builtin_task(split):
    kwargs = dict(split=split, num_records=40, seed=3, levels=[1, 2], max_operand=9, max_value=20)
    chat, plain = arithmetic_chat_records(**kwargs), arithmetic_records(**kwargs)
    assert [r.meta for r in chat] == [r.meta for r in plain]
    assert [r.reference for r in chat] == [str(evaluate(r.meta["expression"])) for r in chat]
    assert all(r.prompt == word_problem(r.meta["expression"]) and r.id.startswith("arith-chat-") for r in chat)
    assert {r.meta["split"] for r in chat} == {split}


def test_a_boxed_reply_is_read_as_the_answer():
    assert extract_answer("4 plus 3 is \\boxed{7}.") == "7"
