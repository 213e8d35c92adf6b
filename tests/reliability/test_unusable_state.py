"""Issue 17, point 4: a world.db that cannot be used, and settings the bench cannot run with, are refused
at start in one line that names the file or the setting and what to do; never a traceback, never a bench
that starts anyway."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mockbench.bench import Bench
from mockbench.config import Config, ConfigError, load

START_TIMEOUT = 20   # a bench that starts anyway runs until killed: the test fails at this bound


def up(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(
            [sys.executable, "-m", "mockbench", "up", "--http-port", "0", "--mllp-port", "0", "--smtp-port", "0",
             "--imap-port", "0", *args], capture_output=True, text=True, timeout=START_TIMEOUT,
            env={**os.environ, **(env or {})})
    except subprocess.TimeoutExpired:
        pytest.fail(f"the bench started with {args} {env or ''}: it should have refused")


def one_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode in (1, 2), result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def damaged_copy(folder: Path) -> None:
    """A real world.db whose pages past the header are overwritten: it opens, then fails when read."""
    folder.mkdir()
    # ephemeral ports: the defaults (8080, 2575...) may be taken, by a `make up` or a parallel test worker
    free = {"http_port": 0, "https_port": 0, "mllp_port": 0, "smtp_port": 0, "imap_port": 0}
    with Bench(Config(state=folder, scenario="hidden-documents", **free)) as bench:
        bench.prepare()
    for name in ("world.db-wal", "world.db-shm"):
        (folder / name).unlink(missing_ok=True)
    db = folder / "world.db"
    data = bytearray(db.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    data[page:] = b"\xa5" * (len(data) - page)
    db.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["garbage", "directory", "damaged pages"])
def test_an_unusable_world_db_is_one_line_naming_the_file_and_what_to_do(tmp_path, damage):
    state = tmp_path / "state"
    if damage == "garbage":
        state.mkdir()
        (state / "world.db").write_bytes(b"this is not a database, it is a note\n" * 200)
    elif damage == "directory":
        (state / "world.db").mkdir(parents=True)
    else:
        damaged_copy(state)
    line = one_line(up("--state", str(state)))
    assert str(state / "world.db") in line
    assert "move it away" in line and "--state" in line


@pytest.mark.parametrize("args,env,named", [
    ((), {"MOCKBENCH_JOURNAL_MAX_ENTRIES": "0"}, "journal_max_entries"),
    (("--public-url", "localhost:8080"), {}, "public_url"),
])
def test_invalid_settings_are_refused_at_start_in_one_line(tmp_path, args, env, named):
    line = one_line(up("--state", str(tmp_path / "state"), *args, env=env))
    assert line.startswith(f"mockbench: {named}:")
    assert not (tmp_path / "state").exists()   # refused before anything was made


@pytest.mark.parametrize("flags,named", [
    ({"journal_max_entries": -5}, "journal_max_entries"),
    ({"journal_max_bytes": 0}, "journal_max_bytes"),
    ({"journal_raw_bytes": -1}, "journal_raw_bytes"),
    ({"public_url": "http://"}, "public_url"),
    ({"public_url": "ftp://bench.example"}, "public_url"),
    ({"public_url": "http://bench.example:99999"}, "public_url"),
    ({"public_url": "http://bench.example:0"}, "public_url"),
    ({"public_url": "https://bench.example/x?debug=1"}, "public_url"),
    ({"public_url": "https://user:pw@bench.example"}, "public_url"),
    ({"public_url": "https://bench example"}, "public_url"),
])
def test_invalid_settings_are_named(flags, named):
    with pytest.raises(ConfigError, match=f"^{named}: ") as caught:
        load(env={}, flags=flags)
    assert "\n" not in str(caught.value)
    with pytest.raises(ConfigError, match=f"^{named}: "):   # a Bench built from a Config checks it too
        Bench(Config(**flags))


@pytest.mark.parametrize("url", ["https://bench.example:8443/mock/", "http://127.0.0.1:8080", "http://[::1]:80"])
def test_a_valid_public_url_is_taken(url):
    assert load(env={}, flags={"public_url": url}).advertised_url(8080) == url.rstrip("/")


def test_the_state_folder_is_left_as_it_was_when_refused(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    (state / "world.db").write_bytes(b"\x00" * 4096 + b"not sqlite")
    kept = (state / "world.db").read_bytes()
    one_line(up("--state", str(state)))
    assert (state / "world.db").read_bytes() == kept
    assert sorted(p.name for p in state.iterdir()) == ["world.db"]
