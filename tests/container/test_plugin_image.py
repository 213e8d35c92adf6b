"""The pytest plugin's image mode (--mockbench-image) as a vendor runs it: pytest in a subprocess, the image
built by this session's fixtures, one container for the whole run, its output in a failing test's report, and
nothing left in the engine afterwards."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mockbench.testing.container import LABEL

# One Docker engine, fixed image names and published ports: under xdist (`--dist loadgroup`, pyproject)
# these run one after another on one worker. A static mark: one added by a conftest hook is not seen by xdist.
pytestmark = pytest.mark.xdist_group("docker")

VENDOR_TESTS = '''
import pytest
from hl7.client import MLLPClient

SEEN = []

@pytest.mark.mockbench_scenario("hidden-documents")
def test_loaded_in_the_container(mockbench):
    assert mockbench.remote
    assert [p["id"] for p in mockbench.client.patients()] == ["alice", "leo"]
    assert mockbench.url == f"http://127.0.0.1:{mockbench.ports['http']}"
    SEEN.append(mockbench.url)

def test_the_same_container_reset_between_tests(mockbench):
    assert mockbench.client.patients() == []
    assert SEEN == [mockbench.url]   # the same published port: one container for the session
    with MLLPClient("127.0.0.1", mockbench.ports["mllp"]) as client:   # a published port, reachable
        client.socket.settimeout(10)
        assert b"MSA|" in client.send_message(b"MSH|^~\\\\&|A|B|C|D|20261120||ADT^A01|1|P|2.5\\r")

def test_failing(mockbench):
    mockbench.client.load("hidden-documents")
    assert False, "the vendor's DPI sent nothing"
'''


def run(tmp_path: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    test = tmp_path / "test_vendor.py"
    test.write_text(VENDOR_TESTS)
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
                           "-c", "/dev/null", str(test), *args], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, env=env or os.environ.copy())


def test_image_mode_runs_one_container_shows_its_output_on_failure_and_removes_it(image, docker_engine, tmp_path):
    before = {c.id for c in docker_engine.containers.list(all=True)}
    result = run(tmp_path, "--mockbench-image", image, "-rA")
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "1 failed, 2 passed" in out, out
    assert "mockbench container " in out and "(last 200 lines)" in out, out
    # the section holds the container's output: the bench's own start line names its doors
    section = out.split("(last 200 lines)", 1)[1]
    assert "mllp" in section.lower(), section[:2000]
    assert "evidence report of this test" in out
    assert {c.id for c in docker_engine.containers.list(all=True)} <= before
    assert docker_engine.containers.list(all=True, filters={"label": LABEL}) == []


def test_image_mode_without_an_engine_is_one_line_naming_what_to_do(tmp_path):
    env = os.environ | {"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"}
    result = run(tmp_path, "--mockbench-image", "mockbench:ci", env=env)
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"no Docker engine answers at unix://{tmp_path}/no-engine.sock" in out, out
    assert "start dockerd or set DOCKER_HOST" in out


def test_image_mode_with_an_unknown_image_says_how_to_build_it(docker_engine, tmp_path):
    result = run(tmp_path, "--mockbench-image", "mockbench:no-such-tag")
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert "image mockbench:no-such-tag not found in the engine: build it with `docker build" in out, out
    assert docker_engine.containers.list(all=True, filters={"label": LABEL}) == []


def test_url_and_image_together_are_refused(tmp_path):
    result = run(tmp_path, "--mockbench-image", "x", "--mockbench-url", "http://127.0.0.1:1")
    assert result.returncode != 0
    assert "--mockbench-url and --mockbench-image: choose one" in result.stdout + result.stderr
