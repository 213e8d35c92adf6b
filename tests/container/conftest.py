"""Session fixtures of the container check: a Docker engine, the base image, the bench's image.

- The engine: the one DOCKER_HOST names if it answers, else the machine's default socket, else Debian's
  `dockerd` started here without systemd on its own socket (and stopped at the end of the session).
- The base: Docker Hub is not reachable from our machines, so when no `python:3.11-slim` is in the engine a
  stand-in is made: a debootstrap'ed Debian bookworm with python3, pip and the machine's extra CA
  certificates (the package index is reached through a TLS-inspecting proxy), imported under that name. Its
  root filesystem tarball is cached in /var/cache/mockbench-ci so that a warm machine skips debootstrap. The
  stand-in is labelled org.mockbench.stand-in=true and is for checking only: never push it.
- The image: docker/Dockerfile, unmodified, built with the legacy builder from the repository root.

Where this cannot run (not root, no engine package) the tests skip saying why; under CI they fail instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from container_support import ROOT, unavailable

IMAGE = "mockbench:ci"
BASE = "python:3.11-slim"
CACHE = Path(os.environ.get("MOCKBENCH_CI_CACHE", "/var/cache/mockbench-ci"))
BASE_TARBALL = CACHE / "python-3.11-slim-standin.tar"
OWN_ENGINE = Path("/run/mockbench-docker")
OWN_SOCKET = f"unix://{OWN_ENGINE}/docker.sock"
DATA_ROOT = Path("/var/lib/mockbench-docker")   # kept between runs: a warm machine keeps its images
MIRROR = os.environ.get("MOCKBENCH_DEBIAN_MIRROR", "http://deb.debian.org/debian")
ENGINE_WAIT = 30.0
DEBOOTSTRAP_TIMEOUT = 900


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.container)
            # (their xdist_group is a static pytestmark in each module: xdist reads the groups before this hook)


def _answers(host: str) -> bool:
    import docker

    try:
        client = docker.DockerClient(base_url=host, timeout=3)
        client.ping()
        client.close()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def docker_engine():
    """A docker.DockerClient; DOCKER_HOST is set for the session (the CLI and compose use it too)."""
    try:
        import docker  # noqa: F401
    except ImportError:
        unavailable("the Docker SDK is not installed (pip install -e '.[test]')")
    previous = os.environ.get("DOCKER_HOST")
    candidates = [h for h in (previous, "unix:///var/run/docker.sock", OWN_SOCKET) if h]
    host = next((h for h in candidates if _answers(h)), None)
    started = None
    if host is None:
        if os.geteuid() != 0:
            unavailable("no Docker engine answers and starting one needs root")
        dockerd = shutil.which("dockerd")
        if dockerd is None:
            unavailable("no Docker engine answers and dockerd is not installed (apt-get install docker.io)")
        OWN_ENGINE.mkdir(parents=True, exist_ok=True)
        DATA_ROOT.mkdir(parents=True, exist_ok=True)
        log = open(OWN_ENGINE / "dockerd.log", "ab")   # noqa: SIM115 - closed at teardown
        started = subprocess.Popen(
            [dockerd, "--host", OWN_SOCKET, "--data-root", str(DATA_ROOT), "--exec-root", str(OWN_ENGINE / "exec"),
             "--pidfile", str(OWN_ENGINE / "docker.pid")], stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + ENGINE_WAIT
        while not _answers(OWN_SOCKET):
            if started.poll() is not None or time.monotonic() > deadline:
                started.kill()
                tail = (OWN_ENGINE / "dockerd.log").read_text(errors="replace")[-2000:]
                pytest.fail(f"dockerd did not answer on {OWN_SOCKET} within {ENGINE_WAIT:g} s:\n{tail}")
            time.sleep(0.2)
        host = OWN_SOCKET
    os.environ["DOCKER_HOST"] = host
    import docker

    client = docker.DockerClient(base_url=host, timeout=120)
    yield client
    client.close()
    if started is not None:
        started.terminate()
        try:
            started.wait(timeout=30)
        except subprocess.TimeoutExpired:
            started.kill()
        log.close()
    if previous is None:
        os.environ.pop("DOCKER_HOST", None)
    else:
        os.environ["DOCKER_HOST"] = previous


def docker_cli() -> str:
    cli = shutil.which("docker")
    if cli is None:
        unavailable("the docker command is not installed (apt-get install docker.io)")
    return cli


def make_base_tarball(target: Path) -> None:
    """debootstrap a minimal bookworm with python3 and pip, made usable as python:3.11-slim is, into a tar."""
    if os.geteuid() != 0:
        unavailable(f"no {BASE} image in the engine, and making the local stand-in needs root")
    if shutil.which("debootstrap") is None:
        unavailable(f"no {BASE} image in the engine, and debootstrap is not installed (apt-get install "
                    "debootstrap) to make the local stand-in")
    with tempfile.TemporaryDirectory(prefix="mockbench-base-", dir=target.parent) as tmp:
        root = Path(tmp) / "root"
        subprocess.run(["debootstrap", "--variant=minbase",
                        "--include=python3,python3-pip,python-is-python3,ca-certificates", "bookworm", str(root),
                        MIRROR], check=True, capture_output=True, timeout=DEBOOTSTRAP_TIMEOUT)
        # pip installs into the system Python, as in the official image (PEP 668's marker would refuse it)
        for marker in root.glob("usr/lib/python3*/EXTERNALLY-MANAGED"):
            marker.unlink()
        for cert in Path("/usr/local/share/ca-certificates").glob("*.crt"):
            shutil.copy(cert, root / "usr/local/share/ca-certificates" / cert.name)
        subprocess.run(["chroot", str(root), "update-ca-certificates"], check=True, capture_output=True,
                       timeout=120)
        for leftover in [*root.glob("var/cache/apt/archives/*.deb"), *root.glob("var/lib/apt/lists/*")]:
            if leftover.is_file():
                leftover.unlink()
        partial = target.with_suffix(".partial")
        subprocess.run(["tar", "-C", str(root), "-cf", str(partial), "."], check=True, capture_output=True,
                       timeout=300)
        partial.rename(target)   # only a complete tarball is ever cached


@pytest.fixture(scope="session")
def base_image(docker_engine) -> str:
    """python:3.11-slim in the engine: the real one if present, else the local stand-in (made or cached)."""
    import docker.errors

    try:
        docker_engine.images.get(BASE)
        return BASE
    except docker.errors.ImageNotFound:
        pass
    CACHE.mkdir(parents=True, exist_ok=True)
    if not BASE_TARBALL.exists():
        make_base_tarball(BASE_TARBALL)
    subprocess.run([docker_cli(), "import", "-c", "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "-c", "ENV LANG=C.UTF-8", "-c", 'CMD ["python3"]', "-c", "LABEL org.mockbench.stand-in=true",
                    str(BASE_TARBALL), BASE], check=True, capture_output=True, timeout=300)
    return BASE


@pytest.fixture(scope="session")
def image(docker_engine, base_image) -> Iterator[str]:
    """The bench's image built from the unmodified docker/Dockerfile, tagged mockbench:ci (kept: a warm
    machine reuses its layers)."""
    import docker.errors

    try:
        docker_engine.images.build(path=str(ROOT), dockerfile="docker/Dockerfile", tag=IMAGE, rm=True,
                                   forcerm=True, timeout=600)
    except docker.errors.BuildError as exc:
        log = "".join(chunk.get("stream", "") or chunk.get("error", "") for chunk in exc.build_log)
        pytest.fail(f"docker build -f docker/Dockerfile failed: {exc.msg}\n{log[-4000:]}", pytrace=False)
    yield IMAGE
    # Each build of changed sources leaves the previous mockbench:ci (and compose's mockbench:local) untagged:
    # drop those so that the engine's data root, kept between runs, does not grow. Tagged images and the
    # layers they share stay (the warm cache).
    try:
        docker_engine.images.prune(filters={"dangling": True})
    except docker.errors.APIError as exc:
        # housekeeping only: a prune the engine is already running (409) does the same job
        if exc.status_code != 409:
            raise


@pytest.fixture(scope="session")
def leftovers(docker_engine):
    """Names of what the session's containers left behind, checked at the end (see test_nothing_left_running)."""
    from mockbench.testing.container import LABEL

    def check() -> list[str]:
        return [c.name for c in docker_engine.containers.list(all=True, filters={"label": LABEL})]

    return check
