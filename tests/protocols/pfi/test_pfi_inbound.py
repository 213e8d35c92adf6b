"""Inbound MSSanté -> DPI ([CDA-MSS]): a mail carrying an IHE_XDM.ZIP, received on a hospital mailbox,
goes to the DPI as an MDM^T02 / T10 / T04 with MSH-21 `1.1^CISIS_CDA_HL7_LPS` and the mail in an extra OBX."""

import asyncio
import base64
import uuid

import pytest
from kit.fake_dpi import FakeDpi
from kit.wait import wait_for

from mockbench.formats.cda import minimal_cda
from mockbench.formats.mime import header_summary, xdm_mail
from mockbench.formats.xdm import write_package
from mockbench.protocols.pfi.door import PfiDoor, PfiSettings
from mockbench.protocols.pfi.hl7 import parse as parse_hl7
from mockbench.protocols.pfi.mllp import MllpReader, write_frame

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
    door = PfiDoor(mockbench.bench.context, PfiSettings(port=0, dpi=("127.0.0.1", dpi.port), outbound_backoff=0.05))
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
    assert out_entries(bench) == []
    # the end marker: a mail the DPI does get; the queue sends oldest first, so once it is through, anything
    # the two mails above had queued would have been sent before it
    marker = deliver(bench, xdm_mail(sender=SENDER, to=[HOSPITAL], subject=SUBJECT, package=pkg))
    assert wait_for(lambda: len(out_entries(bench)) == 1)
    assert [parse_hl7(p).get("TXA", 12) for p in dpi.received] == [uid]
    assert [e["ref"] for e in out_entries(bench)] == [marker]


def test_a_broken_package_is_journaled_and_nothing_is_sent(setup):
    bench, patient, dpi = setup
    broken = xdm_mail(sender=SENDER, to=[HOSPITAL], subject=SUBJECT, package=b"PK\x03\x04broken")
    message_id = deliver(bench, broken)
    [entry] = out_entries(bench)
    assert (entry["verdict"], entry["code"], entry["ref"]) == ("error", "XDM_NOT_ZIP", message_id)
    assert entry["findings"][0]["rule"] == "PFI/XDM"
    # the end marker: a good mail after it; the queue sends oldest first, so the broken one sent nothing
    uid = "1.2.250.1.999.91.2"
    marker = deliver(bench, xdm_mail(sender=SENDER, to=[HOSPITAL], subject=SUBJECT,
                                     package=package(patient, cda(patient, uid), uid)))
    assert wait_for(lambda: len(out_entries(bench)) == 2)
    assert [parse_hl7(p).get("TXA", 12) for p in dpi.received] == [uid]
    assert out_entries(bench)[1]["ref"] == marker


# --- trans-cda-mss: TXA ids, action C without a parent, the DPI's ACK and the sender told ----------------

class ScriptedDpi(FakeDpi):
    """The DPI's MLLP listener answering each MDM with `MSA|<msa>|<MSH-10>` and the given ERR segment."""

    def __init__(self, msa: str, err: str = "") -> None:
        self.msa, self.err = msa, err
        super().__init__(msa)

    def _run(self) -> None:
        async def serve(reader, writer):
            mllp = MllpReader(reader)
            while (frame := await mllp.read_frame()) is not None:
                self.received.append(frame.payload)
                msh10 = parse_hl7(frame.payload).control_id
                ack = (f"MSH|^~\\&|DPI|CHU|PFI|MOCKBENCH|20261120||ACK^T02^ACK|D1|P|2.6\rMSA|{self.msa}|{msh10}\r"
                       + (self.err + "\r" if self.err else ""))
                await write_frame(writer, ack.encode())
            writer.close()

        async def start():
            self.server = await asyncio.start_server(serve, "127.0.0.1", 0)
            self.port = self.server.sockets[0].getsockname()[1]

        self.loop.run_until_complete(start())
        self.ready.set()
        self.loop.run_forever()


@pytest.fixture
def scripted(mockbench):
    doors = []

    def start(msa: str, err: str = ""):
        mockbench.client.load_yaml(WORLD)
        dpi = ScriptedDpi(msa, err)
        door = PfiDoor(mockbench.bench.context, PfiSettings(port=0, dpi=("127.0.0.1", dpi.port), outbound_backoff=0.05))
        door.start()
        doors.append((door, dpi))
        return mockbench, mockbench.client.patient("alice"), dpi

    yield start
    for door, dpi in doors:
        door.stop()
        dpi.close()


def mailbox(bench, address: str) -> list[tuple[dict, bytes]]:
    world = bench.bench.world
    with world.transaction() as tx:
        return [(m.headers, world.mss.raw(tx, m.id)) for m in world.mss.messages(tx, address)]


