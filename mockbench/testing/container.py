"""The bench's image run as a container, through the Docker SDK (the optional extra `mockbench[container]`).

    with BenchContainer.start("mockbench:latest") as running:   # free host ports on 127.0.0.1
        running.url, running.ports                              # what a DPI is configured with
        running.wait_healthy()                                  # Docker's own HEALTHCHECK says healthy

Every published port is on the host's loopback; the bench is told what the host sees (MOCKBENCH_PUBLIC_URL,
MOCKBENCH_PUBLIC_PORTS) so that WSDLs, issuers and the health's `ports` name the published ports. What goes
wrong (no engine, a port in use, an image that exits or never becomes healthy) raises ContainerError, one line
naming what to do, followed by the container's last output; a container that failed to start is removed.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# The image's doors, by the names the bench's health and MOCKBENCH_PUBLIC_PORTS use, and their container ports.
CONTAINER_PORTS = {"http": 8080, "https": 8443, "mllp": 2575, "smtp": 2525, "imap": 1143}
STATE = "/var/lib/mockbench"
LABEL = "org.mockbench.started-by"   # on everything started here, so that leftovers can be found
# The control token the bench requires when it binds a non-loopback address (the image binds 0.0.0.0), once
# that lands: passed to the container under this name.
TOKEN_ENV = "MOCKBENCH_CONTROL_TOKEN"
LOG_TAIL = 40   # lines of the container's output quoted in an error


class ContainerError(RuntimeError):
    """One line saying what failed and what to do, then the container's last output if it has any."""

    def __init__(self, message: str, logs: str = "") -> None:
        self.logs = logs
        super().__init__(message + (f"\n--- container's last output ---\n{logs.rstrip()}" if logs.strip() else ""))


def engine(timeout: float = 5.0):
    """A docker.DockerClient for the engine that DOCKER_HOST (or the default socket) names, once it answers."""
    try:
        import docker
    except ImportError:
        raise ContainerError("the Docker SDK is not installed: pip install 'mockbench[container]'") from None
    where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    try:
        client = docker.from_env(timeout=max(int(timeout), 1))
        client.ping()
    except Exception as exc:
        raise ContainerError(f"no Docker engine answers at {where} ({type(exc).__name__}): start dockerd or set "
                             f"DOCKER_HOST to its socket") from None
    return client


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct ports free on `host` right now (the engine binds them a moment later)."""
    sockets: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < count:
            s = socket.socket()
            s.bind((host, 0))
            sockets.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in sockets:
            s.close()
    return ports


def logs_of(container, tail: int | str = LOG_TAIL) -> str:
    """The container's output, its last `tail` lines ("all": the whole of it)."""
    try:
        return container.logs(tail=tail).decode("utf-8", "replace")
    except Exception as exc:   # the container may be gone already
        return f"(no output: {exc})"


