"""Inbound MSSanté -> DPI (the ANS guide "Transmission au LPS d'un document CDA provenant d'un courriel
MSSanté", [CDA-MSS]): a mail received on a hospital mailbox, carrying an IHE_XDM.ZIP, becomes one MDM per
document for the DPI. The same MDM structure as the DPI -> PFI flow (MSH, EVN, PID, PV1, ORC, OBR, TXA,
the document OBX with its PRT), with MSH-21 `1.1^CISIS_CDA_HL7_LPS` and an extra OBX carrying the mail:
OBX-3.1 its Message-ID, OBX-3.2 its subject, OBX-5 its text body in base64. No world and no sockets here:
the door reads the stored mail and queues what this module builds.
"""

from __future__ import annotations

import base64
import email
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage

from ...formats.xdm import XdmDocument
from .hl7 import _escape

PROFILE = "1.1^CISIS_CDA_HL7_LPS"
PACKAGE_NAME = "IHE_XDM.ZIP"
OID_IDNPS = "1.2.250.1.71.4.2.1"
LOINC = "2.16.840.1.113883.6.1"
# The action slot of the XDM package -> (event, ORC-1, OBX-11).
EVENTS = {None: ("T02", "NW", "F"), "C": ("T10", "RO", "C"), "D": ("T04", "CA", "D")}
INS_AUTHORITIES = {"1.2.250.1.213.1.4.8": "ASIP-SANTE-INS-NIR", "1.2.250.1.213.1.4.9": "ASIP-SANTE-INS-NIA",
                   "1.2.250.1.213.1.4.10": "ASIP-SANTE-INS-NIR-TEST",
                   "1.2.250.1.213.1.4.11": "ASIP-SANTE-INS-NIR-TEST"}


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


def build_mdm(doc: XdmDocument, package_action: str | None, mail: Mail, *, control_id: str, now: str,
              receiving: tuple[str, str] = ("DPI", ""), sender_person: dict | None = None) -> tuple[str, str]:
    """(operation, HL7 text) of the MDM^T02 / T10 / T04 carrying one document of the package (its CDA
    header read: `doc.cda` is not None). `sender_person`: idnps, family_name, given_name of the professional
    whose MSSanté address sent the mail, when the world knows one (PRT-5)."""
    cda = doc.cda
    assert cda is not None
    event, orc, status = EVENTS.get(doc.action or package_action, EVENTS[None])
    e = _escape
    type_code = cda.type_code or doc.entry.meta.get("type_code") or ""
    title = cda.title or doc.entry.meta.get("title") or ""
    type_system = cda.type_system or LOINC
    type_system = "LN" if type_system == LOINC else type_system
    type_ce = f"{e(type_code)}^{e(title)}^{e(type_system)}" if type_code else ""
    unique_id = cda.unique_id
    parent = next((uid for kind, uid in cda.related if kind == "RPLC"), "") if event != "T02" else ""
    when = "".join(c for c in (cda.effective_time or "") if c.isdigit())[:14] or now
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
        _segment("TXA", {1: "1", 2: type_ce, 3: "TEXT", 4: when, 12: e(unique_id), 13: e(parent), 17: "AU"}),
        f"OBX|1|ED|{type_ce}||^text^XML^Base64^{base64.b64encode(doc.content).decode('ascii')}||||||{status}",
        _segment("PRT", {2: "UC", 4: "SB^^participation", 5: _person(sender_person),
                         15: f"^NET^X.400^{e(mail.sender)}"}),
        _segment("PRT", {2: "UC", 4: "RCT^^participation", 15: f"^NET^X.400^{e(mail.mailbox)}"}),
        f"OBX|2|ED|{e(mail.message_id)}^{e(mail.subject)}||"
        f"^text^plain^Base64^{base64.b64encode(mail.body.encode('utf-8')).decode('ascii')}||||||F",
    ]
    return f"MDM^{event}", "\r".join(lines) + "\r"


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
