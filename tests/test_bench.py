"""The Bench as a whole: ports, isolation, state folders, TLS, and the world's independence from wires."""

import ast
import json
import ssl
import urllib.request
from pathlib import Path

import pytest
import requests

from mockbench.bench import Bench, BenchError
from mockbench.config import Config
from mockbench.pki import client_context, init_pki

FREE = {"http_port": 0, "https_port": 0, "mllp_port": 0, "smtp_port": 0, "imap_port": 0}


def test_two_benches_side_by_side_share_nothing(mockbench_factory):
    a, b = mockbench_factory(), mockbench_factory()
    assert a.ports["http"] != b.ports["http"]
    assert a.bench.state_dir != b.bench.state_dir
    a.client.load("hidden-documents")
    b.client.load("deleted-versions")
    assert [p["id"] for p in a.client.patients()] == ["alice", "leo"]
    assert [p["id"] for p in b.client.patients()] == ["camille"]
    a.client.advance("1h")
    assert b.client.call("GET", "/clock")["offset"] == 0
    a.client.reset()
    assert [p["id"] for p in b.client.patients()] == ["camille"]


def test_port_file_is_written_once_ready(tmp_path):
    port_file = tmp_path / "ports.json"
    with Bench(Config(**FREE, port_file=port_file, state=tmp_path / "s")) as bench:
        ports = json.loads(port_file.read_text())
        assert ports == bench.ports and set(ports) == {"http", "mllp", "smtp", "imap"}
        assert requests.get(f"http://127.0.0.1:{ports['http']}/_bench/health", timeout=5).json()["status"] == "ok"


def test_a_busy_port_is_said_plainly(tmp_path):
    with Bench(Config(**FREE, state=tmp_path / "a")) as first:
        taken = first.ports["http"]
        second = Bench(Config(**{**FREE, "http_port": taken}, state=tmp_path / "b"))
        with pytest.raises(BenchError, match=f"cannot listen on 127.0.0.1 \\({taken} for http: .*--http-port"):
            second.start()
        second.close()


def test_state_folder_is_resumed_and_scenario_needs_reset(tmp_path):
    state = tmp_path / "state"
    with Bench(Config(**FREE, state=state, scenario="hidden-documents")) as bench:
        ins = requests.get(f"{bench.url}/_bench/patients", timeout=5).json()[0]["ins"]
    resumed = Bench(Config(**FREE, state=state))
    assert resumed.resumed
    with resumed:
        assert requests.get(f"{resumed.url}/_bench/patients", timeout=5).json()[0]["ins"] == ins
        assert resumed.health()["scenario"] == "hidden-documents"
    again = Bench(Config(**FREE, state=state, scenario="deleted-versions"))
    with pytest.raises(BenchError, match="already holds a world.*add --reset"):
        again.start()
    again.close()
    with Bench(Config(**FREE, state=state, scenario="deleted-versions", reset=True)) as reset:
        assert [p["id"] for p in requests.get(f"{reset.url}/_bench/patients", timeout=5).json()] == ["camille"]


def test_temporary_state_is_removed_on_close():
    bench = Bench(Config(**FREE))
    state = bench.state_dir
    with bench:
        assert (state / "world.db").exists()
    assert not state.exists()


def test_tls_serves_https_with_client_certificates(tmp_path):
    files = init_pki(tmp_path / "pki")
    with Bench(Config(**FREE, state=tmp_path / "s", tls_dir=tmp_path / "pki")) as bench:
        assert set(bench.ports) == {"http", "https", "mllp", "smtp", "imap"}
        url = f"https://localhost:{bench.ports['https']}/_bench/health"
        ctx = client_context(files, "org-auth-cli")
        with urllib.request.urlopen(url, context=ctx, timeout=5) as response:
            assert json.loads(response.read())["status"] == "ok"
        # no client certificate: the TLS layer lets it through (CERT_OPTIONAL); doors refuse on their own wire
        with urllib.request.urlopen(url, context=client_context(files), timeout=5) as response:
            assert response.status == 200
        untrusted = ssl.create_default_context()
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(url, context=untrusted, timeout=5)


def test_missing_tls_dir_is_said_plainly(tmp_path):
    from mockbench.pki import PkiError
    with pytest.raises(PkiError, match="run `mockbench pki init"):
        Bench(Config(**FREE, state=tmp_path / "s", tls_dir=tmp_path / "empty"))


def test_public_url_is_advertised_not_guessed(tmp_path):
    with Bench(Config(**FREE, state=tmp_path / "s", public_url="https://bench.example.test/")) as bench:
        doc = requests.get(f"http://127.0.0.1:{bench.ports['http']}/_bench/openapi.json",
                           headers={"Host": "10.9.8.7:8080"}, timeout=5).json()
        assert doc["servers"] == [{"url": "https://bench.example.test"}]


def test_timed_transitions_fire_on_real_time_in_a_running_bench(mockbench):
    text = """\
id: t
title: x
world:
  patients: [{id: a}]
transitions:
  - {id: fermeture, when: {at: +0.3s}, do: [{close_dmp: {patient: a}}]}
"""
    mockbench.client.load_yaml(text)
    import time
    deadline = time.monotonic() + 5
    while mockbench.client.patient("a")["dmp"] != "closed" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert mockbench.client.patient("a")["dmp"] == "closed"



