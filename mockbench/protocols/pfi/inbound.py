"""Inbound MSSanté -> DPI (the ANS guide "Transmission au LPS d'un document CDA provenant d'un courriel
MSSanté", [CDA-MSS], trans-cda-mss/profils-messages.md): a mail received on a hospital mailbox, carrying an
IHE_XDM.ZIP, becomes one MDM per document for the DPI: MSH (MSH-21 `1.1^CISIS_CDA_HL7_LPS`), EVN, PID, PV1,
ORC, OBR, TXA (TXA-12 / TXA-13 `extension^^root^ISO`, or the root alone when the CDA id has no extension),
the document OBX with its PRT (sender `SB^Send by^participation`, recipient `RCT^Result Copies To^
participation`), the OBX carrying the mail (OBX-3.1 its Message-ID, OBX-3.2 its subject, OBX-5 its text body
in base64), then the four required MetaDMPMSS OBX in the guide's order (MASQUE_PS, INVISIBLE_PATIENT,
INVISIBLE_REP_LEGAUX, MODIF_CONF_CODE, CWE `Y|N^^expandedYes-NoIndicator`).

A package whose action is C (replacement) but whose CDA names no parent (relatedDocument RPLC) and whose
XDM metadata gives none (an RPLC association to another entry of the package) cannot be a T10 (TXA-13 is
required for a replacement): it goes as a T02 with a finding, rather than as a T10 that a PFI would refuse.

`read_dpi_ack` checks the DPI's ACK to an MDM as the guide's ACK section asks (ERR-3 207 with ERR-5 from the
900-906 applicationErrorCode table for an application error; ERR-3 from messageErrorCondition and no ERR-5
for a technical one). No world and no sockets here: the door reads the stored mail and queues what this
module builds.
"""

from __future__ import annotations

import base64
import email
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage

from ...formats.xdm import XdmDocument, XdmPackage
from ...world.journal import finding
from .hl7 import Hl7Reject, _escape
from .hl7 import parse as parse_hl7

PROFILE = "1.1^CISIS_CDA_HL7_LPS"
PACKAGE_NAME = "IHE_XDM.ZIP"
OID_IDNPS = "1.2.250.1.71.4.2.1"
LOINC = "2.16.840.1.113883.6.1"
# The action slot of the XDM package -> (event, ORC-1, OBX-11).
EVENTS = {None: ("T02", "NW", "F"), "C": ("T10", "RO", "C"), "D": ("T04", "CA", "D")}
INS_AUTHORITIES = {"1.2.250.1.213.1.4.8": "ASIP-SANTE-INS-NIR", "1.2.250.1.213.1.4.9": "ASIP-SANTE-INS-NIA",
                   "1.2.250.1.213.1.4.10": "ASIP-SANTE-INS-NIR-TEST",
                   "1.2.250.1.213.1.4.11": "ASIP-SANTE-INS-NIR-TEST"}


# trans-cda-mss/meta-dmp-mss.md and profils-messages.md "Groupes OBXNTE portant les métadonnées MSSanté":
# required, in this order, OBX-1 3 to 6.
META_OBX = (("MASQUE_PS", "Masqué aux professionnels de Santé"),
            ("INVISIBLE_PATIENT", "Document Non Visible par le patient"),
            ("INVISIBLE_REP_LEGAUX", "Non visible par les représentants Légaux du patient"),
            ("MODIF_CONF_CODE", "Modification Confidentiality Code"))
# The DMP confidentiality codes of the XDM entry (1.2.250.1.213.1.1.4.13) behind the first three.
CONFIDENTIALITY = {"MASQUE_PS": "MASQUE_PS", "INVISIBLE_PATIENT": "INVISIBLE_PATIENT",
                   "INVISIBLE_REP_LEGAUX": "INVISIBLE_REP_LEGAL"}
# trans-cda-mss/error-codes.md: the DPI's ACK. messageErrorCondition (ERR-3) and applicationErrorCode (ERR-5).
MESSAGE_ERRORS = {"0": "Message accepted", "100": "Segment sequence error", "101": "Required field missing",
                  "102": "Data type error", "103": "Table value not found", "198": "Non-conformant cardinality",
                  "199": "Other HL7 Error", "200": "Unsupported message type", "201": "Unsupported event code",
                  "202": "Unsupported processing", "203": "Unsupported version", "207": "Application error"}
