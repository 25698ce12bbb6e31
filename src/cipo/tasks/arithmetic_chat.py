"""The built-in arithmetic task for chat models: the same problems, asked in words.

    problem (the user turn; the chat template and ``data.prompt.instruction`` wrap it):
        What is 4 plus 3 minus 6?
    answer: ``\\boxed{1}`` anywhere in the reply, scored by the math verifier.

The expressions, levels (number of operations) and the train / held-out split are those of
``cipo.tasks.arithmetic`` (a problem is held out iff the hash of its expression says so, the
same in both tasks). What changes is the wording and the answer format: a chat model reads a
question, not ``Q:4+3-6\\nA:``, and is asked for a boxed final number, not a worked chain.

``conf/data/arithmetic_chat.yaml`` chooses levels where SmolLM2-135M-Instruct's first attempts
are mixed (right on some samples, wrong on others); the measurements are in docs/smollm2.md.
"""

from __future__ import annotations

from dataclasses import replace

from cipo.tasks.arithmetic import ArithmeticTask, sample_records, tokenize_expression
from cipo.types import Record

OPERATION_WORDS = {"+": "plus", "-": "minus"}


def word_problem(expression: str) -> str:
    """'4+3-6' -> 'What is 4 plus 3 minus 6?'."""
    numbers, ops = tokenize_expression(expression)
    spoken = str(numbers[0]) + "".join(f" {OPERATION_WORDS[op]} {number}" for op, number in zip(ops, numbers[1:]))
    return f"What is {spoken}?"


def as_chat_record(record: Record) -> Record:
    expression = record.meta["expression"]
    return replace(record, id=record.id.replace("arith-", "arith-chat-", 1), prompt=word_problem(expression))


def arithmetic_chat_records(
    split: str,
    num_records: int,
    seed: int = 0,
    levels: tuple[int, ...] | list[int] = (1, 2),
    max_operand: int = 9,
    max_value: int = 20,
    heldout_percent: int = 10,
) -> list[Record]:
    """Config-friendly entry point (``conf/data/arithmetic_chat.yaml``): raw problem texts that the
    data module renders with the policy's chat template."""
    task = ArithmeticTask(tuple(levels), max_operand, max_value, heldout_percent)
    return [as_chat_record(record) for record in sample_records(task, split, num_records, seed)]