def test_timers_another_process_set_fire_in_the_running_bench(mockbench_factory):
    """Issue 21 point 3: the bench's ticker owns the timers; one set by another process sharing the world
    (here a second store on its file, a worker, which fires none) is found from the store and fires once."""
    import time

    from mockbench.scenarios.engine import ScenarioEngine
    from mockbench.scenarios.loader import parse
    from mockbench.world.store import Store
    from mockbench.world.world import World

    running = mockbench_factory()
    running.bench.store.shared = True   # its reads follow the other process's reset too
    other = World(Store(running.bench.state_dir / "world.db"))
    other.primary = False
    other.store.shared = True
    try:
        ScenarioEngine(other).load(parse("""\
id: t
title: x
world:
  patients: [{id: a}]
transitions:
  - {id: fermeture, when: {at: +0.3s}, do: [{close_dmp: {patient: a}}]}
"""))
        deadline = time.monotonic() + 10
        while running.client.patient("a")["dmp"] != "closed" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert running.client.patient("a")["dmp"] == "closed"
        fired = [e for e in running.client.journal(channel="control") if e["operation"] == "transition"]
        assert len(fired) == 1
    finally:
        other.store.close()

WIRE_LIBRARIES = {"flask", "werkzeug", "hl7", "hl7apy", "aiosmtpd", "lxml", "xml", "zeep", "authlib", "spyne",
                  "requests", "socket", "ssl", "http", "smtplib", "imaplib", "asyncio"}


def test_the_world_imports_no_wire_library():
    world = Path(__file__).parents[1] / "mockbench" / "world"
    for path in world.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            for name in names:
                assert name.split(".")[0] not in WIRE_LIBRARIES, f"{path.name} imports {name}"


def test_no_module_level_mutable_state():
    """Modules hold constants only: no list, dict or set that code appends to at import."""
    root = Path(__file__).parents[1] / "mockbench"
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.Assign | ast.AnnAssign):
                value = node.value
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names = [t.id for t in targets if isinstance(t, ast.Name)]
                if isinstance(value, ast.List | ast.Set) or (isinstance(value, ast.Call) and
                                                            getattr(value.func, "id", "") in ("list", "set")):
                    assert all(n.isupper() or n == "__all__" for n in names), f"{path}: {names} is mutable state"


def test_health_reports_published_ports_beside_the_bound_ones(tmp_path):
    with Bench(Config(**FREE, state=tmp_path / "s", public_ports="http=18080, mllp=12575")) as bench:
        health = requests.get(f"{bench.url}/_bench/health", timeout=5).json()
    assert health["ports"] == {**bench.ports, "http": 18080, "mllp": 12575}
    assert health["bound_ports"] == bench.ports
    with Bench(Config(**FREE, state=tmp_path / "t")) as bench:
        health = requests.get(f"{bench.url}/_bench/health", timeout=5).json()
    assert health["ports"] == bench.ports and "bound_ports" not in health


def test_reset_and_restore_switch_generations_under_the_state_lock_and_survive_a_restart(tmp_path):
    """Issue 21, point 6: a reset and a restore switch the world to a new generation of rows (the old one is
    deleted in the background); the state folder stays locked all along, the PFI's durable outbox is emptied
    by the reset and brought back by the restore, and a restarted bench reads the generation it left."""
    state = tmp_path / "state"
    scenario = tmp_path / "big.yaml"
    scenario.write_text("id: big\ntitle: Grand monde\nworld:\n  generate: {structures: 3, professionals: 20, "
                        "patients: 300}\n", encoding="utf-8")
    with Bench(Config(**FREE, state=state, scenario=str(scenario))) as bench:
        api = f"{bench.url}/_bench"
        with bench.world.transaction() as tx:
            tx.put("outbox", {"id": 1, "state": "pending", "operation": "ZAM^Z01"}, id=1, state="pending", due=0)
        requests.post(f"{api}/snapshots/full", timeout=10).raise_for_status()
        requests.post(f"{api}/reset", timeout=10).raise_for_status()
        assert requests.get(f"{api}/patients", params={"limit": 1}, timeout=10).json()["total"] == 0
        assert bench.world.store.physical() != "default"
        with bench.world.read() as tx:
            assert tx.count("outbox") == 0
        with pytest.raises(BenchError, match="is in use by another bench"):
            Bench(Config(**FREE, state=state))
        requests.post(f"{api}/snapshots/full/restore", timeout=10).raise_for_status()
        assert requests.get(f"{api}/patients", params={"limit": 1}, timeout=10).json()["total"] == 300
        with bench.world.read() as tx:
            assert tx.count("outbox") == 1
        live = bench.world.store.physical()
        assert bench.world.store._reaper.idle.wait(60)
    with Bench(Config(**FREE, state=state)) as resumed:
        assert resumed.resumed and resumed.world.store.physical() == live
        page = requests.get(f"{resumed.url}/_bench/patients", params={"offset": 299, "limit": 5}, timeout=10).json()
        assert page["total"] == 300 and [p["id"] for p in page["items"]] == ["patient-000300"]
        assert resumed.health()["scenario"] == "big"
