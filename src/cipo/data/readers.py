"""Rows (dicts of columns) from local files, the Hugging Face Hub or a data set shipped in a package.

Every row carries a location for error messages, 1-based as an editor shows it:
``train.jsonl line 12`` (physical line, so blank lines count), ``test.json item 3``,
``train.parquet row 7``, ``openai/gsm8k[test] row 5``, ``humaneval row 2``.

A JSONL line that is not a JSON object is a *row* problem (``Row.error`` is set, and
``on_error: skip`` can drop it); a file that is missing or a JSON document that does not
parse is a ``DataError``.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

from cipo.data.errors import DataError
from cipo.data.packaged import packaged_rows
from cipo.data.rows import Row

SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".parquet")


def read_rows(
    path: str | list[str] | None = None,
    hub: str | None = None,
    subset: str | None = None,
    split: str | None = None,
    packaged: str | None = None,
) -> Iterator[Row]:
    """Rows from exactly one of: ``path`` (one or more local files), ``hub`` or ``packaged``.

    ``split`` picks the Hub split, or the key of a ``{split: [...]}`` JSON document.
    """
    chosen = [name for name, value in (("path", path), ("hub", hub), ("packaged", packaged)) if value]
    if len(chosen) != 1:
        raise DataError(
            f"set exactly one of path (a local .jsonl/.json/.parquet file), hub (a Hugging Face dataset name) "
            f"or packaged (humaneval, champ); got {chosen or 'none'}"
        )
    if packaged:
        yield from packaged_rows(packaged)
    elif hub:
        yield from _hub_rows(hub, subset, split)
    else:
        for one in [path] if isinstance(path, str) else list(path):
            yield from _file_rows(Path(str(one)).expanduser(), split)


def _file_rows(path: Path, split: str | None) -> Iterator[Row]:
    if not any(path.name.endswith(suffix) for suffix in SUFFIXES):
        raise DataError(f"{path}: unsupported file type; use one of {', '.join(SUFFIXES)}")
    if not path.is_file():
        raise DataError(
            f"{path}: no such file. Point the path at a local copy (e.g. data.train.path=/data/x.jsonl); "
            "the data config's header says where to download it"
        )
    if path.name.endswith((".jsonl", ".jsonl.gz")):
        yield from _jsonl_rows(path)
    elif path.name.endswith(".json"):
        yield from _json_rows(path, split)
    else:
        yield from _parquet_rows(path)


def _jsonl_rows(path: Path) -> Iterator[Row]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            location = f"{path} line {number}"
            try:
                value = json.loads(line)
            except json.JSONDecodeError as err:
                yield Row(location, error=f"is not valid JSON ({err.msg} at column {err.colno})")
                continue
            if isinstance(value, dict):
                yield Row(location, value)
            else:
                yield Row(location, error=f"is a JSON {type(value).__name__}, expected an object {{...}}")


def _json_rows(path: Path, split: str | None) -> Iterator[Row]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err.msg} at line {err.lineno} column {err.colno})") from err
    if isinstance(document, dict):
        if split is None or split not in document:
            raise DataError(
                f"{path}: a JSON object of splits {sorted(document)}; choose one with split=<name>"
                + (f" (split={split!r} is not one of them)" if split is not None else "")
            )
        document = document[split]
    if not isinstance(document, list):
        raise DataError(f"{path}: expected a JSON list of objects (or {{split: [...]}}), got {type(document).__name__}")
    for number, value in enumerate(document, start=1):
        location = f"{path} item {number}"
        if isinstance(value, dict):
            yield Row(location, value)
        else:
            yield Row(location, error=f"is a JSON {type(value).__name__}, expected an object {{...}}")


def _parquet_rows(path: Path) -> Iterator[Row]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as err:  # pyarrow raises several unrelated types for a bad file
        raise DataError(f"{path}: not a readable Parquet file ({err})") from err
    for number, value in enumerate(table.to_pylist(), start=1):
        yield Row(f"{path} row {number}", value)


def _hub_rows(name: str, subset: str | None, split: str | None) -> Iterator[Row]:
    import datasets

    if split is None:
        raise DataError(f"hub={name!r}: set split (e.g. split=train or split=test)")
    try:
        dataset = datasets.load_dataset(name, subset, split=split)
    except Exception as err:  # network, auth, unknown name or split: all end the same way
        raise DataError(
            f"hub={name!r} (subset={subset!r}, split={split!r}) could not be loaded: {err}. Without network "
            "access, download the files elsewhere and point path at them instead of hub"
        ) from err
    for number, value in enumerate(dataset, start=1):
        yield Row(f"{name}[{split}] row {number}", dict(value))
