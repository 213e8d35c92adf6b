"""The virtual clock: real time plus an offset that the control API and scenarios move forward."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from ..formats.times import parse_time as parse_time  # ISO 8601 read in one place, re-exported

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str | int | float) -> float:
    """'30s', '5m', '1h30m', '2d' or a number of seconds -> seconds."""
    if isinstance(text, bool):
        raise ValueError(f"{text!r} is not a duration")
    if isinstance(text, int | float):
        return float(text)
    s = str(text).strip().lstrip("+")
    if re.fullmatch(r"\d+(\.\d+)?", s):
        return float(s)
    pos, total = 0, 0.0
    for m in _DURATION.finditer(s):
        if s[pos:m.start()].strip():
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos == 0 or s[pos:].strip():
        raise ValueError(f"{text!r} is not a duration: write it like 30s, 5m, 1h30m or 2d")
    return total


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Clock:
    def __init__(self, real: Callable[[], float] = time.time) -> None:
        self._real = real
        self.offset = 0.0

    def timestamp(self) -> float:
        return self._real() + self.offset

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp(), UTC)

    def now_iso(self) -> str:
        return iso(self.now())

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self.offset += seconds

    def later(self, seconds: float) -> datetime:
        return self.now() + timedelta(seconds=seconds)
