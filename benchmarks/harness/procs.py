"""The systems under test as processes: mockbench and its peers, on loopback, each in its own session.

Every server is a subprocess started with `start_new_session=True`, so that stopping it signals its whole
process group (SIGTERM, then SIGKILL); the harness stops every server it started in a `finally`. Readiness
is bounded polling: mockbench's port file, the peers' first answer.
"""

from __future__ import annotations

import glob
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]
BENCH_DIR = ROOT / ".bench"
NODE_DIR = BENCH_DIR / "node"
NODE_MODULES = NODE_DIR / "node_modules"
VENV_DIR = BENCH_DIR / "venv"

HOST = "127.0.0.1"
READY_TIMEOUT = 60.0   # seconds for a server to answer after spawning
STOP_TIMEOUT = 10.0    # seconds for a process group to exit after SIGTERM
POLL = 0.005           # seconds between readiness probes
MIB = 1024 * 1024


class Unavailable(Exception):
    """A system that is not installed or did not start: its rows in the table say so."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def child_env(**extra: str) -> dict[str, str]:
    """The caller's environment, less MOCKBENCH_* settings (a bench must not inherit them) and less
    PYTHONDONTWRITEBYTECODE: a user's install has its bytecode (pip compiles a wheel's modules; a checkout
    writes them on its first run), and without it every start compiled the whole package again (measured
    here: 0.70 s to ready instead of 0.49 s, 0.25 s of it in compile())."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MOCKBENCH_") and k != "PYTHONDONTWRITEBYTECODE"}
    env.update(extra)
    return env


# Probes: each returns True once the server answers ---------------------------------------------------
def http_answers(port: int, path: str = "/") -> Callable[[], bool]:
    def probe() -> bool:
        conn = http.client.HTTPConnection(HOST, port, timeout=1.0)
        try:
            conn.request("GET", path)
            conn.getresponse().read()
            return True  # any answer counts: the server is up
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()
    return probe


def smtp_answers(port: int) -> Callable[[], bool]:
    def probe() -> bool:
        try:
            with socket.create_connection((HOST, port), timeout=1.0) as s:
                return s.recv(64).startswith(b"220")
        except OSError:
            return False
    return probe


def file_exists(path: Path) -> Callable[[], bool]:
    return path.exists


