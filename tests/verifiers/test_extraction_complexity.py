"""Answer and program extraction run in the trainer with no deadline, on whatever the policy wrote:
they must take time linear in the text. Degenerate runs (newlines, spaces, fences, "answer is")
are what an RL policy produces when it collapses.

Checked by CPU time (not wall-clock), best of three: growing the text 8x may grow the time about
8x (linear), never about 64x (quadratic); and the issue's case, 128k newlines, stays far below
a bound no linear scan comes near (a quadratic one took 30 s)."""

from __future__ import annotations

import time

import pytest

from cipo.code_reference import extract_program
from cipo.verifiers.math_answer import compile_fallbacks, extract_answer, strip_math_delimiters
from cipo.verifiers.math_rules import decimal_value, normalize, plain_integer, unit_of

ALL_FALLBACKS = compile_fallbacks(["gsm8k", "answer_is", "last_number"])
SHAPES = {
    "newlines": lambda n: "\n" * n,
    "spaces": lambda n: "x" + " " * n + "y",
    "hashes": lambda n: "####" + " " * n + "\n",
    "answer_is": lambda n: "answer is " * (n // 10),
    "answer_spaces": lambda n: "answer is a" + " " * n + "b",
    "braces": lambda n: "\\boxed{" + "{" * n,
    "fences": lambda n: "```" + " " * n,
    "fence_lines": lambda n: "```python\n" * (n // 10),
    "backticks": lambda n: "`" * n,
    "numbers": lambda n: "1 " * (n // 2),
    "digits": lambda n: "1" * n + "x",
    "decimals": lambda n: "0." + "3" * n + "\\bar",
}
EXTRACTORS = {
    "answer": lambda text: extract_answer(text, ALL_FALLBACKS),
    "program": extract_program,
    "delimiters": strip_math_delimiters,
    "math_rules": lambda text: (normalize(text), unit_of(text), plain_integer(text), decimal_value(text)),
}


def cpu_seconds(work, text: str) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        work(text)
        best = min(best, time.process_time() - started)
    return best


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("extractor", sorted(EXTRACTORS))
def test_time_grows_linearly_with_the_text(extractor, shape):
    work, make = EXTRACTORS[extractor], SHAPES[shape]
    small, large = cpu_seconds(work, make(4_000)), cpu_seconds(work, make(32_000))
    # linear: about 8x; quadratic: about 64x. Below a millisecond the clock says little.
    assert large < 0.002 or large < 24 * max(small, 1e-4), (small, large)


def test_128k_newlines_are_no_problem():
    text = "Let me think.\n" + "\n" * 128_000
    assert cpu_seconds(lambda t: (EXTRACTORS["answer"](t), extract_program(t)), text) < 1.0
