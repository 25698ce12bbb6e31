"""The second built-in task: find the missing operand of an arithmetic chain, where checking beats solving.

A problem is an arithmetic chain of the first built-in task (``tasks/arithmetic.py``) with one
operand replaced by ``?`` and its value given:

    prompt:      Q:4+?-6=5\nA:
    completion:  4+7-6=11-6=5\nAns:7

Solving means inverting the chain in one's head (? = 5 + 6 - 4). Checking a guess means running
the chain forwards, the computation the worked solution writes out anyway: its last value either is
the given result or it is not, and by how much tells the fix. A first attempt may therefore carry
an inline check (the verifier scores the *last* ``Ans:`` line)::

    4+6-6=10-6=4\nAns:6\nCheck:6+5-4=11-4=7\n4+7-6=11-6=5\nAns:7

The check line ``guess + result - value`` (``guess + value - result`` when the hidden operand is
subtracted) moves the guess by the miss, worked one operation at a time like every chain here;
then the new guess's chain confirms it. A right attempt's check keeps it (``7+5-5=12-5=7``).

The correction prompt of this task ends exactly where an inline check starts
(``{problem}{attempt}\nCheck:``), so a revision trained in the correction stream is the same token
sequence as the check of a first attempt: the route from correction to first attempts that the
arithmetic task lacks (docs/method.md).

Splits are disjoint by the *full* chain (``arithmetic.split_of``): the problems that hide
different operands of one chain are all in the same split, so no held-out problem shares its
worked solution with a training problem. Answers are single digits 1..max_operand.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from cipo.tasks.arithmetic import (
    ANSWER_PREFIX,
    SPLITS,
    draw_records,
    evaluate,
    random_expression,
    render_expression,
    solution_steps,
    split_of,
    tokenize_expression,
)
from cipo.types import Record

MISSING = "?"
CHECK = "Check:"
CORRECTION_TEMPLATE = "{problem}{attempt}\n" + CHECK
VERDICT_TEMPLATE = "{problem}{attempt}\nThat answer is {verdict}. " + CHECK


@dataclass(frozen=True)
class MissingOperandTask:
    """Generator settings; ``levels`` are numbers of operations (>= 1: a chain needs an operation)."""

    levels: tuple[int, ...] = (1, 2, 3, 4)
    max_operand: int = 9
    max_value: int = 20
    heldout_percent: int = 10

    def __post_init__(self) -> None:
        object.__setattr__(self, "levels", tuple(int(level) for level in self.levels))  # YAML gives lists
        if not self.levels or any(level < 1 for level in self.levels):
            raise ValueError(f"levels must be a non-empty list of integers >= 1, got {self.levels}")
        if not 1 <= self.max_operand <= 9:
            raise ValueError(f"max_operand must be in [1, 9] (answers are single digits), got {self.max_operand}")
        if self.max_value < self.max_operand:
            raise ValueError(f"max_value ({self.max_value}) must be >= max_operand ({self.max_operand})")
        if not 0 < self.heldout_percent < 100:
            raise ValueError(f"heldout_percent must be in (0, 100), got {self.heldout_percent}")


def hide_operand(expression: str, position: int) -> str:
    """'4+7-6', 1 -> '4+?-6': operand ``position`` (0-based) replaced by ``?``."""
    numbers, ops = tokenize_expression(expression)
    if not 0 <= position < len(numbers):
        raise ValueError(f"position must be in [0, {len(numbers) - 1}] for {expression!r}, got {position}")
    parts = [MISSING if index == position else str(number) for index, number in enumerate(numbers)]
    return parts[0] + "".join(f"{op}{part}" for op, part in zip(ops, parts[1:]))


def substitute(expression: str, position: int, value: int) -> str:
    """The chain with operand ``position`` set to ``value``."""
    numbers, ops = tokenize_expression(expression)
    numbers[position] = value
    return render_expression(numbers, ops)


def render_prompt(expression: str, position: int) -> str:
    return f"Q:{hide_operand(expression, position)}={solution_steps(expression)[-1]}\nA:"


def chain_text(expression: str, position: int, guess: int) -> str:
    """A worked attempt with operand ``position`` guessed as ``guess``: its chain, then ``Ans:<guess>``."""
    return "=".join(solution_steps(substitute(expression, position, guess))) + f"\n{ANSWER_PREFIX}{guess}"


def solution(expression: str, position: int) -> str:
    return chain_text(expression, position, tokenize_expression(expression)[0][position])


def answer_of(expression: str, position: int) -> int:
    return tokenize_expression(expression)[0][position]


def check_line(expression: str, position: int, guess: int) -> str:
    """``guess+result-value=..=new`` (``guess+value-result`` for a subtracted operand), worked step by
    step, where ``value`` is where the guess's chain ends: ``new`` is the answer."""
    numbers, ops = tokenize_expression(expression)
    target, value = evaluate(expression), evaluate(substitute(expression, position, guess))
    added = position == 0 or ops[position - 1] == "+"
    first, second = (target, value) if added else (value, target)
    return "=".join(solution_steps(f"{guess}+{first}-{second}"))


