"""Strict construction of frozen settings dataclasses from plain (Hydra-resolved) dicts.

``build_dataclass(cls, data, key)`` is how every settings section becomes typed: an unknown key, a
wrong type or a value the dataclass's ``__post_init__`` rejects is a ``ValueError`` that names the
full key (``algorithm.correction.penalty``, ``module.micro_batch_size``). Nested dataclass fields are
built recursively; ``X | None`` accepts null.
"""

from __future__ import annotations

import dataclasses
from typing import Any, get_args, get_type_hints


def _check(condition: bool, key: str, message: str) -> None:
    if not condition:
        raise ValueError(f"{key}: {message}")


def build_dataclass(cls: type, data: Any, key: str) -> Any:
    """Strictly build dataclass ``cls`` from a nested dict: unknown keys and bad types fail."""
    if not isinstance(data, dict):
        raise ValueError(f"{key}: expected a mapping, got {type(data).__name__}")
    hints = get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{key}: unknown key(s) {unknown}; known keys: {sorted(known)}")
    values = {}
    for name, value in data.items():
        expected = hints[name]
        if dataclasses.is_dataclass(expected):
            values[name] = build_dataclass(expected, value, f"{key}.{name}")
        else:
            values[name] = _coerce(value, expected, f"{key}.{name}")
    try:
        return cls(**values)
    except ValueError as error:
        message = str(error)
        raise ValueError(message if message.startswith(key) else f"{key}: {message}") from None


def _coerce(value: Any, expected: Any, key: str) -> Any:
    options = get_args(expected)
    if type(None) in options:  # `X | None`: null, or a valid X
        inner = [option for option in options if option is not type(None)]
        return None if value is None or len(inner) != 1 else _coerce(value, inner[0], key)
    if expected is bool:
        _check(isinstance(value, bool), key, f"expected true/false, got {value!r}")
    elif expected is int:
        _check(isinstance(value, int) and not isinstance(value, bool), key, f"expected an integer, got {value!r}")
    elif expected is float:
        _check(
            isinstance(value, (int, float)) and not isinstance(value, bool), key, f"expected a number, got {value!r}"
        )
        return float(value)
    elif expected is str:
        _check(isinstance(value, str), key, f"expected a string, got {value!r}")
    return value