# A server process ----------------------------------------------------------------------------------
class Server:
    """One system under test: argv, where it listens, how to tell it is ready."""

    def __init__(self, name: str, argv: list[str], workdir: Path, ports: dict[str, int],
                 probe: Callable[[], bool], env: dict[str, str] | None = None) -> None:
        self.name, self.argv, self.workdir, self.ports, self.probe = name, argv, workdir, ports, probe
        self.env = env if env is not None else child_env()
        self.proc: subprocess.Popen | None = None
        self._log = None

    @property
    def log_path(self) -> Path:
        return self.workdir / "output.log"

    def start(self, timeout: float = READY_TIMEOUT) -> float:
        """Spawn the server; return the seconds from spawning to its first answer."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "wb")  # closed in stop()
        t0 = time.perf_counter()
        try:
            self.proc = subprocess.Popen(self.argv, stdout=self._log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=self.workdir, env=self.env,
                                         start_new_session=True)
        except OSError as exc:
            self.stop()
            raise Unavailable(f"cannot start {self.name}: {exc}") from None
        deadline = t0 + timeout
        while not self.probe():
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.stop()
                raise Unavailable(f"{self.name} exited with {code} before answering: {self.tail()}")
            if time.perf_counter() > deadline:
                self.stop()
                raise Unavailable(f"{self.name} did not answer within {timeout:.0f} s: {self.tail()}")
            time.sleep(POLL)
        return time.perf_counter() - t0

    def tail(self, size: int = 600) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return " ".join(text[-size:].split())

    def rss(self) -> int:
        """Resident memory of the whole process tree, in bytes."""
        if self.proc is None or self.proc.poll() is not None:
            raise Unavailable(f"{self.name} is not running")
        try:
            root = psutil.Process(self.proc.pid)
            total = root.memory_info().rss
            for child in root.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except psutil.NoSuchProcess:
                    pass
            return total
        except psutil.NoSuchProcess:
            raise Unavailable(f"{self.name} is not running") from None

    def cpu_seconds(self) -> float:
        """User and system CPU time of the whole process tree so far, in seconds."""
        if self.proc is None or self.proc.poll() is not None:
            raise Unavailable(f"{self.name} is not running")
        root = psutil.Process(self.proc.pid)
        total = 0.0
        for p in [root, *root.children(recursive=True)]:
            try:
                times = p.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                pass
        return total

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """SIGTERM to the whole process group, SIGKILL if it lingers; never raises."""
        if self.proc is not None:
            pgid = self.proc.pid  # start_new_session: the group's id is the leader's pid
            try:
                os.killpg(pgid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(pgid, signal.SIGKILL)  # whatever is left of the group, leader or children
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        if self._log is not None:
            self._log.close()
            self._log = None


# The systems ---------------------------------------------------------------------------------------
class MockbenchServer(Server):
    """mockbench up on free ports; ready when its port file exists (it lists every bound port)."""

    def __init__(self, workdir: Path, scenario: str | None = "hidden-documents") -> None:
        self.port_file = workdir / "ports.json"
        argv = [sys.executable, "-m", "mockbench", "up", "--host", HOST, "--http-port", "0", "--mllp-port", "0",
                "--smtp-port", "0", "--imap-port", "0", "--port-file", str(self.port_file),
                "--state", str(workdir / "state"), "--quiet"]
        if scenario:
            argv += ["--scenario", scenario]
        super().__init__("mockbench", argv, workdir, {}, file_exists(self.port_file))

    def start(self, timeout: float = READY_TIMEOUT) -> float:
        elapsed = super().start(timeout)
        self.ports.update(json.loads(self.port_file.read_text(encoding="utf-8")))
        return elapsed


def mockbench(workdir: Path, scenario: str | None = "hidden-documents") -> Server:
    return MockbenchServer(workdir, scenario)


def wiremock_jar() -> Path:
    found = sorted(glob.glob(str(NODE_MODULES / "wiremock" / "build" / "wiremock-standalone-*.jar")) +
                   glob.glob(str(NODE_MODULES / "wiremock" / "jdeploy-bundle" / "wiremock-standalone-*.jar")))
    if not found:
        raise Unavailable("WireMock is not installed (no wiremock-standalone jar under .bench/node)")
    if shutil.which("java") is None:
        raise Unavailable("WireMock needs java, which is not on PATH")
    return Path(found[-1])


def wiremock(workdir: Path) -> Server:
    port = free_port()
    (workdir / "wiremock").mkdir(parents=True, exist_ok=True)
    argv = ["java", "-jar", str(wiremock_jar()), "--port", str(port), "--bind-address", HOST,
            "--root-dir", str(workdir / "wiremock"), "--disable-banner"]
    return Server("WireMock", argv, workdir, {"http": port}, http_answers(port, "/__admin/health"))


def _node_script(package: str, relative: str) -> Path:
    script = NODE_MODULES / package / relative
    if not script.exists():
        raise Unavailable(f"{package} is not installed (no {script.relative_to(ROOT)})")
    if shutil.which("node") is None:
        raise Unavailable(f"{package} needs node, which is not on PATH")
    return script


def mountebank(workdir: Path) -> Server:
    port = free_port()
    argv = ["node", str(_node_script("mountebank", "bin/mb")), "start", "--port", str(port), "--host", HOST,
            "--allowInjection", "--nologfile", "--loglevel", "warn", "--pidfile", str(workdir / "mb.pid")]
    return Server("mountebank", argv, workdir, {"http": port}, http_answers(port, "/"))


def maildev(workdir: Path) -> Server:
    smtp, web = free_port(), free_port()
    argv = ["node", str(_node_script("maildev", "dist/bin/maildev.js")), "--smtp", str(smtp), "--web", str(web),
            "--ip", HOST, "--web-ip", HOST, "--silent"]
    return Server("MailDev", argv, workdir, {"smtp": smtp, "http": web}, smtp_answers(smtp))


def moto(workdir: Path) -> Server:
    exe = VENV_DIR / "bin" / "moto_server"
    if not exe.exists():
        raise Unavailable("moto is not installed (no .bench/venv/bin/moto_server)")
    port = free_port()
    return Server("moto", [str(exe), "-H", HOST, "-p", str(port)], workdir, {"http": port},
                  http_answers(port, "/moto-api/"))


OIDC_HOST = Path(__file__).resolve().parent / "oidc_host.mjs"


def oidc_provider(workdir: Path) -> Server:
    """panva's oidc-provider, a library: hosted by benchmarks/harness/oidc_host.mjs (one client, a
    non-interactive login)."""
    _node_script("oidc-provider", "package.json")
    port = free_port()
    env = child_env(NODE_PATH=str(NODE_MODULES), NODE_ENV="production")
    return Server("oidc-provider", ["node", str(OIDC_HOST), str(port)], workdir, {"http": port},
                  http_answers(port, "/.well-known/openid-configuration"), env=env)


PEERS: dict[str, Callable[[Path], Server]] = {
    "WireMock": wiremock, "mountebank": mountebank, "MailDev": maildev, "moto": moto,
}
