"""Issue 17, point 1: the PFI's outbound queue (ZAMs, and the MDMs of mails received, to the DPI's MLLP
listener) survives kill -9 and SIGTERM.

A real `mockbench up` process with --dpi-mllp pointing at a port where nothing listens yet: ten MDM^T02 are
acknowledged AA, each making a ZAM^Z01 due, and a mail with an IHE_XDM.ZIP reaches the hospital mailbox,
making an MDM^T02 due ([CDA-MSS]); the bench is killed with SIGKILL, restarted on the same --state, stopped
with SIGTERM, restarted again; only then does the DPI's listener come up, and it receives every message.
"""

from __future__ import annotations

import base64
import uuid

import pytest
import requests
from hl7.client import MLLPClient
from kit.fake_dpi import FakeDpi
from kit.pfi import mdm, parse_ack
from kit.wait import wait_for
from reliability_helpers import PFI_WORLD, BenchProcess, free_port

from mockbench.formats.cda import minimal_cda
from mockbench.formats.xdm import write_package
from mockbench.protocols.pfi.hl7 import parse as parse_hl7
from mockbench.testing.client import BenchHTTPError

MESSAGES = 10
HOSPITAL = "dpi@chu.mssante.fr"
WORLD = PFI_WORLD + "  mailboxes:\n    - {address: dpi@chu.mssante.fr, type: APP, owner: chu, role: hospital}\n"
MAIL_DOC = "1.2.250.1.999.17.100"


def xdm_package(patient: dict) -> bytes:
    content = minimal_cda(unique_id=MAIL_DOC, ins=patient["ins"], ins_oid=patient["ins_oid"], type_code="11488-4",
                          title="CR de consultation", author_idnps="810001234567", author_family="LEROY",
                          author_given="Marc", patient_family=patient["family_name"],
                          patient_given=patient["given_name"], birth_date=patient["birth_date"], sex=patient["sex"],
                          effective_time="2026-11-20T10:00:00Z", text="Examen normal.", set_id="1.2.250.1.999.91")
    cx = f"{patient['ins']}^^^&{patient['ins_oid']}&ISO^NH"
    meta = {"unique_id": MAIL_DOC, "mime_type": "text/xml", "title": "CR de consultation", "type_code": "11488-4",
            "format_code": "urn:asip:ci-sis:2010", "source_patient_id": cx}
    return write_package([("DOC0001.XML", content, meta)], patient_id=cx,
                         submission_set={"unique_id": f"2.25.{uuid.uuid4().int}", "source_id": "1.2.250.1.999",
                                         "content_type": "04"})


@pytest.mark.slow
def test_zams_due_survive_kill_9_and_sigterm_and_reach_a_dpi_that_comes_up_later(tmp_path):
    dpi_port = free_port()              # nothing listens there until the end
    scenario = tmp_path / "world.yaml"
    scenario.write_text(WORLD, encoding="utf-8")
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
        sent = requests.post(f"{api}/mss/send", timeout=10, json={
            "from": "marc.leroy@ville.mssante.fr", "to": [HOSPITAL], "subject": "XDM/1.0/DDM+CR de consultation",
            "package": base64.b64encode(xdm_package(patient)).decode()})
        assert sent.status_code == 200, sent.text
        # Every message due is in the durable queue once what made it due was acknowledged.
        pending = requests.get(f"{api}/pfi/outbox", params={"state": "pending"}, timeout=10).json()
        assert [m["operation"] for m in pending] == ["ZAM^Z01"] * MESSAGES + ["MDM^T02"]
        assert wait_for(lambda: any(e["operation"] == "OUTBOX" for e in
                                    requests.get(f"{api}/journal", params={"channel": "pfi"}, timeout=10).json()))
        bench.kill()

        bench = BenchProcess(state, *common)   # resumes the world: no --scenario
        bench.terminate()
        assert bench.proc.returncode == 0

        bench = BenchProcess(state, *common)
        api = f"{bench.url}/_bench"
        dpi = FakeDpi(port=dpi_port)
        assert wait_for(lambda: len(dpi.received) >= MESSAGES + 1, timeout=20), f"{len(dpi.received)} received"
        received = [parse_hl7(p) for p in dpi.received]
        zams = [m for m in received if m.operation == "ZAM^Z01"]
        mdms = [m for m in received if m.operation == "MDM^T02"]
        assert len(zams) + len(mdms) == len(received) and mdms
        assert {m.get("TXA", 12) for m in mdms} == {MAIL_DOC}
        # At least once, and in order: every MDM's ZAM, the first ones first (OBX-4 names the MDM's MSH-10).
        refs = [z.get("OBX", 4) for z in zams]
        assert sorted(set(refs)) == sorted(f"K{i}" for i in range(MESSAGES))
        assert list(dict.fromkeys(refs)) == [f"K{i}" for i in range(MESSAGES)]
        assert wait_for(lambda: requests.get(f"{api}/pfi/outbox", timeout=10).json() == [])
        journal = requests.get(f"{api}/journal", params={"channel": "pfi"}, timeout=10).json()
        outcomes = [e for e in journal if e["direction"] == "out" and e["operation"] in ("ZAM^Z01", "MDM^T02")]
        assert len(outcomes) >= MESSAGES + 1 and {e["verdict"] for e in outcomes} == {"accepted"}
        attempts = [e for e in journal if e["operation"] == "OUTBOX"]
        assert attempts and all(e["verdict"] == "error" and e["findings"] for e in attempts)
    finally:
        bench.close()
        if dpi is not None:
            dpi.close()


