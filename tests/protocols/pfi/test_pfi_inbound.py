"""Inbound MSSanté -> DPI ([CDA-MSS]): a mail carrying an IHE_XDM.ZIP, received on a hospital mailbox,
goes to the DPI as an MDM^T02 / T10 / T04 with MSH-21 `1.1^CISIS_CDA_HL7_LPS` and the mail in an extra OBX."""

import base64
import time
import uuid

import pytest
from test_door import FakeDpi, wait_for

from mockbench.formats.cda import minimal_cda
from mockbench.formats.mime import header_summary, xdm_mail
from mockbench.formats.xdm import write_package
from mockbench.protocols.pfi.door import PfiDoor, PfiSettings
from mockbench.protocols.pfi.hl7 import parse as parse_hl7

WORLD = """\
id: pfi-inbound
title: Courriels MSSanté vers le DPI
seed: 7
world:
  structures: [{id: chu, name: CHU de Test}]
  professionals:
    - id: dr_ville
      family_name: LEROY
      given_name: Marc
      structure: chu
      mssante: marc.leroy@ville.mssante.fr
  mailboxes:
    - {address: dpi@chu.mssante.fr, type: APP, owner: chu, role: hospital}
    - {address: dr.roux@clinique.mssante.fr, role: correspondent}
  patients:
    - {id: alice, sex: F, family_name: DURAND, given_name: Alice, birth_date: "1980-05-04"}
"""
HOSPITAL = "dpi@chu.mssante.fr"
SENDER = "marc.leroy@ville.mssante.fr"
SUBJECT = "XDM/1.0/DDM+CR de consultation DURAND Alice 19800504"
BODY = "Bonjour, voici le compte rendu | de la séance."


@pytest.fixture
def setup(mockbench):
    mockbench.client.load_yaml(WORLD)
    patient = mockbench.client.patient("alice")
    dpi = FakeDpi()
    door = PfiDoor(mockbench.bench, PfiSettings(port=0, dpi=("127.0.0.1", dpi.port), outbound_backoff=0.05))
    door.start()
    try:
        yield mockbench, patient, dpi
    finally:
        door.stop()
        dpi.close()


def cda(patient: dict, unique_id: str, *, version: int = 1, parent: str = "") -> bytes:
    xml = minimal_cda(unique_id=unique_id, ins=patient["ins"], ins_oid=patient["ins_oid"],
                      type_code="11488-4", title="CR de consultation", author_idnps="810001234567",
                      author_family="LEROY", author_given="Marc", patient_family=patient["family_name"],
                      patient_given=patient["given_name"], birth_date=patient["birth_date"],
                      sex=patient["sex"],
                      effective_time="2026-11-20T10:00:00Z", text="Examen normal.", set_id="1.2.250.1.999.90",
                      version=version)
    if parent:
        related = (f'<relatedDocument typeCode="RPLC"><parentDocument><id root="{parent}"/>'
                   "</parentDocument></relatedDocument>")
        xml = xml.replace(b"<component>", related.encode() + b"\n  <component>")
    return xml


def package(patient: dict, content: bytes, unique_id: str, action: str | None = None) -> bytes:
    cx = f"{patient['ins']}^^^&{patient['ins_oid']}&ISO^NH"
    meta = {"unique_id": unique_id, "mime_type": "text/xml", "title": "CR de consultation",
            "type_code": "11488-4", "format_code": "urn:asip:ci-sis:2010", "source_patient_id": cx}
    return write_package([("DOC0001.XML", content, meta)],
                         submission_set={"unique_id": f"2.25.{uuid.uuid4().int}",
                                         "source_id": "1.2.250.1.999", "content_type": "04"},
                         patient_id=cx, action=action)


def deliver(bench, raw: bytes, to: str = HOSPITAL) -> str:
    world = bench.bench.world
    with world.transaction() as tx:
        world.mss.deliver(tx, SENDER, [to], raw)
    return header_summary(raw)["Message-ID"]


def out_entries(bench) -> list[dict]:
    return [e for e in bench.client.journal(channel="pfi") if e["direction"] == "out"]


