"""messages._b64_strict: base64.b64decode(validate=True)'s bytes and errors, with a cheaper decoder for well-formed
texts."""

import base64
import binascii
import os
import random

import pytest

from mockbench.protocols.pfi.messages import _b64_strict


def _strict(text: str):
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        return type(exc), str(exc)


def _ours(text: str):
    try:
        return _b64_strict(text)
    except (binascii.Error, ValueError) as exc:
        return type(exc), str(exc)


@pytest.mark.parametrize("text", [
    "", "AB==", "AC==", "ABC=", "ABCD", "A===", "====", "==", "AB=C", "=ABC", "AB==AB==", "AB\n=", "AB*=",
    "ABCDE", "ABCDEF", "ABCDEFG", "é===", "AB=", base64.b64encode(os.urandom(30_000)).decode(),
])
def test_same_bytes_and_errors_as_the_strict_decoder(text):
    assert _ours(text) == _strict(text)


def test_same_on_random_texts():
    rng = random.Random(4)
    alphabet = "ABCxyz019+/=-_ \n*é"
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 13)))
        assert _ours(text) == _strict(text), text
