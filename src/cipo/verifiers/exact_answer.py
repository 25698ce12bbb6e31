"""Exact-answer verifier for tasks whose completions end with a marked integer answer.

The last line that starts with the marker (``Ans:`` for the built-in task) is the final
answer. Statuses: ``ok`` (equal to the reference), ``wrong`` (an integer, not equal),
``no_answer`` (no marker at all, e.g. a generation cut off by the length limit) and
``malformed`` (a marker followed by something that is not an integer).
"""

from __future__ import annotations

import re

from cipo.types import VerifierResult, VerifyStatus

_INTEGER = re.compile(r"[+-]?\d+")


def extract_answer(completion: str, marker: str = "Ans:") -> str | None:
    """The text after the last ``marker`` at the start of a line, stripped; None if absent."""
    answer = None
    for line in completion.splitlines():
        if line.startswith(marker):
            answer = line[len(marker) :].strip()
    return answer


def verify_exact_integer(completion: str, reference: str, marker: str = "Ans:") -> VerifierResult:
    answer = extract_answer(completion, marker)
    if answer is None:
        return VerifierResult(False, 0.0, VerifyStatus.NO_ANSWER, f"no line starts with {marker!r}")
    if not _INTEGER.fullmatch(answer):
        return VerifierResult(False, 0.0, VerifyStatus.MALFORMED, f"answer {answer!r} is not an integer")
    if int(answer) == int(reference):
        return VerifierResult(True, 1.0, VerifyStatus.OK)
    # never the reference itself: a correction template with {feedback} would hand the model the answer
    return VerifierResult(False, 0.0, VerifyStatus.WRONG, f"answer {answer} is not equal to the reference")


class ExactIntegerVerifier:
    """Batch verifier (the ``Verifier`` protocol) for marked integer answers."""

    def __init__(self, marker: str = "Ans:") -> None:
        if not marker:
            raise ValueError("verifier.marker must be a non-empty string")
        self.marker = marker

    def __call__(self, completions: list[str], references: list[str]) -> list[VerifierResult]:
        return [verify_exact_integer(c, r, self.marker) for c, r in zip(completions, references, strict=True)]
