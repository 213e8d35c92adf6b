"""The package type-checks: mypy over mockbench/ (pyproject's [tool.mypy]), run by `make test` and `make lint`,
with a list of the files not yet clean that may only shrink (issue 20, point 1).

mypy's cache lives in the system's temporary folder, one per checkout, never in the repository. Measured on
two cores under a load of 11: a cold run (a fresh clone, CI) 20 s (5 s of CPU), a warm one 0.8 s."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Files allowed mypy errors, each with its count: none since the package came clean. Should a file ever need
# an allowance, a count that drops or a file that comes clean fails the test until lowered or removed here:
# the list only shrinks. A new error anywhere else fails it.
KNOWN: dict[str, int] = {}

_ERROR = re.compile(r"^(?P<file>[^:\s]+\.py):\d+(?::\d+)?: error: ")


def cache_dir() -> Path:
    """One cache per checkout (worktrees side by side must not share one), outside the repository."""
    digest = hashlib.sha256(str(ROOT).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"mockbench-mypy-{digest}"


def run_mypy() -> tuple[Counter[str], list[str]]:
    """Errors per file, and mypy's error lines, from `mypy` as configured in pyproject.toml."""
    done = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(cache_dir()), "--no-color-output"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode in (0, 1), f"mypy did not run (exit {done.returncode}):\n{done.stdout}{done.stderr}"
    found = [(m["file"], line) for line in done.stdout.splitlines() if (m := _ERROR.match(line))]
    assert done.returncode == 0 or found, f"mypy failed without an error line:\n{done.stdout}{done.stderr}"
    return Counter(file for file, _ in found), [line for _, line in found]


@pytest.mark.slow
def test_mypy_errors_only_in_known_files() -> None:
    pytest.importorskip("mypy", reason="mypy is in the test extra: pip install -e '.[test]'")
    counts, lines = run_mypy()
    problems = []
    for file, count in sorted(counts.items()):
        allowed = KNOWN.get(file, 0)
        if count > allowed:
            shown = [line for line in lines if line.startswith(file + ":")]
            problems.append(f"{file}: {count} mypy errors, {allowed} allowed\n  " + "\n  ".join(shown))
    for file, allowed in sorted(KNOWN.items()):
        if counts.get(file, 0) < allowed:
            problems.append(f"{file}: {counts.get(file, 0)} mypy errors now, KNOWN allows {allowed}: lower it in "
                            f"tests/test_types.py (remove the entry at 0), the list only shrinks")
    assert not problems, "\n".join(problems)


def test_error_lines_are_read() -> None:
    """The pattern the check counts with reads mypy's error lines (with or without a column)."""
    match = _ERROR.match("mockbench/a/b.py:12: error: Incompatible types  [assignment]")
    assert match and match["file"] == "mockbench/a/b.py"
    assert _ERROR.match("mockbench/a.py:3:7: error: x  [misc]")
    assert not _ERROR.match("mockbench/a.py:3: note: See https://mypy.readthedocs.io")
    assert not _ERROR.match("Found 3 errors in 1 file (checked 97 source files)")
