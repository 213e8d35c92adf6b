"""What an inbound HL7 message asks for, read and checked for itself (no world): a document to feed,
replace or delete (MDM^T02/T10/T04, ORU^R01, as the ANS guide "Transmission de documents CDA en HL7v2"
describes them), or a patient's hospital-side DMP consent (PAM.fr ADT with a ZFA segment).

Problems with the message itself raise Hl7Reject (technical ACK AE). What depends on the world (the
patient, the sender's rights, the current version) is the door's business, answered later by a ZAM.
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass, field

from ...formats.cda import CdaError, CdaHeader, read_cda_header
from ...formats.times import dtm_to_iso
from ...world import identity
from ...world.journal import finding
from . import xds
from .hl7 import (
    E_APPLICATION,
    E_EVENT,
    E_MESSAGE_TYPE,
    E_REQUIRED_FIELD,
    E_SEGMENT_SEQUENCE,
    E_TABLE_VALUE,
    E_VERSION,
    Hl7Reject,
    Inbound,
    Segment,
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
PROFILE = "CISIS_CDA_HL7_V2"      # MSH-21.2 of the guide "Transmission de documents CDA en HL7v2"
GUIDE_20, GUIDE_21 = "2.0", "2.1"
PATIENT_DOMAIN = "patient.mssante.fr"


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
    idnps: str = ""                  # PRT-5.1, for a professional
    device: str = ""                 # PRT-10.1, for a device (trans-cda-r2/profils-messages.md, PRT expéditeur)
    family_name: str = ""
    given_name: str = ""
    organisation: str = ""
    organisation_type: str = ""      # PRT-8.7: FINEG, FINEJ or IDNST
    finess: str = ""                 # PRT-8.10

    @property
    def label(self) -> str:
        """Who asks, for the journal: the professional's IDNPS, else `device:<PRT-10.1>`."""
        return self.idnps or (f"device:{self.device}" if self.device else "")


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
    creation_time: str | None = None                          # the CDA's effectiveTime in UTC, ISO; None: unreadable
    xds: dict[str, str] = field(default_factory=dict)         # the other XDS metadata its CDA gives (xds.py)
    metadata: dict[str, str] = field(default_factory=dict)   # MetaDMPMSS code -> Y / N (ED: the text)
    recipients: list[str] = field(default_factory=list)      # MSSanté addresses (PRT RCT)
    reply_to: list[str] = field(default_factory=list)
    patient_replies_blocked: bool = False                    # NTE-4 FIN
    findings: list[dict] = field(default_factory=list)
    guide: str = GUIDE_21                                     # MSH-21.1: the guide version whose rules read it
    position: int = 1                                         # which document OBX of the message (1-based)
    others: list[DocumentMessage] = field(default_factory=list)   # an ORU's further documents

    @property
    def documents(self) -> list[DocumentMessage]:
        """Every document the message carries, in order (an ORU may carry several, an MDM one)."""
        return [self, *self.others]

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
        raise Hl7Reject("AE", E_REQUIRED_FIELD, "MSH-10 (message control id) is empty", "MSH^1^10")
    if not code:
        raise Hl7Reject("AE", E_REQUIRED_FIELD, "MSH-9 (message type) is empty", "MSH^1^9")
    if code not in SUPPORTED_VERSIONS:
        raise Hl7Reject("AE", E_MESSAGE_TYPE, f"message type {code} is not handled by the PFI (MDM, ORU, ADT)",
                        "MSH^1^9")
    if code == "MDM" and event not in DOCUMENT_EVENTS:
        raise Hl7Reject("AE", E_EVENT, f"MDM event {event or '(none)'} is not handled (T02, T10, T04)", "MSH^1^9")
    if code == "ORU" and event != "R01":
        raise Hl7Reject("AE", E_EVENT, f"ORU event {event or '(none)'} is not handled (R01)", "MSH^1^9")
    version = inbound.value(inbound.msh, 12)
    if version not in SUPPORTED_VERSIONS[code]:
        raise Hl7Reject("AE", E_VERSION, f"version {version or '(none)'} is not supported for {code} "
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
        findings.append(finding("PAM.fr/ZFA", "no ZFA segment: no DMP consent to record", "info",
                                fr="pas de segment ZFA : aucun consentement DMP à enregistrer"))
        return ConsentMessage(inbound, patient, None, None, findings)
    feeding = inbound.value(zfa[0], 9) or None
    consultation = inbound.value(zfa[0], 11) or None
    if feeding not in (None, "INO", "IO", "NA"):
        raise Hl7Reject("AE", E_TABLE_VALUE, f"ZFA-9 {feeding!r} is not INO, IO or NA", "ZFA^1^9")
    if consultation not in (None, "IC", "INC", "NA"):
        raise Hl7Reject("AE", E_TABLE_VALUE, f"ZFA-11 {consultation!r} is not IC, INC or NA", "ZFA^1^11")
    return ConsentMessage(inbound, patient, consultation, feeding, findings)


def guide_version(inbound: Inbound) -> tuple[str, list[dict]]:
    """The guide version whose rules read this message, from MSH-21 (`2.1^CISIS_CDA_HL7_V2`, or `2.0^...`).

    trans-cda-r2/profils-messages.md, "Le segment MSH": MSH-21.1 the version of the guide, MSH-21.2
    CISIS_CDA_HL7_V2 (required). trans-cda-r2/change-log.md, version 2.1: "Section 12.2.4 : description du
    segment ORC" and "préciser que la valeur ORC-1 doit être cohérente avec la valeur du champ OBX-11": the
    NW / RO / CA rule is 2.1's. Guide 2.0's own text is not in the corpus; the bench follows issue 15's reading
    of it, ORC-1 SC for every action (another value is a finding, not a refusal). A message without MSH-21 is
    read by the 2.1 rules, with a finding; one that names another profile or version is refused (AE 103)."""
    findings: list[dict] = []
    version = inbound.value(inbound.msh, 21, 1, 1).strip()
    profile = inbound.value(inbound.msh, 21, 1, 2).strip()
    if not version and not profile:
        findings.append(finding("CDA-HL7/MSH-21", "MSH-21 is empty (required: 2.1^CISIS_CDA_HL7_V2): the message was "
                                "read by the rules of guide 2.1",
                                fr="MSH-21 est vide (obligatoire : 2.1^CISIS_CDA_HL7_V2) : le message a été lu selon les règles du guide 2.1"))
        return GUIDE_21, findings
    if profile != PROFILE or version.split(".")[:2] not in (["2", "0"], ["2", "1"]):
        raise Hl7Reject("AE", E_TABLE_VALUE, f"MSH-21 {version}^{profile} is not a profile of this guide "
                        f"(2.1^{PROFILE} or 2.0^{PROFILE})", "MSH^1^21")
    guide = GUIDE_20 if version.startswith("2.0") else GUIDE_21
    findings.append(finding("CDA-HL7/MSH-21", f"read by the rules of guide {guide} (MSH-21 {version}^{profile})",
                            "info", fr=f"lu selon les règles du guide {guide} (MSH-21 {version}^{profile})"))
    return guide, findings


def read_document(inbound: Inbound, family: str) -> DocumentMessage:
    """The document(s) an MDM^T02/T10/T04 or an ORU^R01 carries, and what is asked for them.

    trans-cda-r2/profils-messages.md, "Description fonctionnelle du message ORU": a first OBSERVATION group
    with the document, then possibly a second with the same document in another format (N1 and N3); each is
    read and fed, and one that cannot be taken refuses the whole message with an ERR naming it. change-log.md
    2.0: "Le message HL7v2 MDM ne peut transmettre qu'un seul document": an MDM with two is refused."""
    event = inbound.message_type[1]
    if family == "MDM":
        _require(inbound, "EVN", "PID", "PV1", "TXA", "OBX")
    else:
        _require(inbound, "PID", "OBR", "OBX")
    guide, findings = guide_version(inbound)
    patient = read_patient(inbound)
    doc_obxs, metadata = _observations(inbound, findings)
    if not doc_obxs:
        raise Hl7Reject("AE", E_SEGMENT_SEQUENCE, "no OBX carries the document (OBX-2 ED, OBX-3 a LOINC type)",
                        "OBX")
    if family == "MDM" and len(doc_obxs) > 1:
        raise Hl7Reject("AE", E_SEGMENT_SEQUENCE, f"an MDM carries one document only, and OBX {doc_obxs[1][0]} is a "
                        "second one (OBX-2 ED)", f"OBX^{doc_obxs[1][0]}")
    sender = _sender(inbound, findings)
    docs: list[DocumentMessage] = []
    for position, (seq, obx) in enumerate(doc_obxs, start=1):
        where = f"OBX^{seq}"
        label = SINGLE if len(doc_obxs) == 1 else DocLabel(
            f"document {position} of {len(doc_obxs)} (OBX {seq})", f"du document {position} sur {len(doc_obxs)} (OBX {seq})")
        doc_findings = findings if position == 1 else []
        action = _action(inbound, family, event, guide, obx, where, label, doc_findings)
        content, cda = _document(inbound, obx, action, doc_findings, where, label)
        msg = DocumentMessage(inbound=inbound, action=action, patient=patient, sender=sender, unique_id="",
                              type_code=inbound.value(obx, 3, 1, 1), title=inbound.value(obx, 3, 1, 2),
                              content=content, cda=cda, metadata=metadata, findings=doc_findings, guide=guide,
                              position=position)
        _ids(inbound, msg, family, where, label)
        if cda is not None:
            times: dict[str, str] = {}   # the CDA's times converted once (effectiveTime, service start, stop)
            msg.creation_time = _creation_time(cda, action, doc_findings, label, times)
            msg.xds = xds.derive(cda, msg.type_code or cda.type_code or "", action, doc_findings, label, times)
        docs.append(msg)
    ids = [d.unique_id for d in docs]
    if len(set(ids)) != len(ids):
        raise Hl7Reject("AE", E_APPLICATION, f"two document OBX carry the same document id {ids[0]}: each needs its "
                        "own", "OBX")
    first = docs[0]
    first.others = docs[1:]
    _participants(inbound, first)
    for other in first.others:
        other.recipients, other.reply_to = first.recipients, first.reply_to
        other.patient_replies_blocked = first.patient_replies_blocked
    _consistency(first)
    return first


@dataclass(frozen=True)
class DocLabel:
    """How the messages name one document of a message: in English (`str()`, inside refusals and English
    findings) and in French (`fr`, "du document 2 sur 3 (OBX 5)", inside French findings)."""

    en: str
    fr: str

    def __str__(self) -> str:
        return self.en


SINGLE = DocLabel("the document", "du document")


def _action(inbound: Inbound, family: str, event: str, guide: str, obx: Segment, where: str, label: DocLabel,
            findings: list[dict]) -> str:
    """submit / replace / delete from the event (MDM) or OBX-11 (ORU), with ORC-1 read by the guide's version:
    2.1 (profils-messages.md, "Le segment ORC"): NW, RO or CA, agreeing with OBX-11 and the event, or the
    message is rejected; 2.0: SC for every action."""
    status = inbound.value(obx, 11)
    orc1 = inbound.get("ORC", 1)
    if family == "MDM":
        action, want_orc, want_obx = DOCUMENT_EVENTS[event]
        if status != want_obx:
            raise Hl7Reject("AE", E_APPLICATION, f"MDM^{event} needs OBX-11 {want_obx} on {label}, found "
                            f"{status or '(empty)'}", f"{where}^11")
    else:
        action = OBX11_ACTIONS.get(status, "")
        if not action:
            raise Hl7Reject("AE", E_APPLICATION, f"OBX-11 {status or '(empty)'} on {label} is not F, C or D",
                            f"{where}^11")
        want_orc = ORC1_FOR_ACTION[action]
    if guide == GUIDE_20:
        if orc1 and orc1 != "SC":
            findings.append(finding("CDA-HL7/ORC", f"ORC-1 {orc1}: guide 2.0 (MSH-21) uses SC for every action; NW / "
                                    "RO / CA are guide 2.1's",
                                    fr=f"ORC-1 {orc1} : le guide 2.0 (MSH-21) utilise SC pour toute action ; NW / RO / CA sont du guide 2.1"))
        elif not orc1:
            findings.append(finding("CDA-HL7/ORC", "ORC-1 is empty; guide 2.0 (MSH-21) expects SC",
                                    fr="ORC-1 est vide ; le guide 2.0 (MSH-21) attend SC"))
        return action
    if orc1 and orc1 != want_orc:
        what = f"MDM^{event}" if family == "MDM" else f"OBX-11 {status}"
        raise Hl7Reject("AE", E_APPLICATION, f"ORC-1 {orc1} disagrees with {what} (guide 2.1 expects {want_orc}"
                        + ("; SC is guide 2.0's, declared by MSH-21 2.0^CISIS_CDA_HL7_V2)" if orc1 == "SC" else ")"),
                        "ORC^1^1")
    if not orc1:
        findings.append(finding("CDA-HL7/ORC", f"ORC-1 is empty; {'MDM^' + event if family == 'MDM' else 'OBX-11 ' + status}"
                                f" expects {want_orc}",
                                fr=f"ORC-1 est vide ; {'MDM^' + event if family == 'MDM' else 'OBX-11 ' + status} attend {want_orc}"))
    return action


def _observations(inbound: Inbound, findings: list[dict]) -> tuple[list[tuple[int, Segment]], dict[str, str]]:
    """((OBX position, segment) of each document OBX, the MetaDMPMSS values)."""
    docs, metadata, order = [], {}, []
    for seq, obx in enumerate(inbound.segments("OBX"), start=1):
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
        elif inbound.value(obx, 2) == "ED":
            docs.append((seq, obx))
    known = [c for c in order if c in META_ORDER]
    if known != sorted(known, key=META_ORDER.index):
        findings.append(finding("CDA-HL7/MetaDMPMSS", "the MetaDMPMSS OBX are not in the guide's order ("
                                + ", ".join(known) + ")",
                                fr="les OBX MetaDMPMSS ne sont pas dans l'ordre du guide (" + ", ".join(known) + ")"))
    unknown = [c for c in order if c not in META_ORDER]
    if unknown:
        findings.append(finding("CDA-HL7/MetaDMPMSS", f"unknown MetaDMPMSS codes: {', '.join(unknown)}",
                                fr=f"codes MetaDMPMSS inconnus : {', '.join(unknown)}"))
    return docs, metadata


def _b64(data: str, where: str | DocLabel, findings: list[dict], *, lenient: bool = False, location: str = "OBX^1^5") -> bytes:
    """Base64 without its padding is accepted with a finding. `lenient` (a mail body, not the document)
    also drops a truncated last character, as one ANS example needs."""
    compact = re.sub(r"\s+", "", data) if any(c in data for c in " \t\r\n") else data
    if not compact:
        return b""
    if lenient and len(compact) % 4 == 1:
        compact = compact[:-1]
        findings.append(finding("CDA-HL7/BASE64", f"{where}: truncated base64 (its last character was dropped)",
                                fr=f"{where} : base64 tronqué (son dernier caractère manquait)"))
    padded = compact + "=" * (-len(compact) % 4)
    try:
        # base64.b64decode(padded, validate=True) without its copy of the text into bytes: a2b_base64 reads an
        # ASCII str in place, and refuses any other str with the same ValueError
        decoded = binascii.a2b_base64(padded, strict_mode=True)
    except (binascii.Error, ValueError):
        raise Hl7Reject("AE", E_APPLICATION, f"{where}: the data is not base64", location) from None
    if padded != compact:
        findings.append(finding("CDA-HL7/BASE64", f"{where}: base64 without its padding",
                                fr=f"{where} : base64 sans son remplissage (padding)"))
    return decoded


def _document(inbound: Inbound, obx: Segment, action: str, findings: list[dict], where: str = "OBX^1",
              label: DocLabel = SINGLE) -> tuple[bytes, CdaHeader | None]:
    encoding = inbound.value(obx, 5, 1, 4)
    data = inbound.value(obx, 5, 1, 5)
    if not data:
        if action == "delete":
            return b"", None
        raise Hl7Reject("AE", E_REQUIRED_FIELD, f"OBX-5 of {label} carries no data", f"{where}^5")
    if encoding.lower() != "base64":
        raise Hl7Reject("AE", E_APPLICATION, f"{label} is encoded as {encoding or '(none)'}, Base64 expected",
                        f"{where}^5")
    content = _b64(data, label, findings, location=f"{where}^5")
    try:
        return content, read_cda_header(content)
    except CdaError as exc:
        raise Hl7Reject("AE", E_APPLICATION, f"{label} is not a CDA: {exc}", f"{where}^5") from None


def _creation_time(cda: CdaHeader, action: str, findings: list[dict], label: DocLabel,
                   times: dict[str, str] | None = None) -> str | None:
    """The XDS creationTime the PFI derives from the CDA: its effectiveTime@value, in UTC (trans-cda-r2/mapping.md,
    "Mapping XDS", Fiche: creationTime "requis", "CDA : effectiveTime@value"), read as the DMP door reads an XDS
    time (formats/times.py `dtm_to_iso`: an offset is honoured). Absent or unreadable, it is None with a
    finding: the message is still taken (the CDA is the DMP's to refuse, and an MSSanté exchange does not need
    it), and the DMP refuses the document for want of a creationTime (world/dmp.py), as it would refuse it fed
    without one over SOAP. `times` is given the conversion (xds.derive reads it)."""
    value = cda.effective_time
    if value:
        try:
            iso = dtm_to_iso(value)
        except ValueError:
            pass
        else:
            if times is not None:
                times[value] = iso
            return iso
    if action == "delete":
        return None      # a deletion gives the DMP no metadata to refuse
    if value:
        en, fr = f"is not an HL7 TS ({value!r})", f"n'est pas un TS HL7 ({value!r})"
    else:
        en, fr = "is missing", "est absent"
    findings.append(finding("CDA-HL7/effectiveTime", f"the effectiveTime of {label} (its CDA) {en}: the DMP's "
                            "creationTime, which it requires, cannot be derived (trans-cda-r2/mapping.md, Mapping XDS)",
                            "error", fr=f"l'effectiveTime {label.fr} (son CDA) {fr} : la creationTime du DMP, qu'il "
                            "exige, ne peut pas en être déduite (trans-cda-r2/mapping.md, Mapping XDS)"))
    return None


def _ids(inbound: Inbound, msg: DocumentMessage, family: str, where: str = "OBX^1",
         label: DocLabel = SINGLE) -> None:
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
                                        f"{cda.unique_id}",
                                        fr=f"TXA-12 {msg.unique_id} diffère de l'identifiant du CDA {cda.unique_id}"))
    else:
        if cda is None:
            raise Hl7Reject("AE", E_REQUIRED_FIELD, f"ORU^R01 carries its document ids in the CDA, and {label} has "
                            "none", f"{where}^5")
        msg.unique_id = cda.unique_id
        msg.parent_id = cda_parent
        if msg.action == "replace" and not msg.parent_id:
            raise Hl7Reject("AE", E_APPLICATION, f"a replacement (OBX-11 C) needs a relatedDocument RPLC in the CDA "
                            f"of {label}", f"{where}^5")
    if cda is not None and msg.patient.ins and cda.ins and cda.ins[0] != msg.patient.ins:
        raise Hl7Reject("AE", E_APPLICATION, f"the patient {cda.ins[0]} of {label} (its CDA) is not PID-3's "
                        f"{msg.patient.ins}", "PID^1^3")
    if cda is not None and msg.patient.ins and cda.ins is None:
        msg.findings.append(finding("CDA-HL7/INS", f"the CDA of {label} carries no INS for its patient",
                                    fr=f"le CDA {label.fr} ne porte pas d'INS pour son patient"))


