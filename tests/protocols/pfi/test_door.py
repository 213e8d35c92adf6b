"""The PFI door through python-hl7's MLLP client over real sockets: DMP effects, ZAMs, consent, and the
scenarios it serves."""


import pytest
from hl7.client import MLLPClient
from kit.fake_dpi import FakeDpi
from kit.pfi import mdm, parse_ack, send
from kit.wait import wait_for

from mockbench.protocols.dmp.errors import registry_code
from mockbench.protocols.pfi.door import PfiDoor, PfiSettings, parse_endpoint
from mockbench.protocols.pfi.errors import z01_error
from mockbench.protocols.pfi.hl7 import parse as parse_hl7
from mockbench.world.errors import all_error_classes


def msa(ack) -> tuple[str, str]:
    return str(ack.segment("MSA")[1]), str(ack.segment("MSA")[2])


def test_feed_replace_delete_through_hl7(pfi_world):
    bench, patient, dr_a = pfi_world["bench"], pfi_world["patient"], pfi_world["pros"]["dr_a"]
    v1, v2 = "1.2.250.1.999.1.1", "1.2.250.1.999.1.2"
    acks = send(bench,
                mdm("T02", patient, dr_a, dr_a["finess"], v1, control_id="A1",
                    flags={"INVISIBLE_PATIENT": "Y"}),
                mdm("T10", patient, dr_a, dr_a["finess"], v2, v1, control_id="A2"),
                mdm("T04", patient, dr_a, dr_a["finess"], v2, v1, control_id="A3"))
    assert [msa(a) for a in acks] == [("AA", "A1"), ("AA", "A2"), ("AA", "A3")]
    assert [str(a.segment("MSH")[9]) for a in acks] == ["ACK^T02^ACK", "ACK^T10^ACK", "ACK^T04^ACK"]
    docs = {d["unique_id"]: d for d in bench.client.documents("alice", history=True)}
    assert docs[v1]["status"] == "deprecated" and docs[v1]["replaced_by"] == v2
    assert docs[v1]["confidentiality"] == ["INVISIBLE_PATIENT"]
    assert docs[v2]["status"] == "deleted" and docs[v2]["replaces"] == v1 and docs[v2]["author"] == "dr_a"
    entries = [(e["channel"], e["operation"], e["verdict"], e["document"]) for e in bench.client.journal()
               if e["channel"] != "control"]
    assert entries == [("pfi", "MDM^T02", "accepted", v1), ("dmp", "TD2.1", "accepted", v1),
                       ("pfi", "MDM^T10", "accepted", v2), ("dmp", "TD2.1", "accepted", v2),
                       ("pfi", "MDM^T04", "accepted", v2), ("dmp", "TD3.3c", "accepted", v2)]
    actions = [t["action"] for t in bench.client.traces("alice") if t["document"] in (v1, v2)]
    assert actions == ["alimentation", "invisibilisation", "remplacement", "suppression"]


@pytest.mark.parametrize("case,code", [
    ("colleague_of_another_structure_deletes", "NOT_AUTHOR"),
    ("replace_a_replaced_version", "NOT_CURRENT_VERSION"),
    ("unknown_patient", "PATIENT_UNKNOWN"),
    ("traits_differ", "PATIENT_MISMATCH"),
])
def test_downstream_refusals_are_aa_then_a_journaled_zam(pfi_world, case, code):
    bench, patient, pros = pfi_world["bench"], dict(pfi_world["patient"]), pfi_world["pros"]
    dr_a, dr_c = pros["dr_a"], pros["dr_c"]
    v1, v2, v3 = "1.2.250.1.999.2.1", "1.2.250.1.999.2.2", "1.2.250.1.999.2.3"
    assert msa(send(bench, mdm("T02", patient, dr_a, dr_a["finess"], v1))[0])[0] == "AA"
    if case == "colleague_of_another_structure_deletes":
        message = mdm("T04", patient, dr_c, dr_c["finess"], v1)
    elif case == "replace_a_replaced_version":
        send(bench, mdm("T10", patient, dr_a, dr_a["finess"], v2, v1))
        message = mdm("T10", patient, dr_a, dr_a["finess"], v3, v1)
    elif case == "unknown_patient":
        from mockbench.world.identity import nir_key
        body = "1800575123456"
        message = mdm("T02", {**patient, "ins": body + f"{nir_key(body):02d}"}, dr_a, dr_a["finess"], v2)
    else:
        message = mdm("T02", {**patient, "family_name": "DUPONT"}, dr_a, dr_a["finess"], v2)
    assert msa(send(bench, message)[0])[0] == "AA"        # the message itself is fine
    last = bench.client.journal(channel="dmp")[-1]
    assert (last["verdict"], last["code"]) == ("refused", code)
    assert last["findings"][0]["rule"] == "PFI/ZAM"


