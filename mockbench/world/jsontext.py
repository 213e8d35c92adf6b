"""JSON text of the world's rows and journal entries: orjson where it writes and reads exactly what the
standard library does, the standard library for the rest (issue 21 point 1).

`dumps(value)` is the text `json.dumps(value, separators=(",", ":"), ensure_ascii=False)` writes, the very
same characters; `loads(text)` the value `json.loads(text)` reads. orjson is several times faster but differs
on a few values, which go to `json` instead:
- floats: orjson writes 1e-05 as 0.00001, 1e+16 as 1e16, and NaN and Infinity as null (json: NaN, Infinity);
  between 1e-4 and 1e16 (and zero), where Python's repr uses no exponent, both write the same shortest digits.
  A value holding a float outside that range is written by json. Reading, orjson refuses NaN, Infinity and
  1e400 (json reads them): json reads.
- integers beyond 64 bits: orjson refuses to write them (json writes them); reading, orjson turns them into
  floats without a word, so a text with a run of 19 digits or more (every such integer has one) is read by
  json.
- lone surrogates (a str that is not valid UTF-8): orjson refuses them both ways; json writes and reads them.
- anything but dict (str keys), list, tuple, str, int, bool and None, subclasses included (orjson writes
  dataclasses, datetimes, UUIDs and enums that json refuses, and str subclasses its own way): json, which
  raises TypeError for what it cannot write, as before.
tests/world/test_jsontext.py compares both on these cases and on generated values.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_PLAIN = (str, int, bool, type(None))
# A run of 19 digits, found as 19 zeros once every digit is a zero and everything else a space: translate and
# find run in C at memory speed, where a regular expression took longer than json.loads itself.
_DIGITS_AS_ZEROS = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
_NINETEEN_DIGITS = b"0" * 19


def _orjson_can_write(value: Any) -> bool:
    """Only exact dicts with str keys, lists, tuples, str, int, bool, None and floats that both write alike
    (see the module's docstring), all the way down."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is dict:
            for key in item:
                if type(key) is not str:
                    return False
            stack.extend(item.values())
        elif kind is list or kind is tuple:
            stack.extend(item)
        elif kind is float:
            if item and not 1e-4 <= abs(item) < 1e16:   # NaN fails the comparison too
                return False
        elif kind not in _PLAIN:
            return False
    return True


def dumps(value: Any) -> str:
    """`json.dumps(value, separators=(",", ":"), ensure_ascii=False)`, the same text."""
    text = orjson_dumps(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False) if text is None else text


def orjson_dumps(value: Any) -> str | None:
    """`dumps(value)` written by orjson, or None when orjson would not write the same text."""
    if _orjson_can_write(value):
        try:
            return orjson.dumps(value).decode("utf-8")
        except TypeError:   # an integer beyond 64 bits, a lone surrogate, nesting deeper than orjson's 254
            pass
    return None


def loads(text: str | bytes | bytearray | memoryview) -> Any:
    """`json.loads(text)`, the same value."""
    if isinstance(text, memoryview):
        text = bytes(text)
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if data.translate(_DIGITS_AS_ZEROS).find(_NINETEEN_DIGITS) < 0:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:   # NaN, Infinity, 1e400, a lone surrogate; or not JSON: json says why
            pass
    return json.loads(text)
