"""Frames and plain values between the judge and the program's process (standard library only).

A frame is a 4-byte big-endian length and that many bytes of UTF-8 JSON. Values travel as JSON
with one-key tags for what JSON lacks::

    {"tuple": [..]}  {"set": [..]}  {"frozenset": [..]}  {"dict": [[key, value], ..]}
    {"bytes": "<base64>"}  {"bytearray": "<base64>"}  {"complex": [re, im]}
    {"int": "<hex>"} (beyond 2**53)  {"float": "nan" | "inf" | "-inf"}  {"ref": n, "type": "Name"}

``decode`` is the judge's side of the trust boundary: it builds only exact built-in types (a
value whose ``__eq__`` or ``__bool__`` the program wrote cannot come out of it) and refuses
anything else. ``{"ref": n}`` is an object that stays in the program's process (a class
instance, a generator): the judge gets a stand-in for it (``remote.Remote``). Integers travel in
hex, so a huge one is decoded in linear time and never hits the 4300-digit limit of ``int(str)``.
"""

from __future__ import annotations

import base64
import json
import math
import os
import struct

MAX_DEPTH = 200
REMOTE_TYPES: tuple = ()  # set by remote.py in the judge: stand-ins that encode as their reference
_SAFE_INT = 2**53
_FLOATS = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


class ProtocolError(Exception):
    """A frame or value that does not follow this format (from a misbehaving program)."""


class Unsendable(TypeError):
    """The judge was asked to send an object that has no plain form (a function, a file)."""


# --- frames ----------------------------------------------------------------------------------


def write_frame(fd: int, message) -> None:
    data = json.dumps(message, separators=(",", ":")).encode()
    data = struct.pack(">I", len(data)) + data
    while data:
        data = data[os.write(fd, data) :]


def read_exact(fd: int, count: int) -> bytes:
    """Exactly ``count`` bytes (no read-ahead: the rest of the stream stays in the kernel)."""
    parts, left = [], count
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise EOFError(f"stream ended {left} bytes before the end of a frame")
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def read_frame(fd: int, max_bytes: int = 1 << 30):
    (length,) = struct.unpack(">I", read_exact(fd, 4))
    if length > max_bytes:
        raise ProtocolError(f"a frame of {length} bytes (at most {max_bytes})")
    try:
        return json.loads(read_exact(fd, length))
    except (ValueError, RecursionError) as error:
        raise ProtocolError(f"a frame that is not JSON ({type(error).__name__})") from None


# --- values ----------------------------------------------------------------------------------


def encode(value, refs: list | None = None, depth: int = 0):
    """A JSON-able form of ``value``. ``refs``: where objects without a plain form are kept
    (the program's side); None raises ``Unsendable`` for them (the judge's side)."""
    if depth > MAX_DEPTH:
        raise Unsendable(f"a value nested more than {MAX_DEPTH} levels deep")
    kind = type(value)
    if value is None or kind is bool or kind is str:
        return value
    if kind is int:
        return value if -_SAFE_INT < value < _SAFE_INT else {"int": format(value, "x")}
    if kind is float:
        return value if math.isfinite(value) else {"float": repr(value)}
    if kind is list:
        return [encode(item, refs, depth + 1) for item in value]
    if kind is dict:
        return {"dict": [[encode(k, refs, depth + 1), encode(v, refs, depth + 1)] for k, v in value.items()]}
    if kind in (tuple, set, frozenset):
        return {kind.__name__: [encode(item, refs, depth + 1) for item in value]}
    if kind in (bytes, bytearray):
        return {kind.__name__: base64.b64encode(value).decode()}
    if kind is complex:
        return {"complex": [encode(value.real), encode(value.imag)]}
    if REMOTE_TYPES and isinstance(value, REMOTE_TYPES):  # the judge's stand-in, going back home
        if value._remote_ref is None:
            raise Unsendable("a function of the program cannot be passed back to it as an argument")
        return {"ref": value._remote_ref, "type": value._remote_type}
    if refs is None:
        raise Unsendable(f"a {kind.__name__} object cannot be sent to the program's process")
    plain = _as_plain(value)
    if plain is not _NO_PLAIN_FORM:
        return encode(plain, refs, depth + 1)
    refs.append(value)
    return {"ref": len(refs) - 1, "type": kind.__qualname__[:100]}


