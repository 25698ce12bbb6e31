"""load_records on files the tests write: field mapping, errors naming file + line + field,
counted skips, filtering, hash split, subset selection, the Hub path."""

from __future__ import annotations

import json
import logging

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cipo.data.errors import DataError
from cipo.data.records import hash_split_of, load_records

ROWS = [{"question": f"What is {i} + {i}?", "answer": str(2 * i), "level": i % 3} for i in range(40)]


def jsonl(tmp_path, rows, name="d.jsonl"):
    path = tmp_path / name
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return str(path)


MATH = dict(fields={"prompt": "question", "meta": {"level": "level"}}, reference={"kind": "answer"})


@pytest.mark.parametrize("fmt", ["jsonl", "json", "parquet"])
def test_the_same_records_from_every_format(tmp_path, fmt):
    if fmt == "jsonl":
        path = jsonl(tmp_path, ROWS)
    elif fmt == "json":
        path = str(tmp_path / "d.json")
        (tmp_path / "d.json").write_text(json.dumps({"test": ROWS}))
    else:
        path = str(tmp_path / "d.parquet")
        pq.write_table(pa.Table.from_pylist(ROWS), path)
    records = load_records(path=path, split="test", name="toy", **MATH)
    assert len(records) == 40
    assert records[3].id == "toy-3" and records[3].prompt == "What is 3 + 3?" and records[3].reference == "6"
    assert records[3].meta == {"level": 0}


def test_ids_templates_patterns_and_nested_fields(tmp_path):
    rows = [
        {"uid": 7, "q": "Find x.", "extra": "Use {braces}.", "rm": {"gt": 5}},
        {"uid": "b", "q": "WRAP: Find y. :END", "extra": "-", "rm": {"gt": 6.0}},
    ]
    fields = {
        "prompt_template": "{q} {extra}",
        "id": "uid",
        "prompt_pattern": r"^(?:WRAP: )?(?P<problem>.*?)(?: :END)?$",
    }
    records = load_records(path=jsonl(tmp_path, rows), fields=fields, reference={"kind": "answer", "column": "rm.gt"})
    assert [(r.id, r.prompt, r.reference) for r in records] == [
        ("7", "Find x. Use {braces}.", "5"),
        ("b", "Find y. :END -", "6"),
    ]


@pytest.mark.parametrize(
    "row, fields, match",
    [
        (
            {"question": {"a": 1}, "answer": "1"},
            {"prompt": None, "prompt_template": "{question[0]}"},
            r"line 2: field 'prompt_template' cannot be filled from this row",
        ),
        ({"q": "x", "answer": "1"}, {}, r"line 2: field 'question' is missing \(the row has: answer, q\); set fields"),
        ({"question": 5, "answer": "1"}, {}, r"line 2: field 'question' is int 5, expected text"),
        ({"question": "   ", "answer": "1"}, {}, r"line 2: field 'question' is empty"),
        ({"question": "q", "answer": None}, {}, r"line 2: field 'answer' is null"),
        ({"question": "q", "answer": [1, 2]}, {}, r"line 2: field 'answer' holds 2 answers"),
        ({"question": "q", "answer": "1"}, {"meta": {"lvl": "level"}}, r"line 2: field 'level' is missing.*meta\.lvl"),
        ({"question": "q", "answer": "1"}, {"id": "uid"}, r"line 2: field 'uid' is missing.*set fields\.id"),
        ("{not json", {}, r"line 2: is not valid JSON"),
    ],
)
def test_each_bad_row_names_file_line_and_field(tmp_path, row, fields, match):
    path = jsonl(tmp_path, [{"question": "fine", "answer": "1", "uid": 1, "level": 1}, row])
    with pytest.raises(DataError, match=match) as info:
        load_records(path=path, fields={"prompt": "question", **fields}, reference={"kind": "answer"})
    assert str(info.value).startswith(f"{path} line 2: ")
    assert str(info.value).endswith("; or set on_error=skip to drop bad rows with a count")
    assert str(info.value).count("on_error") == 1  # the fix is said once


def test_parquet_errors_name_the_row(tmp_path):
    path = str(tmp_path / "d.parquet")
    pq.write_table(pa.Table.from_pylist([{"question": "ok", "answer": "1"}, {"question": "", "answer": "2"}]), path)
    with pytest.raises(DataError, match=rf"{path} row 2: field 'question' is empty"):
        load_records(path=path, **MATH | {"fields": {"prompt": "question"}})


def test_skip_mode_counts_and_reports_the_first_reasons(tmp_path, caplog):
    rows = ROWS[:6] + [{"question": "", "answer": "1"}, "{bad", {"question": "q", "answer": None}, {"x": 1}]
    path = jsonl(tmp_path, rows)
    with caplog.at_level(logging.WARNING, logger="cipo.data.records"):
        records = load_records(path=path, fields={"prompt": "question"}, on_error="skip", name="toy")
    assert len(records) == 6
    (message,) = [r.getMessage() for r in caplog.records]
    assert message.startswith("toy: skipped 4 of 10 rows (on_error=skip); first reasons: ")
    assert "line 7: field 'question' is empty" in message and "line 8: is not valid JSON" in message
    assert "line 10" not in message  # only the first three reasons