def test_a_received_xdm_mail_goes_to_the_dpi_as_mdm_t02(setup):
    bench, patient, dpi = setup
    uid = "1.2.250.1.999.90.1"
    content = cda(patient, uid)
    raw = xdm_mail(sender=SENDER, to=[HOSPITAL], subject=SUBJECT, package=package(patient, content, uid),
                   text=BODY)
    message_id = deliver(bench, raw)
    assert wait_for(lambda: len(out_entries(bench)) == 1)
    [mdm] = [parse_hl7(p) for p in dpi.received]
    assert mdm.message_type == ("MDM", "T02", "MDM_T02")
    msh = mdm.msh
    assert (mdm.value(msh, 3), mdm.value(msh, 4), mdm.value(msh, 5), mdm.value(msh, 6)) == (
        "PFI", "MOCKBENCH", "DPI", "chu")
    assert (mdm.value(msh, 12), msh[21]) == ("2.6", "1.1^CISIS_CDA_HL7_LPS")
    assert mdm.names() == ["MSH", "EVN", "PID", "PV1", "ORC", "OBR", "TXA", "OBX", "PRT", "PRT", "OBX",
                           "OBX", "OBX", "OBX", "OBX"]
    assert (mdm.get("PID", 3), mdm.get("PID", 3, 1, 4, 2), mdm.get("PID", 3, 1, 5)) == (
        patient["ins"], patient["ins_oid"], "INS")
    assert (mdm.get("PID", 5), mdm.get("PID", 5, 1, 2), mdm.get("PID", 7), mdm.get("PID", 8)) == (
        "DURAND", "Alice", "19800504", "F")
    assert (mdm.get("PV1", 2), mdm.get("ORC", 1), mdm.get("OBR", 4)) == ("N", "NW", "11488-4")
    assert (mdm.get("TXA", 12), mdm.get("TXA", 13)) == (uid, "")
    document, mail, *metas = mdm.segments("OBX")
    # trans-cda-mss/profils-messages.md "Groupes OBXNTE portant les métadonnées MSSanté": four, in this order
    assert [(mdm.value(o, 1), o[2], mdm.value(o, 3, 1, 1), mdm.value(o, 3, 1, 3), mdm.value(o, 5, 1, 1),
             mdm.value(o, 5, 1, 3), mdm.value(o, 11)) for o in metas] == [
        (str(n), "CWE", code, "MetaDMPMSS", "N", "expandedYes-NoIndicator", "F")
        for n, code in enumerate(("MASQUE_PS", "INVISIBLE_PATIENT", "INVISIBLE_REP_LEGAUX", "MODIF_CONF_CODE"), 3)]
    assert (document[2], mdm.value(document, 11)) == ("ED", "F")
    assert base64.b64decode(mdm.value(document, 5, 1, 5)) == content
    sender, recipient = mdm.segments("PRT")
    assert (mdm.value(sender, 4), mdm.value(sender, 15, 1, 4)) == ("SB", SENDER)
    assert sender[4] == "SB^Send by^participation"                   # PRT-4 as the guide's table
    assert recipient[4] == "RCT^Result Copies To^participation"
    assert (mdm.value(sender, 15, 1, 2), mdm.value(sender, 15, 1, 3)) == ("NET", "X.400")
    assert mdm.value(sender, 5, 1, 2) == "LEROY"                 # the world knows the sender
    assert (mdm.value(recipient, 4), mdm.value(recipient, 15, 1, 4)) == ("RCT", HOSPITAL)
    assert (mail[2], mdm.value(mail, 3, 1, 1), mdm.value(mail, 3, 1, 2)) == ("ED", message_id, SUBJECT)
    assert base64.b64decode(mdm.value(mail, 5, 1, 5)).decode() == BODY
    [entry] = out_entries(bench)
    assert (entry["operation"], entry["verdict"], entry["ref"], entry["document"]) == (
        "MDM^T02", "accepted", message_id, uid)


def test_posted_through_the_control_api_and_replaced_then_deleted(setup):
    bench, patient, dpi = setup
    v1, v2 = "1.2.250.1.999.90.1", "1.2.250.1.999.90.2"
    c2 = cda(patient, v2, version=2, parent=v1)
    sent = []
    for content, uid, action in ((cda(patient, v1), v1, None), (c2, v2, "C"), (c2, v2, "D")):
        rows = bench.client.call("POST", "/mss/send", {
            "from": SENDER, "to": [HOSPITAL], "subject": SUBJECT, "text": BODY,
            "package": base64.b64encode(package(patient, content, uid, action)).decode()})
        sent.append(rows[0]["message_id"])
    assert wait_for(lambda: len(out_entries(bench)) == 3)
    mdms = [parse_hl7(p) for p in dpi.received]
    assert [m.operation for m in mdms] == ["MDM^T02", "MDM^T10", "MDM^T04"]
    assert [(m.get("ORC", 1), m.get("OBX", 11)) for m in mdms] == [("NW", "F"), ("RO", "C"), ("CA", "D")]
    assert [(m.get("TXA", 12), m.get("TXA", 13)) for m in mdms] == [(v1, ""), (v2, v1), (v2, v1)]
    assert [m.segments("OBX")[1][3].split("^")[0] for m in mdms] == sent
    assert [(e["operation"], e["ref"]) for e in out_entries(bench)] == list(
        zip(["MDM^T02", "MDM^T10", "MDM^T04"], sent, strict=True))


def test_mails_the_dpi_does_not_get(setup):
    bench, patient, dpi = setup
    uid = "1.2.250.1.999.91.1"
    pkg = package(patient, cda(patient, uid), uid)
    plain = (f"From: {SENDER}\r\nTo: {HOSPITAL}\r\nSubject: Bonjour\r\nMessage-ID: <plain@test>\r\n\r\n"
             "Pas de document.\r\n").encode()
    deliver(bench, plain)                                                           # no package
    deliver(bench, xdm_mail(sender=SENDER, to=["dr.roux@clinique.mssante.fr"], subject=SUBJECT, package=pkg),
            to="dr.roux@clinique.mssante.fr")                                       # not a hospital mailbox
    time.sleep(0.3)
    assert dpi.received == [] and out_entries(bench) == []


def test_a_broken_package_is_journaled_and_nothing_is_sent(setup):
    bench, _, dpi = setup
    broken = xdm_mail(sender=SENDER, to=[HOSPITAL], subject=SUBJECT, package=b"PK\x03\x04broken")
    message_id = deliver(bench, broken)
    [entry] = out_entries(bench)
    assert (entry["verdict"], entry["code"], entry["ref"]) == ("error", "XDM_NOT_ZIP", message_id)
    assert entry["findings"][0]["rule"] == "PFI/XDM"
    time.sleep(0.2)
    assert dpi.received == []