APPLICATION_ERRORS = {
    "900": "Version du document incorrecte lors d'une demande de remplacement/suppression",
    "901": "Auteur non autorisé à remplacer ou supprimer un document",
    "902": "Identifiant patient inconnu", "903": "INS non présent dans le document",
    "904": "L'INS transmis ne correspond pas exactement à celui stocké dans la base du consommateur",
    "905": "L'INS transmis n'est pas complet", "906": "Erreur 'Autre'"}
ACK_RULE = "CDA-MSS/ACK"


@dataclass(frozen=True)
class DpiAck:
    """What the DPI's ACK to an inbound MDM says: MSA-1, the error as `code^libellé` (ERR-5 for an
    application error, else ERR-3), and how the ACK departs from the guide (findings)."""
    code: str
    error: str | None
    findings: tuple[dict, ...]


def read_dpi_ack(answer: bytes) -> DpiAck:
    """trans-cda-mss/profils-messages.md "Le message d'acquittement HL7v2" and error-codes.md: MSA-1 AA, AE
    or AR; on an error, ERR-3 from messageErrorCondition, and ERR-3 207 (Application error) with ERR-5 from
    applicationErrorCode (900-906) when the DPI could not integrate the document."""
    try:
        ack = parse_hl7(answer)
    except Hl7Reject as exc:
        return DpiAck("", None, (finding(ACK_RULE, f"the DPI's answer is not HL7: {exc.text}", "error",
                                         fr=f"la réponse du DPI n'est pas du HL7 : {exc.text}"),))
    code = ack.get("MSA", 1)
    out = []
    if ack.message_type[0] != "ACK":
        out.append(finding(ACK_RULE, f"MSH-9 is {'^'.join(ack.message_type)}, not ACK^<event>^ACK", "warning",
                           fr=f"MSH-9 vaut {'^'.join(ack.message_type)}, et non ACK^<événement>^ACK"))
    if code not in ("AA", "AE", "AR", "CA", "CE", "CR"):
        out.append(finding(ACK_RULE, f"MSA-1 {code or '(empty)'} is not AA, AE or AR", "error",
                           fr=f"MSA-1 {code or '(vide)'} n'est ni AA, ni AE, ni AR"))
    if code in ("AA", "CA"):
        return DpiAck(code, None, tuple(out))
    err = ack.segments("ERR")
    if not err:
        out.append(finding(ACK_RULE, f"an {code} ACK without ERR: the guide asks for ERR-3 (messageErrorCondition)"
                           " and, for an application error, ERR-5 (applicationErrorCode)", "error",
                           fr=f"un accusé de réception {code} sans ERR : le guide demande ERR-3 (messageErrorCondition) et, pour une erreur applicative, ERR-5 (applicationErrorCode)"))
        return DpiAck(code, None, tuple(out))
    e3, e3_text = ack.value(err[0], 3, 1, 1).strip(), ack.value(err[0], 3, 1, 2).strip()
    e5, e5_text = ack.value(err[0], 5, 1, 1).strip(), ack.value(err[0], 5, 1, 2).strip()
    if e3 not in MESSAGE_ERRORS:
        out.append(finding(ACK_RULE, f"ERR-3 {e3 or '(empty)'} is not a messageErrorCondition code "
                           f"({', '.join(MESSAGE_ERRORS)})", "error",
                           fr=f"ERR-3 {e3 or '(vide)'} n'est pas un code messageErrorCondition ({', '.join(MESSAGE_ERRORS)})"))
    if e3 == "207":
        if e5 not in APPLICATION_ERRORS:
            out.append(finding(ACK_RULE, f"ERR-3 is 207 (Application error) but ERR-5 {e5 or '(empty)'} is not an "
                               "applicationErrorCode (900-906, trans-cda-mss/error-codes.md)", "error",
                               fr=f"ERR-3 vaut 207 (Application error) mais ERR-5 {e5 or '(vide)'} n'est pas un applicationErrorCode (900-906, trans-cda-mss/error-codes.md)"))
        error: str | None = f"{e5}^{e5_text or APPLICATION_ERRORS.get(e5, '')}" if e5 else f"207^{e3_text or 'Application error'}"
    else:
        if e5:
            out.append(finding(ACK_RULE, f"ERR-5 {e5} with ERR-3 {e3}: ERR-5 is only for ERR-3 207 (a technical "
                               "rejection leaves it empty)", "warning",
                               fr=f"ERR-5 {e5} avec ERR-3 {e3} : ERR-5 ne sert que pour ERR-3 207 (un rejet technique le laisse vide)"))
        error = f"{e3}^{e3_text or MESSAGE_ERRORS.get(e3, '')}" if e3 else None
    return DpiAck(code, error, tuple(out))