def test_txa_12_is_extension_root_iso_and_masque_ps_is_y(setup):
    """trans-cda-mss/profils-messages.md TXA Note 1: TXA-12 `extension^^root^ISO` when the CDA id has an
    extension; MASQUE_PS Y when the XDM entry's confidentiality says so."""
    bench, patient, dpi = setup
    content = cda(patient, "1.2.250.1.999.92").replace(b'<id root="1.2.250.1.999.92"/>',
                                                        b'<id root="1.2.250.1.999.92" extension="DOC-77"/>', 1)
    cx = f"{patient['ins']}^^^&{patient['ins_oid']}&ISO^NH"
    pkg = write_package([("DOC0001.XML", content, {
        "unique_id": "1.2.250.1.999.92^DOC-77", "mime_type": "text/xml", "title": "CR de consultation",
        "type_code": "11488-4", "format_code": "urn:asip:ci-sis:2010", "source_patient_id": cx,
        "confidentiality": ["N", "MASQUE_PS"]})],
        submission_set={"unique_id": f"2.25.{uuid.uuid4().int}", "source_id": "1.2.250.1.999", "content_type": "04"},
        patient_id=cx)
    deliver(bench, xdm_mail(sender=SENDER, to=[HOSPITAL], subject=SUBJECT, package=pkg))
    assert wait_for(lambda: len(out_entries(bench)) == 1)
    [mdm] = [parse_hl7(p) for p in dpi.received]
    assert mdm.segments("TXA")[0][12] == "DOC-77^^1.2.250.1.999.92^ISO"
    metas = {mdm.value(o, 3, 1, 1): mdm.value(o, 5, 1, 1) for o in mdm.segments("OBX")[2:]}
    assert metas == {"MASQUE_PS": "Y", "INVISIBLE_PATIENT": "N", "INVISIBLE_REP_LEGAUX": "N", "MODIF_CONF_CODE": "N"}


def test_action_c_without_a_parent_goes_as_t02_with_a_finding(setup):
    """A package whose action is C but whose CDA names no RPLC parent (and no RPLC association in the XDM
    metadata): TXA-13 is required for a T10 (profils-messages.md), so a T02 and a finding, not a T10 the
    PFI itself would refuse."""
    bench, patient, dpi = setup
    uid = "1.2.250.1.999.93.2"
    deliver(bench, xdm_mail(sender=SENDER, to=[HOSPITAL], subject=SUBJECT,
                            package=package(patient, cda(patient, uid, version=2), uid, action="C")))
    assert wait_for(lambda: len(out_entries(bench)) == 1)
    [mdm] = [parse_hl7(p) for p in dpi.received]
    assert (mdm.operation, mdm.get("ORC", 1), mdm.get("TXA", 13), mdm.get("OBX", 11)) == ("MDM^T02", "NW", "", "F")
    [entry] = out_entries(bench)
    assert entry["operation"] == "MDM^T02" and entry["verdict"] == "accepted"
    [found] = [f for f in entry["findings"] if f["rule"] == "CDA-MSS/TXA-13"]
    assert "action is C" in found["message"] and "as a T02" in found["message"]


def test_a_refusal_with_a_conformant_ack_becomes_an_error_mdn_to_the_sender(scripted):
    """The DPI refuses (ERR-3 207, ERR-5 902, the guide's example): the sender asked for an MDN, so an error
    MDN as trans-cda-mss/struct-msg-mdn.md writes it comes back to it, with the original attachments; the MDN
    passes the MSS/UX.12 rules the bench applies to the DPI's own MDNs."""
    from mockbench.formats.mime import read_mdn
    from mockbench.protocols.mss.content import mdn_findings

    bench, patient, dpi = scripted("AE", "ERR||PID^1^3|207^Application error^messageErrorCondition|E|"
                                         "902^Identifiant de patient inconnu^applicationErrorCode")
    uid = "1.2.250.1.999.94.1"
    raw = xdm_mail(sender=SENDER, to=[HOSPITAL], subject=SUBJECT, package=package(patient, cda(patient, uid), uid),
                   disposition_notification_to=SENDER)
    message_id = deliver(bench, raw)
    assert wait_for(lambda: len(out_entries(bench)) == 1 and mailbox(bench, SENDER))
    [entry] = out_entries(bench)
    assert entry["verdict"] == "refused" and not [f for f in entry["findings"] if f["rule"] == "CDA-MSS/ACK"]
    [(headers, back)] = mailbox(bench, SENDER)
    assert headers["From"] == HOSPITAL
    assert headers["Subject"].startswith("[KO Intégration système !][902] XDM/1.0/DDM+")
    shape = read_mdn(back)
    assert shape.error == "902^Identifiant de patient inconnu" and shape.original == message_id
    assert shape.original_recipient and "IHE_XDM.ZIP" in shape.attachments
    assert mdn_findings(shape, [], ["IHE_XDM.ZIP"]) == []
    [mdn_entry] = [e for e in bench.client.journal(channel="mss") if e["operation"] == "MDN"]
    assert (mdn_entry["direction"], mdn_entry["code"], mdn_entry["ref"]) == ("out", "902", message_id)
    assert mdn_entry["seq"] > entry["seq"]          # the journal: the DPI's refusal, then the MDN it caused


