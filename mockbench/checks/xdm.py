"""MSS/XDM: the IHE_XDM.ZIP an MSSanté mail carries and its X-MSS-* fields, checked where the mail is
submitted (the SMTP door) or injected (`POST /_bench/mss/send`).

The package is read by formats/xdm.py (its own XDM/<code> findings: IHE ITI TF-3 3.32, the ANS's XDM
profile), the X-MSS-* fields by formats/xmss.py (Référentiel socle MSSanté #2 ECO.2.4.1 to ECO.2.4.3, REF2/...
findings); this rule adds what is about the mail as a whole: a subject announcing `XDM/1.0/DDM` (DOMAIN.md
section 3) without the package or the reverse, a message that cannot be read as MIME (`MIME`), an INS whose
NIR key is wrong (`XDM/INS`)."""

from __future__ import annotations

import email.header
from typing import Any

from ..formats import xmss
from ..formats.mime import XDM_ATTACHMENT, find_attachment, header_summary
from ..formats.xdm import XdmError, read_package, subject_is_xdm
from ..world import identity
from ..world.journal import finding
from .registry import rule

RULE = "MSS/XDM"


@rule(RULE, "mail", "A mail whose subject announces XDM/1.0/DDM carries a readable IHE_XDM.ZIP, and the reverse",
      fr="Un courriel dont l'objet annonce XDM/1.0/DDM porte un IHE_XDM.ZIP lisible, et réciproquement")
def xdm_check(raw: bytes, recipients: list[str] | None = None) -> tuple[list[dict], str | None, str | None]:
    """Findings about the mail's IHE_XDM.ZIP (formats/xdm.py) and its X-MSS-* fields (formats/xmss.py,
    Référentiel socle MSSanté #2 ECO.2.4.1 to ECO.2.4.3), the first document's unique id and its patient's INS
    (for the journal). A problem is a finding, never a refusal: the operator carries the mail, the recipient
    judges it."""
    try:
        message, package = find_attachment(raw, XDM_ATTACHMENT)
    except Exception as exc:  # the email package is lenient; anything left is a finding
        return [finding("MIME", f"the message cannot be parsed as MIME: {exc}", "error",
                        fr=f"le message ne peut pas être lu comme du MIME : {exc}")], None, None
    try:
        headers = header_summary(raw)
    except Exception:   # the same lenient parser: the MIME finding above would have come first
        headers = {}
    try:  # compat32 leaves RFC 2047 encoded words as they are; an ANS subject is usually one
        subject = str(email.header.make_header(email.header.decode_header(str(message.get("Subject", "")))))
    except (ValueError, LookupError):
        subject = str(message.get("Subject", ""))
    if package is None:
        if subject_is_xdm(subject):
            return [finding(RULE, f"the subject announces XDM/1.0/DDM but no {XDM_ATTACHMENT} is attached",
                            "error",
                            fr=f"l'objet annonce XDM/1.0/DDM mais aucun {XDM_ATTACHMENT} n'est joint"), *xmss.check(headers, [], recipients)], None, None
        return xmss.check(headers, [], recipients), None, None
    findings = []
    if not subject_is_xdm(subject):
        findings.append(finding(RULE, f"{XDM_ATTACHMENT} is attached but the subject lacks XDM/1.0/DDM",
                                fr=f"{XDM_ATTACHMENT} est joint mais l'objet ne contient pas XDM/1.0/DDM"))
    try:
        pkg = read_package(package)
    except XdmError as exc:
        return ([*findings, finding(f"XDM/{exc.code}", exc.message, "error",
                                    fr=f"archive IHE_XDM refusée ({exc.code}) : {exc.message}"), *xmss.check(headers, [], recipients)],
                None, None)
    unique_id = next((d.entry.meta.get("unique_id") for d in pkg.documents if d.entry.meta.get("unique_id")), None)
    ins = next((d.entry.patient_ins for d in pkg.documents if d.entry.patient_ins), None)
    return ([*findings, *pkg.findings, *ins_key_findings(pkg),
             *xmss.check(headers, [d.cda for d in pkg.documents], recipients)], unique_id, ins)


def ins_key_findings(pkg: Any) -> list[dict]:
    """An INS whose NIR key is wrong, in a document entry's patientId or its CDA's recordTarget: the same
    check and words as the DMP door's (identity.parse_xds_patient_id; the DMP refuses such a patient in the
    VIHF resource-id), here a finding since the operator carries the mail."""
    out, seen = [], set()
    for doc in pkg.documents:
        values = [doc.entry.patient_id]
        if doc.cda is not None and doc.cda.ins is not None:
            values.append(f"{doc.cda.ins[0]}^^^&{doc.cda.ins[1]}&ISO^NH")
        for value in values:
            if not value or value in seen:
                continue
            seen.add(value)
            try:
                identity.parse_xds_patient_id(value)
            except identity.IdentifierError as exc:
                out.append(finding("XDM/INS", f"{doc.path}: {exc}", "error",
                                   fr=f"{doc.path} : identifiant de patient XDS invalide : {exc}"))
    return out
