"""What the SMTP door finds in a submitted mail's content, never a refusal (the operator carries the mail, the
recipient judges it): the IHE_XDM.ZIP and its X-MSS-* fields (xdm_check), header fields the parser cannot
read, the MDNs the software under test sends (MSS/UX.12), and the count of header fields the door bounds."""

from __future__ import annotations

# The XDM check is a rule (checks/xdm.py, MSS/XDM), run on a submitted mail and by the control API on an
# injected one; kept importable from here.
from ...checks.xdm import ins_key_findings, xdm_check  # noqa: F401
from ...formats.mime import KO_MARK, XDM_ATTACHMENT, MdnShape  # noqa: F401 (XDM_ATTACHMENT re-exported)
from ...world.journal import finding

# RFC 5322 section of each field header_problems may name
RFC5322_SECTION = {"from": "3.6.2", "to": "3.6.3", "cc": "3.6.3", "date": "3.6.1", "message-id": "3.6.4",
                   "subject": "3.6.5", "disposition-notification-to": "RFC 8098 2.1",
                   "return-receipt-to": "3.6.2", "content-type": "RFC 2045 5.1"}


def header_findings(raw: bytes) -> list[dict]:
    """A header field the mail parser cannot read (`Message-ID: <>`, `From: "`) is a finding on a mail that
    is still delivered, never a temporary refusal (issue 17, point 12): an operator's MTA (Postfix, as the
    MSSanté operators run) carries the content as it is and checks only the envelope, and a 4xx would make the
    client retry the same bytes forever. The recipient judges the fields."""
    from ...formats.mime import header_problems

    out = []
    for name, why in header_problems(raw):
        section = RFC5322_SECTION.get(name.lower(), "3.6")
        where = section if section.startswith("RFC") else f"RFC 5322 {section}"
        out.append(finding("MIME/HEADER", f"the {name} field cannot be parsed ({where}): {why}; the mail was "
                           "delivered with the field as it is", "error",
                           fr=f"le champ {name} ne peut pas être analysé ({where}) : {why} ; le courriel a été remis avec le champ tel quel"))
    return out


# --- MDNs the software under test sends (MSS/UX.12) ----------------------------------------------------------

def mdn_findings(shape: MdnShape, original_errors: list[dict] | None,
                 original_attachments: list[str] | None = None) -> list[dict]:
    """MSS/UX.12 findings on an MDN the software under test submits, by the rules the bench's own error MDNs
    follow (trans-cda-mss/struct-msg-mdn.md): not RFC 8098-shaped; answering a message whose package the bench
    found broken (`original_errors`) without an error disposition; an error disposition not in the ANS form
    code^label; an error MDN without the subject `[KO Intégration système !][code] ...`, without
    Original-Message-ID or Original-Recipient, or without the original's attachments
    (`original_attachments`, upper-cased names) returned."""
    rule = "MSS/UX.12"
    out = [finding(rule, f"the MDN is not well formed: {p}", "error",
                   fr=f"l'accusé de réception (MDN) est mal formé : {p}") for p in shape.problems]
    if original_errors and shape.error is None and not shape.problems:
        reasons = "; ".join(f["message"] for f in original_errors[:3])
        out.append(finding(rule, f"the MDN answering {shape.original or 'the message'} reports no error, but its "
                           f"package could not be integrated ({reasons}): processed/Error: code^label was "
                           "expected", "error",
                           fr=f"le MDN répondant à {shape.original or 'ce message'} ne signale aucune erreur, mais son paquet n'a pas pu être intégré (" + "; ".join(f.get("message_fr") or f["message"] for f in original_errors[:3]) + ") : processed/Error: code^libellé était attendu"))
    if shape.error is None:
        return out
    if "^" not in shape.error:
        out.append(finding(rule, f"the error disposition {shape.error!r} is not in the ANS form code^label",
                           "warning",
                           fr=f"la disposition d'erreur {shape.error!r} n'est pas de la forme code^libellé de l'ANS"))
    code = shape.error.split("^")[0].strip()
    if not shape.subject.startswith(f"{KO_MARK}[{code}]"):
        out.append(finding(rule, f"the error MDN's subject {shape.subject[:80]!r} does not start with "
                           f"{KO_MARK}[{code}] (trans-cda-mss/struct-msg-mdn.md)", "error",
                           fr=f"l'objet du MDN d'erreur {shape.subject[:80]!r} ne commence pas par {KO_MARK}[{code}] (trans-cda-mss/struct-msg-mdn.md)"))
    for present, name in ((shape.original_message_id, "Original-Message-ID"),
                          (shape.original_recipient, "Original-Recipient")):
        if not present:
            out.append(finding(rule, f"the error MDN has no {name} field: the PFI that reads it needs it "
                               "(trans-cda-mss/struct-msg-mdn.md)", "error",
                               fr=f"le MDN d'erreur n'a pas de champ {name} : le PFI qui le lit en a besoin (trans-cda-mss/struct-msg-mdn.md)"))
    missing = [n for n in (original_attachments or []) if n not in shape.attachments]
    if missing:
        out.append(finding(rule, f"the error MDN does not return the original's attachments ({', '.join(missing)}); "
                           "trans-cda-mss/struct-msg-mdn.md asks for them", "error",
                           fr=f"le MDN d'erreur ne renvoie pas les pièces jointes du message d'origine ({', '.join(missing)}) ; trans-cda-mss/struct-msg-mdn.md les demande"))
    return out


def count_header_fields(raw: bytes, stop_after: int) -> int:
    """Header fields before the first empty line (continuation lines do not count), up to `stop_after`+1.
    Lines are LF-ended, trailing CRs ignored; at most stop_after*4 lines and the rest are looked at. The lines
    are found one by one: splitting the whole message would cut its body too."""
    count = 0
    start = 0
    pieces = stop_after * 4
    for n in range(pieces + 1):
        end = raw.find(b"\n", start) if n < pieces else -1
        line = (raw[start:] if end < 0 else raw[start:end]).rstrip(b"\r")
        if not line:
            break
        if line[:1] not in (b" ", b"\t"):
            count += 1
            if count > stop_after:
                break
        if end < 0:
            break
        start = end + 1
    return count