def test_a_refusal_without_an_mdn_request_becomes_a_standard_error_mail(scripted):
    """trans-cda-mss/struct-email-standard.md: no Disposition-Notification-To, so a standard mail with the
    `[KO Intégration système !][code]` subject, the original message and its attachments."""
    import email
    from email import policy

    bench, patient, dpi = scripted("AE", "ERR||MSH^1^12|203^Unsupported version id^messageErrorCondition|E")
    uid = "1.2.250.1.999.95.1"
    deliver(bench, xdm_mail(sender=SENDER, to=[HOSPITAL], subject=SUBJECT,
                            package=package(patient, cda(patient, uid), uid)))
    assert wait_for(lambda: len(out_entries(bench)) == 1 and mailbox(bench, SENDER))
    [(headers, back)] = mailbox(bench, SENDER)
    assert headers["Subject"].startswith("[KO Intégration système !][203] XDM/1.0/DDM+")
    parsed = email.message_from_bytes(back, policy=policy.default)
    assert parsed.get_content_type() == "multipart/mixed"
    types = [p.get_content_type() for p in parsed.iter_parts()]
    assert types == ["text/plain", "message/rfc822", "application/zip"]
    assert "203^Unsupported version id" in parsed.get_body(("plain",)).get_content()
    [kind] = [e["operation"] for e in bench.client.journal(channel="mss") if e["direction"] == "out"
              and e["operation"] in ("MDN", "ERROR_MAIL")]
    assert kind == "ERROR_MAIL"


@pytest.mark.parametrize(("err", "expected"), [
    ("ERR||PID^1^3|207^Application error^messageErrorCondition|E|42^Autre^applicationErrorCode",
     "ERR-5 42 is not an applicationErrorCode"),
    ("ERR||PID^1^3|207^Application error^HL70357|E", "ERR-5 (empty) is not an applicationErrorCode"),
    ("ERR||MSH^1^9|999^Unknown^messageErrorCondition|E", "ERR-3 999 is not a messageErrorCondition code"),
    ("", "without ERR"),
])
def test_the_dpi_s_ack_is_checked(scripted, err, expected):
    """trans-cda-mss/profils-messages.md (ACK, ERR Note 2) and error-codes.md: an AE names its error with
    ERR-3 from messageErrorCondition, and ERR-3 207 with ERR-5 from applicationErrorCode (900-906)."""
    bench, patient, dpi = scripted("AE", err)
    uid = "1.2.250.1.999.96.1"
    deliver(bench, xdm_mail(sender=SENDER, to=[HOSPITAL], subject=SUBJECT,
                            package=package(patient, cda(patient, uid), uid)))
    assert wait_for(lambda: len(out_entries(bench)) == 1)
    [entry] = out_entries(bench)
    messages = [f["message"] for f in entry["findings"] if f["rule"] == "CDA-MSS/ACK"]
    assert any(expected in m for m in messages), messages


def test_the_parent_may_come_from_the_xdm_metadata(setup):
    """An action C document without a CDA relatedDocument: the parent from an RPLC association of the
    package's metadata to another entry of the package (inbound.replaced_parent), so a T10 with TXA-13."""
    from mockbench.formats import ebrim
    from mockbench.formats.xdm import read_package
    from mockbench.protocols.pfi import inbound

    _, patient, _ = setup
    v1, v2 = "1.2.250.1.999.97.1", "1.2.250.1.999.97.2"
    pkg = read_package(package(patient, cda(patient, v2, version=2), v2, action="C"))
    [doc] = pkg.documents
    assert inbound.replaced_parent(doc, pkg) == ""
    old = ebrim.DocumentEntry(symbolic_id="Document00", unique_id=v1, patient_id="", patient_ins="", patient_oid="",
                              meta={})
    pkg.submission.documents.append(old)
    pkg.submission.associations.append(ebrim.Association(type=ebrim.RPLC, source=doc.entry.symbolic_id,
                                                         target="Document00"))
    pkg.documents.append(type(doc)(path="DOC0000.XML", entry=old, content=b"", hash_ok=True, size_ok=True))
    assert inbound.replaced_parent(doc, pkg) == v1
    mail = inbound.Mail(message_id="<m@t>", subject=SUBJECT, body="", sender=SENDER, mailbox=HOSPITAL)
    operation, text, findings = inbound.build_mdm(doc, pkg.action, mail, control_id="X1", now="20261206120000",
                                                  package=pkg)
    mdm = parse_hl7(text.encode())
    assert (operation, mdm.get("ORC", 1), mdm.get("TXA", 13), findings) == ("MDM^T10", "RO", v1, [])