def revision(expression: str, position: int, previous_guess: int | None) -> str:
    """What follows ``Check:``: the check line of the previous guess (none if the attempt has no
    readable answer), then the worked solution."""
    line = "" if previous_guess is None else check_line(expression, position, previous_guess)
    return f"{line}\n{solution(expression, position)}"


def with_inline_check(first_attempt: str, revised: str) -> str:
    """A first attempt that checks itself: the attempt, ``Check:``, the revision (the last answer counts)."""
    return f"{first_attempt}\n{CHECK}{revised}"


def guess_of(attempt: str) -> int | None:
    """The integer after the attempt's last ``Ans:`` line, None if there is none."""
    answer = None
    for line in attempt.splitlines():
        if line.startswith(ANSWER_PREFIX):
            answer = line[len(ANSWER_PREFIX) :].strip()
    try:
        return None if answer is None else int(answer)
    except ValueError:
        return None


def level_of(expression: str) -> int:
    return len(tokenize_expression(expression)[1])


def make_record(expression: str, position: int, split: str) -> Record:
    problem = hide_operand(expression, position)
    return Record(
        id=f"operand-{split}-{problem}={solution_steps(expression)[-1]}",
        prompt=render_prompt(expression, position),
        reference=str(answer_of(expression, position)),
        meta={"level": level_of(expression), "expression": expression, "position": position, "split": split},
    )


def random_problem(rng: random.Random, task: MissingOperandTask) -> tuple[str, int]:
    """(full chain, hidden position), the position uniform over the chain's operands."""
    level = rng.choice(task.levels)
    expression = random_expression(rng, level, task.max_operand, task.max_value)
    return expression, rng.randrange(level + 1)


def sample_records(
    task: MissingOperandTask, split: str, num_records: int, seed: int, unique: bool = True
) -> list[Record]:
    """``num_records`` problems of ``split`` (distinct with ``unique``), deterministic in ``seed``."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")

    def draw(rng: random.Random) -> Record | None:
        expression, position = random_problem(rng, task)
        return make_record(expression, position, split) if split_of(expression, task.heldout_percent) == split else None

    what = f"{split} problems for levels {task.levels}"
    return draw_records(draw, random.Random(f"operand-{seed}-{split}"), num_records, unique, what)


def missing_operand_records(
    split: str,
    num_records: int,
    seed: int = 0,
    levels: tuple[int, ...] | list[int] = (1, 2, 3, 4),
    max_operand: int = 9,
    max_value: int = 20,
    heldout_percent: int = 10,
) -> list[Record]:
    """Config-friendly entry point (``conf/data/missing_operand.yaml``)."""
    task = MissingOperandTask(tuple(levels), max_operand, max_value, heldout_percent)
    return sample_records(task, split, num_records, seed)
