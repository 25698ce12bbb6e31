"""Rows (dicts of columns) from local files, the Hugging Face Hub or a data set shipped in a package.

Every row carries a location for error messages, 1-based as an editor shows it:
``train.jsonl line 12`` (physical line, so blank lines count), ``test.json item 3``,
``train.parquet row 7``, ``openai/gsm8k[test] row 5``, ``humaneval row 2``.

A JSONL line that is not a JSON object is a *row* problem (``Row.error`` is set, and
``on_error: skip`` can drop it): also a line that is not UTF-8, nests deeper than the JSON
reader goes, or holds an integer of more digits than Python reads from text (4300). A file
that is missing, a broken gzip file (with the line reached) or a JSON document that does not
parse is a ``DataError``.
"""

from __future__ import annotations

import gzip
import json
import sys
import zlib
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


class _HugeInteger(ValueError):
    def __init__(self, digits: int) -> None:
        super().__init__(
            f"has an integer of {digits} digits (Python reads at most {sys.get_int_max_str_digits()} digits "
            "of a number from text); store it as a JSON string"
        )


def _integer(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > sys.get_int_max_str_digits() > 0:
        raise _HugeInteger(digits)
    return int(text)


def _parse(text: str):
    """``json.loads`` whose every failure is a ValueError with a message for a person."""
    try:
        return json.loads(text, parse_int=_integer)
    except json.JSONDecodeError as err:
        raise ValueError(f"is not valid JSON ({err.msg} at line {err.lineno} column {err.colno})") from None
    except RecursionError:
        raise ValueError("is nested too deeply for the JSON reader") from None


def _jsonl_rows(path: Path) -> Iterator[Row]:
    number = 0
    try:
        with (gzip.open if path.name.endswith(".gz") else open)(path, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                if not raw.strip():
                    continue
                location = f"{path} line {number}"
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as err:
                    byte = f"byte 0x{raw[err.start]:02x} at column {err.start + 1}"
                    yield Row(location, error=f"is not UTF-8 ({byte}); save the file as UTF-8")
                    continue
                try:
                    value = _parse(line)
                except ValueError as err:
                    yield Row(location, error=str(err).replace(" at line 1 column", " at column"))
                    continue
                if isinstance(value, dict):
                    yield Row(location, value)
                else:
                    yield Row(location, error=f"is a JSON {type(value).__name__}, expected an object {{...}}")
    except (OSError, EOFError, zlib.error) as err:  # gzip.BadGzipFile is an OSError
        kind = "not a readable gzip file" if path.name.endswith(".gz") else "could not be read"
        raise DataError(f"{path}: {kind} ({err}) after line {number}; download or copy it again") from None


def _json_rows(path: Path, split: str | None) -> Iterator[Row]:
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - data.rfind(b"\n", 0, err.start)
        raise DataError(
            f"{path}: not UTF-8 (byte 0x{data[err.start]:02x} at line {line} column {column}); save the file as UTF-8"
        ) from None
    try:
        document = _parse(text)
    except ValueError as err:
        raise DataError(f"{path}: {str(err).removeprefix('is ').removeprefix('has ')}") from None
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
