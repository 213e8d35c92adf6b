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


def _value_before(segment, fld, rep=1, comp=1, sub=1, enc="^~\\&", field_sep="|"):
    """hl7.value as it was before its steps were unrolled and long fields kept split: the reference."""
    if fld >= len(segment):
        return ""
    text = segment[fld]
    if segment[0] == "MSH" and fld in (1, 2):
        return text
    comp_sep, rep_sep, sub_sep = enc[0], enc[1], enc[3]
    for sep, index in ((rep_sep, rep), (comp_sep, comp), (sub_sep, sub)):
        if sep in text:
            parts = text.split(sep)
            if index > len(parts):
                return ""
            text = parts[index - 1]
        elif index > 1:
            return ""
    return hl7.unescape(text, enc, field_sep) if enc[2] in text else text


def test_values_read_as_before_short_and_long_fields_read_again_and_again():
    """Random fields (separators, escapes, texts below and above the length a field is kept split from), read
    by position in random order, several times each, by the module's `value` and by a message's."""
    rng = random.Random(4)
    for _ in range(300):
        fields = []
        for _ in range(rng.randint(1, 6)):
            pieces = [rng.choice(["x", "ab", "\\F\\", "\\S\\", "\\E\\", "\\X\\", "^", "~", "&", ""])
                      for _ in range(rng.randint(0, 12))]
            if rng.random() < 0.5:
                pieces.insert(rng.randint(0, len(pieces)), "B" * rng.choice([hl7._LONG_TEXT, 5000]))
            fields.append("".join(pieces))
        payload = ("MSH|^~\\&|A|B|C|D|20261120100000||MDM^T02^MDM_T02|M1|P|2.6\r"
                   "OBX|" + "|".join(fields) + "\r").encode()
        inbound = hl7.parse(payload)
        obx = inbound.segments("OBX")[0]
        for _ in range(40):
            position = (rng.randint(0, len(obx)), rng.randint(1, 3), rng.randint(1, 4), rng.randint(1, 3))
            expected = _value_before(obx, *position)
            assert hl7.value(obx, *position) == expected
            assert inbound.value(obx, *position) == expected
            assert inbound.get("OBX", *position) == expected
        for fld in range(1, 13):   # MSH-1 and MSH-2 as they are, the rest by the same steps
            assert inbound.value(inbound.msh, fld, 1, 2) == _value_before(inbound.msh, fld, 1, 2)
