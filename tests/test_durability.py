"""kill -9 in the middle of a stream of world changes: every acknowledged change survives, none is
half-applied. The bench runs as a real process; changes go through the control API."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests
from kit.process import wait_for_port_file


def start(state: Path, port_file: Path, *extra: str) -> subprocess.Popen:
    port_file.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "mockbench", "up", "--state", str(state), "--http-port", "0", "--mllp-port", "0",
         "--smtp-port", "0", "--imap-port", "0", "--port-file", str(port_file), "--quiet", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for_port_file(proc, port_file, 20)
    return proc


def test_kill_9_loses_nothing_acknowledged(tmp_path):
    state, port_file = tmp_path / "state", tmp_path / "ports.json"
    proc = start(state, port_file, "--scenario", "hidden-documents")
    url = f"http://127.0.0.1:{json.loads(port_file.read_text())['http']}/_bench"
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def stream(worker: int) -> None:
        session = requests.Session()
        for i in range(10_000):
            if stop.is_set():
                return
            doc_id = f"doc_{worker}_{i}"
            action = {"submit_document": {"patient": "alice", "id": doc_id, "author": "dr_martin",
                                          "confidentiality": ["MASQUE_PS"] if i % 3 == 0 else ["N"]}}
            try:
                response = session.post(f"{url}/world/actions", json={"actions": [action]}, timeout=5)
            except requests.RequestException:
                return  # the process is gone
            if response.status_code == 200:
                with lock:
                    acknowledged.append(doc_id)

    workers = [threading.Thread(target=stream, args=(w,)) for w in range(3)]
    for w in workers:
        w.start()
    deadline = time.monotonic() + 20
    while len(acknowledged) < 60 and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)         # in the middle of the stream: requests are in flight
    proc.wait(timeout=10)
    stop.set()
    for w in workers:
        w.join(timeout=10)
    assert len(acknowledged) >= 60

    proc = start(state, port_file)            # no --scenario: the world is resumed
    try:
        url = f"http://127.0.0.1:{json.loads(port_file.read_text())['http']}/_bench"
        docs = requests.get(f"{url}/patients/alice/documents", timeout=5).json()
        present = {d["id"]: d for d in docs}
        missing = [d for d in acknowledged if d not in present]
        assert not missing, f"{len(missing)} acknowledged changes lost: {missing[:5]}"
        # none half-applied: every document has its content, its hash, its trace and its journal entry
        for doc in docs:
            content = requests.get(f"{url}/documents/{doc['unique_id']}/content", timeout=5).content
            assert len(content) == doc["size"] and hashlib.sha1(content).hexdigest().upper() == doc["hash"]
        traces = requests.get(f"{url}/patients/alice/traces", timeout=5).json()
        fed = [t["document"] for t in traces if t["action"] == "alimentation"]
        assert sorted(fed) == sorted(d["unique_id"] for d in docs)
        actions = requests.get(f"{url}/journal", params={"channel": "control", "operation": "action",
                                                         "limit": 10000}, timeout=5).json()
        assert len(actions) == len(docs) - 3       # three documents were seeded
        assert requests.get(f"{url}/health", timeout=5).json()["scenario"] == "hidden-documents"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
