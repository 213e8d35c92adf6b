"""MSSanté: the mailboxes and their messages, what a mail's XDM package holds, a mail sent by a professional of
the world."""

from __future__ import annotations

import base64
import binascii
import io
import threading
import zipfile
from email import policy
from email.parser import BytesParser
from typing import TYPE_CHECKING, Any

from flask import Blueprint, jsonify, request

from ...checks.xdm import xdm_check
from ...formats.mime import XDM_ATTACHMENT, find_attachment, xdm_mail
from ...formats.xdm import MIB, XdmError, XdmLimits, read_package
from ..common import ApiError, json_body, listing
from ..security import download

if TYPE_CHECKING:
    from ...bench import Bench


def _message_row(m) -> dict:
    return {"id": m.id, "mailbox": m.mailbox, "uid": m.uid, "sender": m.sender, "recipients": m.recipients,
            "subject": m.subject, "message_id": m.message_id, "received_at": m.received_at, "size": m.size,
            "flags": m.flags, "headers": m.headers, "findings": m.findings, "document": m.document}


MAX_XDM_FILES = 500
XDM_READERS = 4      # packages read at once for GET /mss/messages/{id}/xdm
XDM_WAIT = 30.0      # seconds a read waits for its turn before 503


# What the control API inflates to show one package: the SMTP door judged it at receipt with the full
# XdmLimits (formats/xdm.py); to show it, 16 MiB a document and 32 MiB in all are plenty (a 1.9 MiB zip at
# the 200:1 ratio the door tolerates would otherwise inflate to ~250 MiB, per request).
XDM_VIEW_LIMITS = XdmLimits(max_member_bytes=16 * MIB, max_total_bytes=32 * MIB)


def _xdm_contents(raw: bytes) -> dict:
    """The IHE_XDM.ZIP of a mail, for the eye: files (name, size), documents, findings; `package` null when
    the mail carries none, `error` when the package cannot be read at all."""
    package = find_attachment(raw, XDM_ATTACHMENT)[1]
    result: dict[str, Any] = {"package": None, "size": 0, "files": [], "documents": [], "findings": [],
                              "error": None}
    if package is None:
        return result
    result.update(package=XDM_ATTACHMENT, size=len(package))
    try:
        with zipfile.ZipFile(io.BytesIO(package)) as zf:
            result["files"] = [{"name": i.filename, "size": i.file_size} for i in zf.infolist()[:MAX_XDM_FILES]
                               if not i.is_dir()]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, OSError):
        pass  # read_package says why below
    try:
        pkg = read_package(package, XDM_VIEW_LIMITS)
    except XdmError as exc:
        result["error"] = {"code": exc.code, "message": exc.message}
        return result
    result["findings"] = pkg.findings
    for doc in pkg.documents:
        meta = doc.entry.meta
        result["documents"].append({
            "path": doc.path, "unique_id": meta.get("unique_id") or "", "title": meta.get("title") or "",
            "type_code": meta.get("type_code") or "", "mime_type": meta.get("mime_type") or "",
            "size": len(doc.content), "hash_ok": doc.hash_ok, "size_ok": doc.size_ok, "action": doc.action})
    return result


def _parts(raw: bytes) -> list[dict]:
    """The MIME parts of a message, for the eye: content type, file name, size."""
    parsed = BytesParser(policy=policy.default).parsebytes(raw)
    parts = []
    for part in parsed.walk():
        if part.is_multipart():
            continue
        payload = part.get_payload(decode=True) or b""
        parts.append({"content_type": part.get_content_type(), "filename": part.get_filename(),
                      "size": len(payload)})
    return parts


