"""Pretty-printing of the raw messages the journal kept, for the evidence report.

Each printer takes hostile input (a raw message is whatever crossed a door, truncated to the journal's
bound) and never raises: what it cannot read it shows as text, with a note saying why. Output is plain
data (JSON-able); escaping is the renderer's job.

- XML (SOAP, CDA, METADATA.XML): parsed safely (formats/xml.py) and indented; long base64 text abbreviated.
- MIME: a mail (headers, then parts) or a SOAP MTOM body (parts only): each part with its headers, content
  type and decoded size; XML parts indented; an IHE_XDM.ZIP listed member by member with its METADATA.XML's
  document entries.
- HL7 v2: one segment a line, long base64 abbreviated; an OBX's embedded document (ED, Base64) decoded and
  printed as a part.
- Tokens: every JWT found in the text, header and claims decoded; the signature is never verified here.
- JSON indented; a form (`a=b&c=d`, as the OIDC door journals its requests) one parameter a line.
"""

from __future__ import annotations

import base64
import binascii
import email
import email.errors
import email.header
import io
import json
import re
import zipfile
from dataclasses import dataclass
from email import policy
from email.message import Message
from urllib.parse import parse_qsl

from lxml import etree

from ..formats.xml import XmlError, parse_xml


@dataclass(frozen=True)
class PrettyLimits:
    text_chars: int = 100_000      # one printed text (a part, a message) is cut beyond this
    base64_chars: int = 120        # a base64 run longer than this is abbreviated in the printed text
    parts: int = 20                # MIME parts / embedded documents listed per message
    zip_members: int = 50          # XDM zip members listed
    tokens: int = 5                # JWTs decoded per message
    decoded_bytes: int = 2 * 1024 * 1024   # an embedded document decoded for printing, at most


LIMITS = PrettyLimits()

_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")
_HEADER_LINE = re.compile(r"^[A-Za-z0-9-]+:[ \t]")
_PART_HEADERS = ("Content-Type", "Content-Transfer-Encoding", "Content-Disposition", "Content-ID",
                 "Content-Description")


def _cut(text: str, limits: PrettyLimits) -> tuple[str, bool]:
    if len(text) <= limits.text_chars:
        return text, False
    return text[: limits.text_chars] + f"\n… [coupé : {len(text) - limits.text_chars} caractères de plus]", True


def _abbreviate_base64(text: str, limits: PrettyLimits) -> str:
    pattern = re.compile(r"[A-Za-z0-9+/=]{" + str(limits.base64_chars + 1) + ",}")

    def short(m: re.Match) -> str:
        run = m.group(0)
        if not re.search(r"[0-9+/]", run):     # a long word, not base64
            return run
        return f"{run[:60]}… [{len(run)} caractères base64]"
    return pattern.sub(short, text)


# XML -------------------------------------------------------------------------------------------------
def pretty_xml(data: bytes | str, limits: PrettyLimits = LIMITS) -> dict:
    """{"kind": "xml", "text", "note"}: the document indented, or as text with the reason it is not XML."""
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    if isinstance(data, str):
        # The journal decoded the bytes: the declaration may name another encoding; UTF-8 is what we hold.
        raw = re.sub(rb"^(\s*<\?xml[^>]*?)encoding=[\"'][^\"']*[\"']", rb"\1", raw, count=1)
    try:
        root = parse_xml(raw)
    except XmlError as exc:
        text, _ = _cut(_abbreviate_base64(raw.decode("utf-8", "replace"), limits), limits)
        return {"kind": "text", "text": text, "note": f"XML illisible : {exc}"}
    for node in root.iter():
        if isinstance(node.tag, str) and node.text and len(node.text) > limits.base64_chars:
            node.text = _abbreviate_base64(node.text, limits)
    etree.indent(root, space="  ")
    text = etree.tostring(root, encoding="unicode")
    text, cut = _cut(text, limits)
    return {"kind": "xml", "text": text, "note": "coupé" if cut else None}


