"""RowError messages: location, field, problem and fix in one sentence."""

from cipo.data.errors import DataError, RowError


def test_row_error_reads_as_one_sentence():
    err = RowError("answer", "is missing", "set reference.column")
    assert str(err) == "field 'answer' is missing; set reference.column"
    assert err.describe("d.jsonl line 3") == "d.jsonl line 3: field 'answer' is missing; set reference.column"
    assert RowError(None, "is not valid JSON").describe("x line 1") == "x line 1: is not valid JSON"
    assert isinstance(err, ValueError) and issubclass(DataError, ValueError)  # callers may catch ValueError
