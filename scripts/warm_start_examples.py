"""Supervised examples for the built-in policies' warm start (``build_builtin_policy.py``), per task.

A ``Curriculum`` knows one task's problems, prompts, worked solutions and *realistic mistakes*;
``ExampleStream`` mixes its examples into one deterministic stream of (context, target) pairs,
the loss falling on the target only:

- plain:        ``<prompt>`` -> worked solution;
- inline check  (tasks with one, ``inline_check_share`` of the plain examples): ``<prompt>`` -> a
  wrong first attempt, ``\\nCheck:<revision>``. The wrong guess itself is not trained, the honest
  chain after it is (so the model learns to evaluate what it wrote, not to end every chain at the
  given result, which the right solutions alone would teach); a slipped or cut-off attempt is
  context only. A target is then a tuple of (text, trained) segments;
- correction:   ``<the correction template filled with the problem and a previous attempt>`` ->
  revision (arithmetic: the worked solution; missing operand: the check line of the previous
  guess, then the worked solution). Previous attempts are right half of the time and otherwise wrong in one of
  the ways the policy itself is wrong; later in training half of them are the model's own
  samples, so the correction format sees the error distribution that RL will hand it.

The arithmetic stream draws from its random generator exactly as before the second task existed,
so the shipped arithmetic policy still rebuilds bit for bit.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from cipo.tasks import arithmetic, missing_operand
from cipo.types import Record


def corrupted_solution(expression: str, rng: random.Random) -> str:
    """An arithmetic worked solution with one realistic mistake (see the module docstring)."""
    numbers, ops = arithmetic.tokenize_expression(expression)
    kind = rng.choice(("slip", "slip", "copy", "answer", "truncate"))
    chain = [arithmetic.render_expression(numbers, ops)]
    numbers, ops = list(numbers), list(ops)
    num_steps = len(ops)
    if kind == "copy" and num_steps == 1:
        kind = "slip"  # a one-step chain has no operand left to mis-copy
    # a mis-copy needs an operand still to come, so it never happens at the last step
    error_step = rng.randrange(num_steps - 1) if kind == "copy" else rng.randrange(num_steps)
    for step in range(num_steps):
        op = ops.pop(0)
        first, second = numbers.pop(0), numbers.pop(0)
        value = first + second if op == "+" else first - second
        if kind == "slip" and step == error_step:
            value = max(0, value + rng.choice((-2, -1, 1, 2))) or value + 1
        numbers.insert(0, value)
        if kind == "copy" and step == error_step and len(numbers) > 1:
            index = rng.randrange(1, len(numbers))
            numbers[index] = rng.choice([d for d in range(1, 10) if d != numbers[index]])
        chain.append(arithmetic.render_expression(numbers, ops))
    answer = int(chain[-1])
    if kind == "answer":
        answer = max(0, answer + rng.choice((-2, -1, 1, 2))) or answer + 1
    text = "=".join(chain) + f"\nAns:{answer}"
    if kind == "truncate":
        text = text[: rng.randrange(1, max(2, len(text) - 4))]
    return text


def slipped_chain(expression: str, rng: random.Random) -> str:
    """The worked chain of ``expression`` with one intermediate value off by one or two (carried on)."""
    numbers, ops = arithmetic.tokenize_expression(expression)
    chain = [arithmetic.render_expression(numbers, ops)]
    error_step = rng.randrange(len(ops))
    for step in range(len(ops)):
        op = ops.pop(0)
        first, second = numbers.pop(0), numbers.pop(0)
        value = first + second if op == "+" else first - second
        numbers.insert(0, value + (rng.choice((-2, -1, 1, 2)) if step == error_step else 0))
        chain.append(arithmetic.render_expression(numbers, ops))
    return "=".join(chain)


def wrong_guess_attempt(expression: str, position: int, rng: random.Random, max_operand: int = 9) -> str:
    """A missing-operand attempt with a wrong guess: mostly a faithful chain (so its last value
    misses the given result), sometimes with an arithmetic slip, sometimes cut off."""
    answer = missing_operand.answer_of(expression, position)
    guess = rng.choice([d for d in range(1, max_operand + 1) if d != answer])
    kind = rng.choice(("faithful", "faithful", "faithful", "slip", "truncate"))
    text = missing_operand.chain_text(expression, position, guess)
    if kind == "slip":
        text = slipped_chain(missing_operand.substitute(expression, position, guess), rng) + f"\nAns:{guess}"
    elif kind == "truncate":
        text = text[: rng.randrange(1, max(2, len(text) - 4))]
    return text


@dataclass(frozen=True)
class ArithmeticCurriculum:
    """The first built-in task (``tasks/arithmetic.py``); a problem is its expression."""

    task: arithmetic.ArithmeticTask
    template: str = "{problem}{attempt}\nCheck:\nA:"
    inline_check_share: float = 0.0  # no inline checks: the stream draws exactly as it always did

    def train_problem(self, rng: random.Random) -> Any:
        while True:
            expression = arithmetic.random_expression(
                rng, rng.choice(self.task.levels), self.task.max_operand, self.task.max_value
            )
            if arithmetic.split_of(expression, self.task.heldout_percent) == "train":
                return expression

    def prompt(self, problem: Any) -> str:
        return arithmetic.render_prompt(problem)

    def solution(self, problem: Any) -> str:
        return arithmetic.solution(problem)

    def corrupted(self, problem: Any, rng: random.Random) -> str:
        return corrupted_solution(problem, rng)

    def revision(self, problem: Any, attempt: str) -> str:
        return arithmetic.solution(problem)

    def records(self, split: str, num_records: int, seed: int, unique: bool = True) -> list[Record]:
        return arithmetic.sample_records(self.task, split, num_records, seed, unique=unique)

    def problem_of(self, record: Record) -> Any:
        return record.meta["expression"]

    def sample_text(self) -> str:
        """A text with every character the task's examples use (the tokenizer round-trip check)."""
        return self.template.format(problem=self.prompt("4+3-6"), attempt=self.solution("4+3-6"))


