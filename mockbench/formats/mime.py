"""MIME helpers shared by the mail paths: a summary of a message's headers, and the MDN (RFC 8098) and
DSN (RFC 3464) reports a recipient sends back. No wire and no rules: the world decides when to send them."""

from __future__ import annotations

import base64
import uuid
from email import policy
from email.header import Header
from email.parser import BytesHeaderParser
from email.utils import formatdate, getaddresses

SUMMARY_HEADERS = ("From", "To", "Cc", "Subject", "Date", "Message-ID", "Disposition-Notification-To",
                   "Return-Receipt-To", "X-MSS-CODECDA", "X-MSS-INS", "X-MSS-MES", "Content-Type")


def header_summary(raw: bytes) -> dict[str, str]:
    """The headers the bench shows and reasons on, decoded; absent ones left out."""
    ends = [i for i in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if i >= 0]
    # The header block only: the parser would otherwise read the whole body line by line to skip it.
    headers = BytesHeaderParser(policy=policy.default).parsebytes(raw[:min(ends) + 2] if ends else raw)
    out = {}
    for name in SUMMARY_HEADERS:
        value = headers.get(name)
        if value is not None:
            out[name] = str(value)
    return out


def addresses(value: str) -> list[str]:
    return [addr.lower() for _, addr in getaddresses([value]) if addr]


def mdn(*, original: dict[str, str], reporter: str, to: str, disposition: str = "processed",
        error: str | None = None, domain: str = "mockbench.invalid") -> bytes:
    """A disposition notification (RFC 8098) answering the message whose headers are `original`.
    `error` ("code^label") makes it the ANS integration-error form: `processed/Error: code^label` and the
    subject `[KO Intégration système !][code] <original subject>`."""
    subject = original.get("Subject", "")
    subject = (f"[KO Intégration système !][{error.split('^')[0]}] {subject}" if error
               else f"Accusé de lecture : {subject}")
    human = (f"Le message {original.get('Message-ID', '')} n'a pas pu être intégré : {error}" if error
             else f"Le message {original.get('Message-ID', '')} a été traité.")
    fields = [f"Reporting-UA: {domain}; mockbench", f"Final-Recipient: rfc822;{reporter}"]
    if original.get("Message-ID"):
        fields.append(f"Original-Message-ID: {original['Message-ID']}")
    fields.append("Disposition: automatic-action/MDN-sent-automatically; "
                  + (f"processed/Error: {error}" if error else disposition))
    return _report("disposition-notification", "message/disposition-notification", fields, human, subject=subject,
                   sender=reporter, to=to, original=original, domain=domain)


def dsn(*, original: dict[str, str], recipient: str, to: str, status: str = "5.1.1",
        diagnostic: str = "550 5.1.1 mailbox unavailable", postmaster: str = "postmaster@mockbench.invalid",
        domain: str = "mockbench.invalid") -> bytes:
    """A delivery status notification (RFC 3464) saying the delivery to `recipient` failed."""
    fields = [f"Reporting-MTA: dns; {domain}", "", f"Final-Recipient: rfc822;{recipient}", "Action: failed",
              f"Status: {status}", f"Diagnostic-Code: smtp; {diagnostic}"]
    return _report("delivery-status", "message/delivery-status", fields,
                   f"Le message n'a pas pu être remis à {recipient} : {diagnostic}",
                   subject=f"Non distribué : {original.get('Subject', '')}", sender=postmaster, to=to,
                   original=original, domain=domain)


def _report(report_type: str, content_type: str, fields: list[str], human: str, *, subject: str, sender: str,
            to: str, original: dict[str, str], domain: str) -> bytes:
    # Written out by hand: the email package's generator wants message/delivery-status parts as lists of
    # header blocks and re-folds the Disposition field; a report is small and its shape fixed.
    boundary = f"=_mockbench_{uuid.uuid4().hex}"
    headers = [f"From: {sender}", f"To: {to}", f"Date: {formatdate(localtime=False)}",
               f"Message-ID: <{uuid.uuid4()}@{domain}>", f"Subject: {Header(subject, 'utf-8').encode()}"]
    if original.get("Message-ID"):
        headers += [f"In-Reply-To: {original['Message-ID']}", f"References: {original['Message-ID']}"]
    headers += ["MIME-Version: 1.0",
                f'Content-Type: multipart/report; report-type={report_type}; boundary="{boundary}"']
    text = base64.encodebytes(human.encode("utf-8")).decode("ascii").rstrip("\n").split("\n")
    lines = [*headers, "", f"--{boundary}", 'Content-Type: text/plain; charset="utf-8"',
             "Content-Transfer-Encoding: base64", "", *text, f"--{boundary}", f"Content-Type: {content_type}",
             "Content-Transfer-Encoding: 7bit", "", *fields, "", f"--{boundary}--", ""]
    return "\r\n".join(lines).encode("utf-8")


def xdm_mail(*, sender: str, to: list[str], subject: str, package: bytes, text: str = "",
             disposition_notification_to: str | None = None, domain: str = "mockbench.invalid",
             extra_headers: dict[str, str] | None = None) -> bytes:
    """An MSSanté mail carrying an IHE_XDM.ZIP (multipart/mixed, the zip in base64), as DOMAIN.md section 3
    describes it; `Disposition-Notification-To` asks the recipient for an MDN."""
    boundary = f"=_mockbench_{uuid.uuid4().hex}"
    headers = [f"From: {sender}", f"To: {', '.join(to)}", f"Date: {formatdate(localtime=False)}",
               f"Message-ID: <{uuid.uuid4()}@{domain}>", f"Subject: {Header(subject, 'utf-8').encode()}"]
    if disposition_notification_to:
        headers.append(f"Disposition-Notification-To: {disposition_notification_to}")
    headers += [f"{k}: {v}" for k, v in (extra_headers or {}).items()]
    headers += ["MIME-Version: 1.0", f'Content-Type: multipart/mixed; boundary="{boundary}"']
    body = base64.encodebytes((text or subject).encode("utf-8")).decode("ascii").rstrip("\n").split("\n")
    attachment = base64.encodebytes(package).decode("ascii").rstrip("\n").split("\n")
    lines = [*headers, "", f"--{boundary}", 'Content-Type: text/plain; charset="utf-8"',
             "Content-Transfer-Encoding: base64", "", *body, f"--{boundary}",
             'Content-Type: application/zip; name="IHE_XDM.ZIP"', "Content-Transfer-Encoding: base64",
             'Content-Disposition: attachment; filename="IHE_XDM.ZIP"', "", *attachment, f"--{boundary}--", ""]
    return "\r\n".join(lines).encode("utf-8")