def _sender(inbound: Inbound, findings: list[dict]) -> Sender:
    """The first PRT SB: the professional (PRT-5) or the device (PRT-10) that asks, and its organisation (PRT-8).

    trans-cda-r2/profils-messages.md, "Les données concernant la demande de traitement sur le(s) document(s)",
    PRT expéditeur: PRT-5 is required if the sender is a professional, PRT-10 if it is a device; PRT-8.7 FINEJ,
    FINEG or IDNST, PRT-8.10 the organisation's number. Its footnote [2] quotes SC.DMP/CONF.12: the system
    must give the PFI "FINESS géographique de l'établissement et l'identifiant du professionnel ou du
    dispositif" for the VIHF: anything else than a valid FINEG in PRT-8 is a DMP/CONF.12 finding."""
    for prt in inbound.segments("PRT"):
        if inbound.value(prt, 4, 1, 1) != "SB":
            continue
        sender = Sender(idnps=inbound.value(prt, 5, 1, 1).strip(), family_name=inbound.value(prt, 5, 1, 2),
                        given_name=inbound.value(prt, 5, 1, 3), organisation=inbound.value(prt, 8, 1, 1),
                        organisation_type=inbound.value(prt, 8, 1, 7).strip(),
                        finess=inbound.value(prt, 8, 1, 10), device=inbound.value(prt, 10, 1, 1).strip())
        if sender.finess != sender.finess.strip():
            findings.append(finding("CDA-HL7/PRT", "PRT-8.10 carries trailing spaces", "info",
                                    fr="PRT-8.10 porte des espaces en fin de champ"))
            sender.finess = sender.finess.strip()
        if not sender.finess:
            findings.append(finding("DMP/CONF.12", "the sender's FINESS is missing from PRT-8.10", "error",
                                    fr="le FINESS de l'émetteur manque dans PRT-8.10"))
        elif not identity.is_valid_finess(sender.finess):
            findings.append(finding("DMP/CONF.12", f"PRT-8.10 {sender.finess} is not a valid FINESS (check digit)",
                                    "error",
                                    fr=f"PRT-8.10 {sender.finess} n'est pas un FINESS valide (clé de contrôle)"))
        elif sender.organisation_type != "FINEG":
            findings.append(finding("DMP/CONF.12", f"PRT-8.7 is {sender.organisation_type or '(empty)'}: the VIHF needs "
                                    "the geographic FINESS (FINEG) of the establishment", "error",
                                    fr=f"PRT-8.7 vaut {sender.organisation_type or '(vide)'} : le VIHF a besoin du FINESS géographique (FINEG) de l'établissement"))
        if sender.idnps and not identity.is_valid_idnps(sender.idnps):
            findings.append(finding("IDENTIFIERS/IDNPS", f"the sender IDNPS {sender.idnps} fails its check digit",
                                    fr=f"l'IDNPS de l'émetteur {sender.idnps} a une clé de contrôle fausse"))
        if not sender.idnps and not sender.device:
            raise Hl7Reject("AE", E_REQUIRED_FIELD, "the sender PRT (SB) names neither a professional (PRT-5) nor a "
                            "device (PRT-10)", "PRT^1^5")
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


