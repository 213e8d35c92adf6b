"""Catalogue scenarios played through the PFI door with python-hl7's MLLP client, where the DMP scenario's
requirement also covers the HL7 route (the correct plays of dmp-conf-03-01 and dmp-conf-12 are in
test_door.py)."""

import pytest
from hl7.client import MLLPClient
from pfi_messages import cda_for, mdm, parse_ack


def send(bench, *messages: bytes) -> list:
    with MLLPClient("127.0.0.1", bench.ports["mllp"]) as client:
        client.socket.settimeout(10)
        return [parse_ack(client.send_message(m)) for m in messages]


@pytest.mark.scenario_play("dmp-versioning", "mistake")
def test_dmp_versioning_an_mdm_t10_only_to_mask(mockbench):
    """The same CDA resent as MDM^T10 with MASQUE_PS at Y: a new version only to change an attribute."""
    c = mockbench.client
    c.load("dmp-versioning")
    patient = c.patient("bernard")
    pro = next(p for p in c.call("GET", "/professionals") if p["id"] == "dr_martin")
    finess = next(s for s in c.call("GET", "/structures") if s["id"] == "chu")["finess"]
    v1, v2 = "1.2.250.1.999.15.1", "1.2.250.1.999.15.2"
    same = cda_for(patient, v1, pro)
    acks = send(mockbench, mdm("T02", patient, pro, finess, v1, control_id="V1", cda=same),
                mdm("T10", patient, pro, finess, v2, v1, control_id="V2", cda=same, flags={"MASQUE_PS": "Y"}))
    assert [str(a.segment("MSA")[1]) for a in acks] == ["AA", "AA"]
    fed = [e for e in c.journal(channel="dmp") if e["operation"] == "TD2.1"]
    assert [f["rule"] for f in fed[1]["findings"]] == ["DMP/VERSIONING"] and fed[0]["findings"] == []
    steps = {s["id"]: s for s in c.finish()}
    assert steps["alimentation"]["status"] == "passed"
    assert steps["masquage"]["status"] == "failed"
    assert steps["masquage"]["reason"].startswith(f"finding DMP/VERSIONING: document {v2} replaces {v1} with the "
                                                  "same content")
    assert "TD3.3a" in steps["masquage"]["reason"]
