"""Verifiers: ``(completions, references) -> list[VerifierResult]``, one result per pair."""

from typing import Protocol

from cipo.types import VerifierResult


class Verifier(Protocol):
    def __call__(self, completions: list[str], references: list[str]) -> list[VerifierResult]: ...