def is_patient_address(address: str) -> bool:
    return address.strip().lower().endswith("@" + PATIENT_DOMAIN)


# trans-cda-r2/regles-gestion-mssante.md (as changed on 21 April 2026, CONNEXION_SECRETE "N ou Y" when a
# professional receives the document, MASQUE_PS N when only professionals do): the exhaustive list of the
# MetaDMPMSS combinations allowed for an MSSanté exchange; "Les cas non représentés génèrent un message
# d'erreur". Each row: (DESTMSSANTEPS, DESTMSSANTEPAT) -> the values each flag may take (None: Y or N).
MSS_COMBINATIONS: dict[tuple[str, str], dict[str, str | None]] = {
    ("Y", "Y"): {"MASQUE_PS": "N", "INVISIBLE_PATIENT": "N", "INVISIBLE_REP_LEGAUX": "N", "CONNEXION_SECRETE": None,
                 "MODIF_CONF_CODE": None, "DESTDMP": None},
    ("Y", "N"): {"MASQUE_PS": "N", "INVISIBLE_PATIENT": "Y", "INVISIBLE_REP_LEGAUX": "N", "CONNEXION_SECRETE": None,
                 "MODIF_CONF_CODE": None, "DESTDMP": None},
    ("N", "Y"): {"MASQUE_PS": None, "INVISIBLE_PATIENT": "N", "INVISIBLE_REP_LEGAUX": None, "CONNEXION_SECRETE": "N",
                 "MODIF_CONF_CODE": None, "DESTDMP": "N"},
}
MSS_EXCHANGES = {("Y", "Y"): "to the professionals and the patient", ("Y", "N"): "to the professionals only",
                 ("N", "Y"): "to the patient only"}