@dataclass(frozen=True)
class Mail:
    """What the MDM says of the mail: its Message-ID, subject, text body, sender and receiving mailbox."""

    message_id: str
    subject: str
    body: str
    sender: str
    mailbox: str


def read_mail(raw: bytes) -> tuple[EmailMessage, bytes | None]:
    """The parsed mail and the bytes of its IHE_XDM.ZIP attachment (None when it has none)."""
    parsed = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    for part in parsed.walk():
        if part.is_multipart():
            continue
        name = (part.get_filename() or "").strip().upper()
        if name == PACKAGE_NAME or (not name and part.get_content_type() == "application/zip"):
            payload = part.get_payload(decode=True)
            return parsed, payload if isinstance(payload, bytes) else b""
    return parsed, None


def text_body(parsed: EmailMessage) -> str:
    body = parsed.get_body(("plain",))
    if body is None:
        return ""
    try:
        return str(body.get_content())
    except (LookupError, UnicodeError, ValueError):   # an unknown charset: the bytes as Latin-1
        payload = body.get_payload(decode=True)
        return payload.decode("latin-1") if isinstance(payload, bytes) else ""


def txa_id(unique_id: str) -> str:
    """TXA-12 / TXA-13 from an XDS uniqueId (root, or root^extension): `extension^^root^ISO` when the CDA id
    has an extension, the root alone otherwise (profils-messages.md, TXA Note 1)."""
    root, _, extension = unique_id.partition("^")
    return f"{_escape(extension)}^^{_escape(root)}^ISO" if extension else _escape(root)


def replaced_parent(doc: XdmDocument, package: XdmPackage | None) -> str:
    """The uniqueId this document replaces: its CDA's relatedDocument RPLC, else an RPLC association of the
    package's metadata whose target is another entry of the package; "" when neither names one."""
    assert doc.cda is not None
    parent = next((uid for kind, uid in doc.cda.related if kind == "RPLC"), "")
    if parent or package is None:
        return parent
    by_id = {d.entry.symbolic_id: d.entry for d in package.documents}
    for source, target in package.submission.replacements():
        if source == doc.entry.symbolic_id and target in by_id:
            return by_id[target].unique_id
    return ""


