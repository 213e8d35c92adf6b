"""Times as the shared formats write them, in one place: ISO 8601 (the world's), HL7 v2 DTM (XDS metadata,
the PFI's MSH-7 and CDA effectiveTime) and HL7 v3 TS (the DMP's TD0.x). The world's clock reads ISO times
with `parse_time`; the DMP door, the PFI door and the XDM/ebRIM formats convert with the others."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

__all__ = ["dtm", "dtm_to_iso", "hl7_ts", "iso_from_ts", "iso_to_dtm", "parse_time"]

# YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ] (HL7 v2.5 DTM, ITI TF-3 4.2.3.1.7 for XDS).
_DTM = re.compile(r"(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.\d{1,4})?([+-]\d{4})?")
# HL7 v3 TS as the DMP's TD0.x examples write it: YYYYMMDD, YYYYMMDDHHMM or YYYYMMDDHHMMSS.
_TS = re.compile(r"\d{8}(\d{4}(\d{2})?)?")
_DTM_FORMAT = "%Y%m%d%H%M%S"


def parse_time(text: str) -> datetime:
    """ISO 8601 (a trailing Z, or naive = UTC) -> an aware datetime. Raises ValueError."""
    dt = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def dtm(when: datetime) -> str:
    """An aware datetime as HL7 digits YYYYMMDDHHMMSS in UTC (MSH-7, XDS times, TS)."""
    return when.astimezone(UTC).strftime(_DTM_FORMAT)


def iso_to_dtm(value: str) -> str:
    """ISO 8601 (naive = UTC) -> HL7 DTM YYYYMMDDHHMMSS in UTC."""
    return dtm(parse_time(value))


def dtm_to_iso(value: str) -> str:
    """HL7 DTM (YYYY[MM[DD[HH[MM[SS]]]]], UTC in XDS; an offset is honoured) -> 'YYYY-MM-DDTHH:MM:SSZ'.
    A truncated value gives its earliest instant. Raises ValueError."""
    m = _DTM.fullmatch((value or "").strip())
    if not m:
        raise ValueError(f"{value!r} is not an HL7 DTM (YYYYMMDDHHMMSS)")
    year, month, day, hour, minute, second, offset = m.groups()
    dt = datetime(int(year), int(month or 1), int(day or 1), int(hour or 0), int(minute or 0),
                  int(second or 0), tzinfo=UTC)
    if offset and offset[1:] != "0000":   # +0000 / -0000 is UTC already: no conversion
        sign = 1 if offset[0] == "+" else -1
        delta = timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5]))
        dt = dt.replace(tzinfo=timezone(sign * delta)).astimezone(UTC)
    # The text strftime("%Y-%m-%dT%H:%M:%SZ") gave, at a third of its cost (issue 21, point 4: a PFI message
    # converts its CDA's effectiveTime and service times); glibc's %Y does not pad a year below 1000 either.
    # test_times.py compares both.
    return f"{dt.year}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}Z"


def hl7_ts(value: str) -> str:
    """An ISO 8601 time (UTC when it has no zone), or HL7 TS digits, as HL7 TS digits in UTC."""
    text = str(value).strip()
    return text if _TS.fullmatch(text) else iso_to_dtm(text)


def iso_from_ts(value: str) -> str:
    """HL7 TS digits (YYYYMMDD, YYYYMMDDHHMM or YYYYMMDDHHMMSS), read as UTC, as ISO 8601 with a Z."""
    text = value.strip()
    if not _TS.fullmatch(text):
        raise ValueError(f"{value!r} is not an HL7 TS")
    return dtm_to_iso(text)
