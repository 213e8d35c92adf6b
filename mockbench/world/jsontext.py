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
  floats without a word, so a text with a run of 19 digits or more (every such integer has one) whose value
  as orjson reads it holds a float is read by json (a run in a string, such as a 2.25. OID, is orjson's).
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
    (see the module's docstring), all the way down. A container's str, int, bool and None values are judged
    where they are met, not pushed and popped (the walk was 3 % of a PFI message's instructions)."""
    stack = [value]
    pop, push = stack.pop, stack.append
    while stack:
        item = pop()
        kind = type(item)
        if kind is dict:
            for key, sub in item.items():
                if type(key) is not str:
                    return False
                kind = type(sub)
                if kind is str or kind is int or kind is bool or sub is None:
                    continue
                push(sub)
        elif kind is list or kind is tuple:
            for sub in item:
                kind = type(sub)
                if kind is str or kind is int or kind is bool or sub is None:
                    continue
                push(sub)
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
    data = orjson_dumps_utf8(value)
    return None if data is None else data.decode("utf-8")


def orjson_dumps_utf8(value: Any) -> bytes | None:
    """The UTF-8 of `dumps(value)` written by orjson, or None when orjson would not write the same text."""
    if _orjson_can_write(value):
        try:
            return orjson.dumps(value)
        except TypeError:   # an integer beyond 64 bits, a lone surrogate, nesting deeper than orjson's 254
            pass
    return None


def loads(text: str | bytes | bytearray | memoryview) -> Any:
    """`json.loads(text)`, the same value."""
    if isinstance(text, memoryview):
        text = bytes(text)
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    long_digits = data.translate(_DIGITS_AS_ZEROS).find(_NINETEEN_DIGITS) >= 0
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:   # NaN, Infinity, 1e400, a lone surrogate; or not JSON: json says why
        return json.loads(text)
    # A run of 19 digits is most often in a string (a 2.25. OID: every DMP document's uniqueId). Only an
    # integer beyond 64 bits makes orjson differ, and it makes a float of it: a value without any float is
    # json's value (issue 21: the document rows went to json.loads, a few % of a TD3.1).
    if long_digits and _holds_float(value):
        return json.loads(text)
    return value


def _holds_float(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is dict:
            stack.extend(item.values())
        elif kind is list:
            stack.extend(item)
        elif kind is float:
            return True
    return False
