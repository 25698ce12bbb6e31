"""The two kinds of data errors.

``DataError``: the configuration or a whole file is wrong (missing file, unknown reference
kind, unreadable JSON document): always raised, whatever ``on_error`` says.
``RowError``: one row is wrong (a missing field, a wrong type, an empty prompt): raised by
the row builders without a location; ``load_records`` adds the file and line and then
raises a ``BadRowError`` (which says how to skip such rows) or, with ``on_error: skip``,
counts it as a skip.
"""

from __future__ import annotations


class DataError(ValueError):
    """A data source cannot be read as configured. The message names the key or file and the fix."""


class BadRowError(DataError):
    """A row is wrong and ``on_error`` is ``raise``: the message names the file, line and field,
    then the key that would skip such rows instead (``on_error``, or ``data.train.on_error``
    once the data module has named its config node with ``for_key``)."""

    def __init__(self, message: str, on_error_key: str = "on_error") -> None:
        self.message, self.on_error_key = message, on_error_key
        super().__init__(f"{message}; or set {on_error_key}=skip to drop bad rows with a count")

    def for_key(self, key: str) -> BadRowError:
        return BadRowError(f"{key}: {self.message}", f"{key}.on_error")


class RowError(ValueError):
    """One row does not fit the field mapping.

    Args:
        field: the column (or config key) at fault, or None for the row as a whole.
        problem: what is wrong, e.g. "is missing (the row has: question, solution)".
        fix: what to change, e.g. "point fields.prompt at the column with the problem text".
    """

    def __init__(self, field: str | None, problem: str, fix: str = "") -> None:
        self.field, self.problem, self.fix = field, problem, fix
        super().__init__(self.describe())

    def describe(self, location: str = "") -> str:
        subject = f"field {self.field!r} " if self.field else ""
        where = f"{location}: " if location else ""
        fix = f"; {self.fix}" if self.fix else ""
        return f"{where}{subject}{self.problem}{fix}"