def mss_combination_error(msg: DocumentMessage) -> str | None:
    """Why the MetaDMPMSS values are not a combination regles-gestion-mssante.md allows, or None."""
    key = ("Y" if msg.flag("DESTMSSANTEPS") else "N", "Y" if msg.flag("DESTMSSANTEPAT") else "N")
    row = MSS_COMBINATIONS.get(key)
    if row is None:
        return None      # no MSSanté exchange asked: the table does not apply
    wrong = [f"{code}={'Y' if msg.flag(code) else 'N'} (allowed: {want})" for code, want in row.items()
             if want is not None and ('Y' if msg.flag(code) else 'N') != want]
    if not wrong:
        return None
    return (f"an MSSanté exchange {MSS_EXCHANGES[key]} (DESTMSSANTEPS={key[0]}, DESTMSSANTEPAT={key[1]}) is not "
            f"allowed with {', '.join(wrong)}: not a combination of the guide's MSSanté rules table "
            "(regles-gestion-mssante.md)")


def _consistency(msg: DocumentMessage) -> None:
    """The rules that make a message self-contradictory: refused with AE 207 (profils-messages.md, ACK section:
    AE for a message in error), the reason in ERR-8 and in the journal."""
    why = mss_combination_error(msg)
    if why:
        raise Hl7Reject("AE", E_APPLICATION, why, "OBX")
    patient_boxes = [r for r in msg.recipients if is_patient_address(r)]
    # profils-messages.md, "Echange MSSanté Patient": the patient's address is in a PRT RCT. The message is
    # about PID-3's patient only: a mail to another patient's mailbox would disclose the document.
    for address in patient_boxes:
        local = address.strip().split("@", 1)[0]
        if not msg.patient.ins or local != msg.patient.ins:
            raise Hl7Reject("AE", E_APPLICATION, f"the patient recipient {address} (PRT RCT) is not PID-3's patient "
                            f"({msg.patient.ins or 'no INS'}@{PATIENT_DOMAIN}): the document would go to another "
                            "patient's mailbox", "PRT")
    if msg.flag("DESTMSSANTEPS") and not [r for r in msg.recipients if not is_patient_address(r)]:
        raise Hl7Reject("AE", E_APPLICATION, "DESTMSSANTEPS=Y but no PRT RCT names a professional's MSSanté "
                        "address", "PRT")
    if msg.flag("DESTMSSANTEPAT") and not patient_boxes:
        msg.findings.append(finding("CDA-HL7/DESTMSSANTEPAT", "DESTMSSANTEPAT=Y without a patient address "
                                    "(<INS>@patient.mssante.fr) among the recipients: the PFI builds it from the INS",
                                    "info",
                                    fr="DESTMSSANTEPAT=Y sans adresse du patient (<INS>@patient.mssante.fr) parmi les destinataires : le PFI la construit à partir de l'INS"))
    if "DESTDMP" not in msg.metadata:
        msg.findings.append(finding("CDA-HL7/MetaDMPMSS", "no DESTDMP metadata: the document is not sent to the "
                                    "DMP", "warning",
                                    fr="pas de métadonnée DESTDMP : le document n'est pas envoyé au DMP"))
    if msg.flag("MASQUE_PS") and msg.flag("INVISIBLE_PATIENT"):
        msg.findings.append(finding("DMP/EX_2.1-1050", "MASQUE_PS and INVISIBLE_PATIENT together: the DMP refuses "
                                    "this unless its cumul parameter is on", "warning",
                                    fr="MASQUE_PS et INVISIBLE_PATIENT ensemble : le DMP le refuse sauf si son paramètre de cumul est activé"))
