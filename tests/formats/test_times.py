"""formats/times.py: the HL7 and ISO time conversions every door and format uses (issue 20: written once)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mockbench.formats import ebrim, times
from mockbench.protocols.dmp import hl7v3
from mockbench.world import clock


def test_the_world_and_the_doors_use_the_one_definition():
    assert clock.parse_time is times.parse_time
    assert ebrim.dtm_to_iso is times.dtm_to_iso and ebrim.iso_to_dtm is times.iso_to_dtm
    assert hl7v3.hl7_ts is times.hl7_ts and hl7v3.iso_from_ts is times.iso_from_ts


def test_parse_time_reads_z_offsets_and_naive_as_utc():
    assert times.parse_time("2024-03-01T10:00:00Z") == datetime(2024, 3, 1, 10, tzinfo=UTC)
    assert times.parse_time("2024-03-01T11:00:00+01:00") == datetime(2024, 3, 1, 10, tzinfo=UTC)
    assert times.parse_time("2024-03-01T10:00:00").tzinfo is UTC
    with pytest.raises(ValueError):
        times.parse_time("yesterday")


def test_dtm_is_utc_digits():
    paris = timezone(timedelta(hours=2))
    assert times.dtm(datetime(2024, 6, 1, 12, 30, 5, tzinfo=paris)) == "20240601103005"
    assert times.iso_to_dtm("2024-06-01T12:30:05+02:00") == "20240601103005"


@pytest.mark.parametrize("value,iso", [
    ("2024", "2024-01-01T00:00:00Z"), ("20240315", "2024-03-15T00:00:00Z"),
    ("20240315103000", "2024-03-15T10:30:00Z"), ("20240315103000.123", "2024-03-15T10:30:00Z"),
    ("20240315103000+0100", "2024-03-15T09:30:00Z"), ("20240315003000-0230", "2024-03-15T03:00:00Z"),
])
def test_dtm_to_iso_honours_truncation_and_offsets(value, iso):
    assert times.dtm_to_iso(value) == iso


@pytest.mark.parametrize("bad", ["", "24", "2024-03-15", "20241345", "20240315103000Z"])
def test_dtm_to_iso_refuses_what_is_not_a_dtm(bad):
    with pytest.raises(ValueError):
        times.dtm_to_iso(bad)


def test_ts_is_stricter_than_dtm():
    assert times.iso_from_ts("20240301") == "2024-03-01T00:00:00Z"
    assert times.iso_from_ts(" 20240301101112 ") == "2024-03-01T10:11:12Z"
    for bad in ("2024", "2024030110", "20240301101112+0100", "20241301"):
        with pytest.raises(ValueError):
            times.iso_from_ts(bad)
    assert times.hl7_ts(" 202403011011 ") == "202403011011"     # TS digits are kept as given
    assert times.hl7_ts("2024-03-01T10:11:12") == "20240301101112"


def _former_dtm_to_iso(value: str) -> str:
    """dtm_to_iso before issue 21 point 4's fast path: every offset converted, every text by strftime."""
    m = times._DTM.fullmatch((value or "").strip())
    if not m:
        raise ValueError(value)
    year, month, day, hour, minute, second, offset = m.groups()
    dt = datetime(int(year), int(month or 1), int(day or 1), int(hour or 0), int(minute or 0),
                  int(second or 0), tzinfo=UTC)
    if offset:
        sign = 1 if offset[0] == "+" else -1
        delta = timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5]))
        dt = dt.replace(tzinfo=timezone(sign * delta)).astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def _outcome(fn, value):
    try:
        return fn(value)
    except Exception as exc:   # the same exception type either way (ValueError, OverflowError)
        return type(exc)


_DIGIT = st.sampled_from("0123456789") | st.characters(categories=["Nd"])


@settings(max_examples=600, deadline=None)
@given(year=st.text("0123456789", min_size=4, max_size=4) | st.sampled_from(["0000", "0001", "0999", "1000",
                                                                              "9999", "2026"]),
       rest=st.text(_DIGIT, max_size=10), frac=st.sampled_from(["", ".1", ".1234"]),
       offset=st.sampled_from(["", "+0000", "-0000", "+0100", "-0230", "+2359", "-2400", "+0060", "+9999"])
       | st.builds(lambda s, d: s + d, st.sampled_from("+-"), st.text(_DIGIT, min_size=4, max_size=4)),
       pad=st.sampled_from(["", " ", "\t"]))
def test_dtm_to_iso_gives_what_the_former_conversion_gave(year, rest, frac, offset, pad):
    """The fast path (no conversion for +0000/-0000, the text by an f-string) against the former code, on
    truncated values, fractions, zero and odd offsets, years below 1000 and non-ASCII digits: the same text or
    the same exception."""
    value = pad + year + rest + frac + offset + pad
    assert _outcome(times.dtm_to_iso, value) == _outcome(_former_dtm_to_iso, value)
