"""The missing-operand task: problems, worked solutions, inline checks, disjoint splits."""

import random

import pytest

from cipo.tasks.arithmetic import evaluate, split_of, tokenize_expression
from cipo.tasks.missing_operand import (
    CORRECTION_TEMPLATE,
    MissingOperandTask,
    answer_of,
    chain_text,
    check_line,
    guess_of,
    hide_operand,
    make_record,
    missing_operand_records,
    random_problem,
    revision,
    sample_records,
    solution,
    with_inline_check,
)
from cipo.verifiers.exact_answer import verify_exact_integer


@pytest.mark.parametrize(
    "expression, position, prompt, reference, worked",
    [
        ("4+7-6", 1, "Q:4+?-6=5\nA:", "7", "4+7-6=11-6=5\nAns:7"),
        ("4+7-6", 0, "Q:?+7-6=5\nA:", "4", "4+7-6=11-6=5\nAns:4"),
        ("4+7-6", 2, "Q:4+7-?=5\nA:", "6", "4+7-6=11-6=5\nAns:6"),
        ("9-9", 1, "Q:9-?=0\nA:", "9", "9-9=0\nAns:9"),
    ],
)
def test_hand_cases(expression, position, prompt, reference, worked):
    record = make_record(expression, position, "train")
    assert record.prompt == prompt and record.reference == reference
    assert solution(expression, position) == worked
    assert record.meta == {
        "level": len(tokenize_expression(expression)[1]),
        "expression": expression,
        "position": position,
        "split": "train",
    }


def test_a_wrong_guess_shows_in_its_chain_and_an_inline_check_counts_its_last_answer():
    wrong = chain_text("4+7-6", 1, 6)
    assert wrong == "4+6-6=10-6=4\nAns:6"  # the chain ends at 4, not the given 5: checkable
    checked = with_inline_check(wrong, revision("4+7-6", 1, guess_of(wrong)))
    assert checked == "4+6-6=10-6=4\nAns:6\nCheck:6+5-4=11-4=7\n4+7-6=11-6=5\nAns:7"
    assert verify_exact_integer(checked, "7").success and not verify_exact_integer(wrong, "7").success
    assert chain_text("4-7", 1, 9) == "4-9=-5\nAns:9"  # a guess may leave the value range


@pytest.mark.parametrize(
    "expression, position, guess, line",
    [
        ("4+7-6", 1, 6, "6+5-4=11-4=7"),  # added operand: guess + result - value
        ("4+7-6", 2, 3, "3+8-5=11-5=6"),  # subtracted operand: guess + value - result (value 8)
        ("4+7-6", 0, 9, "9+5-10=14-10=4"),  # the first operand counts as added
        ("4+7-6", 1, 7, "7+5-5=12-5=7"),  # a right guess is kept
        ("4-3", 1, 9, "9+-5-1=4-1=3"),  # a chain that went negative still moves the guess right
    ],
)
def test_the_check_line_moves_the_guess_to_the_answer(expression, position, guess, line):
    assert check_line(expression, position, guess) == line
    assert evaluate(line.split("=")[0]) == int(line.split("=")[-1]) == answer_of(expression, position)


def test_revision_without_a_readable_guess_is_the_solution():
    assert revision("4+7-6", 1, None) == "\n" + solution("4+7-6", 1)
    assert guess_of("4+6-6=10") is None and guess_of("x\nAns:6\nCheck:..\nAns:7") == 7 and guess_of("Ans:x") is None


def test_correction_prompt_ends_where_an_inline_check_starts():
    """A revision in the correction stream is the same token sequence as a first attempt's check."""
    record = make_record("4+7-6", 1, "train")
    wrong = chain_text("4+7-6", 1, 6)
    revised = revision("4+7-6", 1, 6)
    context = CORRECTION_TEMPLATE.format(problem=record.prompt, attempt=wrong)
    first_attempt = record.prompt + with_inline_check(wrong, revised)
    assert first_attempt.startswith(context) and first_attempt[len(context) :] == revised


def test_answers_are_unique_and_solutions_consistent_over_many_problems():
    task = MissingOperandTask()
    rng = random.Random(0)
    for _ in range(500):
        expression, position = random_problem(rng, task)
        answer = answer_of(expression, position)
        assert 1 <= answer <= task.max_operand
        target = evaluate(expression)
        # exactly one digit makes the chain reach the given result (the chain is linear in it)
        fits = [
            d for d in range(0, 10) if int(chain_text(expression, position, d).split("\n")[0].split("=")[-1]) == target
        ]
        assert fits == [answer], (expression, position)
        assert verify_exact_integer(solution(expression, position), str(answer)).success


def test_splits_are_disjoint_by_the_full_chain():
    task = MissingOperandTask(heldout_percent=20)
    train = sample_records(task, "train", 600, seed=0)
    heldout = sample_records(task, "heldout", 150, seed=0)
    assert not {r.meta["expression"] for r in train} & {r.meta["expression"] for r in heldout}
    assert all(split_of(r.meta["expression"], 20) == r.meta["split"] for r in train + heldout)
    assert {r.meta["split"] for r in heldout} == {"heldout"}


def test_sampling_is_deterministic_distinct_and_covers_levels_and_positions():
    first = missing_operand_records("train", 300, seed=3)
    assert first == missing_operand_records("train", 300, seed=3)
    assert first != missing_operand_records("train", 300, seed=4)
    assert len({r.id for r in first}) == 300
    assert {r.meta["level"] for r in first} == {1, 2, 3, 4}
    assert {r.meta["position"] for r in first} == {0, 1, 2, 3, 4}
    assert {r.reference for r in first} == {str(d) for d in range(1, 10)}
    repeated = sample_records(MissingOperandTask(levels=(1,), max_operand=2, max_value=4), "train", 50, 0, unique=False)
    assert len({r.id for r in repeated}) < 50


def test_arithmetic_records_are_unchanged_by_the_second_task():
    """The first task's records (and so its policy's data) stay bitwise as they were."""
    from cipo.tasks.arithmetic import arithmetic_records

    records = arithmetic_records("train", 5, seed=0)
    assert [r.id for r in records] == [
        "arith-train-6+8",  # as main produced them before the second task existed
        "arith-train-7-7+7-4+8+3",
        "arith-train-4+3+9",
        "arith-train-3+9+1",
        "arith-train-8-5+8-9",
    ]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(levels=()), "levels"),
        (dict(levels=(0,)), "levels"),
        (dict(max_operand=10), r"max_operand must be in \[1, 9\]"),
        (dict(max_value=3), "max_value"),
        (dict(heldout_percent=0), "heldout_percent"),
    ],
)
def test_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MissingOperandTask(**kwargs)


def test_bad_position_and_split():
    with pytest.raises(ValueError, match=r"position must be in \[0, 2\]"):
        hide_operand("4+7-6", 3)
    with pytest.raises(ValueError, match="split"):
        sample_records(MissingOperandTask(), "test", 1, 0)
