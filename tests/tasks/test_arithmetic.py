"""Built-in arithmetic task: worked solutions, value range, splits, determinism, validation."""

import random

import pytest

from cipo.tasks.arithmetic import (
    ANSWER_PREFIX,
    ArithmeticTask,
    arithmetic_records,
    evaluate,
    level_of,
    make_record,
    random_expression,
    render_prompt,
    sample_records,
    solution,
    solution_steps,
    split_of,
    tokenize_expression,
)


# ------------------------------------------------------------------ hand-checked chains
@pytest.mark.parametrize(
    "expression, expected",
    [
        ("4+3+4-6", "4+3+4-6=7+4-6=11-6=5\nAns:5"),
        ("9-9", "9-9=0\nAns:0"),
        ("7", "7\nAns:7"),
        ("1+9+9+9-8", "1+9+9+9-8=10+9+9-8=19+9-8=28-8=20\nAns:20"),
        ("10-3+2", "10-3+2=7+2=9\nAns:9"),  # multi-digit operand is one number, not 1 and 0
    ],
)
def test_solution_hand_cases(expression, expected):
    assert solution(expression) == expected


def test_tokenize_and_evaluate():
    assert tokenize_expression("4+3-6") == ([4, 3, 6], ["+", "-"])
    assert tokenize_expression("12-3") == ([12, 3], ["-"])
    assert evaluate("4+3+4-6") == 5
    assert evaluate("2-1-1") == 0  # left to right, not 2-(1-1)
    assert level_of("4+3+4-6") == 3 and level_of("5") == 0


def test_record_fields():
    record = make_record("4+3+4-6", "train")
    assert record.prompt == render_prompt("4+3+4-6") == "Q:4+3+4-6\nA:"
    assert record.reference == "5"
    assert record.meta == {"level": 3, "expression": "4+3+4-6", "split": "train"}
    assert record.id == "arith-train-4+3+4-6"


# --------------------------------------------------------------- property over many seeds
@pytest.mark.parametrize("max_operand, max_value", [(9, 30), (9, 9), (3, 5), (5, 12)])
def test_running_values_stay_in_range_and_solution_is_consistent(max_operand, max_value):
    for seed in range(300):
        rng = random.Random(seed)
        num_ops = rng.randint(1, 8)
        expression = random_expression(rng, num_ops, max_operand, max_value)
        numbers, ops = tokenize_expression(expression)
        assert len(ops) == num_ops
        assert all(1 <= n <= max_operand for n in numbers[1:]), expression
        assert 1 <= numbers[0] <= max_operand
        running = numbers[0]
        for op, n in zip(ops, numbers[1:]):
            running = running + n if op == "+" else running - n
            assert 0 <= running <= max_value, expression
        steps = solution_steps(expression)
        assert len(steps) == num_ops + 1
        assert all(0 <= int(step.split("+")[0].split("-")[0]) <= max_value for step in steps)
        assert int(steps[-1]) == running == evaluate(expression)
        text = solution(expression)
        assert text.endswith(f"\n{ANSWER_PREFIX}{running}")


# ------------------------------------------------------------------------------- splits
def test_split_of_is_stable_and_has_roughly_the_requested_share():
    # sha1-based, so pinned across Python runs (PYTHONHASHSEED plays no part).
    assert split_of("1+2", 10) == "heldout"  # bucket 4
    assert split_of("4+3+4-6", 10) == "train"  # bucket 90
    assert split_of("4+3+4-6", 91) == "heldout"
    assert split_of("9-9", 45) == "train" and split_of("9-9", 46) == "heldout"  # bucket 45
    expressions = [random_expression(random.Random(i), 3, 9, 30) for i in range(2000)]
    share = sum(split_of(e, 10) == "heldout" for e in expressions) / len(expressions)
    assert 0.05 < share < 0.15
    # monotone in heldout_percent: heldout at 10% is heldout at 50%
    assert all(split_of(e, 50) == "heldout" for e in expressions if split_of(e, 10) == "heldout")


def test_train_and_heldout_are_disjoint_and_pure():
    task = ArithmeticTask(levels=(1, 2, 3), heldout_percent=20)
    train = sample_records(task, "train", 400, seed=0)
    heldout = sample_records(task, "heldout", 100, seed=0)
    train_exprs = {r.meta["expression"] for r in train}
    heldout_exprs = {r.meta["expression"] for r in heldout}
    assert not train_exprs & heldout_exprs
    assert all(split_of(e, 20) == "train" for e in train_exprs)
    assert all(split_of(e, 20) == "heldout" for e in heldout_exprs)
    assert all(r.meta["split"] == "train" for r in train) and all(r.meta["split"] == "heldout" for r in heldout)


def test_sample_records_distinct_and_deterministic():
    task = ArithmeticTask()
    first = sample_records(task, "train", 200, seed=3)
    again = sample_records(task, "train", 200, seed=3)
    other = sample_records(task, "train", 200, seed=4)
    assert first == again
    assert [r.id for r in first] != [r.id for r in other]
    assert len({r.meta["expression"] for r in first}) == 200
    for record in first:
        assert record.reference == str(evaluate(record.meta["expression"]))


def test_non_unique_sampling_may_repeat():
    # level 1 with operands <= 2 has only a handful of problems: 50 draws must repeat.
    task = ArithmeticTask(levels=(1,), max_operand=2, max_value=4, heldout_percent=50)
    records = sample_records(task, "train", 50, seed=0, unique=False)
    assert len(records) == 50
    assert len({r.id for r in records}) < 50


@pytest.mark.parametrize("levels", [(1,), (2, 4), (6,)])
def test_levels_respected(levels):
    records = arithmetic_records("train", 100, seed=1, levels=list(levels))
    assert {r.meta["level"] for r in records} <= set(levels)
    assert all(level_of(r.meta["expression"]) == r.meta["level"] for r in records)
    if len(levels) > 1:
        assert {r.meta["level"] for r in records} == set(levels)  # uniform draws reach every level


def test_more_unique_problems_than_exist_raises():
    # level 1, operands 1..2, max_value 2: "1+1", "1-1", "2-1", "2-2", "1+1"... far fewer than 100
    task = ArithmeticTask(levels=(1,), max_operand=2, max_value=2, heldout_percent=50)
    with pytest.raises(ValueError, match="distinct train problems"):
        sample_records(task, "train", 100, seed=0)


def test_unknown_split_raises():
    with pytest.raises(ValueError, match="split must be one of"):
        sample_records(ArithmeticTask(), "test", 5, seed=0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(levels=()), "levels"),
        (dict(levels=(0, 1)), "levels"),
        (dict(max_operand=0), "max_operand"),
        (dict(max_operand=9, max_value=5), "max_value"),
        (dict(heldout_percent=0), "heldout_percent"),
        (dict(heldout_percent=100), "heldout_percent"),
    ],
)
def test_task_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ArithmeticTask(**kwargs)


def test_task_accepts_yaml_lists():
    assert ArithmeticTask(levels=[1, 2]).levels == (1, 2)