# The dead states, in process (a door of its own on the test's bench, with short bounds) ------------------------

def _door(mockbench, dpi_port: int, **settings):
    from mockbench.protocols.pfi.door import PfiDoor, PfiSettings

    door = PfiDoor(mockbench.bench.context, PfiSettings(port=0, dpi=("127.0.0.1", dpi_port), outbound_backoff=0.02,
                                                outbound_backoff_max=0.05, **settings))
    return door, door.start()["mllp"]


def _send(mockbench, port: int, *control_ids: str) -> None:
    client = mockbench.client
    patient = client.patient("alice")
    dr_a = client.call("GET", "/professionals")[0]
    dr_a["finess"] = client.call("GET", "/structures")[0]["finess"]
    with MLLPClient("127.0.0.1", port) as mllp:
        mllp.socket.settimeout(10)
        for i, control_id in enumerate(control_ids):
            ack = parse_ack(mllp.send_message(mdm("T02", patient, dr_a, dr_a["finess"], f"1.2.250.1.999.18.{i}",
                                                  control_id=control_id)))
            assert str(ack.segment("MSA")[1]) == "AA"


def test_a_message_the_dpi_refuses_is_dead_with_its_reason_and_can_be_put_back(mockbench):
    mockbench.client.load_yaml(PFI_WORLD)
    dpi = FakeDpi(answer="AR")
    door, port = _door(mockbench, dpi.port)
    try:
        _send(mockbench, port, "D1")
        assert wait_for(lambda: mockbench.client.pfi_outbox("dead"))
        [dead] = mockbench.client.pfi_outbox("dead")
        assert (dead["operation"], dead["ref"], dead["attempts"]) == ("ZAM^Z01", "D1", 1)
        assert dead["reason"] == "DPI_AR: the DPI answered AR" and dead["next_attempt"] is None
        [outcome] = [e for e in mockbench.client.journal(channel="pfi") if e["operation"] == "ZAM^Z01"]
        assert (outcome["verdict"], outcome["code"]) == ("refused", "DPI_AR")
        dpi.answer = "AA"   # the DPI was fixed: the dead message is put back and goes through
        back = mockbench.client.call("POST", f"/pfi/outbox/{dead['id']}/retry")
        assert (back["state"], back["attempts"]) == ("pending", 0)
        assert wait_for(lambda: mockbench.client.pfi_outbox() == [])
        assert len(dpi.received) == 2
        outcomes = [e for e in mockbench.client.journal(channel="pfi") if e["operation"] == "ZAM^Z01"]
        assert [e["verdict"] for e in outcomes] == ["refused", "accepted"]
        with pytest.raises(BenchHTTPError) as unknown:
            mockbench.client.call("POST", "/pfi/outbox/999/retry")
        assert unknown.value.status == 404
    finally:
        door.stop()
        dpi.close()


def test_a_message_past_its_expiry_and_one_beyond_the_queue_bound_are_dead(mockbench):
    mockbench.client.load_yaml(PFI_WORLD)
    door, port = _door(mockbench, free_port(), outbound_expiry=0.5, outbound_queue=2)
    try:
        _send(mockbench, port, "E1", "E2", "E3")
        assert wait_for(lambda: len(mockbench.client.pfi_outbox("dead")) == 3, timeout=10)
        dead = {m["ref"]: m for m in mockbench.client.pfi_outbox("dead")}
        assert dead["E3"]["reason"].startswith("OUTBOX_FULL: the outbound queue already holds 2 messages")
        for ref in ("E1", "E2"):   # E2 waited behind E1 (oldest first): it expired with E1
            assert dead[ref]["reason"].startswith("DPI_UNREACHABLE: not delivered within 0.5 s")
        assert dead["E1"]["attempts"] >= 1 and "Connect call failed" in dead["E1"]["last_error"]
        outcomes = [e for e in mockbench.client.journal(channel="pfi") if e["operation"] == "ZAM^Z01"]
        assert sorted((e["ref"], e["verdict"]) for e in outcomes) == [("E1", "error"), ("E2", "error"),
                                                                      ("E3", "error")]
    finally:
        door.stop()