def test_duplicate_ids_are_row_errors(tmp_path):
    path = jsonl(tmp_path, [{"id": "a", "question": "q1", "answer": "1"}, {"id": "a", "question": "q2", "answer": "2"}])
    fields = {"prompt": "question", "id": "id"}
    with pytest.raises(DataError, match=r"line 2: field 'id' value 'a' was already used at .*line 1"):
        load_records(path=path, fields=fields)
    assert [r.prompt for r in load_records(path=path, fields=fields, on_error="skip")] == ["q1"]


def test_where_keeps_matching_rows_before_counting(tmp_path):
    path = jsonl(tmp_path, ROWS)
    assert {r.meta["level"] for r in load_records(path=path, where={"level": 1}, **MATH)} == {1}
    assert len(load_records(path=path, where={"level": [0, 2]}, **MATH)) == 27
    with pytest.raises(DataError, match=r"field 'lang' is missing, so the row cannot be filtered"):
        load_records(path=path, where={"lang": "python3"}, **MATH)


def test_hash_split_is_disjoint_complete_and_order_free(tmp_path):
    train = load_records(path=jsonl(tmp_path, ROWS), hash_split="train", heldout_percent=25, **MATH)
    heldout = load_records(path=jsonl(tmp_path, ROWS), hash_split="heldout", heldout_percent=25, **MATH)
    assert {r.prompt for r in train} | {r.prompt for r in heldout} == {r["question"] for r in ROWS}
    assert not {r.prompt for r in train} & {r.prompt for r in heldout} and 0 < len(heldout) < 20
    shuffled = load_records(
        path=jsonl(tmp_path, ROWS[::-1], "r.jsonl"), hash_split="heldout", heldout_percent=25, **MATH
    )
    assert {r.prompt for r in shuffled} == {r.prompt for r in heldout}
    assert all(hash_split_of(r.prompt, 25) == "heldout" for r in heldout)


def test_num_records_and_seeded_shuffle(tmp_path):
    path = jsonl(tmp_path, ROWS)
    assert [r.id for r in load_records(path=path, num_records=3, name="t", **MATH)] == ["t-0", "t-1", "t-2"]
    first = load_records(path=path, num_records=5, shuffle=True, seed=1, **MATH)
    assert [r.id for r in first] == [r.id for r in load_records(path=path, num_records=5, shuffle=True, seed=1, **MATH)]
    assert [r.id for r in first] != [r.id for r in load_records(path=path, num_records=5, shuffle=True, seed=2, **MATH)]
    assert load_records(path=path, num_records=0, **MATH) == []


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"on_error": "ignore"}, r"on_error='ignore': choose one of \['raise', 'skip'\]"),
        ({"hash_split": "test"}, r"hash_split='test': choose null"),
        ({"heldout_percent": 0}, r"heldout_percent must be in \(0, 100\)"),
        ({"num_records": -1}, "num_records must be >= 0"),
        ({"fields": {"promt": "q"}}, r"fields: unknown key\(s\) \['promt'\]"),
        ({"fields": {"prompt": "q", "prompt_template": "{q}"}}, "either prompt .* or prompt_template"),
        ({"fields": {"prompt_pattern": "(unclosed"}}, "fields.prompt_pattern is not a valid regex"),
        ({"fields": {"prompt_template": "{q"}}, "fields.prompt_template is not a str.format template"),
        ({"fields": {"prompt_pattern": "(.*)"}}, r"named group \(\?P<problem>"),
        ({"reference": {"kind": "regex"}}, r"reference.kind='regex': choose one of \['answer', 'code_function'"),
        ({"reference": {"kind": "answer", "col": "a"}}, r"reference: unknown key\(s\) \['col'\] for kind 'answer'"),
    ],
)
def test_bad_configuration_fails_before_reading(tmp_path, kwargs, match):
    with pytest.raises(DataError, match=match):
        load_records(path=str(tmp_path / "never-read.jsonl"), **kwargs)


def test_hub_source_through_a_monkeypatched_loader(monkeypatch):
    import datasets

    def fake_load_dataset(name, subset, split):
        assert (name, subset, split) == ("openai/gsm8k", "main", "test")
        return [{"question": "Tom has 2 apples...", "answer": "2 + 3 = 5\n#### 5"}, {"question": "q", "answer": "x"}]

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    kwargs = dict(hub="openai/gsm8k", subset="main", split="test", fields={"prompt": "question"})
    reference = {"kind": "answer", "marker": "####"}
    with pytest.raises(DataError, match=r"openai/gsm8k\[test\] row 2: field 'answer' has no '####' marker"):
        load_records(**kwargs, reference=reference)
    records = load_records(**kwargs, reference=reference, on_error="skip")
    assert [(r.id, r.reference) for r in records] == [("openai/gsm8k-0", "5")]
