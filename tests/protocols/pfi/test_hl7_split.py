"""hl7.split: str.split's list for a one-character separator, found with str.find on long texts (the OBX-5 of a
message carrying a base64 CDA), whatever the separators' density."""

import random

import pytest

from mockbench.protocols.pfi import hl7
from mockbench.protocols.pfi.hl7 import split


@pytest.mark.parametrize("text", [
    "", "^", "^^", "x", "a^b", "x" * 5000, "^" * 5000, "x" * 5000 + "^", "^" + "x" * 5000,
    "^" * 64 + "x" * 5000, "^" * 65 + "x" * 5000, ("x" * 100 + "^") * 100, "^".join(["x" * 3000] * 5),
])
def test_split_is_str_split(text):
    assert split(text, "^") == text.split("^")


def test_split_is_str_split_on_random_texts():
    rng = random.Random(21)
    for _ in range(500):
        length = rng.choice([0, 3, hl7._LONG_TEXT - 1, hl7._LONG_TEXT, hl7._LONG_TEXT + 1, 6000])
        density = rng.choice([0.0005, 0.01, 0.2, 0.9])
        text = "".join(rng.choice("^|\r") if rng.random() < density else "x" for _ in range(length))
        for sep in "^|\r":
            assert split(text, sep) == text.split(sep)


def test_a_long_field_reads_as_before():
    """The OBX-5 of a 30 KiB message: its components as the HL7 reader always gave them."""
    data = "QUJD" * 8000
    payload = ("MSH|^~\\&|DPI|CHU|PFI|CHU|20261120100000||MDM^T02^MDM_T02|M1|P|2.6|||||FRA|UNICODE UTF-8\r"
               f"OBX|1|ED|11488-4^CR^LN||^text^XML^Base64^{data}||||||F\r").encode()
    inbound = hl7.parse(payload)
    obx = inbound.segments("OBX")[0]
    assert inbound.value(obx, 5, 1, 4) == "Base64"
    assert inbound.value(obx, 5, 1, 5) == data
    assert inbound.value(obx, 5, 1, 6) == ""
    assert inbound.value(obx, 11) == "F"