_NO_PLAIN_FORM = object()


def _as_plain(value):
    """The plain value a subclass of a built-in (an IntEnum, a namedtuple) or a numpy scalar or
    array stands for, read through the built-in's own methods; else ``_NO_PLAIN_FORM``."""
    for base, convert in _BASES:
        if isinstance(value, base):
            return convert(value)
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        return value.tolist()
    return _NO_PLAIN_FORM


_BASES = [
    (int, int.__int__),
    (float, float.__float__),
    (str, str.__str__),
    (bytes, bytes),
    (list, lambda v: list(list.__iter__(v))),
    (tuple, lambda v: tuple(tuple.__iter__(v))),
    (dict, lambda v: dict(dict.items(v))),
    (frozenset, lambda v: frozenset(frozenset.__iter__(v))),
    (set, lambda v: set(set.__iter__(v))),
]


def decode(data, resolve_ref=None, depth: int = 0):
    """The value ``data`` encodes, built from exact built-in types only; ``resolve_ref(n, type)``
    gives ``{"ref": n}`` its meaning (None: refused). Raises ``ProtocolError`` on anything else."""
    if depth > MAX_DEPTH:
        raise ProtocolError(f"a value nested more than {MAX_DEPTH} levels deep")
    kind = type(data)
    if data is None or kind in (bool, str, int, float):
        return data
    if kind is list:
        return [decode(item, resolve_ref, depth + 1) for item in data]
    if kind is not dict or not (len(data) == 1 or set(data) == {"ref", "type"}):
        raise ProtocolError(f"an unknown value form {str(data)[:60]!r}")
    if "ref" in data:
        return _ref(data, resolve_ref)
    tag, body = next(iter(data.items()))
    try:
        return _TAGS[tag](body, resolve_ref, depth)
    except ProtocolError:
        raise
    except (KeyError, TypeError, ValueError) as error:  # a tag with a body of the wrong shape
        raise ProtocolError(f"a malformed {tag!r} value ({type(error).__name__}: {error})"[:200]) from None


def _items(body, resolve_ref, depth):
    if type(body) is not list:
        raise TypeError("expected a list")
    return [decode(item, resolve_ref, depth + 1) for item in body]


def _ref(data, resolve_ref):
    if resolve_ref is None or type(data.get("ref")) is not int:
        raise ProtocolError("an object reference where only plain values may appear")
    return resolve_ref(data["ref"], str(data.get("type", "object"))[:100])


def _decode_int(body, resolve_ref, depth) -> int:
    if type(body) is not str or not 0 < len(body.lstrip("-")) <= 1 << 20:
        raise TypeError("expected a hex string")
    return int(body, 16)


_TAGS = {
    "tuple": lambda body, r, d: tuple(_items(body, r, d)),
    "set": lambda body, r, d: set(_items(body, r, d)),
    "frozenset": lambda body, r, d: frozenset(_items(body, r, d)),
    "dict": lambda body, r, d: {_key(pair, r, d): decode(pair[1], r, d + 1) for pair in body},
    "bytes": lambda body, r, d: base64.b64decode(body.encode(), validate=True),
    "bytearray": lambda body, r, d: bytearray(base64.b64decode(body.encode(), validate=True)),
    "complex": lambda body, r, d: complex(*(_number(part) for part in body[:2])),
    "int": _decode_int,
    "float": lambda body, r, d: _FLOATS[body],
}


def _number(data) -> float:
    value = decode(data)
    if type(value) not in (int, float):
        raise TypeError("expected a number")
    return float(value)


def _key(pair, resolve_ref, depth):
    if type(pair) is not list or len(pair) != 2:
        raise TypeError("a dict entry must be a [key, value] pair")
    return decode(pair[0], resolve_ref, depth + 1)
