"""The data sets shipped in PyPI packages load offline, with the counts the configs promise."""

from __future__ import annotations

import json

import pytest

from cipo.data.errors import DataError
from cipo.data.packaged import packaged_rows
from cipo.data.records import load_records


def test_humaneval_rows_and_records():
    rows = list(packaged_rows("humaneval"))
    assert len(rows) == 164 and rows[0].location == "humaneval row 1"
    assert set(rows[0].data) == {"task_id", "prompt", "canonical_solution", "test", "entry_point"}
    records = load_records(
        packaged="humaneval", fields={"prompt": "prompt", "id": "task_id"}, reference={"kind": "code_function"}
    )
    assert len(records) == 164 and records[0].id == "HumanEval/0"
    reference = json.loads(records[0].reference)
    assert reference["kind"] == "function" and reference["entry_point"] == "has_close_elements"
    # the canonical solution passes the packed test, the way a function-style verifier runs it
    namespace: dict = {}
    exec(reference["prompt"] + rows[0].data["canonical_solution"] + "\n" + reference["test"], namespace)
    namespace["check"](namespace[reference["entry_point"]])


def test_champ_numeric_subset():
    rows = list(packaged_rows("champ"))
    assert len(rows) == 270
    numeric = load_records(packaged="champ", where={"numeric": True}, fields={"prompt": "problem", "id": "id"})
    assert len(numeric) == 79
    assert all(r.reference.lstrip("-").replace(".", "", 1).isdigit() for r in numeric)
    assert any(r.id == "P_Combinatorics_1" and r.reference == "239" for r in numeric)


def test_unknown_packaged_set():
    with pytest.raises(DataError, match=r"packaged='mbpp' is not a packaged data set; choose one of \['champ'"):
        list(packaged_rows("mbpp"))
