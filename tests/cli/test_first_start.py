"""An integrator's first starts: a second `up` on a folder in use, busy ports, and what `make` installs and
finds. Real processes, as a user meets them."""

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from kit.process import wait_for_port_file

ROOT = Path(__file__).resolve().parents[2]
FREE = ["--http-port", "0", "--mllp-port", "0", "--smtp-port", "0", "--imap-port", "0"]


def start(state: Path, *extra: str, port_file: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "mockbench", "up", "--state", str(state), *extra,
                             "--port-file", str(port_file), "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_port_file(proc, port_file, 30)
    return proc


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=10)


def world_of(state: Path) -> tuple[str | None, int]:
    """The scenario loaded in a state folder and the journal's length, read from the file itself."""
    db = sqlite3.connect(f"file:{state / 'world.db'}?mode=ro", uri=True)
    try:
        meta = sorted(db.execute("select ns, key, data from meta").fetchall()) if _has(db, "meta") else {}
        journal = db.execute("select count(*) from journal").fetchone()[0] if _has(db, "journal") else 0
    finally:
        db.close()
    return json.dumps(meta, sort_keys=True), journal


def _has(db: sqlite3.Connection, table: str) -> bool:
    return db.execute("select 1 from sqlite_master where name = ?", (table,)).fetchone() is not None


@pytest.mark.slow
def test_a_second_up_on_a_folder_in_use_touches_nothing(tmp_path):
    state = tmp_path / "state"
    first = start(state, *FREE, "--scenario", "hidden-documents", port_file=tmp_path / "a.json")
    try:
        before = world_of(state)
        second = subprocess.run([sys.executable, "-m", "mockbench", "up", "--state", str(state), "--reset",
                                 "--scenario", "deleted-versions", *FREE], capture_output=True, text=True,
                                timeout=30)
        assert second.returncode == 1
        err = second.stderr.strip()
        assert err.count("\n") == 0, err   # one line, no traceback
        assert f"the state folder {state} is in use by another bench (pid {first.pid})" in err
        assert "--state" in err
        assert world_of(state) == before
        port = json.loads((tmp_path / "a.json").read_text())["http"]
        import requests
        assert requests.get(f"http://127.0.0.1:{port}/_bench/health", timeout=5).json()["scenario"] == \
            "hidden-documents"
    finally:
        stop(first)
    # once the first has stopped, the folder is free again
    again = start(state, *FREE, port_file=tmp_path / "b.json")
    stop(again)


@pytest.mark.slow
def test_the_lock_goes_with_a_killed_bench(tmp_path):
    state = tmp_path / "state"
    first = start(state, *FREE, port_file=tmp_path / "a.json")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    second = start(state, *FREE, port_file=tmp_path / "b.json")
    stop(second)
    assert second.returncode == 0


@pytest.mark.slow
def test_busy_ports_are_named_together_before_the_world_is_reset(tmp_path):
    holders = []
    try:
        for _ in range(2):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sock.listen()
            holders.append(sock)
        http, mllp = (s.getsockname()[1] for s in holders)
        state = tmp_path / "state"
        proc = start(state, *FREE, "--scenario", "hidden-documents", port_file=tmp_path / "a.json")
        stop(proc)
        before = world_of(state)
        run = subprocess.run([sys.executable, "-m", "mockbench", "up", "--state", str(state), "--reset",
                              "--scenario", "deleted-versions", "--http-port", str(http), "--mllp-port",
                              str(mllp), "--smtp-port", "0", "--imap-port", "0"],
                             capture_output=True, text=True, timeout=30)
        assert run.returncode == 1
        err = run.stderr.strip()
        assert err.count("\n") == 0, err
        assert f"{http} for http" in err and f"{mllp} for mllp" in err
        assert "--http-port" in err and "--mllp-port" in err
        assert world_of(state) == before   # nothing reset, nothing loaded
    finally:
        for sock in holders:
            sock.close()


@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")
def test_make_up_installs_the_runtime_only_and_make_test_the_extras(tmp_path):
    venv = tmp_path / "venv"   # never created: -n only prints what make would run
    up = subprocess.run(["make", "-n", "up", f"VENV={venv}"], cwd=ROOT, capture_output=True, text=True,
                        check=True).stdout
    installs = [line for line in up.splitlines() if "pip install" in line and "--upgrade pip" not in line]
    assert installs and all("[test]" not in line for line in installs), up
    test = subprocess.run(["make", "-n", "test", f"VENV={venv}"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout
    assert any("pip install" in line and "'.[test]'" in line for line in test.splitlines()), test


@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")
def test_make_finds_the_corpus_beside_the_clone_as_ci_does(tmp_path):
    clone = tmp_path / "clone"
    clone.mkdir()
    shutil.copy(ROOT / "Makefile", clone / "Makefile")
    env = {k: v for k, v in os.environ.items() if k != "MOCKBENCH_CORPUS"}
    probe = ["make", "-s", "--eval", "show-corpus: ; @echo \"[$$MOCKBENCH_CORPUS]\"", "show-corpus"]
    assert subprocess.run(probe, cwd=clone, env=env, capture_output=True, text=True).stdout.strip() == "[]"
    (tmp_path / "shared" / "corpus").mkdir(parents=True)
    found = subprocess.run(probe, cwd=clone, env=env, capture_output=True, text=True).stdout.strip()
    assert found == f"[{tmp_path / 'shared' / 'corpus'}]"
    given = subprocess.run(probe, cwd=clone, env={**env, "MOCKBENCH_CORPUS": "/elsewhere"}, capture_output=True,
                           text=True).stdout.strip()
    assert given == "[/elsewhere]"


@pytest.mark.slow
def test_a_run_without_the_corpus_says_why_it_skipped(tmp_path):
    test = tmp_path / "test_needs_corpus.py"
    test.write_text("def test_reads_the_corpus(corpus):\n    assert corpus.exists()\n")
    shutil.copy(ROOT / "tests" / "conftest.py", tmp_path / "conftest.py")
    env = {k: v for k, v in os.environ.items() if k != "MOCKBENCH_CORPUS"}
    run = subprocess.run([sys.executable, "-m", "pytest", "-c", str(ROOT / "pyproject.toml"), "--rootdir",
                          str(tmp_path), str(test)], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout
    assert "SKIPPED [1]" in run.stdout and "MOCKBENCH_CORPUS is not set" in run.stdout
