"""Issue 17, point 2: the store records its schema version; a state folder made by the previous release
(schema version 1, tests/reliability/fixtures/world-schema-1.sql, dumped from mockbench 0.1.0's store) is
migrated and resumed with its world; one made by a newer version is refused in one line naming both."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import requests
from hl7.client import MLLPClient
from kit.pfi import mdm, parse_ack
from reliability_helpers import BenchProcess, free_port

from mockbench.world.store import SCHEMA_VERSION

FIXTURE = Path(__file__).parent / "fixtures" / "world-schema-1.sql"


def state_from(sql: str, folder: Path) -> Path:
    folder.mkdir()
    conn = sqlite3.connect(folder / "world.db")
    conn.executescript(sql)
    conn.close()
    return folder


def user_version(folder: Path) -> int:
    conn = sqlite3.connect(folder / "world.db")
    try:
        return conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        conn.close()


def test_a_state_folder_of_the_previous_release_is_migrated_and_resumed(tmp_path):
    state = state_from(FIXTURE.read_text(encoding="utf-8"), tmp_path / "state")
    assert user_version(state) == 1
    bench = BenchProcess(state, "--dpi-mllp", f"127.0.0.1:{free_port()}")
    try:
        api = f"{bench.url}/_bench"
        # The world it held is there: scenario, patient, journal.
        assert requests.get(f"{api}/health", timeout=10).json()["scenario"] == "pfi-reliability"
        patient = requests.get(f"{api}/patients/alice", timeout=10).json()
        assert patient["family_name"] == "DURAND"
        assert [e["operation"] for e in requests.get(f"{api}/journal", timeout=10).json()] == ["load"]
        # What schema 2 added works on it: a ZAM due goes to the durable outbox.
        dr_a = requests.get(f"{api}/professionals", timeout=10).json()[0]
        dr_a["finess"] = requests.get(f"{api}/structures", timeout=10).json()[0]["finess"]
        with MLLPClient("127.0.0.1", bench.ports["mllp"]) as client:
            client.socket.settimeout(10)
            ack = parse_ack(client.send_message(mdm("T02", patient, dr_a, dr_a["finess"], "1.2.250.1.999.2.1")))
        assert str(ack.segment("MSA")[1]) == "AA"
        assert [m["operation"] for m in requests.get(f"{api}/pfi/outbox", timeout=10).json()] == ["ZAM^Z01"]
    finally:
        bench.close()
    assert user_version(state) == SCHEMA_VERSION == 4
    # Schema 4's journal columns, filled from the entry the release wrote.
    conn = sqlite3.connect(state / "world.db")
    try:
        assert conn.execute("SELECT actor, verdict FROM journal WHERE seq = 1").fetchone() == ("mockbench", "accepted")
    finally:
        conn.close()


def test_a_state_folder_of_a_newer_version_is_refused_in_one_line(tmp_path):
    sql = FIXTURE.read_text(encoding="utf-8").replace("PRAGMA user_version = 1;", "PRAGMA user_version = 99;")
    state = state_from(sql, tmp_path / "state")
    before = (state / "world.db").read_bytes()
    result = subprocess.run(
        [sys.executable, "-m", "mockbench", "up", "--state", str(state), "--http-port", "0", "--mllp-port", "0",
         "--smtp-port", "0", "--imap-port", "0"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(state / "world.db") in lines[0]
    assert "schema version 99" in lines[0] and f"schema version {SCHEMA_VERSION}" in lines[0]
    assert (state / "world.db").read_bytes() == before   # not rewritten
    assert user_version(state) == 99
