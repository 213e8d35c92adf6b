"""`mockbench up` stops on SIGTERM or SIGINT however many arrive at once (a Ctrl-C pressed twice, `docker stop`
after an orchestrator's own SIGTERM, make forwarding the signal to its child).

Seen on this machine: `timeout 25 make up` left `mockbench up` running for good. Its signal handler called
`Event.set()` in the main thread while that thread was inside `Event.wait()`, re-taking the event's lock after
the first signal had woken it: the second signal's handler waited for a lock its own thread held (py-spy showed
four handlers stacked on `Condition.__enter__`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from kit.process import wait_for_port_file


def up(tmp_path, name: str) -> tuple[subprocess.Popen, dict]:
    port_file = tmp_path / f"{name}.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOCKBENCH_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mockbench", "up", "--state", str(tmp_path / name), "--host", "127.0.0.1",
         "--http-port", "0", "--mllp-port", "0", "--smtp-port", "0", "--imap-port", "0",
         "--port-file", str(port_file), "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        return proc, wait_for_port_file(proc, port_file)
    except BaseException:
        proc.kill()
        raise


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_burst_of_signals_stops_the_bench(tmp_path, sig):
    for attempt in range(3):   # the race needs a signal to land in a few instructions: several tries
        proc, _ = up(tmp_path, f"{sig.name}-{attempt}")
        try:
            deadline = time.monotonic() + 0.2   # a stream of signals, so that one lands inside the handler
            while time.monotonic() < deadline and proc.poll() is None:
                os.kill(proc.pid, sig)
            code = proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pytest.fail(f"mockbench up was still running 15 s after a burst of {sig.name} (attempt {attempt + 1})")
        assert code == 0, proc.stderr.read().decode("utf-8", "replace") if proc.stderr else code
        if proc.stderr:
            proc.stderr.close()
