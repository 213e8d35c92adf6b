"""world/jsontext.py: orjson where it writes and reads what the standard library does, json for the rest."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import math
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mockbench.world import jsontext


def _reference(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class Colour(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


class Name(str):
    pass


@dataclasses.dataclass
class Point:
    x: int


EDGES = [
    2**64, -(2**64), 2**63, 2**63 - 1, -(2**63), -(2**63) - 1, 10**40,       # integers beyond 64 bits
    float("nan"), float("inf"), float("-inf"), 1e-05, 1e16, 0.1, 100.0, -0.0,  # floats: json writes them
    "\ud800", "a\udc80b", {"k": "x" * 5000 + "\udfff"},                         # lone surrogates
    "é€ 漢字 😀 \u2028 \u2029 \x7f", "\x00\x01\x1f\x08\x0c\r\n\t\"\\/",             # non-ASCII, controls
    {"nested": [1, [2, [3, {"a": None, "b": True, "c": False}]]]}, [], {}, "", (1, "two"),
    Level.HIGH, Name("sub"), {1: "int key"}, {None: 1}, {True: 1}, {1.5: 2},
    {"big": [2**70, "text"], "float": [1.5]},
]


@pytest.mark.parametrize("value", EDGES, ids=repr)
def test_dumps_writes_what_json_writes(value):
    assert jsontext.dumps(value) == _reference(value)


@pytest.mark.parametrize("value", [datetime.date(2026, 1, 1), uuid.UUID(int=1), Colour.RED, Point(1),
                                   {"a": {1, 2}}, b"bytes"], ids=repr)
def test_what_json_refuses_is_still_refused(value):
    with pytest.raises(TypeError):
        json.dumps(value)
    with pytest.raises(TypeError):
        jsontext.dumps(value)


@pytest.mark.parametrize("text", [
    "18446744073709551616", "-9223372036854775809", "9223372036854775807", "123456789012345678901234567890",
    '{"id": 100000000000000000000, "n": 1}', "NaN", "Infinity", "-Infinity", "1e400", "[1e-05, 1E5, -0.0]",
    '"\\ud800"', '"a\\udc80b"', '"é\\u00e9\\u2028"', '{"a": 1, "a": 2}', '"\\u0000"', ' [ ] ',
    # 19 digits and more in a string (a 2.25. OID) read by orjson; with a float beside them, by json
    '{"unique_id": "2.25.288918539441860505797143683837611387251", "v": [1, {"n": null}]}',
    '{"unique_id": "2.25.288918539441860505797143683837611387251", "x": 0.5}',
    '{"oid": "1234567890123456789012", "big": [18446744073709551616]}', '[-18446744073709551617, "a"]',
])
@pytest.mark.parametrize("kind", [str, lambda t: t.encode("utf-8")])
def test_loads_reads_what_json_reads(text, kind):
    expected, got = json.loads(kind(text)), jsontext.loads(kind(text))
    assert repr(got) == repr(expected)   # repr: NaN != NaN, and 1 == 1.0 would hide an int read as a float
    assert type(got) is type(expected)


@pytest.mark.parametrize("text", ["", "{", "[1,]", "nan", "{'a': 1}", '"\\x"'])
def test_loads_refuses_what_json_refuses(text):
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
    with pytest.raises(json.JSONDecodeError):
        jsontext.loads(text)


def test_a_memoryview_from_sqlite_reads_as_bytes():
    assert jsontext.loads(memoryview(b'{"a": [1]}')) == {"a": [1]}


_scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=-(2**70), max_value=2**70)
            | st.floats(allow_nan=True, allow_infinity=True) | st.text() | st.text(st.characters(codec=None)))
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(st.text(max_size=5), inner, max_size=4), max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(_values)
def test_generated_values_are_written_and_read_as_json_does(value):
    text = jsontext.dumps(value)
    assert text == _reference(value)
    assert repr(jsontext.loads(text)) == repr(json.loads(text))
    assert repr(jsontext.loads(text.encode("utf-8", "surrogatepass"))) == repr(
        json.loads(text.encode("utf-8", "surrogatepass")))


@settings(max_examples=2000, deadline=None)
@given(st.floats(allow_nan=True, allow_infinity=True) | st.floats(min_value=1e-4, max_value=1e16)
       | st.floats(min_value=-1e16, max_value=-1e-4))
def test_floats_are_written_as_json_writes_them_on_both_sides_of_the_exponent_bounds(value):
    for wrapped in (value, [value], {"issued_at": value, "n": 1}):
        assert jsontext.dumps(wrapped) == _reference(wrapped)


@pytest.mark.parametrize("value", [1e-4, 0.0001, 9.999999999999999e-05, 1e16, 9999999999999998.0, 1e15, -1e-4,
                                   0.0, -0.0, 5e-324, 1.7976931348623157e308, 1796600546.3119934])
def test_floats_at_the_bounds(value):
    assert jsontext.dumps({"v": value}) == _reference({"v": value})


def test_floats_stay_floats_and_nan_stays_nan():
    assert math.isnan(jsontext.loads(jsontext.dumps([float("nan")]))[0])


def _can_write_by_walk(value: object) -> bool:
    """The walk `_orjson_can_write` replaced (one Python step per value): the answer it must keep."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is dict:
            if any(type(key) is not str for key in item):
                return False
            stack.extend(item.values())
        elif kind is list or kind is tuple:
            stack.extend(item)
        elif kind is float:
            if item and not 1e-4 <= abs(item) < 1e16:
                return False
        elif kind not in (str, int, bool, type(None)):
            return False
    return True


_odd = st.sampled_from([Level.HIGH, Name("sub"), Colour.RED, Point(1), b"b", frozenset(), datetime.date(2026, 1, 1)])
_keys = st.text(max_size=3) | st.integers() | st.none() | st.booleans() | st.floats() | st.builds(Name, st.text())
_any = st.recursive(_scalars | _odd | st.floats(min_value=-1e17, max_value=1e17),
                    lambda inner: st.lists(inner, max_size=5) | st.tuples(inner, inner)
                    | st.dictionaries(_keys, inner, max_size=4), max_leaves=25)


@settings(max_examples=1500, deadline=None)
@given(_any)
def test_the_check_of_what_orjson_may_write_answers_as_the_walk_did(value):
    assert jsontext._orjson_can_write(value) is _can_write_by_walk(value)