# HL7 v2 ----------------------------------------------------------------------------------------------
def pretty_hl7(text: str, limits: PrettyLimits = LIMITS) -> dict:
    """{"kind": "hl7", "text", "parts"}: one segment a line; the documents embedded in OBX (ED, Base64)."""
    text = text.strip("\x0b\x1c\r\n ")
    segments = [s for s in re.split(r"\r\n|\r|\n", text) if s.strip()]
    field_sep = segments[0][3:4] if segments and segments[0].startswith("MSH") and len(segments[0]) > 3 else "|"
    component_sep = segments[0][4:5] if segments and len(segments[0]) > 4 else "^"
    parts: list[dict] = []
    for seg in segments:
        if not seg.startswith("OBX") or len(parts) >= limits.parts:
            continue
        fields = seg.split(field_sep)
        if len(fields) > 5 and fields[2] == "ED":
            comps = fields[5].split(component_sep)
            if len(comps) >= 5 and comps[3].lower() == "base64":
                parts.append(_embedded(comps[4], comps[2], fields[3].split(component_sep)[0], limits))
    lines = [_abbreviate_base64(s, limits) for s in segments]
    out, cut = _cut("\n".join(lines), limits)
    return {"kind": "hl7", "text": out, "parts": parts, "note": "coupé" if cut else None}


