"""What the container check's conftest and tests share."""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def unavailable(reason: str):
    """Skip here; fail under CI, where the container check must run."""
    if under_ci():
        pytest.fail(f"the container check cannot run under CI: {reason}", pytrace=False)
    pytest.skip(reason)