@dataclass(frozen=True)
class MissingOperandCurriculum:
    """The second built-in task (``tasks/missing_operand.py``); a problem is (chain, hidden position)."""

    task: missing_operand.MissingOperandTask
    template: str = missing_operand.CORRECTION_TEMPLATE
    inline_check_share: float = 0.4

    def train_problem(self, rng: random.Random) -> Any:
        while True:
            expression, position = missing_operand.random_problem(rng, self.task)
            if arithmetic.split_of(expression, self.task.heldout_percent) == "train":
                return expression, position

    def prompt(self, problem: Any) -> str:
        return missing_operand.render_prompt(*problem)

    def solution(self, problem: Any) -> str:
        return missing_operand.solution(*problem)

    def corrupted(self, problem: Any, rng: random.Random) -> str:
        return wrong_guess_attempt(*problem, rng, self.task.max_operand)

    def revision(self, problem: Any, attempt: str) -> str:
        return missing_operand.revision(*problem, missing_operand.guess_of(attempt))

    def inline_example(self, problem: Any, rng: random.Random) -> tuple[str, Any]:
        """(context, target segments) of a wrong first attempt that checks itself."""
        expression, position = problem
        wrong = self.corrupted(problem, rng)
        check = "\n" + missing_operand.CHECK + self.revision(problem, wrong)
        guess = missing_operand.guess_of(wrong)
        if guess is None or wrong != missing_operand.chain_text(expression, position, guess):
            return self.prompt(problem) + wrong, check  # a slip or a cut-off attempt: context only
        head = missing_operand.hide_operand(expression, position).split(missing_operand.MISSING)[0]
        rest = wrong[len(head) + len(str(guess)) :]
        return self.prompt(problem), ((head, True), (str(guess), False), (rest, True), (check, True))

    def records(self, split: str, num_records: int, seed: int, unique: bool = True) -> list[Record]:
        return missing_operand.sample_records(self.task, split, num_records, seed, unique=unique)

    def problem_of(self, record: Record) -> Any:
        return record.meta["expression"], record.meta["position"]

    def sample_text(self) -> str:
        attempt = missing_operand.with_inline_check(
            missing_operand.chain_text("4+7-6", 1, 6), missing_operand.revision("4+7-6", 1, 6)
        )
        return self.template.format(problem=self.prompt(("4+7-6", 1)), attempt=attempt)


CURRICULA = {"arithmetic": ArithmeticCurriculum, "missing_operand": MissingOperandCurriculum}
TASKS = {"arithmetic": arithmetic.ArithmeticTask, "missing_operand": missing_operand.MissingOperandTask}


class ExampleStream:
    """Endless (context, target) pairs from the train split, deterministic in its seed."""

    def __init__(self, curriculum, seed: int, correction_share: float):
        self.curriculum, self.rng, self.correction_share = curriculum, random.Random(seed), correction_share
        self.own_attempts: list[tuple[Any, str]] = []  # (problem, the model's attempt)

    def next(self) -> tuple[str, str]:
        curriculum, rng = self.curriculum, self.rng
        if rng.random() >= self.correction_share:
            problem = curriculum.train_problem(rng)
            # the draw happens only for tasks with inline checks, so arithmetic's stream is unchanged
            if curriculum.inline_check_share > 0 and rng.random() < curriculum.inline_check_share:
                return curriculum.inline_example(problem, rng)
            return curriculum.prompt(problem), curriculum.solution(problem)
        if self.own_attempts and rng.random() < 0.5:
            problem, attempt = rng.choice(self.own_attempts)
        else:
            problem = curriculum.train_problem(rng)
            attempt = curriculum.solution(problem) if rng.random() < 0.5 else curriculum.corrupted(problem, rng)
        context = curriculum.template.format(problem=curriculum.prompt(problem), attempt=attempt)
        return context, curriculum.revision(problem, attempt)
