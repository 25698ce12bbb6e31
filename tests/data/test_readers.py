"""read_rows: JSONL / JSON / Parquet files the tests write, a monkeypatched Hub loader, locations."""

from __future__ import annotations

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cipo.data.errors import DataError
from cipo.data.readers import read_rows


def write_jsonl(path, lines):
    path.write_text("".join(line + "\n" for line in lines))
    return path


def test_jsonl_rows_carry_physical_line_numbers(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", ['{"q": "1"}', "", '{"q": "2"}', "{oops", "[1, 2]"])
    rows = list(read_rows(path=str(path)))
    assert [r.location for r in rows] == [f"{path} line {n}" for n in (1, 3, 4, 5)]
    assert [r.data for r in rows[:2]] == [{"q": "1"}, {"q": "2"}]
    assert rows[2].error.startswith("is not valid JSON") and rows[3].error == "is a JSON list, expected an object {...}"


def test_gzipped_jsonl_and_several_files_in_order(tmp_path):
    with gzip.open(tmp_path / "b.jsonl.gz", "wt") as handle:
        handle.write('{"q": "gz"}\n')
    first = write_jsonl(tmp_path / "a.jsonl", ['{"q": "plain"}'])
    rows = list(read_rows(path=[str(first), str(tmp_path / "b.jsonl.gz")]))
    assert [r.data["q"] for r in rows] == ["plain", "gz"]
    assert rows[1].location == f"{tmp_path / 'b.jsonl.gz'} line 1"


def test_json_list_and_split_object(tmp_path):
    (tmp_path / "list.json").write_text(json.dumps([{"q": "a"}, 3]))
    rows = list(read_rows(path=str(tmp_path / "list.json")))
    assert rows[0].data == {"q": "a"} and rows[0].location.endswith("list.json item 1")
    assert rows[1].error == "is a JSON int, expected an object {...}"

    (tmp_path / "splits.json").write_text(json.dumps({"train": [{"q": "t"}], "test": [{"q": "x"}, {"q": "y"}]}))
    assert [r.data["q"] for r in read_rows(path=str(tmp_path / "splits.json"), split="test")] == ["x", "y"]
    with pytest.raises(DataError, match=r"splits \['test', 'train'\]; choose one with split=<name>"):
        list(read_rows(path=str(tmp_path / "splits.json")))
    with pytest.raises(DataError, match=r"split='dev' is not one of them"):
        list(read_rows(path=str(tmp_path / "splits.json"), split="dev"))


def test_broken_json_document_names_the_file_and_position(tmp_path):
    (tmp_path / "bad.json").write_text('[{"q": 1},\n {"q": }]')
    with pytest.raises(DataError, match=r"bad\.json: not valid JSON .* line 2 column"):
        list(read_rows(path=str(tmp_path / "bad.json")))


def test_parquet_rows_keep_nested_columns(tmp_path):
    table = pa.table({"q": ["a", "b"], "rm": [{"gt": "1"}, {"gt": "2"}], "tests": [["x"], []]})
    pq.write_table(table, tmp_path / "d.parquet")
    rows = list(read_rows(path=str(tmp_path / "d.parquet")))
    assert rows[1].data == {"q": "b", "rm": {"gt": "2"}, "tests": []}
    assert rows[1].location == f"{tmp_path / 'd.parquet'} row 2"
    (tmp_path / "junk.parquet").write_text("not parquet")
    with pytest.raises(DataError, match=r"junk\.parquet: not a readable Parquet file"):
        list(read_rows(path=str(tmp_path / "junk.parquet")))


def test_missing_file_and_unknown_type_say_what_to_do(tmp_path):
    with pytest.raises(DataError, match=r"nope\.jsonl: no such file\. Point the path at a local copy"):
        list(read_rows(path=str(tmp_path / "nope.jsonl")))
    with pytest.raises(DataError, match=r"data\.csv: unsupported file type; use one of .jsonl"):
        list(read_rows(path=str(tmp_path / "data.csv")))


@pytest.mark.parametrize("kwargs", [{}, {"path": "a.jsonl", "hub": "x/y"}, {"hub": "x/y", "packaged": "champ"}])
def test_exactly_one_source(kwargs):
    with pytest.raises(DataError, match="set exactly one of path"):
        list(read_rows(**kwargs))


def test_hub_rows_through_datasets_load_dataset(monkeypatch):
    import datasets

    calls = []

    def fake_load_dataset(name, subset, split):
        calls.append((name, subset, split))
        return [{"question": "q1", "answer": "1"}, {"question": "q2", "answer": "2"}]

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    rows = list(read_rows(hub="openai/gsm8k", subset="main", split="test"))
    assert calls == [("openai/gsm8k", "main", "test")]
    assert [r.location for r in rows] == ["openai/gsm8k[test] row 1", "openai/gsm8k[test] row 2"]
    assert rows[1].data == {"question": "q2", "answer": "2"}


def test_hub_failure_suggests_local_files(monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataError, match=r"hub='a/b' .* could not be loaded: no network\. Without network access"):
        list(read_rows(hub="a/b", split="train"))
    with pytest.raises(DataError, match=r"hub='a/b': set split"):
        list(read_rows(hub="a/b"))
