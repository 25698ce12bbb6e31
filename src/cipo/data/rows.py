"""``Row``: one record as read from a source, before it becomes a ``Record``.

Its own module so that the readers and the packaged data sets (which the readers dispatch to)
both import it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Row:
    """``location`` names the row for error messages, 1-based as an editor shows it
    (``train.jsonl line 12``, ``humaneval row 2``)."""

    location: str
    data: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # set when the row itself could not be read