def test_consent_from_pam_fr_is_recorded_and_feeding_against_it_is_a_finding(pfi_world):
    bench, patient, dr_a = pfi_world["bench"], pfi_world["patient"], pfi_world["pros"]["dr_a"]
    adt = ("MSH|^~\\&|GAM|CHU|PFI|CHU|20261120||ADT^A31^ADT_A05|C1|P|2.5|||||FRA|UNICODE UTF-8\r"
           "EVN||20261120\r"
           f"PID|1||{patient['ins']}^^^ASIP-SANTE-INS-NIR&{patient['ins_oid']}&ISO^INS||DURAND^Alice||19800504|F\r"
           "PV1|1|I\rZFA|ACTIF|20261120|||||||IO|20261120|INC|20261120\r").encode()
    assert msa(send(bench, adt)[0]) == ("AA", "C1")
    assert bench.client.patient("alice")["consent"] == {"consultation": "INC", "feeding_opposition": "IO"}
    send(bench, mdm("T02", patient, dr_a, dr_a["finess"], "1.2.250.1.999.3.1"))
    fed = bench.client.journal(channel="dmp")[-1]
    assert fed["verdict"] == "accepted" and [f["rule"] for f in fed["findings"]] == ["DMP/CONSENT"]


@pytest.mark.parametrize("answer,verdict", [("AA", "accepted"), ("AE", "refused")])
def test_zam_z01_goes_to_the_dpi_and_waits_for_its_ack(pfi_world, answer, verdict):
    bench, patient, pros = pfi_world["bench"], pfi_world["patient"], pfi_world["pros"]
    dpi = FakeDpi(answer)
    door = PfiDoor(bench.bench.context, PfiSettings(port=0, dpi=("127.0.0.1", dpi.port), outbound_backoff=0.05))
    port = door.start()["mllp"]
    try:
        v1 = "1.2.250.1.999.4.1"
        with MLLPClient("127.0.0.1", port) as client:
            client.socket.settimeout(10)
            for message in (mdm("T02", patient, pros["dr_a"], pros["dr_a"]["finess"], v1, control_id="Z-OK"),
                            mdm("T04", patient, pros["dr_c"], pros["dr_c"]["finess"], v1, control_id="Z-KO")):
                assert msa(parse_ack(client.send_message(message)))[0] == "AA"
        assert wait_for(lambda: len([e for e in bench.client.journal(channel="pfi") if e["direction"] == "out"]) == 2)
        zams = [parse_hl7(p) for p in dpi.received]
        assert [z.operation for z in zams] == ["ZAM^Z01", "ZAM^Z01"]
        assert [z.get("OBX", 4) for z in zams] == ["Z-OK", "Z-KO"]
        assert [z.get("OBX", 5) for z in zams] == ["Y", "N"]
        assert zams[0].get("OBX", 3) == "ACK_RECEPTION_DMP"
        # profils-messages.md, ZAM^Z01 ERR-5: the DMP's error, code^libellé^DMP_ERROR_CODE
        assert (zams[1].get("ERR", 3), zams[1].get("ERR", 5), zams[1].get("ERR", 5, 1, 3)) == (
            "207", "DMPNotAuthor", "DMP_ERROR_CODE")
        out = [e for e in bench.client.journal(channel="pfi") if e["direction"] == "out"]
        assert [(e["operation"], e["verdict"], e["ref"]) for e in out] == [
            ("ZAM^Z01", verdict, "Z-OK"), ("ZAM^Z01", verdict, "Z-KO")]
    finally:
        door.stop()
        dpi.close()


def test_an_unreachable_dpi_is_retried_then_journaled(pfi_world):
    bench, patient, dr_a = pfi_world["bench"], pfi_world["patient"], pfi_world["pros"]["dr_a"]
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    door = PfiDoor(bench.bench.context, PfiSettings(port=0, dpi=("127.0.0.1", dead), outbound_attempts=3,
                                            outbound_backoff=0.02))
    port = door.start()["mllp"]
    try:
        with MLLPClient("127.0.0.1", port) as client:
            client.socket.settimeout(10)
            ack = parse_ack(client.send_message(mdm("T02", patient, dr_a, dr_a["finess"], "1.2.250.1.999.5.1")))
        assert msa(ack)[0] == "AA"
        assert wait_for(lambda: any(e["operation"] == "ZAM^Z01" for e in bench.client.journal(channel="pfi")))
        out = [e for e in bench.client.journal(channel="pfi") if e["direction"] == "out"]
        # each failed attempt is journaled (pfi OUTBOX), then the outcome under the message's own operation
        assert [(e["operation"], e["verdict"], e["code"]) for e in out] == [
            ("OUTBOX", "error", "DPI_UNREACHABLE"), ("OUTBOX", "error", "DPI_UNREACHABLE"),
            ("ZAM^Z01", "error", "DPI_UNREACHABLE")]
        assert "attempt 1 to send ZAM^Z01" in out[0]["findings"][0]["message"]
        assert "after 3 attempts" in out[-1]["findings"][0]["message"]
        dead = bench.client.pfi_outbox("dead")
        assert [(m["operation"], m["attempts"]) for m in dead] == [("ZAM^Z01", 3)]
        assert "after 3 attempts" in dead[0]["reason"]
    finally:
        door.stop()


