"""The MSSanté mail the PFI sends for a message with DESTMSSANTEPS=Y or DESTMSSANTEPAT=Y, as the ANS guide
shapes it (trans-cda-r2/mapping-mss.md): From the applicative mailbox (BAL APP) that sends it (the door picks
it), Reply-To from PRT REPLY, To the PRT RCT addresses, the body CORPSMAIL_PS or CORPSMAIL_PATIENT,
`X-MSS-MES: FIN` when NTE-4 is FIN; the CDA in an IHE_XDM.ZIP (with the extra-metadata slot
`urn:action:extraMetadataSlot` C on a replacement, D on a deletion); the subject
`XDM/1.0/DDM+<label> <NOM> <PRÉNOM> <JJ/MM/AAAA>` as trans-cda-mss/struct-msg-mdn.md's example writes it;
`Disposition-Notification-To` when ACK_LECTURE_MSS=Y; and the fields the "Référentiel socle MSSanté #2"
requires of every sending system (formats/xmss.py): X-MSS-CODECDA the CDA's code (ECO.2.4.1), X-MSS-INS `O`
only for a qualified INS (ECO.2.4.2), X-MSS-NIL the product reference (ECO.2.4.3). No world here: the door
delivers.
"""

from __future__ import annotations

import uuid
from typing import Any

from ...formats import xmss
from ...formats.cda import INS_OIDS
from ...formats.mime import xdm_mail
from ...formats.xdm import ans_subject, write_package
from .messages import DocumentMessage

PATIENT_DOMAIN = "patient.mssante.fr"
ACTIONS = {"submit": None, "replace": "C", "delete": "D"}
OID_IDNPS = "1.2.250.1.71.4.2.1"
OID_STRUCTURE = "1.2.250.1.71.4.2.2"
SOURCE_ID = "1.2.250.1.213.1.1.9.1"      # the bench's PFI as the XDM source
CONTENT_TYPE = "04"                      # submission set contentTypeCode (1.2.250.1.213.2.2), as the ANS examples
NIL = "MOCKBENCH-PFI"                    # X-MSS-NIL: the bench's PFI as a declared product (ECO.2.4.3)


def qualified_ins(msg: DocumentMessage) -> bool:
    """ECO.2.4.2's qualified INS for the document the message carries: the INS with an INS OID and the four
    traits (birth name, first given name, birth date, sex), read from the CDA when the message carries one,
    else from PID-3/5/7/8; PID-32 (PAM FR identity reliability), when present, must say VALI (qualified)."""
    pid = msg.inbound.segments("PID")
    reliability = msg.inbound.value(pid[0], 32) if pid else ""
    if reliability and "VALI" not in reliability.upper():
        return False
    if msg.cda is not None:
        return xmss.is_qualified_ins(msg.cda)
    p = msg.patient
    return bool(p.ins and p.ins_oid in INS_OIDS and p.family_name and p.given_name and p.birth_date
                and p.sex in ("M", "F", "U"))


def is_patient_address(address: str) -> bool:
    return address.strip().lower().endswith("@" + PATIENT_DOMAIN)


def recipient_groups(msg: DocumentMessage) -> list[tuple[str, list[str]]]:
    """(kind, addresses) per mail to send: "ps" for the professionals' addresses (PRT RCT) when
    DESTMSSANTEPS=Y, "patient" for the patient's address (from PRT RCT, or built from the INS) when
    DESTMSSANTEPAT=Y."""
    groups: list[tuple[str, list[str]]] = []
    if msg.flag("DESTMSSANTEPS"):
        ps = list(dict.fromkeys(r.strip().lower() for r in msg.recipients if not is_patient_address(r)))
        if ps:
            groups.append(("ps", ps))
    if msg.flag("DESTMSSANTEPAT"):
        pat = [r.strip().lower() for r in msg.recipients if is_patient_address(r)]
        if not pat and msg.patient.ins:
            pat = [f"{msg.patient.ins}@{PATIENT_DOMAIN}"]
        if pat:
            groups.append(("patient", list(dict.fromkeys(pat))))
    return groups


def build_mail(msg: DocumentMessage, *, kind: str, sender: str, recipients: list[str], author: dict) -> bytes:
    """The raw mail for one group of recipients. `author`: idnps, family_name, given_name of the sender."""
    p = msg.patient
    patient_cx = f"{p.ins}^^^&{p.ins_oid}&ISO^NH" if p.ins else ""
    person = (f"{author.get('idnps', '')}^{author.get('family_name', '')}^{author.get('given_name', '')}"
              f"^^^^^^&{OID_IDNPS}&ISO^D^^^IDNPS")
    authors = [{"authorPerson": person}]
    if msg.sender.finess:
        authors[0]["authorInstitution"] = (f"{msg.sender.organisation or 'Structure'}^^^^^&{OID_STRUCTURE}&ISO"
                                           f"^FINEG^^^{msg.sender.finess}")
    cda = msg.cda
    type_code = msg.type_code or (cda.type_code if cda else "") or "11488-4"
    title = msg.title or (cda.title if cda else "") or "Document"
    meta: dict[str, Any] = {"unique_id": msg.unique_id, "mime_type": "text/xml", "title": title, "type_code": type_code,
            "format_code": "urn:asip:ci-sis:2010", "confidentiality": msg.confidentiality,
            "source_patient_id": patient_cx, "authors": authors}
    if msg.creation_time:   # the CDA's effectiveTime in UTC, as the DMP gets it (messages.py)
        meta["creation_time"] = msg.creation_time
    meta = {k: v for k, v in meta.items() if v}
    # A deletion may come without the document: the package then carries an empty CDA shell.
    package = write_package(
        [("DOC0001.XML", msg.content or b"<ClinicalDocument xmlns=\"urn:hl7-org:v3\"/>", meta)],
        submission_set={"unique_id": f"2.25.{uuid.uuid4().int}", "source_id": SOURCE_ID,
                        "content_type": CONTENT_TYPE,
                        "title": title, "authors": authors},
        patient_id=patient_cx or "^^^&1.2.250.1.213.1.4.8&ISO^NH", action=ACTIONS.get(msg.action), sender=sender)
    subject = ans_subject(title, p.family_name, p.given_name, p.birth_date)
    body = msg.metadata.get("CORPSMAIL_PATIENT" if kind == "patient" else "CORPSMAIL_PS", "")
    headers = {xmss.CODECDA: (cda.type_code if cda is not None and cda.type_code else type_code),
               xmss.INS: "O" if qualified_ins(msg) else "N", xmss.NIL: NIL}
    if msg.patient_replies_blocked and kind == "patient":   # mapping-mss.md: in mails to the patient only
        headers[xmss.MES] = "FIN"
    if msg.reply_to:
        headers["Reply-To"] = ", ".join(msg.reply_to)
    return xdm_mail(sender=sender, to=recipients, subject=subject, package=package, text=body,
                    disposition_notification_to=sender if msg.flag("ACK_LECTURE_MSS") else None,
                    extra_headers=headers)