def _embedded(b64: str, subtype: str, code: str, limits: PrettyLimits) -> dict:
    title = f"Document intégré (OBX {code}, {subtype or '?'})"
    padded = b64.strip() + "=" * (-len(b64.strip()) % 4)
    try:
        content = base64.b64decode(padded[: limits.decoded_bytes * 4 // 3 + 4], validate=False)
    except (binascii.Error, ValueError) as exc:
        return {"title": title, "content_type": None, "size": 0, "kind": "text", "text": "",
                "note": f"base64 illisible : {exc}"}
    content_type = "text/xml" if subtype.upper() == "XML" else subtype
    part = {"title": title, "content_type": content_type, "size": len(content)}
    return part | _print_bytes(content, content_type or "", limits)


def _print_bytes(content: bytes, content_type: str, limits: PrettyLimits) -> dict:
    """A decoded body printed by its look: XML, JSON, text, or only its size when it is binary."""
    head = content[:200].lstrip()
    if head.startswith(b"<") or content_type.endswith("xml"):
        return pretty_xml(content, limits)
    if content_type == "application/json" or head[:1] in (b"{", b"["):
        printed = pretty_json(content.decode("utf-8", "replace"), limits)
        if printed["kind"] == "json":
            return printed
    if content_type.startswith("text/") or content_type.startswith("message/") or _is_text(content):
        text, cut = _cut(_abbreviate_base64(content.decode("utf-8", "replace"), limits), limits)
        return {"kind": "text", "text": text, "note": "coupé" if cut else None}
    return {"kind": "binary", "text": None, "note": None}


def _is_text(content: bytes) -> bool:
    sample = content[:4096]
    if not sample:
        return True
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return b"\x00" not in sample


# JSON and forms --------------------------------------------------------------------------------------
def pretty_json(text: str, limits: PrettyLimits = LIMITS) -> dict:
    try:
        value = json.loads(text)
    except ValueError as exc:
        out, _ = _cut(text, limits)
        return {"kind": "text", "text": out, "note": f"JSON illisible : {exc}"}
    out, cut = _cut(json.dumps(value, indent=2, ensure_ascii=False), limits)
    return {"kind": "json", "text": out, "note": "coupé" if cut else None}


def pretty_form(text: str, limits: PrettyLimits = LIMITS) -> dict:
    """`issuer METHOD endpoint a=b&c=d` (the OIDC door's journal line) or a bare form: one parameter a line."""
    head, _, query = text.strip().rpartition(" ") if " " in text.strip() else ("", "", text.strip())
    if "=" not in query:
        head, query = text.strip(), ""
    lines = [head] if head else []
    lines += [f"  {k} = {v}" for k, v in parse_qsl(query, keep_blank_values=True)]
    out, cut = _cut("\n".join(lines), limits)
    return {"kind": "form", "text": out, "note": "coupé" if cut else None}


# Tokens ----------------------------------------------------------------------------------------------
def _b64url_json(segment: str) -> dict | None:
    try:
        value = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, binascii.Error):
        return None
    return value if isinstance(value, dict) else None


def decode_jwt(token: str) -> dict | None:
    """{"header", "claims", "signature"} of a compact JWS, or None if it is not one. The signature is only
    described, never verified: the report shows what was sent, not whether it was genuine."""
    pieces = token.split(".")
    if len(pieces) != 3:
        return None
    header, claims = _b64url_json(pieces[0]), _b64url_json(pieces[1])
    if header is None or claims is None:
        return None
    return {"header": header, "claims": claims,
            "signature": {"present": bool(pieces[2]), "verified": False, "algorithm": header.get("alg")},
            "token": token[:40] + ("…" if len(token) > 40 else "")}


def find_tokens(text: str, limits: PrettyLimits = LIMITS) -> list[dict]:
    found, seen = [], set()
    for m in _JWT.finditer(text):
        if m.group(0) in seen:
            continue
        seen.add(m.group(0))
        decoded = decode_jwt(m.group(0))
        if decoded is not None:
            found.append(decoded)
        if len(found) >= limits.tokens:
            break
    return found


# MIME ------------------------------------------------------------------------------------------------
def pretty_mime(raw: bytes | str, limits: PrettyLimits = LIMITS) -> dict:
    """A mail (headers and body) or a bare multipart body (MTOM: it starts with its boundary line).
    {"kind": "mime", "headers", "text" (the top headers), "parts": [...], "note"}."""
    data = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else bytes(raw)
    note = None
    stripped = data.lstrip(b"\r\n")
    if stripped.startswith(b"--"):
        boundary = stripped.split(b"\n", 1)[0].strip()[2:].decode("ascii", "replace")
        data = (f'Content-Type: multipart/related; boundary="{boundary}"\r\n\r\n').encode() + stripped
        top_headers: dict[str, str] = {}
        kind_note = "corps MIME multipart (MTOM/XOP)"
    else:
        kind_note = None
    message = email.message_from_bytes(data, policy=policy.compat32)
    if kind_note is None:
        top_headers = {k: _header_text(v) for k, v in message.items()}
    parts: list[dict] = []
    skipped = 0
    for part in _leaves(message):
        if len(parts) >= limits.parts:
            skipped += 1
            continue
        parts.append(_mime_part(part, limits))
    if skipped:
        note = f"{skipped} autres parties non listées"
    if message.defects and not parts:
        note = "message MIME mal formé : " + ", ".join(type(d).__name__ for d in message.defects[:3])
    text = "\n".join(f"{k}: {v}" for k, v in top_headers.items())
    text, _ = _cut(text, limits)
    return {"kind": "mime", "text": text or None, "headers": top_headers, "parts": parts,
            "note": "; ".join(n for n in (kind_note, note) if n) or None}


def _header_text(value) -> str:
    try:
        return str(email.header.make_header(email.header.decode_header(str(value))))
    except (ValueError, LookupError, email.errors.HeaderParseError):
        return str(value)


def _leaves(message: Message, depth: int = 0):
    """The parts to list, in order: multiparts are opened (to a bounded depth); a message/* part (a report's
    machine-readable part, a forwarded mail) is one part, shown as text."""
    if message.get_content_maintype() == "multipart" and message.is_multipart() and depth < 8:
        for child in message.get_payload():
            if isinstance(child, Message):   # a multipart's payload is its list of parts
                yield from _leaves(child, depth + 1)
    else:
        yield message


def _mime_part(part: Message, limits: PrettyLimits) -> dict:
    content_type = part.get_content_type()
    headers = {k: _header_text(v) for k, v in part.items() if k.title() in _PART_HEADERS or k in _PART_HEADERS}
    filename = part.get_filename()
    payload = part.get_payload()
    if isinstance(payload, list):     # message/*: the email package parsed it into messages
        content = "\n".join(m.as_string() if isinstance(m, Message) else str(m) for m in payload).encode(
            "utf-8", "replace")
    else:
        try:
            decoded = part.get_payload(decode=True)
            content = decoded if isinstance(decoded, bytes) else b""
        except (ValueError, binascii.Error):
            content = b""
    out: dict = {"title": filename or (part.get("Content-ID") or "").strip() or content_type, "content_type": content_type, "filename": filename,
                 "headers": headers, "size": len(content)}
    is_zip = content_type in ("application/zip", "application/x-zip-compressed") or \
        (filename or "").lower().endswith(".zip") or content[:4] == b"PK\x03\x04"
    if is_zip:
        return out | {"kind": "zip", "text": None, "note": None} | xdm_listing(content, limits)
    return out | _print_bytes(content[: limits.decoded_bytes], content_type, limits)


def xdm_listing(content: bytes, limits: PrettyLimits = LIMITS) -> dict:
    """{"members": [{"name", "size", "compressed"}], "entries": [METADATA.XML's document entries], "note"}."""
    from ..formats.xdm import XdmError, read_package

    try:
        zf = zipfile.ZipFile(io.BytesIO(content))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError) as exc:
        return {"members": [], "entries": [], "findings": [], "note": f"archive zip illisible (tronquée ?) : {exc}"}
    with zf:
        infos = zf.infolist()
        members = [{"name": i.filename, "size": i.file_size, "compressed": i.compress_size}
                   for i in infos[: limits.zip_members]]
    notes = [f"{len(infos) - limits.zip_members} autres fichiers non listés"] if len(infos) > limits.zip_members else []
    entries: list[dict] = []
    findings: list[str] = []
    try:
        package = read_package(content)
    except XdmError as exc:
        notes.append(f"paquet XDM refusé ({exc.code}) : {exc.message}")
    else:
        notes.append(f"métadonnées : {package.metadata_path}")
        for doc in package.documents:
            meta = doc.entry.meta
            entries.append({
                "path": doc.path, "unique_id": doc.entry.unique_id, "title": meta.get("title", ""),
                "type_code": meta.get("type_code", ""), "mime_type": meta.get("mime_type", ""),
                "confidentiality": meta.get("confidentiality", []), "size": len(doc.content),
                "hash_ok": doc.hash_ok, "size_ok": doc.size_ok, "action": doc.action,
                "patient_ins": doc.entry.patient_ins,
            })
        findings = [f"{f['rule']} ({f['severity']}) : {f.get('message_fr') or f['message']}"
                    for f in package.findings[:10]]
    return {"members": members, "entries": entries, "findings": findings, "note": "; ".join(notes) or None}