def blueprint(bench: Bench) -> Blueprint:
    bp = Blueprint("mss", __name__)
    xdm_readers = threading.BoundedSemaphore(XDM_READERS)
    world = bench.world

    @bp.get("/mss/mailboxes")
    def mailboxes():
        with world.read() as tx:
            return listing(lambda offset, limit: [
                {"address": m.address, "type": m.type, "owner": m.owner, "role": m.role,
                 "behaviour": m.behaviour or {}} for m in world.directory.mailboxes(tx, offset=offset, limit=limit)],
                lambda: tx.count("mailboxes"))

    @bp.get("/mss/mailboxes/<address>/messages")
    def mailbox_messages(address: str):
        with world.read() as tx:
            messages = world.mss.messages(tx, address)   # one mailbox's: sorted by folder and UID in Python
            return listing(lambda offset, limit: [_message_row(m) for m in
                                                   messages[offset:None if limit is None else offset + limit]],
                            lambda: len(messages))

    @bp.put("/mss/mailboxes/<address>/behaviour")
    def mailbox_behaviour(address: str):
        with world.transaction() as tx:
            box = world.mss.set_behaviour(tx, address, json_body())
            world.journal.append(tx, "control", "mss-behaviour", actor="control", raw=f"{box.address} {box.behaviour}")
            return jsonify({"address": box.address, "type": box.type, "owner": box.owner, "role": box.role,
                            "behaviour": box.behaviour})

    @bp.get("/mss/messages/<message_id>")
    def mail_message(message_id: str):
        with world.read() as tx:
            message = world.mss.message(tx, message_id)
            raw = world.mss.raw(tx, message_id)
        if request.args.get("raw", "0").lower() in ("1", "true", "yes"):
            return download(raw, f"{message_id}.eml", "message/rfc822")
        return jsonify({**_message_row(message), "parts": _parts(raw)})

    @bp.get("/mss/messages/<message_id>/xdm")
    def mail_xdm(message_id: str):
        """What the message's IHE_XDM.ZIP holds: its files, its documents' metadata and the checks' findings."""
        with world.read() as tx:
            world.mss.message(tx, message_id)   # 404 MESSAGE_UNKNOWN first
            raw = world.mss.raw(tx, message_id)
        # The dashboard asks for up to 50 at once: a few are read at a time, each within XDM_VIEW_LIMITS.
        if not xdm_readers.acquire(timeout=XDM_WAIT):
            raise ApiError(503, "BUSY", f"{XDM_READERS} packages are being read; ask again in a moment")
        try:
            return jsonify(_xdm_contents(raw))
        finally:
            xdm_readers.release()

    @bp.post("/mss/send")
    def mail_send():
        """A professional of the world sends an XDM package (base64) to mailboxes, through the world's
        delivery (as the professional's operator would)."""
        body = json_body()
        missing = [k for k in ("from", "to", "package") if not body.get(k)]
        if missing:
            raise ApiError(400, "INVALID_PARAMETER", f"send from, to (a list) and package (base64): missing "
                           f"{', '.join(missing)}")
        try:
            package = base64.b64decode(body["package"], validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(400, "INVALID_PARAMETER", "package is not base64") from None
        to = body["to"] if isinstance(body["to"], list) else [body["to"]]
        raw = xdm_mail(sender=body["from"], to=to, subject=body.get("subject") or "XDM/1.0/DDM",
                       package=package, text=body.get("text", ""),
                       disposition_notification_to=body["from"] if body.get("mdn") else None)
        # The package's findings and first document, as the SMTP door records them: sent as it is, broken
        # or not (the recipient judges it; MSS/UX.12 checks its answer against these findings).
        findings, document, ins = xdm_check(raw)
        # The X-MSS-* rules (REF2/...) judge the mails the software under test writes, not this stand-in's.
        findings = [f for f in findings if not f["rule"].startswith("REF2/")]
        with world.transaction() as tx:
            stored = world.mss.deliver(tx, body["from"], to, raw, cause="control:mss-send", findings=findings,
                                       document=document)
            world.journal.append(tx, "mss", "DELIVER", direction="out", actor=body["from"], document=document,
                                 patient_ins=ins, findings=findings, raw=raw, ref=stored[0].message_id if stored else None)
            return jsonify([_message_row(m) for m in stored])

    return bp
