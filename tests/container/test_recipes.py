"""The CI recipes run by a real engine: the GitHub Actions service as the runner creates it (`docker create` with
the service's options, env and ports, then waiting for `healthy`), and the README's `docker run` line as a user
types it. Only what cannot be the same here changes: the image (the one built by this session's fixtures), the
host ports (free ones) and the container's name."""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
import uuid

import pytest
import requests
import yaml
from container_support import ROOT

from mockbench.testing.container import LABEL, free_ports

sys.path.insert(0, str(ROOT / "tests"))
from test_ci_recipes import GITHUB, readme_docker_run  # noqa: E402

# One Docker engine, fixed image names and published ports: under xdist (`--dist loadgroup`, pyproject)
# these run one after another on one worker. A static mark: one added by a conftest hook is not seen by xdist.
pytestmark = pytest.mark.xdist_group("docker")


def wait_healthy(docker_engine, container_id: str, timeout: float) -> float:
    start = time.monotonic()
    while (status := docker_engine.containers.get(container_id).attrs["State"]["Health"]["Status"]) != "healthy":
        assert status == "starting" and time.monotonic() - start < timeout, \
            docker_engine.containers.get(container_id).logs(tail=40).decode()
        time.sleep(0.2)
    return time.monotonic() - start


def test_github_service_options_make_the_image_healthy_within_seconds(image, docker_engine):
    service = yaml.safe_load(GITHUB.read_text())["jobs"]["test"]["services"]["mockbench"]
    ports = dict(zip((int(p.split(":")[1]) for p in service["ports"]), free_ports(len(service["ports"])),
                     strict=True))
    name = f"mockbench-ci-gha-{uuid.uuid4().hex[:8]}"
    command = ["docker", "create", "--name", name, "--label", f"{LABEL}=tests", *shlex.split(service["options"])]
    for key, value in service["env"].items():
        command += ["-e", f"{key}={value}"]
    for target, host in ports.items():
        command += ["-p", f"127.0.0.1:{host}:{target}"]
    created = subprocess.run([*command, image], capture_output=True, text=True, timeout=60)
    assert created.returncode == 0, created.stderr
    container = docker_engine.containers.get(name)
    try:
        container.start()
        took = wait_healthy(docker_engine, container.id, 30)
        assert took < 10, f"healthy after {took:.1f} s: the 2 s interval did not apply"
        health = requests.get(f"http://127.0.0.1:{ports[8080]}/_bench/health", timeout=5).json()
        assert health["status"] == "ok"
    finally:
        container.remove(force=True, v=True)


def test_readme_docker_run_line_serves_and_stops_cleanly(image, docker_engine):
    args = readme_docker_run()
    name = f"mockbench-ci-readme-{uuid.uuid4().hex[:8]}"
    volume = f"mockbench-ci-{uuid.uuid4().hex[:8]}"
    hosts = iter(free_ports(8))
    http = None
    command = []
    for i, arg in enumerate(args):
        previous = args[i - 1] if i else ""
        if previous == "-p":
            target = arg.rsplit(":", 1)[1]
            arg = f"127.0.0.1:{next(hosts)}:{target}"
            http = arg.split(":")[1] if target == "8080" else http
        elif previous == "--name":
            arg = name
        elif previous == "-v":
            arg = f"{volume}:{arg.split(':', 1)[1]}"
        command.append(arg)
    assert command[-1] == "mockbench"   # the README's image name, replaced by the one built here
    command[-1] = image
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.communicate()[0]
            try:
                if requests.get(f"http://127.0.0.1:{http}/_bench/health", timeout=2).json()["status"] == "ok":
                    break
            except requests.RequestException:
                assert time.monotonic() < deadline, "no answer on the README's published http port"
                time.sleep(0.2)
        stop = subprocess.run(["docker", "stop", name], capture_output=True, text=True, timeout=30)
        assert stop.returncode == 0, stop.stderr
        output = proc.communicate(timeout=30)[0]
        assert proc.returncode == 0, output   # the bench's exit code, through `docker run` in the foreground
        assert "mockbench ready at" in output
        assert docker_engine.containers.list(all=True, filters={"name": name}) == []   # --rm
    finally:
        if proc.poll() is None:
            proc.kill()
        for leftover in docker_engine.containers.list(all=True, filters={"name": name}):
            leftover.remove(force=True)
        docker_engine.volumes.get(volume).remove(force=True)