@dataclass
class BenchContainer:
    """A running container of the bench's image and the host's view of it."""

    container: Any
    ports: dict[str, int]                  # door -> port on the host's 127.0.0.1
    volume: str | None = None
    owns_volume: bool = False
    started: float = field(default_factory=time.monotonic)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports['http']}"

    @property
    def name(self) -> str:
        return self.container.name

    @classmethod
    def start(cls, image: str, *, ports: Mapping[str, int] | None = None, volume: str | None = None,
              command: list[str] | None = None, environment: Mapping[str, str] | None = None,
              token: str | None = None, client=None, name: str | None = None,
              run_options: Mapping[str, Any] | None = None) -> BenchContainer:
        """Run `image` detached, its five doors published on 127.0.0.1 (free ports unless `ports` says), the
        state folder on the named `volume` (a new one, removed with the container, when None); `run_options`
        go to the SDK's containers.run as they are (e.g. `healthcheck`)."""
        import docker.errors

        client = client or engine()
        try:
            client.images.get(image)
        except docker.errors.ImageNotFound:
            raise ContainerError(f"image {image} not found in the engine: build it with `docker build -f "
                                 f"docker/Dockerfile -t {image} .` from the repository root") from None
        chosen = dict(ports or {})
        missing = [door for door in CONTAINER_PORTS if door not in chosen]
        chosen |= dict(zip(missing, free_ports(len(missing)), strict=True))
        for door, port in chosen.items():
            if door != "https":   # 8443 answers only with a TLS folder: nothing to check there
                _check_free(port, door)
        owns_volume = volume is None
        volume = volume or f"mockbench-{uuid.uuid4().hex[:12]}"
        env = {"MOCKBENCH_PUBLIC_URL": f"http://127.0.0.1:{chosen['http']}",
               "MOCKBENCH_PUBLIC_PORTS": ",".join(f"{d}={p}" for d, p in chosen.items())}
        if token:
            env[TOKEN_ENV] = token
        env |= dict(environment or {})
        try:
            container = client.containers.run(
                image, command, detach=True, name=name, environment=env, labels={LABEL: "mockbench.testing"},
                ports={f"{CONTAINER_PORTS[d]}/tcp": ("127.0.0.1", p) for d, p in chosen.items()},
                volumes={volume: {"bind": STATE, "mode": "rw"}}, **dict(run_options or {}))
        except docker.errors.APIError as exc:
            # A container created but not started (a port taken between the check and the bind) is removed.
            for leftover in client.containers.list(all=True, filters={"label": LABEL, "volume": volume}):
                leftover.remove(force=True)
            if owns_volume:
                _remove_volume(client, volume)
            reason = exc.explanation or str(exc)
            hint = ("a published port is taken: free it or let the ports be chosen" if "allocated" in reason
                    or "address already in use" in reason else "see the engine's message")
            raise ContainerError(f"the engine refused to run {image}: {reason} ({hint})") from None
        return cls(container, chosen, volume, owns_volume)

    def health_status(self) -> str:
        """Docker's view: starting, healthy, unhealthy, or the container's state when it has no health."""
        self.container.reload()
        state = self.container.attrs["State"]
        return (state.get("Health") or {}).get("Status") or state["Status"]

    def _check_running(self, what: str) -> None:
        self.container.reload()
        state = self.container.attrs["State"]
        if state["Status"] in ("exited", "dead"):
            raise ContainerError(f"container {self.name} exited with code {state.get('ExitCode')} before {what}: "
                                 f"read its output below, fix the command or the image", logs_of(self.container))

    def wait_healthy(self, timeout: float = 60.0) -> float:
        """Wait for Docker's HEALTHCHECK to say healthy; the seconds since start. Raises ContainerError (with
        the container's output and the health check's last answers) if it exits or is not healthy in time."""
        deadline = time.monotonic() + timeout
        while True:
            self._check_running("it became healthy")
            status = self.health_status()
            if status == "healthy":
                return time.monotonic() - self.started
            if status == "unhealthy" or time.monotonic() > deadline:
                probes = (self.container.attrs["State"].get("Health") or {}).get("Log") or []
                last = "; ".join((p.get("Output") or "").strip()[:200] for p in probes[-2:])
                raise ContainerError(f"container {self.name} is {status} after {time.monotonic() - self.started:.0f}"
                                     f" s (health check: {last or 'no answer yet'}): read its output below",
                                     logs_of(self.container))
            time.sleep(0.5)

    def wait_answering(self, timeout: float = 30.0) -> float:
        """Wait for the control API's health to answer through the published port (quicker than Docker's
        health, which first probes one --interval after the start)."""
        import urllib.error
        import urllib.request

        deadline = time.monotonic() + timeout
        while True:
            self._check_running("its control API answered")
            try:
                with urllib.request.urlopen(f"{self.url}/_bench/health", timeout=2) as answer:
                    if answer.status == 200:
                        return time.monotonic() - self.started
            except (OSError, urllib.error.URLError):
                pass
            if time.monotonic() > deadline:
                raise ContainerError(f"container {self.name}: no answer on {self.url}/_bench/health after "
                                     f"{timeout:g} s: read its output below", logs_of(self.container))
            time.sleep(0.2)

    def logs(self, tail: int | str = "all") -> str:
        return logs_of(self.container, tail)

    def stop(self, timeout: int = 10) -> int:
        """`docker stop` (SIGTERM, then SIGKILL after `timeout` s); the bench's exit code."""
        self.container.stop(timeout=timeout)
        return int(self.container.wait(timeout=timeout + 5)["StatusCode"])

    def remove(self) -> None:
        """Remove the container (and the volume it was given when none was named); idempotent."""
        import docker.errors

        client = self.container.client
        try:
            self.container.remove(force=True)
        except docker.errors.NotFound:
            pass
        if self.owns_volume and self.volume:
            _remove_volume(client, self.volume)

    def __enter__(self) -> BenchContainer:
        return self

    def __exit__(self, *exc_info) -> None:
        self.remove()


def _check_free(port: int, door: str) -> None:
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        raise ContainerError(f"port {port} on 127.0.0.1 (for {door}) is in use: stop what listens there or "
                             f"choose another port") from None
    finally:
        s.close()


def _remove_volume(client, name: str) -> None:
    import docker.errors

    try:
        client.volumes.get(name).remove(force=True)
    except docker.errors.NotFound:
        pass
