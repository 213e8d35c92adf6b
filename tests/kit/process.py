"""`mockbench up` as a child process: waiting until it is ready (the port file written) or gone."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from .wait import wait_for


def wait_for_port_file(proc: subprocess.Popen, port_file: Path, timeout: float = 30.0) -> dict:
    """The ports `mockbench up --port-file` wrote once ready. Fails with the process's output when it ended
    first, and says so when `timeout` seconds passed (the process is left running: the caller stops it)."""
    wait_for(lambda: port_file.exists() or proc.poll() is not None, timeout)
    if not port_file.exists():
        if proc.poll() is None:
            raise AssertionError(f"no port file after {timeout:g} s")
        out, err = proc.communicate(timeout=10)
        shown = "".join(x.decode("utf-8", "replace") if isinstance(x, bytes) else x for x in (out, err) if x)
        raise AssertionError(f"mockbench up ended with {proc.returncode} before it was ready:\n{shown}")
    return json.loads(port_file.read_text(encoding="utf-8"))
