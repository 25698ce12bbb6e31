"""The judge <-> program codec: round trips of plain values, and a decoder that builds only exact
built-in types and refuses everything else (the trust boundary of the code verifier)."""

from __future__ import annotations

import math
import os
from collections import OrderedDict, namedtuple
from enum import IntEnum

import pytest

from cipo.verifiers.isolated import wire

PLAIN = [
    None,
    True,
    0,
    -(2**53) + 1,
    2**53,
    -(10**5000),  # far past the 4300-digit limit of int(str): travels as hex
    1.5,
    -0.0,
    math.inf,
    "é\ud800 text",  # a lone surrogate survives
    b"\x00\xff",
    bytearray(b"ab"),
    [1, [2, (3, {4})]],
    (),
    {1: "a", "b": [None], (1, 2): frozenset({3})},
    set(),
    3 + 4j,
]


@pytest.mark.parametrize("value", PLAIN, ids=[type(v).__name__ + str(i) for i, v in enumerate(PLAIN)])
def test_plain_values_round_trip_exactly(value):
    back = wire.decode(wire.encode(value))
    assert back == value and type(back) is type(value)


def test_nan_round_trips():
    assert math.isnan(wire.decode(wire.encode(math.nan)))


def test_subclasses_and_numpy_travel_as_the_plain_value_they_hold():
    class Evil(int):
        def __eq__(self, other):
            return True

    Point = namedtuple("Point", "x y")
    Color = IntEnum("Color", "RED GREEN")
    for value, plain in [(Evil(3), 3), (Point(1, 2), (1, 2)), (Color.GREEN, 2), (OrderedDict(a=1), {"a": 1})]:
        back = wire.decode(wire.encode(value, refs=[]))
        assert back == plain and type(back) is type(plain)
    numpy = pytest.importorskip("numpy")
    assert wire.decode(wire.encode(numpy.array([[1, 2]]), refs=[])) == [[1, 2]]
    assert type(wire.decode(wire.encode(numpy.float64(0.5), refs=[]))) is float


def test_objects_without_a_plain_form_stay_behind_as_references():
    refs: list = []
    generator = (i for i in range(3))
    data = wire.encode([generator, object()], refs)
    assert refs[0] is generator and data[0] == {"ref": 0, "type": "generator"}
    with pytest.raises(wire.ProtocolError, match="reference"):
        wire.decode(data)  # the judge's decoder takes references only where it expects them
    assert wire.decode(data, lambda index, kind: (index, kind)) == [(0, "generator"), (1, "object")]
    with pytest.raises(wire.Unsendable, match="function"):
        wire.encode(lambda: 1)  # the judge's encoder (no refs) cannot send a function


@pytest.mark.parametrize(
    "data",
    [
        {"eq": True},
        {"tuple": 3},
        {"int": "0x"},
        {"int": "zz"},
        {"float": "1.0"},
        {"bytes": "###"},
        {"dict": [[1]]},
        {"set": [[1]]},  # an unhashable element
        {"complex": ["a", 1]},
        {"tuple": [], "set": []},
        {"ref": "0"},
    ],
)
def test_malformed_values_are_refused(data):
    with pytest.raises(wire.ProtocolError):
        wire.decode(data, lambda index, kind: index)


def test_deep_nesting_is_refused_not_a_crash():
    deep: list = []
    for _ in range(wire.MAX_DEPTH + 5):
        deep = [deep]
    with pytest.raises(wire.Unsendable):
        wire.encode(deep)
    data: object = []
    for _ in range(wire.MAX_DEPTH + 5):
        data = [data]
    with pytest.raises(wire.ProtocolError):
        wire.decode(data)


def test_frames_are_exact_and_capped():
    read, write = os.pipe()
    try:
        wire.write_frame(write, {"a": [1, 2]})
        wire.write_frame(write, "second")
        assert wire.read_frame(read) == {"a": [1, 2]}
        assert wire.read_exact(read, 4) == b"\x00\x00\x00\x08"  # nothing was read ahead
        assert wire.read_exact(read, 8) == b'"second"'
        os.write(write, b"\x00\x00\x10\x00")
        with pytest.raises(wire.ProtocolError, match="4096 bytes"):
            wire.read_frame(read, max_bytes=100)
        os.write(write, b"\x00\x00\x00\x03{{{")
        with pytest.raises(wire.ProtocolError, match="not JSON"):
            wire.read_frame(read)
        os.close(write)
        with pytest.raises(EOFError):
            wire.read_frame(read)
    finally:
        os.close(read)
