"""What an inbound HL7 message asks for, read and checked for itself (no world): a document to feed,
replace or delete (MDM^T02/T10/T04, ORU^R01, as the ANS guide "Transmission de documents CDA en HL7v2"
describes them), or a patient's hospital-side DMP consent (PAM.fr ADT with a ZFA segment).

Problems with the message itself raise Hl7Reject (technical ACK AE/AR). What depends on the world (the
patient, the sender's rights, the current version) is the door's business, answered later by a ZAM.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field

from ...formats.cda import CdaError, CdaHeader, read_cda_header
from ...world import identity
from ...world.journal import finding
from .hl7 import (
    E_APPLICATION,
    E_EVENT,
    E_MESSAGE_TYPE,
    E_REQUIRED_FIELD,
    E_SEGMENT_SEQUENCE,
    E_VERSION,
    Hl7Reject,
    Inbound,
)

INS_OIDS = {identity.OID_INS_NIR, identity.OID_INS_NIA, identity.OID_INS_NIR_TEST, identity.OID_INS_NIR_DEMO}
IDNPS_OID = identity.OID_IDNPS
# event -> (action, ORC-1, OBX-11) as the guide pairs them
DOCUMENT_EVENTS = {"T02": ("submit", "NW", "F"), "T10": ("replace", "RO", "C"), "T04": ("delete", "CA", "D")}
OBX11_ACTIONS = {"F": "submit", "C": "replace", "D": "delete"}
ORC1_FOR_ACTION = {"submit": "NW", "replace": "RO", "delete": "CA"}
SUPPORTED_VERSIONS = {"MDM": ("2.6",), "ORU": ("2.5", "2.5.1"), "ADT": ("2.5", "2.5.1", "2.6")}
META_ORDER = ("MASQUE_PS", "INVISIBLE_PATIENT", "INVISIBLE_REP_LEGAUX", "CONNEXION_SECRETE", "MODIF_CONF_CODE",
              "DESTDMP", "DESTMSSANTEPS", "DESTMSSANTEPAT", "ACK_RECEPTION", "ACK_LECTURE_MSS", "CORPSMAIL_PS",
              "CORPSMAIL_PATIENT")
META_ALIASES = {"ACK_LECTURE": "ACK_LECTURE_MSS"}  # the guide's own examples use both spellings


@dataclass
class Patient:
    ins: str = ""
    ins_oid: str = ""
    family_name: str = ""
    given_name: str = ""
    birth_date: str = ""             # YYYYMMDD as in PID-7
    sex: str = ""


@dataclass
class Sender:
    idnps: str = ""
    family_name: str = ""
    given_name: str = ""
    organisation: str = ""
    organisation_type: str = ""      # PRT-8.7: FINEG, FINEJ or IDNST
    finess: str = ""                 # PRT-8.10


@dataclass
class DocumentMessage:
    inbound: Inbound
    action: str                      # submit | replace | delete
    patient: Patient
    sender: Sender
    unique_id: str                   # the document this message carries (TXA-12, or the CDA id)
    parent_id: str = ""              # TXA-13, or the CDA's RPLC parent
    type_code: str = ""
    title: str = ""
    content: bytes = b""
    cda: CdaHeader | None = None
    metadata: dict[str, str] = field(default_factory=dict)   # MetaDMPMSS code -> Y / N (ED: the text)
    recipients: list[str] = field(default_factory=list)      # MSSanté addresses (PRT RCT)
    reply_to: list[str] = field(default_factory=list)
    patient_replies_blocked: bool = False                    # NTE-4 FIN
    findings: list[dict] = field(default_factory=list)

    def flag(self, code: str) -> bool:
        return self.metadata.get(code, "N").upper() == "Y"

    @property
    def confidentiality(self) -> list[str]:
        codes = []
        if self.flag("MASQUE_PS"):
            codes.append("MASQUE_PS")
        if self.flag("INVISIBLE_PATIENT"):
            codes.append("INVISIBLE_PATIENT")
        if self.flag("INVISIBLE_REP_LEGAUX") or self.flag("CONNEXION_SECRETE"):
            codes.append("INVISIBLE_REPRESENTANTS_LEGAUX")
        return codes or ["N"]


@dataclass
class ConsentMessage:
    inbound: Inbound
    patient: Patient
    consultation: str | None          # ZFA-11: IC / INC / NA
    feeding_opposition: str | None    # ZFA-9: INO / IO / NA
    findings: list[dict] = field(default_factory=list)


def check_header(inbound: Inbound) -> str:
    """The message family (MDM, ORU, ADT) if the bench serves this type, event and version."""
    code, event, _ = inbound.message_type
    if not inbound.control_id:
        raise Hl7Reject("AR", E_REQUIRED_FIELD, "MSH-10 (message control id) is empty", "MSH^1^10")
    if not code:
        raise Hl7Reject("AR", E_REQUIRED_FIELD, "MSH-9 (message type) is empty", "MSH^1^9")
    if code not in SUPPORTED_VERSIONS:
        raise Hl7Reject("AR", E_MESSAGE_TYPE, f"message type {code} is not handled by the PFI (MDM, ORU, ADT)",
                        "MSH^1^9")
    if code == "MDM" and event not in DOCUMENT_EVENTS:
        raise Hl7Reject("AR", E_EVENT, f"MDM event {event or '(none)'} is not handled (T02, T10, T04)", "MSH^1^9")
    if code == "ORU" and event != "R01":
        raise Hl7Reject("AR", E_EVENT, f"ORU event {event or '(none)'} is not handled (R01)", "MSH^1^9")
    version = inbound.value(inbound.msh, 12)
    if version not in SUPPORTED_VERSIONS[code]:
        raise Hl7Reject("AR", E_VERSION, f"version {version or '(none)'} is not supported for {code} "
                        f"({', '.join(SUPPORTED_VERSIONS[code])})", "MSH^1^12")
    return code


def _require(inbound: Inbound, *names: str) -> None:
    present = inbound.names()
    for name in names:
        if name not in present:
            raise Hl7Reject("AE", E_SEGMENT_SEQUENCE, f"the {name} segment is missing", name)


def read_patient(inbound: Inbound) -> Patient:
    _require(inbound, "PID")
    pid = inbound.segments("PID")[0]
    patient = Patient(family_name=inbound.value(pid, 5, 1, 1), given_name=inbound.value(pid, 5, 1, 2),
                      birth_date=inbound.value(pid, 7)[:8], sex=inbound.value(pid, 8))
    for rep in range(1, inbound.repetitions(pid, 3) + 1):
        oid = inbound.value(pid, 3, rep, 4, 2)
        if inbound.value(pid, 3, rep, 5) == "INS" or oid in INS_OIDS:
            patient.ins, patient.ins_oid = inbound.value(pid, 3, rep, 1), oid
            break
    return patient


def read_consent(inbound: Inbound) -> ConsentMessage:
    patient = read_patient(inbound)
    findings = []
    zfa = inbound.segments("ZFA")
    if not zfa:
        findings.append(finding("PAM.fr/ZFA", "no ZFA segment: no DMP consent to record", "info"))
        return ConsentMessage(inbound, patient, None, None, findings)
    feeding = inbound.value(zfa[0], 9) or None
    consultation = inbound.value(zfa[0], 11) or None
    if feeding not in (None, "INO", "IO", "NA"):
        raise Hl7Reject("AE", "103", f"ZFA-9 {feeding!r} is not INO, IO or NA", "ZFA^1^9")
    if consultation not in (None, "IC", "INC", "NA"):
        raise Hl7Reject("AE", "103", f"ZFA-11 {consultation!r} is not IC, INC or NA", "ZFA^1^11")
    return ConsentMessage(inbound, patient, consultation, feeding, findings)


def read_document(inbound: Inbound, family: str) -> DocumentMessage:
    findings: list[dict] = []
    event = inbound.message_type[1]
    if family == "MDM":
        _require(inbound, "EVN", "PID", "PV1", "TXA", "OBX")
    else:
        _require(inbound, "PID", "OBR", "OBX")
    patient = read_patient(inbound)
    doc_obx, metadata = _observations(inbound, findings)
    if doc_obx is None:
        raise Hl7Reject("AE", E_SEGMENT_SEQUENCE, "no OBX carries the document (OBX-2 ED, OBX-3 a LOINC type)",
                        "OBX")
    status = inbound.value(doc_obx, 11)
    orc1 = inbound.get("ORC", 1)
    if family == "MDM":
        action, want_orc, want_obx = DOCUMENT_EVENTS[event]
        if status != want_obx:
            raise Hl7Reject("AE", E_APPLICATION, f"MDM^{event} needs OBX-11 {want_obx} on the document, found "
                            f"{status or '(empty)'}", "OBX^1^11")
        if orc1 and orc1 != want_orc:
            raise Hl7Reject("AE", E_APPLICATION, f"MDM^{event} needs ORC-1 {want_orc}, found {orc1}", "ORC^1^1")
        if not orc1:
            findings.append(finding("CDA-HL7/ORC", f"ORC-1 is empty; MDM^{event} expects {want_orc}"))
    else:
        action = OBX11_ACTIONS.get(status, "")
        if not action:
            raise Hl7Reject("AE", E_APPLICATION, f"OBX-11 {status or '(empty)'} on the document is not F, C or D",
                            "OBX^1^11")
        if orc1 and orc1 != ORC1_FOR_ACTION[action]:
            raise Hl7Reject("AE", E_APPLICATION, f"ORC-1 {orc1} disagrees with OBX-11 {status} (expected "
                            f"{ORC1_FOR_ACTION[action]})", "ORC^1^1")
    content, cda = _document(inbound, doc_obx, action, findings)
    msg = DocumentMessage(inbound=inbound, action=action, patient=patient, sender=_sender(inbound, findings),
                          unique_id="", type_code=inbound.value(doc_obx, 3, 1, 1),
                          title=inbound.value(doc_obx, 3, 1, 2), content=content, cda=cda, metadata=metadata,
                          findings=findings)
    _ids(inbound, msg, family)
    _participants(inbound, msg)
    _consistency(msg)
    return msg


def _observations(inbound: Inbound, findings: list[dict]):
    doc_obx, metadata, order = None, {}, []
    for obx in inbound.segments("OBX"):
        system = inbound.value(obx, 3, 1, 3)
        code = inbound.value(obx, 3, 1, 1)
        if system == "MetaDMPMSS":
            code = META_ALIASES.get(code, code)
            order.append(code)
            if inbound.value(obx, 2) == "ED":
                text = _b64(inbound.value(obx, 5, 1, 5), f"OBX {code}", findings, lenient=True)
                metadata[code] = text.decode("utf-8", "replace")
            else:
                metadata[code] = inbound.value(obx, 5, 1, 1).strip()
        elif inbound.value(obx, 2) == "ED" and doc_obx is None:
            doc_obx = obx
    known = [c for c in order if c in META_ORDER]
    if known != sorted(known, key=META_ORDER.index):
        findings.append(finding("CDA-HL7/MetaDMPMSS", "the MetaDMPMSS OBX are not in the guide's order ("
                                + ", ".join(known) + ")"))
    unknown = [c for c in order if c not in META_ORDER]
    if unknown:
        findings.append(finding("CDA-HL7/MetaDMPMSS", f"unknown MetaDMPMSS codes: {', '.join(unknown)}"))
    return doc_obx, metadata


def _b64(data: str, where: str, findings: list[dict], *, lenient: bool = False) -> bytes:
    """Base64 without its padding is accepted with a finding. `lenient` (a mail body, not the document)
    also drops a truncated last character, as one ANS example needs."""
    compact = re.sub(r"\s+", "", data) if any(c in data for c in " \t\r\n") else data
    if not compact:
        return b""
    if lenient and len(compact) % 4 == 1:
        compact = compact[:-1]
        findings.append(finding("CDA-HL7/BASE64", f"{where}: truncated base64 (its last character was dropped)"))
    padded = compact + "=" * (-len(compact) % 4)
    try:
        decoded = base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        raise Hl7Reject("AE", E_APPLICATION, f"{where}: the data is not base64", "OBX^1^5") from None
    if padded != compact:
        findings.append(finding("CDA-HL7/BASE64", f"{where}: base64 without its padding"))
    return decoded


def _document(inbound: Inbound, obx, action: str, findings: list[dict]) -> tuple[bytes, CdaHeader | None]:
    encoding = inbound.value(obx, 5, 1, 4)
    data = inbound.value(obx, 5, 1, 5)
    if not data:
        if action == "delete":
            return b"", None
        raise Hl7Reject("AE", E_REQUIRED_FIELD, "the document OBX-5 carries no data", "OBX^1^5")
    if encoding.lower() != "base64":
        raise Hl7Reject("AE", E_APPLICATION, f"the document is encoded as {encoding or '(none)'}, Base64 expected",
                        "OBX^1^5")
    content = _b64(data, "the document", findings)
    try:
        return content, read_cda_header(content)
    except CdaError as exc:
        raise Hl7Reject("AE", E_APPLICATION, f"the document is not a CDA: {exc}", "OBX^1^5") from None


def _ids(inbound: Inbound, msg: DocumentMessage, family: str) -> None:
    cda = msg.cda
    cda_parent = next((pid for kind, pid in (cda.related if cda else ()) if kind == "RPLC"), "")
    if family == "MDM":
        msg.unique_id = inbound.get("TXA", 12, 1, 1)
        msg.parent_id = inbound.get("TXA", 13, 1, 1)
        if not msg.unique_id:
            raise Hl7Reject("AE", E_REQUIRED_FIELD, "TXA-12 (unique document number) is empty", "TXA^1^12")
        if msg.action == "replace" and not msg.parent_id:
            raise Hl7Reject("AE", E_REQUIRED_FIELD, "a replacement needs TXA-13 (the document it replaces)",
                            "TXA^1^13")
        if cda and cda.unique_id != msg.unique_id:
            msg.findings.append(finding("CDA-HL7/TXA-12", f"TXA-12 {msg.unique_id} differs from the CDA id "
                                        f"{cda.unique_id}"))
    else:
        if cda is None:
            raise Hl7Reject("AE", E_REQUIRED_FIELD, "ORU^R01 carries its document ids in the CDA, and there is none",
                            "OBX^1^5")
        msg.unique_id = cda.unique_id
        msg.parent_id = cda_parent
        if msg.action == "replace" and not msg.parent_id:
            raise Hl7Reject("AE", E_APPLICATION, "a replacement (OBX-11 C) needs a relatedDocument RPLC in the CDA",
                            "OBX^1^5")
    if cda is not None and msg.patient.ins and cda.ins and cda.ins[0] != msg.patient.ins:
        raise Hl7Reject("AE", E_APPLICATION, f"the CDA's patient {cda.ins[0]} is not PID-3's {msg.patient.ins}",
                        "PID^1^3")
    if cda is not None and msg.patient.ins and cda.ins is None:
        msg.findings.append(finding("CDA-HL7/INS", "the CDA carries no INS for its patient"))


def _sender(inbound: Inbound, findings: list[dict]) -> Sender:
    for prt in inbound.segments("PRT"):
        if inbound.value(prt, 4, 1, 1) != "SB":
            continue
        sender = Sender(idnps=inbound.value(prt, 5, 1, 1).strip(), family_name=inbound.value(prt, 5, 1, 2),
                        given_name=inbound.value(prt, 5, 1, 3), organisation=inbound.value(prt, 8, 1, 1),
                        organisation_type=inbound.value(prt, 8, 1, 7).strip(),
                        finess=inbound.value(prt, 8, 1, 10))
        if sender.finess != sender.finess.strip():
            findings.append(finding("CDA-HL7/PRT", "PRT-8.10 carries trailing spaces", "info"))
            sender.finess = sender.finess.strip()
        if not sender.finess:
            findings.append(finding("DMP/CONF.12", "the sender's FINESS is missing from PRT-8.10", "error"))
        elif not identity.is_valid_finess(sender.finess):
            findings.append(finding("DMP/CONF.12", f"PRT-8.10 {sender.finess} is not a valid FINESS (check digit)",
                                    "error"))
        if sender.idnps and not identity.is_valid_idnps(sender.idnps):
            findings.append(finding("IDENTIFIERS/IDNPS", f"the sender IDNPS {sender.idnps} fails its check digit"))
        if not sender.idnps:
            raise Hl7Reject("AE", E_REQUIRED_FIELD, "the sender PRT (SB) has no PRT-5 identifier", "PRT^1^5")
        return sender
    raise Hl7Reject("AE", E_SEGMENT_SEQUENCE, "no PRT segment names the sender (PRT-4 SB)", "PRT")


def _participants(inbound: Inbound, msg: DocumentMessage) -> None:
    for prt in inbound.segments("PRT"):
        role = inbound.value(prt, 4, 1, 1)
        address = inbound.value(prt, 15, 1, 4).strip()
        if role == "RCT" and address:
            msg.recipients.append(address)
        elif role == "REPLY" and address:
            msg.reply_to.append(address)
    msg.patient_replies_blocked = any(inbound.value(nte, 4) == "FIN" for nte in inbound.segments("NTE"))


def _consistency(msg: DocumentMessage) -> None:
    """The MetaDMPMSS combination rules that make a message self-contradictory."""
    if msg.flag("DESTMSSANTEPAT") and msg.flag("INVISIBLE_PATIENT"):
        raise Hl7Reject("AE", E_APPLICATION, "DESTMSSANTEPAT=Y sends the document to the patient, but "
                        "INVISIBLE_PATIENT=Y hides it from the patient", "OBX")
    if msg.flag("DESTMSSANTEPS") and not [r for r in msg.recipients if not r.endswith("@patient.mssante.fr")]:
        raise Hl7Reject("AE", E_APPLICATION, "DESTMSSANTEPS=Y but no PRT RCT names a professional's MSSanté "
                        "address", "PRT")
    if msg.flag("DESTMSSANTEPAT") and not [r for r in msg.recipients if r.endswith("@patient.mssante.fr")]:
        msg.findings.append(finding("CDA-HL7/DESTMSSANTEPAT", "DESTMSSANTEPAT=Y without a patient address "
                                    "(<INS>@patient.mssante.fr) among the recipients: the PFI builds it from the INS",
                                    "info"))
    if "DESTDMP" not in msg.metadata:
        msg.findings.append(finding("CDA-HL7/MetaDMPMSS", "no DESTDMP metadata: the document is not sent to the "
                                    "DMP", "warning"))
    if msg.flag("MASQUE_PS") and msg.flag("INVISIBLE_PATIENT"):
        msg.findings.append(finding("DMP/EX_2.1-1050", "MASQUE_PS and INVISIBLE_PATIENT together: the DMP refuses "
                                    "this unless its cumul parameter is on", "warning"))
