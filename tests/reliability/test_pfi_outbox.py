"""Issue 17, point 1: the PFI's outbound queue (ZAMs to the DPI's MLLP listener) survives kill -9 and SIGTERM.

A real `mockbench up` process with --dpi-mllp pointing at a port where nothing listens yet: ten MDM^T02 are
acknowledged AA, each making a ZAM^Z01 due; the bench is killed with SIGKILL, restarted on the same --state,
stopped with SIGTERM, restarted again; only then does the DPI's listener come up, and it receives every ZAM.
"""

from __future__ import annotations

import requests
from conftest import PFI_WORLD, BenchProcess, FakeDpi, free_port, wait_for
from hl7.client import MLLPClient
from pfi_messages import mdm, parse_ack

from mockbench.protocols.pfi.hl7 import parse as parse_hl7

MESSAGES = 10


def test_zams_due_survive_kill_9_and_sigterm_and_reach_a_dpi_that_comes_up_later(tmp_path):
    dpi_port = free_port()              # nothing listens there until the end
    scenario = tmp_path / "world.yaml"
    scenario.write_text(PFI_WORLD, encoding="utf-8")
    config = tmp_path / "bench.toml"    # retries close together, so that the test ends soon after the DPI is up
    config.write_text("[doors.pfi]\noutbound_backoff = 0.1\noutbound_backoff_max = 0.3\n", encoding="utf-8")
    state = tmp_path / "state"
    common = ("--dpi-mllp", f"127.0.0.1:{dpi_port}", "--config", str(config))
    bench = BenchProcess(state, "--scenario", str(scenario), *common)
    dpi = None
    try:
        api = f"{bench.url}/_bench"
        patient = requests.get(f"{api}/patients/alice", timeout=10).json()
        dr_a = requests.get(f"{api}/professionals", timeout=10).json()[0]
        dr_a["finess"] = requests.get(f"{api}/structures", timeout=10).json()[0]["finess"]
        with MLLPClient("127.0.0.1", bench.ports["mllp"]) as client:
            client.socket.settimeout(10)
            for i in range(MESSAGES):
                ack = parse_ack(client.send_message(
                    mdm("T02", patient, dr_a, dr_a["finess"], f"1.2.250.1.999.17.{i}", control_id=f"K{i}")))
                assert str(ack.segment("MSA")[1]) == "AA"
        # Every ZAM is in the durable queue once its MDM was acknowledged.
        pending = requests.get(f"{api}/pfi/outbox", params={"state": "pending"}, timeout=10).json()
        assert len(pending) == MESSAGES and {m["operation"] for m in pending} == {"ZAM^Z01"}
        assert wait_for(lambda: any(e["operation"] == "OUTBOX" for e in
                                    requests.get(f"{api}/journal", params={"channel": "pfi"}, timeout=10).json()))
        bench.kill()

        bench = BenchProcess(state, *common)   # resumes the world: no --scenario
        bench.terminate()
        assert bench.proc.returncode == 0

        bench = BenchProcess(state, *common)
        api = f"{bench.url}/_bench"
        dpi = FakeDpi(dpi_port)
        assert wait_for(lambda: len(dpi.received) >= MESSAGES, timeout=20), f"{len(dpi.received)} ZAMs received"
        zams = [parse_hl7(p) for p in dpi.received]
        assert all(z.operation == "ZAM^Z01" for z in zams)
        # At least once, and in order: every MDM's ZAM, the first ones first (OBX-4 names the MDM's MSH-10).
        refs = [z.get("OBX", 4) for z in zams]
        assert sorted(set(refs)) == sorted(f"K{i}" for i in range(MESSAGES))
        assert list(dict.fromkeys(refs)) == [f"K{i}" for i in range(MESSAGES)]
        assert wait_for(lambda: requests.get(f"{api}/pfi/outbox", timeout=10).json() == [])
        journal = requests.get(f"{api}/journal", params={"channel": "pfi"}, timeout=10).json()
        outcomes = [e for e in journal if e["operation"] == "ZAM^Z01"]
        assert len(outcomes) >= MESSAGES and {e["verdict"] for e in outcomes} == {"accepted"}
        attempts = [e for e in journal if e["operation"] == "OUTBOX"]
        assert attempts and all(e["verdict"] == "error" and e["findings"] for e in attempts)
    finally:
        bench.close()
        if dpi is not None:
            dpi.close()