# Dispatch --------------------------------------------------------------------------------------------
def pretty_raw(raw: str | bytes, channel: str = "", limits: PrettyLimits = LIMITS) -> dict:
    """The journal's raw text (or a message's bytes) printed by its look: {"kind", "text", "parts", "tokens",
    "note"}. kind: empty, xml, hl7, mime, json, form, text."""
    out: dict
    data = raw if isinstance(raw, bytes) else None
    text_raw = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    body = text_raw.lstrip("\ufeff\x0b \t\r\n")
    if not body:
        out = {"kind": "empty", "text": None}
    elif body.startswith("MSH") or body[:3] in ("FHS", "BHS"):
        out = pretty_hl7(body, limits)
    elif body.startswith("--") and "\n" in body[:200]:
        out = pretty_mime(data if data is not None else body, limits)
    elif body.startswith("<"):
        out = pretty_xml(body, limits)
    elif body[:1] in "{[":
        out = pretty_json(body, limits)
    elif _HEADER_LINE.match(body) and re.search(r"\r?\n\r?\n", body):
        out = pretty_mime(data if data is not None else body, limits)
    elif channel == "oidc" or re.fullmatch(r"(\S+ )*[\w.-]+=[^\s]*(&[\w.-]+=[^\s]*)*", body.strip()):
        out = pretty_form(body, limits)
    else:
        text, cut = _cut(_abbreviate_base64(body, limits), limits)
        out = {"kind": "text", "text": text, "note": "coupé" if cut else None}
    out.setdefault("parts", [])
    out.setdefault("note", None)
    out["tokens"] = find_tokens(text_raw, limits)
    return out


__all__ = ["PrettyLimits", "decode_jwt", "find_tokens", "pretty_form", "pretty_hl7", "pretty_json", "pretty_mime",
           "pretty_raw", "pretty_xml", "xdm_listing"]
