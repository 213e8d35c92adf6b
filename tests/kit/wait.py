"""Polling: the one way the tests wait for something the bench does on another thread."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(predicate: Callable[[], object], timeout: float = 10.0, step: float = 0.02) -> bool:
    """Whether `predicate()` came true within `timeout` seconds (asked every `step` s, and once more at the
    end); for `assert wait_for(...)`."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return bool(predicate())
        time.sleep(step)
    return True


def wait_until(predicate: Callable[[], object], timeout: float = 10.0, message: str = "") -> None:
    """`wait_for`, raising AssertionError (with `message`) when the time runs out."""
    assert wait_for(predicate, timeout), message or f"still false after {timeout:g} s: {predicate}"
