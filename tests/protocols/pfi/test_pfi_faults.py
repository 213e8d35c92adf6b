"""Injected faults on the PFI door (issue 23), through python-hl7's MLLP client over real sockets: ACK AR
with ERR, "rejeté pour une raison circonstancielle. Il peut être réémis plus tard" [trans-cda-r2/
profils-messages.md, ACK section, MSA-1 and segment ERR], no ACK, a reset, a slow ACK; nothing applied when
refused, and the resent message leaves one copy in the DMP."""

import socket
import time

import pytest
from hl7.client import MLLPClient
from kit.pfi import mdm, parse_ack

from mockbench.protocols.pfi.mllp import send_and_receive

UID = "1.2.250.1.999.23.7"


def _send(bench, message: bytes, timeout: float = 10.0):
    with MLLPClient("127.0.0.1", bench.ports["mllp"]) as client:
        client.socket.settimeout(timeout)
        return parse_ack(client.send_message(message))


def _copies(bench) -> int:
    return sum(1 for d in bench.client.documents("alice", history=True) if d["unique_id"] == UID)


def test_ack_ar_applies_nothing_and_the_resent_message_is_held_once(pfi_world):
    bench, patient, dr_a = pfi_world["bench"], pfi_world["patient"], pfi_world["pros"]["dr_a"]
    bench.client.set_fault(id="ar-once", door="pfi", kind="ack_ar", times=1,
                           match={"operation": "MDM^T02", "patient": "alice", "document": UID})
    message = mdm("T02", patient, dr_a, dr_a["finess"], UID, control_id="F1")
    ack = _send(bench, message)
    assert (str(ack.segment("MSA")[1]), str(ack.segment("MSA")[2])) == ("AR", "F1")
    err = ack.segment("ERR")
    assert str(err[3]).startswith("207") and str(err[4]) == "E"
    assert _copies(bench) == 0
    entry = bench.client.journal(channel="pfi")[-1]
    assert (entry["fault"], entry["verdict"], entry["code"], entry["document"]) == (
        "ar-once", "error", "FAULT_ACK_AR", UID)
    assert bench.client.journal(channel="dmp") == []      # the DMP was never called
    ack = _send(bench, mdm("T02", patient, dr_a, dr_a["finess"], UID, control_id="F2"))
    assert str(ack.segment("MSA")[1]) == "AA"
    assert _copies(bench) == 1


def test_no_ack_leaves_the_client_waiting_and_applies_nothing(pfi_world):
    bench, patient, dr_a = pfi_world["bench"], pfi_world["patient"], pfi_world["pros"]["dr_a"]
    bench.client.set_fault(door="pfi", kind="no_ack", times=1)
    with pytest.raises(socket.timeout):
        _send(bench, mdm("T02", patient, dr_a, dr_a["finess"], UID, control_id="F3"), timeout=1.0)
    assert _copies(bench) == 0
    assert str(_send(bench, mdm("T02", patient, dr_a, dr_a["finess"], UID, control_id="F4")).segment("MSA")[1]) \
        == "AA"
    assert _copies(bench) == 1


def test_reset_and_timeout_drop_the_connection(pfi_world):
    bench, patient, dr_a = pfi_world["bench"], pfi_world["patient"], pfi_world["pros"]["dr_a"]
    bench.client.set_fault(door="pfi", kind="reset", times=1)
    with pytest.raises((ConnectionError, OSError)):
        _send(bench, mdm("T02", patient, dr_a, dr_a["finess"], UID, control_id="F5"))
    bench.client.set_fault(door="pfi", kind="timeout", seconds=30, times=1)
    started = time.monotonic()
    with pytest.raises(socket.timeout):
        _send(bench, mdm("T02", patient, dr_a, dr_a["finess"], UID, control_id="F6"), timeout=1.0)
    assert time.monotonic() - started < 5
    assert _copies(bench) == 0
    assert [e["code"] for e in bench.client.journal(channel="pfi")] == ["FAULT_RESET", "FAULT_TIMEOUT"]


def test_a_slow_ack_is_sent_after_the_delay_and_the_document_fed(pfi_world):
    bench, patient, dr_a = pfi_world["bench"], pfi_world["patient"], pfi_world["pros"]["dr_a"]
    bench.client.set_fault(id="slow", door="pfi", kind="delay", seconds=1.0, times=1)
    started = time.monotonic()
    ack = _send(bench, mdm("T02", patient, dr_a, dr_a["finess"], UID, control_id="F7"))
    assert time.monotonic() - started >= 1.0
    assert str(ack.segment("MSA")[1]) == "AA" and _copies(bench) == 1
    assert bench.client.journal(channel="pfi")[-1]["fault"] == "slow"
    # a trickled ACK: python-hl7's client reads one recv() only, so the bench's own MLLP client (which reads to
    # the end of the block, as a DPI must) reads it
    bench.client.set_fault(id="drip", door="pfi", kind="trickle", seconds=1.0, times=1)
    started = time.monotonic()
    raw = send_and_receive("127.0.0.1", bench.ports["mllp"],
                           mdm("T10", patient, dr_a, dr_a["finess"], UID + ".2", UID, control_id="F8"))
    assert str(parse_ack(raw).segment("MSA")[1]) == "AA" and time.monotonic() - started >= 0.9


