"""Helpers for the reliability suite (issue 17): a bench as a real process, a fake DPI MLLP listener on a
chosen port, the PFI test world. (A module of its own: `conftest` names another module in each test folder.)"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

PFI_WORLD = """\
id: pfi-reliability
title: Essai de fiabilité PFI
seed: 5
world:
  structures: [{id: chu, name: CHU de Test}]
  professionals:
    - {id: dr_a, family_name: MARTIN, given_name: Jeanne, structure: chu}
  patients:
    - id: alice
      sex: F
      family_name: DURAND
      given_name: Alice
      birth_date: "1980-05-04"
      authorizations: [{structure: chu}]
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class BenchProcess:
    """`mockbench up` as a child process on ephemeral ports; ready when its port file appears."""

    def __init__(self, state: Path, *extra: str, timeout: float = 30.0) -> None:
        self.port_file = state.parent / f"{state.name}.ports.json"
        self.port_file.unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mockbench", "up", "--state", str(state), "--http-port", "0", "--mllp-port", "0",
             "--smtp-port", "0", "--imap-port", "0", "--port-file", str(self.port_file), "--quiet", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while not self.port_file.exists():
            if self.proc.poll() is not None:
                raise AssertionError(f"the bench ended: {self.proc.stderr.read().decode()}")
            if time.monotonic() > deadline:
                self.proc.kill()
                raise AssertionError(f"the bench did not get ready in {timeout} s")
            time.sleep(0.02)
        self.ports = json.loads(self.port_file.read_text())
        self.url = f"http://127.0.0.1:{self.ports['http']}"

    def kill(self) -> None:
        self.proc.kill()      # SIGKILL
        self.proc.wait(10)

    def terminate(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill()
        for stream in (self.proc.stdout, self.proc.stderr):
            stream.close()
