"""Data files that are broken in ways a download or a careless export produces: each gives an
error naming the file and the line (or a counted skip with ``on_error: skip``), never a raw
Python error; text the tokenizer cannot take is caught at load with the record's id."""

from __future__ import annotations

import gzip
import json
import logging

import pytest

from cipo.data import datamodule
from cipo.data.datamodule import PromptDataModule, check_records
from cipo.data.errors import DataError
from cipo.data.readers import read_rows
from cipo.data.records import load_records
from cipo.types import Record

GOOD = '{"prompt": "1+1", "answer": "2"}'


def rows(path) -> list:
    return list(read_rows(path=str(path)))


def test_a_byte_that_is_not_utf8_names_the_line(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(
        GOOD.encode() + b"\n" + '{"prompt": "caf\xe9", "answer": "1"}'.encode("latin-1") + b"\n" + GOOD.encode()
    )
    first, bad, last = rows(path)
    assert first.error is None and last.error is None and bad.location == f"{path} line 2"
    assert "not UTF-8" in bad.error and "0xe9" in bad.error and "column 16" in bad.error
    with pytest.raises(DataError, match=r"latin1\.jsonl line 2: .*not UTF-8"):
        load_records(path=str(path), reference={"kind": "answer"})
    assert len(load_records(path=str(path), reference={"kind": "answer"}, on_error="skip")) == 2


def test_a_json_document_that_is_not_utf8_names_the_line(tmp_path):
    path = tmp_path / "doc.json"
    path.write_bytes(b'[\n{"prompt": "a"},\n{"prompt": "\xff"}\n]')
    with pytest.raises(DataError, match=r"doc\.json: not UTF-8 .*line 3"):
        rows(path)


@pytest.mark.parametrize("damage", ["truncated", "not_gzip", "corrupt"])
def test_a_broken_gzip_file_says_so_with_the_line_reached(tmp_path, damage):
    path = tmp_path / "data.jsonl.gz"
    whole = gzip.compress(("\n".join([GOOD] * 2000) + "\n").encode())
    data = {"truncated": whole[: len(whole) // 2], "not_gzip": b"plain text\n", "corrupt": whole[:40] + b"\x00" * 40}
    path.write_bytes(data[damage])
    with pytest.raises(DataError, match=r"data\.jsonl\.gz: .*(gzip|compressed).*line \d+"):
        rows(path)


def test_an_integer_beyond_pythons_digit_limit_is_a_row_error(tmp_path):
    path = tmp_path / "big.jsonl"
    path.write_text(GOOD + "\n" + '{"prompt": "p", "answer": ' + "7" * 5000 + "}\n")
    good, big = rows(path)
    assert big.location == f"{path} line 2" and "5000 digits" in big.error and "string" in big.error


def test_a_deeply_nested_line_is_a_row_error(tmp_path):
    path = tmp_path / "deep.jsonl"
    path.write_text('{"prompt": "p", "x": ' + "[" * 100_000 + "]" * 100_000 + "}\n" + GOOD + "\n")
    deep, good = rows(path)
    assert deep.location == f"{path} line 1" and "nested too deeply" in deep.error and good.error is None
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(DataError, match=r"deep\.json: .*nested too deeply"):
        rows(tmp_path / "deep.json")


def test_a_lone_surrogate_is_caught_at_load_with_the_record_id(tmp_path):
    path = tmp_path / "surrogate.jsonl"
    path.write_text(GOOD + "\n" + json.dumps({"prompt": "x \ud800 y", "answer": "1", "id": "q-7"}) + "\n")
    records = load_records(path=str(path), reference={"kind": "answer"}, fields={"id": "id"}, on_error="skip")
    assert [r.id for r in records] == ["q-7"]  # the first line has no id: skipped
    with pytest.raises(ValueError, match=r"data\.train: record 0 \(id 'q-7'\).*lone surrogate.*prompt.*character 2"):
        check_records(records, "data.train")
    attempt = Record("r", "fine", "1", meta={"attempt": "bad \udfff"})
    with pytest.raises(ValueError, match=r"id 'r'.*meta\['attempt'\]"):
        check_records([attempt], "data.heldout")


def test_an_empty_heldout_split_is_an_error_when_validation_is_on(caplog):
    module = PromptDataModule(
        train=lambda: [Record("a", "p", "1")],
        heldout=lambda: [],
        batch_size=1,
        correction_template="{x}",
        verdict_template="{x}",
    )
    module.read_sources()
    with pytest.raises(ValueError, match=r"data\.heldout produced no records.*validation\.every=5"):
        datamodule.require_heldout(module, validation_every=5)
    with caplog.at_level(logging.WARNING):
        datamodule.require_heldout(module, validation_every=0)  # no validation asked for: nothing to say
    assert not caplog.records
