"""The built-in verifiable task: multi-step integer arithmetic chains with worked solutions.

A problem is a chain of single-digit operands joined by ``+`` and ``-`` whose running value
stays inside ``[0, max_value]``. Difficulty (the ``level``) is the number of operations.

Format (our choice, designed for a tiny character-level model to learn on a CPU):

    prompt:      Q:4+3+4-6\\nA:
    completion:  4+3+4-6=7+4-6=11-6=5\\nAns:5

Each step rewrites the *remaining* expression with its first operation done. That keeps the
two operands of every step right next to the preceding ``=`` sign: a small model only has to
copy a contiguous suffix and add two adjacent numbers, instead of fetching the k-th operand
from the question (the failure mode the prototype measured in
``shared/notes/builtin-task-prototype.md``).

Splits are disjoint by construction: a problem belongs to the held-out split iff a stable hash
of its expression falls below ``heldout_percent``, so any generator, seed or level produces
the same split for the same problem.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass

from cipo.types import Record

SPLITS = ("train", "heldout")
ANSWER_PREFIX = "Ans:"


@dataclass(frozen=True)
class ArithmeticTask:
    """Generator settings. ``levels`` are the numbers of operations to draw from (uniformly)."""

    levels: tuple[int, ...] = (1, 2, 3, 4, 5)
    max_operand: int = 9
    max_value: int = 30
    heldout_percent: int = 10

    def __post_init__(self) -> None:
        object.__setattr__(self, "levels", tuple(int(level) for level in self.levels))  # YAML gives lists
        if not self.levels or any(level < 1 for level in self.levels):
            raise ValueError(f"levels must be a non-empty list of integers >= 1, got {self.levels}")
        if self.max_operand < 1:
            raise ValueError(f"max_operand must be >= 1, got {self.max_operand}")
        if self.max_value < self.max_operand:
            raise ValueError(f"max_value ({self.max_value}) must be >= max_operand ({self.max_operand})")
        if not 0 < self.heldout_percent < 100:
            raise ValueError(f"heldout_percent must be in (0, 100), got {self.heldout_percent}")


def split_of(expression: str, heldout_percent: int) -> str:
    """'heldout' or 'train', from a hash that is stable across Python runs and platforms."""
    bucket = int.from_bytes(hashlib.sha1(expression.encode()).digest()[:4], "big") % 100
    return "heldout" if bucket < heldout_percent else "train"


def random_expression(rng: random.Random, num_ops: int, max_operand: int, max_value: int) -> str:
    """A chain of ``num_ops`` operations whose running value stays in ``[0, max_value]``."""
    value = rng.randint(1, max_operand)
    parts = [str(value)]
    for _ in range(num_ops):
        operand = rng.randint(1, max_operand)
        can_add, can_sub = value + operand <= max_value, value - operand >= 0
        if can_add and (not can_sub or rng.random() < 0.5):
            value, op = value + operand, "+"
        elif can_sub:
            value, op = value - operand, "-"
        else:  # neither fits: use the largest subtractable operand
            operand = min(value, max_operand)
            value, op = value - operand, "-"
        parts.append(f"{op}{operand}")
    return "".join(parts)


def tokenize_expression(expression: str) -> tuple[list[int], list[str]]:
    """'4+3-6' -> ([4, 3, 6], ['+', '-'])."""
    numbers, ops, current = [], [], ""
    for char in expression:
        if char in "+-" and current:
            numbers.append(int(current))
            ops.append(char)
            current = ""
        else:
            current += char
    numbers.append(int(current))
    return numbers, ops


def render_expression(numbers: list[int], ops: list[str]) -> str:
    return str(numbers[0]) + "".join(f"{op}{n}" for op, n in zip(ops, numbers[1:]))


def solution_steps(expression: str) -> list[str]:
    """The worked chain: every intermediate expression, the first being the problem itself."""
    numbers, ops = tokenize_expression(expression)
    steps = [render_expression(numbers, ops)]
    while ops:
        op = ops.pop(0)
        first, second = numbers.pop(0), numbers.pop(0)
        numbers.insert(0, first + second if op == "+" else first - second)
        steps.append(render_expression(numbers, ops))
    return steps


def evaluate(expression: str) -> int:
    return int(solution_steps(expression)[-1])


def render_prompt(expression: str) -> str:
    return f"Q:{expression}\nA:"


def render_solution(steps: list[str]) -> str:
    return "=".join(steps) + f"\n{ANSWER_PREFIX}{steps[-1]}"


def solution(expression: str) -> str:
    return render_solution(solution_steps(expression))


def level_of(expression: str) -> int:
    return len(tokenize_expression(expression)[1])


def make_record(expression: str, split: str) -> Record:
    return Record(
        id=f"arith-{split}-{expression}",
        prompt=render_prompt(expression),
        reference=str(evaluate(expression)),
        meta={"level": level_of(expression), "expression": expression, "split": split},
    )


def sample_records(task: ArithmeticTask, split: str, num_records: int, seed: int, unique: bool = True) -> list[Record]:
    """``num_records`` problems of ``split``, deterministic in ``seed``.

    With ``unique`` the records are distinct problems; asking for more than the split holds
    raises instead of looping forever.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")

    def draw(rng: random.Random) -> Record | None:
        expression = random_expression(rng, rng.choice(task.levels), task.max_operand, task.max_value)
        return make_record(expression, split) if split_of(expression, task.heldout_percent) == split else None

    what = f"{split} problems for levels {task.levels}"
    return draw_records(draw, random.Random(f"{seed}-{split}"), num_records, unique, what)


def draw_records(
    draw: Callable[[random.Random], Record | None], rng: random.Random, num_records: int, unique: bool, what: str
) -> list[Record]:
    """``num_records`` records from ``draw`` (None: rejected, e.g. a problem of the other split),
    distinct by id with ``unique``; asking for more than exist raises instead of looping forever."""
    records: list[Record] = []
    seen: set[str] = set()
    attempts = 0
    while len(records) < num_records:
        attempts += 1
        if attempts > 200 * num_records + 10_000:
            raise ValueError(
                f"could only find {len(records)} distinct {what} out of {num_records} requested; "
                "ask for fewer or add levels"
            )
        record = draw(rng)
        if record is None or (unique and record.id in seen):
            continue
        seen.add(record.id)
        records.append(record)
    return records


def arithmetic_records(
    split: str,
    num_records: int,
    seed: int = 0,
    levels: tuple[int, ...] | list[int] = (1, 2, 3, 4, 5),
    max_operand: int = 9,
    max_value: int = 30,
    heldout_percent: int = 10,
) -> list[Record]:
    """Config-friendly entry point (``conf/data/arithmetic.yaml``)."""
    task = ArithmeticTask(tuple(levels), max_operand, max_value, heldout_percent)
    return sample_records(task, split, num_records, seed)