def test_every_world_error_has_a_z01_form_with_the_dmps_own_code():
    """trans-cda-r2/profils-messages.md, ZAM^Z01 segment ERR: ERR-5 `code^libellé^DMP_ERROR_CODE`, the code the
    DMP gives on its own wire; the 900-906 table (error-codes.md) is the consumer's, never a Z01's."""
    for cls in all_error_classes():
        code, err = z01_error(cls())
        assert err.code == "207" and code == registry_code(cls()), cls
        value, label, system = err.application.split("^")
        assert (value, system) == (code, "DMP_ERROR_CODE") and label and not value.startswith("90"), cls


def test_dpi_endpoint_is_checked():
    assert parse_endpoint("dpi.local:2576") == ("dpi.local", 2576)
    assert parse_endpoint("[::1]:2576") == ("::1", 2576)
    for bad in ("nohost", "h:0", "h:x", ":5"):
        with pytest.raises(ValueError):
            parse_endpoint(bad)


@pytest.mark.scenario_play("dmp-conf-03-01", "correct")
def test_dmp_conf_03_01_played_through_hl7(mockbench):
    c = mockbench.client
    c.load("dmp-conf-03-01")
    patient = c.patient("alice")
    pro = c.call("GET", "/professionals")[0]
    finess = c.call("GET", "/structures")[0]["finess"]
    uid = "1.2.250.1.999.6.1"
    send(mockbench, mdm("T02", patient, pro, finess, uid), mdm("T04", patient, pro, finess, uid))
    assert [(s["id"], s["status"]) for s in c.finish()] == [
        ("envoi", "passed"), ("alimentation", "passed"), ("suppression", "passed"), ("suppression_dmp", "passed")]


@pytest.mark.scenario_play("dmp-conf-03-01", "mistake")
def test_dmp_conf_03_01_fails_when_the_deletion_is_refused(mockbench):
    c = mockbench.client
    c.load("dmp-conf-03-01")
    patient = c.patient("alice")
    pro = c.call("GET", "/professionals")[0]
    finess = c.call("GET", "/structures")[0]["finess"]
    send(mockbench, mdm("T02", patient, pro, finess, "1.2.250.1.999.7.1"),
         mdm("T04", patient, pro, finess, "1.2.250.1.999.7.9"))          # not the document fed
    steps = {s["id"]: s for s in c.finish()}
    assert steps["suppression"]["status"] == "failed"
    assert steps["suppression"]["reason"] == "document 1.2.250.1.999.7.1 is approved, deleted was expected"
    assert steps["suppression_dmp"]["status"] == "failed"
    assert steps["suppression_dmp"]["reason"] == "the entry's verdict is refused (DOCUMENT_UNKNOWN), accepted was expected"


@pytest.mark.parametrize("finess,status", [
    pytest.param("valid", "passed", marks=pytest.mark.scenario_play("dmp-conf-12", "correct")),
    pytest.param(None, "failed", marks=pytest.mark.scenario_play("dmp-conf-12", "mistake")),
    pytest.param("123456789", "failed", marks=pytest.mark.scenario_play("dmp-conf-12", "mistake")),
    # the footnote [2] of trans-cda-r2/profils-messages.md (PRT expéditeur) quotes SC.DMP/CONF.12: the geographic
    # FINESS; a legal-entity FINESS (PRT-8.7 FINEJ), valid as it may be, is a finding
    pytest.param("FINEJ", "failed", marks=pytest.mark.scenario_play("dmp-conf-12", "mistake"))])
def test_dmp_conf_12_checks_prt_8_10(mockbench, finess, status):
    c = mockbench.client
    c.load("dmp-conf-12")
    patient = c.patient("alice")
    pro = c.call("GET", "/professionals")[0]
    real = c.call("GET", "/structures")[0]["finess"]
    value = real if finess in ("valid", "FINEJ") else finess
    kind = "FINEJ" if finess == "FINEJ" else "FINEG"
    send(mockbench, mdm("T02", patient, pro, value, "1.2.250.1.999.8.1", org_type=kind))
    steps = c.finish()
    assert steps[0]["status"] == status
    if status == "failed":
        assert steps[0]["reason"].startswith("finding DMP/CONF.12: ")
        assert finess != "FINEJ" or "FINEG" in steps[0]["reason"]
    else:
        assert [(s["status"], s["reason"]) for s in steps] == [("passed", None)] * 2
