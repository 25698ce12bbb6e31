"""``load_records``: rows of a data set -> validated ``Record(id, prompt, reference, meta)``.

Used by every ``conf/data/source/*.yaml`` (``_target_: cipo.data.records.load_records``,
``_partial_: true``: the datamodule calls it at setup). Steps, in order:

1. read rows (``readers.read_rows``: JSONL, JSON, Parquet, a Hub name or a packaged set);
2. keep rows matching ``where`` (column -> value, or list of allowed values);
3. build each record from the ``fields`` mapping and the ``reference`` builder; a bad row
   raises an error naming the file, line and field, or with ``on_error: skip`` is counted
   and reported in one warning (count and the first few reasons);
4. ``hash_split``: keep the ``train`` or ``heldout`` share of the records by a stable hash of
   the problem text (as the built-in arithmetic task does), so one file can feed both splits
   and identical problems never land on both sides;
5. ``shuffle`` with ``seed``, then keep the first ``num_records``.

Field mapping (``fields``): ``prompt`` (a column, dotted paths reach into nested columns) or
``prompt_template`` (``str.format`` over the columns, e.g. ``"{question}\\n\\n{starter_code}"``);
optional ``prompt_pattern``, a regex whose ``problem`` group is kept (to strip a data set's
own instructions); ``id`` (a column; default ``<name>-<row index>``); ``meta`` (meta key ->
column, or a list of columns; ``meta: {attempt: buggy_code}`` supplies the attempt that
correction benchmarks ask to revise).
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import random
import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cipo.data.errors import BadRowError, DataError, RowError
from cipo.data.leetcode import leetcode_examples
from cipo.data.readers import read_rows
from cipo.data.references import BUILDERS, MISSING, get_field, require, text
from cipo.data.rows import Row
from cipo.types import Record

log = logging.getLogger(__name__)
HASH_SPLITS = ("train", "heldout")
ON_ERROR = ("raise", "skip")
SHOWN_REASONS = 3


@dataclass(frozen=True)
class Fields:
    prompt: str | None = "prompt"
    prompt_template: str | None = None
    prompt_pattern: str | None = None
    id: str | None = None
    meta: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> Fields:
        values = dict(values or {})
        unknown = sorted(set(values) - {f.name for f in cls.__dataclass_fields__.values()})
        if unknown:
            known = "prompt, prompt_template, prompt_pattern, id, meta"
            raise DataError(f"fields: unknown key(s) {unknown}; known: {known}")
        meta = values.get("meta") or {}
        if isinstance(meta, (list, tuple)):
            meta = {str(column): str(column) for column in meta}
        if not isinstance(meta, dict):
            raise DataError(f"fields.meta must be a mapping meta key -> column or a list of columns, got {meta!r}")
        values["meta"] = {str(key): str(column) for key, column in meta.items()}
        if values.get("prompt_template") is not None:
            try:
                list(string.Formatter().parse(values["prompt_template"]))
            except ValueError as err:
                raise DataError(f"fields.prompt_template is not a str.format template: {err}") from err
            values.setdefault("prompt", None)
            if values["prompt"] is not None:
                raise DataError("fields: set either prompt (a column) or prompt_template, not both")
        elif not values.get("prompt", "prompt"):
            raise DataError("fields.prompt is empty: name the column that holds the problem text")
        if values.get("prompt_pattern") is not None:
            try:
                pattern = re.compile(values["prompt_pattern"])
            except re.error as err:
                raise DataError(f"fields.prompt_pattern is not a valid regex: {err}") from err
            if "problem" not in pattern.groupindex:
                raise DataError("fields.prompt_pattern needs a named group (?P<problem>...) for the text to keep")
        return cls(**values)


REFERENCE_KINDS = {**BUILDERS, "leetcode_examples": leetcode_examples}


def _reference_builder(spec: dict[str, Any] | None):
    """(builder, params) from ``reference: {kind: ..., <params>}``; bad keys fail before any row is read."""
    params = dict(spec or {"kind": "answer"})
    kind = params.pop("kind", None)
    if kind not in REFERENCE_KINDS:
        raise DataError(f"reference.kind={kind!r}: choose one of {sorted(REFERENCE_KINDS)}")
    builder = REFERENCE_KINDS[kind]
    accepted = [name for name in inspect.signature(builder).parameters if name != "data"]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise DataError(f"reference: unknown key(s) {unknown} for kind {kind!r}; its keys are {accepted}")
    return builder, params


def _prompt(data: dict[str, Any], fields: Fields) -> str:
    if fields.prompt_template is not None:
        parsed = string.Formatter().parse(fields.prompt_template)
        names = {name.split(".")[0].split("[")[0] for _, name, _, _ in parsed if name}
        for name in sorted(n for n in names if n):
            require(data, name, "fields.prompt_template")
        try:
            prompt = fields.prompt_template.format(**data)
        except (AttributeError, IndexError, KeyError, TypeError, ValueError) as err:
            raise RowError("prompt_template", f"cannot be filled from this row ({err!r})", "fix it") from err
        source = "prompt_template"
    else:
        prompt = text(data, fields.prompt, "fields.prompt")
        source = fields.prompt
    if fields.prompt_pattern is not None:
        match = re.search(fields.prompt_pattern, prompt, flags=re.DOTALL)
        if match is None:
            raise RowError(source, "does not match fields.prompt_pattern", "set fields.prompt_pattern=null or fix it")
        prompt = match.group("problem")
    if not prompt.strip():
        raise RowError(source, "gives an empty prompt", "point fields.prompt at the problem text")
    return prompt


def build_record(row: Row, index: int, name: str, fields: Fields, builder, params: dict[str, Any]) -> Record:
    """One record from one row, or a RowError (without the location: the caller adds it)."""
    if row.error is not None:
        raise RowError(None, row.error, "fix the line")
    data = row.data
    prompt = _prompt(data, fields)
    reference = builder(data, **params)
    if fields.id is None:
        record_id = f"{name}-{index}"
    else:
        raw_id = require(data, fields.id, "fields.id")
        if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)):
            raise RowError(fields.id, f"is {type(raw_id).__name__}, expected text or an integer", "fix fields.id")
        record_id = str(raw_id)
    meta = {key: require(data, column, f"fields.meta.{key}") for key, column in fields.meta.items()}
    return Record(id=record_id, prompt=prompt, reference=reference, meta=meta)


def _matches(data: dict[str, Any], where: dict[str, Any]) -> bool:
    for column, allowed in where.items():
        value = get_field(data, column)
        if value is MISSING:
            raise RowError(column, "is missing, so the row cannot be filtered", f"fix where.{column}")
        if value not in (allowed if isinstance(allowed, (list, tuple)) else [allowed]):
            return False
    return True


def hash_split_of(problem: str, heldout_percent: int) -> str:
    """'heldout' or 'train' from a hash that is stable across runs, machines and row order."""
    bucket = int.from_bytes(hashlib.sha1(problem.encode()).digest()[:4], "big") % 100
    return "heldout" if bucket < heldout_percent else "train"


def load_records(
    path: str | list[str] | None = None,
    hub: str | None = None,
    subset: str | None = None,
    split: str | None = None,
    packaged: str | None = None,
    fields: dict[str, Any] | None = None,
    reference: dict[str, Any] | None = None,
    where: dict[str, Any] | None = None,
    hash_split: str | None = None,
    heldout_percent: int = 10,
    shuffle: bool = False,
    seed: int = 0,
    num_records: int | None = None,
    on_error: str = "raise",
    name: str | None = None,
) -> list[Record]:
    """Records of one split of one data set (see the module docstring for each step).

    ``num_records``: keep at most this many (null: all), after the split and the shuffle; the
    same key as the built-in task's, so ``debug=fast`` and ``data.train.num_records=N`` work
    for every data config.
    """
    if on_error not in ON_ERROR:
        raise DataError(f"on_error={on_error!r}: choose one of {list(ON_ERROR)}")
    if hash_split is not None and hash_split not in HASH_SPLITS:
        raise DataError(f"hash_split={hash_split!r}: choose null (all records) or one of {list(HASH_SPLITS)}")
    if not 0 < heldout_percent < 100:
        raise DataError(f"heldout_percent must be in (0, 100), got {heldout_percent}")
    if num_records is not None and num_records < 0:
        raise DataError(f"num_records must be >= 0 or null, got {num_records}")
    mapping = Fields.from_dict(fields)
    builder, params = _reference_builder(reference)
    where = dict(where or {})
    label = name or hub or packaged or Path(str(path if isinstance(path, str) else (path or ["data"])[0])).stem

    records: list[Record] = []
    seen: dict[str, str] = {}
    reasons: list[str] = []
    total = 0
    for index, row in enumerate(read_rows(path, hub, subset, split, packaged)):
        try:
            if row.error is None and where and not _matches(row.data, where):
                continue
            total += 1
            record = build_record(row, index, label, mapping, builder, params)
            if record.id in seen:
                column = mapping.id or "id"
                raise RowError(
                    column,
                    f"value {record.id!r} was already used at {seen[record.id]}",
                    f"ids must be unique: fix fields.id={column!r} or set fields.id=null to number the rows",
                )
        except RowError as err:
            message = err.describe(row.location)
            if on_error == "raise":
                raise BadRowError(message) from None
            reasons.append(message)
            continue
        seen[record.id] = row.location
        records.append(record)
    if reasons:
        log.warning(
            "%s: skipped %d of %d rows (on_error=skip); first reasons: %s",
            label,
            len(reasons),
            total,
            " | ".join(reasons[:SHOWN_REASONS]),
        )
    if hash_split is not None:
        records = [r for r in records if hash_split_of(r.prompt, heldout_percent) == hash_split]
    if shuffle:
        random.Random(seed).shuffle(records)
    return records[:num_records] if num_records is not None else records