def _with_dpi(pfi_world):
    from kit.fake_dpi import FakeDpi

    from mockbench.protocols.pfi.door import PfiDoor, PfiSettings

    dpi = FakeDpi("AA")
    door = PfiDoor(pfi_world["bench"].bench.context, PfiSettings(port=0, dpi=("127.0.0.1", dpi.port),
                                                         outbound_backoff=0.05))
    return dpi, door, door.start()["mllp"]


def test_zam_error_feeds_nothing_and_tells_the_dpi_the_dmp_error(pfi_world):
    from kit.wait import wait_for

    from mockbench.protocols.pfi.hl7 import parse as parse_hl7

    bench, patient, dr_a = pfi_world["bench"], pfi_world["patient"], pfi_world["pros"]["dr_a"]
    bench.client.set_fault(id="dmp-away", door="pfi", kind="zam_error", times=1)
    dpi, door, port = _with_dpi(pfi_world)
    try:
        with MLLPClient("127.0.0.1", port) as client:
            client.socket.settimeout(10)
            ack = parse_ack(client.send_message(mdm("T02", patient, dr_a, dr_a["finess"], UID, control_id="Z1")))
        assert str(ack.segment("MSA")[1]) == "AA"        # the PFI took the message
        assert wait_for(lambda: len(dpi.received) == 1)
        zam = parse_hl7(dpi.received[0])
        # profils-messages.md, ZAM^Z01: OBX-5 N, ERR-5 code^libellé^DMP_ERROR_CODE
        assert (zam.get("OBX", 4), zam.get("OBX", 5), zam.get("ERR", 5), zam.get("ERR", 5, 1, 3)) == (
            "Z1", "N", "XDSRegistryNotAvailable", "DMP_ERROR_CODE")
        assert _copies(bench) == 0
        dmp = bench.client.journal(channel="dmp")[-1]
        assert (dmp["fault"], dmp["verdict"], dmp["code"]) == ("dmp-away", "error", "FAULT_ZAM_ERROR")
        assert "fault" not in bench.client.journal(channel="pfi", operation="MDM^T02")[-1]
    finally:
        door.stop()
        dpi.close()


def test_a_duplicated_then_a_delayed_zam(pfi_world):
    from kit.wait import wait_for

    bench, patient, dr_a = pfi_world["bench"], pfi_world["patient"], pfi_world["pros"]["dr_a"]
    bench.client.set_fault(door="pfi", kind="zam_duplicate", times=1)
    dpi, door, port = _with_dpi(pfi_world)
    try:
        with MLLPClient("127.0.0.1", port) as client:
            client.socket.settimeout(10)
            client.send_message(mdm("T02", patient, dr_a, dr_a["finess"], UID, control_id="Z2"))
            assert wait_for(lambda: len(dpi.received) == 2)
            assert dpi.received[0] == dpi.received[1]      # the same ZAM twice, same MSH-10
            assert _copies(bench) == 1
            bench.client.set_fault(door="pfi", kind="zam_delay", seconds=1.5, times=1)
            started = time.monotonic()
            client.send_message(mdm("T10", patient, dr_a, dr_a["finess"], UID + ".2", UID, control_id="Z3"))
            assert wait_for(lambda: len(dpi.received) == 3)
            assert time.monotonic() - started >= 1.4
    finally:
        door.stop()
        dpi.close()


def _play_pfi_ar(bench, resend: bool) -> list[dict]:
    bench.client.load("pfi-ar-resend")
    patient = bench.client.patient("alice")
    pros = {p["id"]: p for p in bench.client.call("GET", "/professionals")}
    dr = dict(pros["dr_martin"])
    dr["finess"] = bench.client.call("GET", "/structures")[0]["finess"]
    uid = "1.2.250.1.999.23.50"
    ack = _send(bench, mdm("T02", patient, dr, dr["finess"], uid, control_id="R1"))
    assert str(ack.segment("MSA")[1]) == "AR"
    if resend:
        assert str(_send(bench, mdm("T02", patient, dr, dr["finess"], uid, control_id="R2")).segment("MSA")[1]) \
            == "AA"
    docs = [d for d in bench.client.documents("alice", history=True) if d["unique_id"] == uid]
    assert len(docs) == (1 if resend else 0)
    return bench.client.finish()


@pytest.mark.scenario_play("pfi-ar-resend", "correct")
def test_pfi_ar_resend_played_correctly(mockbench):
    steps = _play_pfi_ar(mockbench, resend=True)
    assert [s["status"] for s in steps] == ["passed", "passed", "passed"]


@pytest.mark.scenario_play("pfi-ar-resend", "mistake")
def test_pfi_ar_resend_a_dpi_that_drops_the_document_fails(mockbench):
    steps = _play_pfi_ar(mockbench, resend=False)
    assert [s["status"] for s in steps] == ["passed", "failed", "failed"]
    assert steps[1]["reason_code"] == "NOT_OBSERVED"