def build_mdm(doc: XdmDocument, package_action: str | None, mail: Mail, *, control_id: str, now: str,
              receiving: tuple[str, str] = ("DPI", ""), sender_person: dict | None = None,
              package: XdmPackage | None = None) -> tuple[str, str, list[dict]]:
    """(operation, HL7 text, findings) of the MDM^T02 / T10 / T04 carrying one document of the package (its
    CDA header read: `doc.cda` is not None). `sender_person`: idnps, family_name, given_name of the
    professional whose MSSanté address sent the mail, when the world knows one (PRT-5)."""
    cda = doc.cda
    assert cda is not None
    findings: list[dict] = []
    action = doc.action or package_action
    parent = replaced_parent(doc, package) if action in ("C", "D") else ""
    if action == "C" and not parent:
        findings.append(finding("CDA-MSS/TXA-13", f"{doc.path}: the package's action is C (replacement) but neither "
                                "the CDA (relatedDocument RPLC) nor the XDM metadata names the replaced document; "
                                "TXA-13 is required for a T10, so it goes to the DPI as a T02 (a new document)",
                                "warning",
                                fr=f"{doc.path} : l'action du paquet est C (remplacement) mais ni le CDA (relatedDocument RPLC) ni les métadonnées XDM ne désignent le document remplacé ; TXA-13 est obligatoire pour un T10, il part donc au DPI comme un T02 (un nouveau document)"))
        action = None
    event, orc, status = EVENTS.get(action, EVENTS[None])
    e = _escape
    type_code = cda.type_code or doc.entry.meta.get("type_code") or ""
    title = cda.title or doc.entry.meta.get("title") or ""
    type_system = cda.type_system or LOINC
    type_system = "LN" if type_system == LOINC else type_system
    type_ce = f"{e(type_code)}^{e(title)}^{e(type_system)}" if type_code else ""
    when = "".join(c for c in (cda.effective_time or "") if c.isdigit())[:14] or now
    codes = set(doc.entry.meta.get("confidentiality") or [])
    if cda.confidentiality_code:
        codes.add(cda.confidentiality_code)
    lines = [
        f"MSH|^~\\&|PFI|MOCKBENCH|{e(receiving[0])}|{e(receiving[1])}|{now}||MDM^{event}^MDM_T02|"
        f"{e(control_id)}|P|2.6|||||FRA|UNICODE UTF-8|||{PROFILE}",
        f"EVN||{now}",
        _segment("PID", {3: _pid3(cda.ins), 5: _pid5(cda.patient_family, cda.patient_first_given,
                                                      cda.patient_given),
                         7: e((cda.birth_date or "")[:8]), 8: e(_sex(cda.sex))}),
        "PV1|1|N",
        f"ORC|{orc}",
        f"OBR|1|||{type_ce}",
        _segment("TXA", {1: "1", 2: type_ce, 3: "TEXT", 4: when, 12: txa_id(cda.unique_id),
                         13: txa_id(parent) if parent else "", 17: "AU"}),
        f"OBX|1|ED|{type_ce}||^text^XML^Base64^{base64.b64encode(doc.content).decode('ascii')}||||||{status}",
        _segment("PRT", {2: "UC", 4: "SB^Send by^participation", 5: _person(sender_person),
                         15: f"^NET^X.400^{e(mail.sender)}"}),
        _segment("PRT", {2: "UC", 4: "RCT^Result Copies To^participation", 15: f"^NET^X.400^{e(mail.mailbox)}"}),
        f"OBX|2|ED|{e(mail.message_id)}^{e(mail.subject)}||"
        f"^text^plain^Base64^{base64.b64encode(mail.body.encode('utf-8')).decode('ascii')}||||||F",
    ]
    for n, (code, label) in enumerate(META_OBX, 3):
        # MODIF_CONF_CODE: a mail carries no earlier version to compare with, so no change can be claimed.
        active = code in CONFIDENTIALITY and CONFIDENTIALITY[code] in codes
        lines.append(f"OBX|{n}|CWE|{code}^{e(label)}^MetaDMPMSS||{'Y' if active else 'N'}^^expandedYes-NoIndicator"
                     "||||||F")
    return f"MDM^{event}", "\r".join(lines) + "\r", findings


def _segment(name: str, fields: dict[int, str]) -> str:
    values = [""] * max(fields)
    for position, text in fields.items():
        values[position - 1] = text
    return "|".join([name, *values])


def _pid3(ins: tuple[str, str] | None) -> str:
    if ins is None:
        return ""
    value, oid = ins
    return f"{_escape(value)}^^^{INS_AUTHORITIES.get(oid, '')}&{_escape(oid)}&ISO^INS"


def _pid5(family: str | None, first_given: str | None, given: str | None) -> str:
    if not family and not given:
        return ""
    first = first_given or (given or "").split(" ")[0]
    others = given if given and given != first else ""
    return f"{_escape(family or '')}^{_escape(first)}^{_escape(others)}^^^^L"


def _sex(code: str | None) -> str:
    return {"M": "M", "F": "F"}.get((code or "").upper(), "U")


def _person(person: dict | None) -> str:
    if not person or not person.get("idnps"):
        return ""
    return (f"{_escape(person['idnps'])}^{_escape(person.get('family_name', ''))}^"
            f"{_escape(person.get('given_name', ''))}^^^^^^ASIP-SANTE-PS&{OID_IDNPS}&ISO^D^^^IDNPS")
