"""SOAP on the DMP's wire: envelopes (1.2, and 1.1 as the ANS TD2.1 example sends it), WS-Addressing
2005/08 headers, MTOM/XOP packages (ITI-41, ITI-43) and SOAP faults.

Wire format only: no Flask, no world. The door hands `parse_request` the request's Content-Type and body
bytes and sends back what `render_response` / `render_fault` return. Every problem with the request is a
`SoapFault` naming, in plain English, what is wrong; nothing else escapes `parse_request`.

References: SOAP 1.2 Part 1 (envelope, faults, 5.4.7 Upgrade) and Part 2 section 7 (HTTP binding, status
codes); SOAP 1.1 section 4; WS-Addressing 1.0 Core and SOAP Binding; XOP 1.0, MTOM (SOAP 1.2 Message
Transmission Optimization Mechanism); RFC 2046 (multipart), RFC 2387 (multipart/related), RFC 2392 (cid:).
"""

from __future__ import annotations

import base64
import binascii
import copy
import itertools
import re
import uuid
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import quote, unquote

from lxml import etree

from ...formats.xml import XmlError, parse_xml

__all__ = [
    "DMP_FAULTS", "SOAP11", "SOAP12", "WSA", "WSA_ANONYMOUS", "WSA_FAULT_ACTION", "WSSE", "XOP", "SoapFault",
    "SoapLimits", "SoapRequest", "parse_request", "render_fault", "render_response", "xop_include",
]

SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
WSA = "http://www.w3.org/2005/08/addressing"
XOP = "http://www.w3.org/2004/08/xop/include"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
# The bench's own namespace for fault subcodes: the real DMP's catalogue of codes is not public (DOMAIN.md
# section 1, "Errors"), clients read the subcode's local name.
DMP_FAULTS = "urn:dmp:faults"
WSA_ANONYMOUS = WSA + "/anonymous"
WSA_FAULT_ACTION = WSA + "/soap/fault"
# WS-Addressing 1.0 SOAP Binding section 6: the [action] of the faults it defines
WSA_ADDRESSING_FAULT_ACTION = WSA + "/fault"
_XML_NS = "http://www.w3.org/XML/1998/namespace"

_ENVELOPE_NS = MappingProxyType({"1.1": SOAP11, "1.2": SOAP12})
_VERSION_OF_NS = MappingProxyType({SOAP11: "1.1", SOAP12: "1.2"})
# SOAP 1.2 Part 2 section 7.1.4: application/soap+xml; SOAP 1.1 section 6: text/xml.
_VERSION_OF_TYPE = MappingProxyType({"application/soap+xml": "1.2", "text/xml": "1.1"})
_SOAP_TYPE = MappingProxyType({"1.2": "application/soap+xml", "1.1": "text/xml"})
_XOP_TYPE = "application/xop+xml"
# SOAP 1.2 Part 1 section 5.4.6 fault codes, and their SOAP 1.1 section 4.4.1 counterparts.
_SOAP11_CODES = MappingProxyType({"Sender": "Client", "Receiver": "Server", "VersionMismatch": "VersionMismatch",
                                  "MustUnderstand": "MustUnderstand", "DataEncodingUnknown": "Client"})
# RFC 2046 section 5.1.1: a boundary is 1 to 70 characters.
_MAX_BOUNDARY = 70
# RFC 2045 section 6.1: the encodings that leave the bytes as they are.
_IDENTITY_ENCODINGS = frozenset({"", "binary", "8bit", "7bit"})
# What XML 1.0 (2.2, Char) excludes, listed: the negated class of what it allows took 3 ms to compile at start-up
# (sre builds a charset over the whole of Unicode); the same set of code points (tests/protocols/dmp).
_NOT_XML_CHAR = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_NOT_NCNAME_CHAR = re.compile(r"[^A-Za-z0-9_.\-]")
# The ASCII characters str.split() takes for white space: what base64 text may be wrapped and indented with.
_ASCII_SPACE = b" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"


@dataclass(frozen=True)
class SoapLimits:
    """Bounds on one request, checked before the work they bound."""

    # The whole HTTP body, MTOM parts included, refused before any parsing. No DMP size limit is published
    # (DOMAIN.md is silent); 64 MiB is formats/xml.py's parse_xml default, so every XML door shares one figure,
    # and it leaves room for an ITI-41 package (CDA with an embedded PDF + XAdES) even base64-inlined (+33 %).
    max_body_bytes: int = 64 * 1024 * 1024
    # MIME parts of an MTOM package, the root included; RFC 2387 sets no cap. TD2.1 sends 3 (root, CDA,
    # XAdES signature) and an ITI-41 submission one part per document, so 32 is ample; it bounds the
    # per-part work (header parsing, Content-ID bookkeeping) a hostile package can ask for.
    max_parts: int = 32
    # Element nesting of the envelope (root = 1). The deepest ANS example (dmp-wire, TD1.3a's answer)
    # nests 13 levels, requests 11; libxml2 stops at 256 without huge_tree (formats/xml.py). 128 keeps a
    # wide margin for real messages while refusing deep-nesting attacks well before libxml2's own cap.
    max_depth: int = 128


_DEFAULT_LIMITS = SoapLimits()


class SoapFault(Exception):
    """A request the DMP answers with a SOAP Fault.

    `code` is a SOAP 1.2 fault code ("Sender", "Receiver", "VersionMismatch"; "MustUnderstand" and
    "DataEncodingUnknown" are accepted too), `subcode` a stable DMP-style code ("DMPInvalidRequest"...),
    `reason` plain English, `status` the HTTP status (SOAP 1.2 Part 2 HTTP binding, section 7: 400 for
    Sender, 500 for the other codes; the door may pass another, e.g. 404 for an unknown service).
    `version` is the SOAP version the fault should be answered in when `parse_request` could tell (from the
    envelope or the Content-Type), None otherwise: `render_fault(None, fault, version=fault.version or "1.2")`.
    """

    def __init__(self, code: str, subcode: str, reason: str, *, detail: str = "", status: int | None = None,
                 subcode_ns: str = DMP_FAULTS, subsubcode: str = "", problem: tuple[str, str] | None = None
                 ) -> None:
        if code not in _SOAP11_CODES:
            raise ValueError(f"unknown SOAP fault code {code!r}: expected one of {', '.join(_SOAP11_CODES)}")
        super().__init__(f"{subsubcode or subcode}: {reason}")
        self.code = code
        self.subcode = subcode
        self.reason = reason
        self.detail = detail
        self.status = status if status is not None else (400 if code == "Sender" else 500)
        self.version: str | None = None
        # A WS-Addressing fault (WS-Addressing 1.0 SOAP Binding section 6.4) has its subcodes in the WS-A
        # namespace, possibly a sub-subcode, and a detail element (ProblemHeaderQName, ProblemAction).
        self.subcode_ns = subcode_ns
        self.subsubcode = subsubcode
        self.problem = problem            # (detail element local name in WSA, its text)

    @property
    def journal_code(self) -> str:
        """The code the journal records: the most precise one, prefixed wsa: for WS-Addressing's."""
        name = self.subsubcode or self.subcode
        return f"wsa:{name}" if self.subcode_ns == WSA else name


def _sender(subcode: str, reason: str, *, status: int | None = None) -> SoapFault:
    return SoapFault("Sender", subcode, reason, status=status)


@dataclass
class SoapRequest:
    """A parsed SOAP request. `attachments` maps Content-IDs (without <>, without "cid:", URL-decoded) to
    the decoded bytes of the MTOM package's other parts; `attachment_types` to their Content-Type."""

    version: str
    envelope: etree._Element
    header: etree._Element | None
    body: etree._Element
    action: str
    message_id: str = ""
    to: str = ""
    reply_to: str = ""
    mtom: bool = False
    attachments: dict[str, bytes] = field(default_factory=dict)
    security: etree._Element | None = None
    attachment_types: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)   # quirks accepted, for the door to journal as findings

    def binary(self, element: etree._Element) -> bytes:
        """The bytes an xs:base64Binary element carries: its base64 text, or the MTOM part its
        `xop:Include href="cid:..."` child names. SoapFault(Sender, DMPMtomError) when neither works."""
        includes = [child for child in element if child.tag == f"{{{XOP}}}Include"]
        name = _name(element)
        if len(includes) > 1:
            raise _sender("DMPMtomError", f"<{name}> holds {len(includes)} xop:Include elements; XOP allows one")
        if includes:
            href = includes[0].get("href") or ""
            if not href.lower().startswith("cid:"):
                raise _sender("DMPMtomError", f"the xop:Include in <{name}> has href {_clip(href)!r}, which is "
                                              "not a cid: URL naming a MIME part")
            cid = _content_id(href)
            if cid in self.attachments:
                return self.attachments[cid]
            if not self.mtom:
                raise _sender("DMPMtomError", f"<{name}> refers to the MIME part {_clip(href)!r}, but the request "
                                              "is not an MTOM package (it has no attachments)")
            known = ", ".join(f"<{_clip(c, 60)}>" for c in self.attachments) or "none"
            raise _sender("DMPMtomError", f"the xop:Include href {_clip(href)!r} in <{name}> names no MIME part "
                                          f"of the package (attachment Content-IDs: {known})")
        text = element.text or ""
        try:
            if text.isascii():   # a megabyte's base64: bytes.translate is three times str.split's speed
                return binascii.a2b_base64(text.encode("ascii").translate(None, _ASCII_SPACE), strict_mode=True)
            return base64.b64decode("".join(text.split()).encode("ascii"), validate=True)
        except (UnicodeEncodeError, binascii.Error) as err:
            raise _sender("DMPMtomError", f"the content of <{name}> is neither an xop:Include nor valid "
                                          f"base64 ({err})") from None


# Parsing ---------------------------------------------------------------------------------------------------

def parse_request(content_type: str, body: bytes, limits: SoapLimits = _DEFAULT_LIMITS, *,
                  soap_action: str = "") -> SoapRequest:
    """Parse one SOAP request: plain SOAP 1.2 (`application/soap+xml`), SOAP 1.1 (`text/xml`; the door
    passes the SOAPAction header as `soap_action`), or an MTOM package (`multipart/related;
    type="application/xop+xml"`) whose root holds a SOAP 1.2 or 1.1 envelope.

    The action is the WS-A Action header, required with the MessageID (MessageAddressingHeaderRequired);
    the Content-Type's `action` parameter or a non-empty `soap_action` that differ from it are an
    ActionMismatch (WS-Addressing 1.0 SOAP Binding). Raises SoapFault only (TypeError if `body` is not bytes), with `fault.version` set to
    the version to answer in when it can be told."""
    content_type = content_type or ""
    try:
        return _parse(content_type, body, limits, soap_action)
    except SoapFault as fault:
        if fault.version is None:
            fault.version = _version_hint(content_type)
        raise


@dataclass(frozen=True)
class _Part:
    headers: dict[str, str]
    content: bytes
    content_id: str
    content_type: str


def _parse(content_type: str, body: bytes, limits: SoapLimits, soap_action: str) -> SoapRequest:
    if not isinstance(body, bytes | bytearray | memoryview):
        raise TypeError("parse_request takes the body as bytes")
    body = bytes(body)
    if len(body) > limits.max_body_bytes:
        raise _sender("DMPTooLarge", f"the request body is {len(body)} bytes, over the limit of "
                                     f"{limits.max_body_bytes} bytes")
    media, params = _parse_media_type(content_type)
    if not media:
        raise _sender("DMPInvalidRequest", "the request has no Content-Type: expected application/soap+xml "
                                           "(SOAP 1.2), text/xml (SOAP 1.1) or multipart/related (MTOM)", status=415)
    if not body or body.isspace():
        raise _sender("DMPInvalidRequest", "the request body is empty: it must hold a SOAP envelope")
    attachments: dict[str, bytes] = {}
    part_types: dict[str, str] = {}
    if media in _VERSION_OF_TYPE:
        xml, expected, what = body, _VERSION_OF_TYPE[media], "the SOAP envelope"
        type_action, root_action = params.get("action", ""), ""
    elif media == "multipart/related":
        root, others, type_action, root_action = _read_mtom(params, body, limits)
        xml, expected, what = root.content, None, "the MTOM root part"
        for part in others:
            if part.content_id:
                attachments[part.content_id] = part.content
                part_types[part.content_id] = part.content_type
    else:
        raise _sender("DMPInvalidRequest", f"Content-Type {_clip(media)!r} is not SOAP: expected "
                                           "application/soap+xml (SOAP 1.2), text/xml (SOAP 1.1) or "
                                           "multipart/related; type=\"application/xop+xml\" (MTOM)", status=415)
    try:
        envelope = parse_xml(xml, max_bytes=limits.max_body_bytes, max_depth=limits.max_depth)
    except XmlError as err:
        raise _sender("DMPMalformedXML", f"{what} is not acceptable XML: {err}") from None
    if envelope.getroottree().docinfo.doctype:
        raise _sender("DMPMalformedXML", f"{what} has a DOCTYPE; a SOAP message must not contain one "
                                         "(SOAP 1.2 Part 1 section 5, SOAP 1.1 section 3)")
    version = _envelope_version(envelope, expected, media)
    try:
        request = _read_envelope(envelope, version, type_action, soap_action, attachments, part_types,
                                 mtom=expected is None)
    except SoapFault as fault:
        fault.version = version
        raise
    if root_action.strip() and root_action.strip() != request.action:
        # The ANS TD2.1 example (a SoapUI recording, answered with Success) carries SoapUI's operation name
        # as the root part's action: the DMP takes it, so the bench notes it rather than refusing it.
        request.notes.append(f"the MTOM root part's action parameter {_clip(root_action.strip())!r} is not the "
                             f"WS-Addressing Action {_clip(request.action)!r} (WS-Addressing 1.0 SOAP Binding "
                             "would call it an ActionMismatch)")
    return request


def _envelope_version(envelope: etree._Element, expected: str | None, media: str) -> str:
    qname = etree.QName(envelope)
    if qname.localname != "Envelope":
        raise _sender("DMPInvalidRequest", f"the root element is <{_name(envelope)}>, not a SOAP Envelope")
    version = _VERSION_OF_NS.get(qname.namespace or "")
    if version is None:
        # SOAP 1.2 Part 1 section 5.4.7: an Envelope in another namespace is a VersionMismatch.
        raise SoapFault("VersionMismatch", "DMPVersionMismatch",
                        f"the Envelope is in namespace {_clip(qname.namespace or '')!r}, not SOAP 1.2's {SOAP12} "
                        f"(nor SOAP 1.1's {SOAP11})")
    if expected is not None and version != expected:
        fault = SoapFault("VersionMismatch", "DMPVersionMismatch",
                          f"a SOAP {version} envelope (namespace {_ENVELOPE_NS[version]}) was sent as {media}, "
                          f"the media type of SOAP {expected}: send a SOAP {expected} envelope or use "
                          f"Content-Type {_SOAP_TYPE[version]}")
        # SOAP 1.2 Part 1 Appendix A: a SOAP 1.1 envelope gets its VersionMismatch fault as SOAP 1.1; likewise
        # a 1.2 envelope sent as text/xml gets a 1.2 fault, the version its sender reads.
        fault.version = version
        raise fault
    return version


def _read_envelope(envelope: etree._Element, version: str, type_action: str, soap_action: str,
                   attachments: dict[str, bytes], types: dict[str, str], *, mtom: bool) -> SoapRequest:
    ns = _ENVELOPE_NS[version]
    children = [child for child in envelope if isinstance(child.tag, str)]
    headers = [child for child in children if child.tag == f"{{{ns}}}Header"]
    bodies = [child for child in children if child.tag == f"{{{ns}}}Body"]
    if len(headers) > 1:
        raise _sender("DMPInvalidRequest", f"the Envelope has {len(headers)} Header elements; SOAP allows one")
    if not bodies:
        raise _sender("DMPInvalidRequest", f"the SOAP Envelope has no Body element (soap:Body in {ns})")
    if len(bodies) > 1:
        raise _sender("DMPInvalidRequest", f"the Envelope has {len(bodies)} Body elements; SOAP allows one")
    header = headers[0] if headers else None
    if header is not None and children.index(header) > children.index(bodies[0]):
        raise _sender("DMPInvalidRequest", "the SOAP Header comes after the Body; it must come first")
    content = [child for child in bodies[0] if isinstance(child.tag, str)]
    if not content:
        raise _sender("DMPInvalidRequest", "the SOAP Body is empty: it must hold the request element")
    # WS-Addressing is required [IHE ITI TF-2x Appendix V, V.3.2 "WS-Addressing": wsa:Action and
    # wsa:MessageID are required on a request]: no Action taken from the Content-Type or SOAPAction instead.
    action_el = _wsa_header(header, "Action")
    if action_el is None:
        raise _addressing_required("Action", _missing_action(header))
    action = (action_el.text or "").strip()
    if not action:
        raise _addressing_required("Action", "the WS-Addressing Action header is empty")
    message_el = _wsa_header(header, "MessageID")
    if message_el is None or not _text(message_el):
        raise _addressing_required("MessageID", f"the WS-Addressing MessageID header (MessageID in namespace {WSA}) "
                                   + ("is empty" if message_el is not None else "is missing"))
    # WS-Addressing 1.0 SOAP Binding: the action parameter of application/soap+xml (SOAP 1.2, section 5.1)
    # or a non-empty SOAPAction (SOAP 1.1, section 4.1) must be the [action]; otherwise ActionMismatch.
    for what, value in (("Content-Type action parameter", type_action.strip()),
                        ("SOAPAction HTTP header", soap_action.strip().strip('"').strip())):
        if value and value != action:
            raise SoapFault("Sender", "InvalidAddressingHeader", f"the {what} {_clip(value)!r} is not the "
                            f"WS-Addressing Action {_clip(action)!r}", subcode_ns=WSA, subsubcode="ActionMismatch",
                            problem=("ProblemAction", action))
    reply_to = _wsa_header(header, "ReplyTo")
    address = reply_to.find(f"{{{WSA}}}Address") if reply_to is not None else None
    security = header.find(f"{{{WSSE}}}Security") if header is not None else None
    return SoapRequest(version=version, envelope=envelope, header=header, body=content[0], action=action,
                       message_id=_text(_wsa_header(header, "MessageID")), to=_text(_wsa_header(header, "To")),
                       reply_to=_text(address), mtom=mtom, attachments=attachments, security=security,
                       attachment_types=types)


def _addressing_required(name: str, reason: str) -> SoapFault:
    """WS-Addressing 1.0 SOAP Binding section 6.4.2: Sender, subcode wsa:MessageAddressingHeaderRequired,
    detail wsa:ProblemHeaderQName naming the missing header."""
    return SoapFault("Sender", "MessageAddressingHeaderRequired", f"{reason}: a required header representing a "
                     "Message Addressing Property is not present (WS-Addressing is required on the DMP, IHE ITI "
                     "TF-2x Appendix V)", subcode_ns=WSA, problem=("ProblemHeaderQName", f"wsa:{name}"))


def _wsa_header(header: etree._Element | None, name: str) -> etree._Element | None:
    if header is None:
        return None
    found = [child for child in header if child.tag == f"{{{WSA}}}{name}"]
    if len(found) > 1:
        raise _sender("DMPInvalidRequest", f"the Header holds {len(found)} WS-Addressing {name} elements; "
                                           "WS-Addressing allows one")
    return found[0] if found else None


def _missing_action(header: etree._Element | None) -> str:
    reason = f"the WS-Addressing Action header (Action in namespace {WSA}) is missing"
    if header is not None:
        for child in header:
            if isinstance(child.tag, str) and etree.QName(child).localname == "Action":
                return (f"{reason}; the Header has an Action in namespace "
                        f"{_clip(etree.QName(child).namespace or '(none)')!r} instead")
    return reason


def _text(element: etree._Element | None) -> str:
    return (element.text or "").strip() if element is not None else ""


# MTOM ------------------------------------------------------------------------------------------------------

def _read_mtom(params: dict[str, str], body: bytes, limits: SoapLimits) -> tuple[_Part, list[_Part], str, str]:
    """(root part, other parts, action of the package's Content-Type, action of the root part's) of an MTOM
    package."""
    package_type = _parse_media_type(params.get("type", ""))[0]
    if package_type != _XOP_TYPE:
        shown = f"type={_clip(params['type'])!r}" if "type" in params else "no type parameter"
        raise _sender("DMPMtomError", f"multipart/related with {shown} is not MTOM: the type parameter must "
                                      f"be \"{_XOP_TYPE}\" (SOAP with Attachments is not supported)")
    boundary = params.get("boundary", "")
    if not boundary:
        raise _sender("DMPMtomError", "the multipart/related Content-Type has no boundary parameter")
    if len(boundary) > _MAX_BOUNDARY or not boundary.isascii():
        raise _sender("DMPMtomError", f"the boundary {_clip(boundary)!r} is not 1 to {_MAX_BOUNDARY} ASCII "
                                      "characters (RFC 2046 section 5.1.1)")
    parts = [_read_part(raw, number) for number, raw in enumerate(
        _split_multipart(body, boundary.encode("ascii"), limits.max_parts), start=1)]
    seen: set[str] = set()
    for part in parts:
        if part.content_id in seen:
            raise _sender("DMPMtomError", f"two MIME parts have the Content-ID <{_clip(part.content_id)}>")
        if part.content_id:
            seen.add(part.content_id)
    start = params.get("start", "")
    if start:
        wanted = _content_id(start)
        matching = [part for part in parts if part.content_id == wanted]
        if not matching:
            known = ", ".join(f"<{_clip(p.content_id, 60)}>" for p in parts if p.content_id) or "none"
            raise _sender("DMPMtomError", f"no MIME part has the Content-ID {_clip(start)!r} that the start "
                                          f"parameter names as the root (Content-IDs: {known})")
        root = matching[0]
    else:
        root = parts[0]  # RFC 2387 section 3.2: without start, the root is the first part
    root_type, root_params = _parse_media_type(root.content_type)
    if root_type != _XOP_TYPE:
        raise _sender("DMPMtomError", f"the root part is {_clip(root_type or 'untyped')!r}: an MTOM root part "
                                      f"must be {_XOP_TYPE} (XOP 1.0, MTOM)")
    return root, [part for part in parts if part is not root], params.get("action", ""), root_params.get("action", "")


def _split_multipart(body: bytes, boundary: bytes, max_parts: int) -> list[bytes]:
    """The raw parts (headers and content) between the delimiters of RFC 2046 section 5.1.1. A delimiter is
    "--boundary" at the start of a line, the line break before it belonging to it; LF line breaks are
    accepted beside CRLF (the ANS TD2.1 example uses LF). The search runs in the regex engine, so that a
    body full of near-delimiters costs no Python loop per line."""
    # After "--boundary": "--" (the close delimiter), or transport padding then the end of the line.
    tail = rb"(--|[ \t]*(?=\r\n|\n|\Z))"
    escaped = re.escape(boundary)
    found = [(0, first)] if (first := re.match(rb"--" + escaped + tail, body)) else []
    delimiters = itertools.chain(found, ((m.start() + 1, m) for m in re.finditer(rb"\n--" + escaped + tail, body)))
    parts: list[bytes] = []
    opened: int | None = None  # where the current part's bytes begin
    for at, match in delimiters:
        if opened is not None:
            end = at - 2 if body[at - 2:at] == b"\r\n" else at - 1
            parts.append(body[opened:max(end, opened)])
        if match.group(1) == b"--":
            if opened is None:
                raise _sender("DMPMtomError", "the MTOM package closes (--boundary--) before its first part")
            return parts
        if len(parts) + 1 > max_parts:
            raise _sender("DMPTooLarge", f"the MTOM package has more than {max_parts} MIME parts, the limit")
        opened = match.end()
        opened += 2 if body.startswith(b"\r\n", opened) else 1 if body.startswith(b"\n", opened) else 0
    shown = _clip(boundary.decode("ascii"))
    if opened is None:
        raise _sender("DMPMtomError", f"the body holds no delimiter line --{shown}: the boundary parameter "
                                      "does not match the body")
    raise _sender("DMPMtomError", f"the MTOM package is truncated: the closing delimiter --{shown}-- is missing")


def _read_part(raw: bytes, number: int) -> _Part:
    if not raw:
        head, content = b"", b""  # RFC 2046 section 5.1.1: body-part := headers [CRLF *OCTET], both may be empty
    elif raw.startswith(b"\r\n"):
        head, content = b"", raw[2:]  # a part without headers
    elif raw.startswith(b"\n"):
        head, content = b"", raw[1:]
    else:
        ends = [(at, len(sep)) for sep in (b"\r\n\r\n", b"\n\n", b"\n\r\n") if (at := raw.find(sep)) >= 0]
        if not ends:
            raise _sender("DMPMtomError", f"MIME part {number} has no blank line ending its headers")
        at, length = min(ends)
        head, content = raw[:at], raw[at + length:]
    headers: dict[str, str] = {}
    last = ""
    for line in head.decode("latin-1").replace("\r\n", "\n").split("\n") if head else ():
        if line[:1] in (" ", "\t") and last:
            headers[last] += " " + line.strip()  # folded header (RFC 5322 section 2.2.3)
            continue
        name, colon, value = line.partition(":")
        name = name.strip().lower()
        if not colon or not name or not name.isascii() or " " in name:
            raise _sender("DMPMtomError", f"MIME part {number} has a malformed header line {_clip(line)!r}")
        if name in headers:
            last = ""  # a repeated header: the first one counts
            continue
        headers[name] = value.strip()
        last = name
    encoding = headers.get("content-transfer-encoding", "").lower()
    if encoding == "base64":
        try:
            content = base64.b64decode(b"".join(content.split()), validate=True)
        except binascii.Error as err:
            raise _sender("DMPMtomError", f"MIME part {number} is declared base64 but is not ({err})") from None
    elif encoding == "quoted-printable":
        content = binascii.a2b_qp(content)
    elif encoding not in _IDENTITY_ENCODINGS:
        raise _sender("DMPMtomError", f"MIME part {number} has Content-Transfer-Encoding {_clip(encoding)!r}; "
                                      "expected binary, 8bit, 7bit, base64 or quoted-printable")
    return _Part(headers, content, _content_id(headers.get("content-id", "")), headers.get("content-type", ""))


def _content_id(value: str) -> str:
    """A Content-ID header or a cid: URL, as a key: without <>, without "cid:", URL-decoded (RFC 2392)."""
    value = value.strip()
    if value[:4].lower() == "cid:":
        value = value[4:]
    if value.startswith("<") and value.endswith(">"):
        value = value[1:-1]
    return unquote(value.strip())


# Content-Type ----------------------------------------------------------------------------------------------

def _parse_media_type(value: str) -> tuple[str, dict[str, str]]:
    """("type/subtype" lower-cased, {parameter: value}) of a Content-Type (RFC 9110 section 8.3.1). Lenient:
    never raises; unquotes quoted strings; the first of repeated parameters counts."""
    items: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in value:
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == ";" and not quoted:
            items.append("".join(current))
            current = []
            continue
        current.append(char)
    items.append("".join(current))
    params: dict[str, str] = {}
    for item in items[1:]:
        name, equals, raw = item.partition("=")
        name = name.strip().lower()
        if not equals or not name:
            continue
        raw = raw.strip()
        if len(raw) >= 2 and raw[0] == raw[-1] == '"':
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1], flags=re.DOTALL)
        params.setdefault(name, raw)
    return items[0].strip().lower(), params


def _version_hint(content_type: str) -> str | None:
    media, params = _parse_media_type(content_type)
    if media == "multipart/related":
        media = _parse_media_type(params.get("start-info", ""))[0]
    return _VERSION_OF_TYPE.get(media)


# Rendering -------------------------------------------------------------------------------------------------

def xop_include(parent: etree._Element, cid: str) -> None:
    """Append `<xop:Include href="cid:...">` naming the attachment `cid` (as given to render_response)."""
    etree.SubElement(parent, f"{{{XOP}}}Include", nsmap={"xop": XOP}, href="cid:" + _cid_url(cid))


def render_response(request: SoapRequest, action: str, body: etree._Element, *,
                    attachments: dict[str, bytes] | None = None, mtom: bool = False,
                    message_id: str | None = None) -> tuple[str, bytes]:
    """(Content-Type, bytes) of the answer to `request`: an envelope in the request's SOAP version holding a
    copy of `body`, with WS-A Action, MessageID (`message_id` or a new urn:uuid), To anonymous and RelatesTo.
    With mtom=True an MTOM package whose extra parts are `attachments` (Content-ID -> bytes); the caller
    places the `xop_include` elements in `body`."""
    if attachments and not mtom:
        raise ValueError("attachments travel only in an MTOM package: pass mtom=True")
    envelope, header, soap_body = _skeleton(request.version)
    _addressing(header, request.version, action, request.message_id, message_id)
    soap_body.append(copy.deepcopy(body))
    xml = etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")
    if mtom:
        return _mtom_package(request.version, xml, attachments or {}, action)
    return _plain_type(request.version, action), xml


def render_fault(request: SoapRequest | None, fault: SoapFault, *, version: str = "1.2", mtom: bool = False,
                 message_id: str | None = None) -> tuple[int, str, bytes]:
    """(HTTP status, Content-Type, bytes) of a SOAP Fault, in the request's version when it is known, else in
    `version`. SOAP 1.2: Code/Value, Subcode/Value dmp:<subcode>, Reason/Text xml:lang="en", Detail; SOAP
    1.1: faultcode Client/Server, faultstring "<subcode>: <reason>", detail. WS-A headers when the request
    is known; an Upgrade header (SOAP 1.2 Part 1 section 5.4.7) on a VersionMismatch. A WS-Addressing fault
    (subcode_ns WSA) is rendered as its SOAP binding says (section 6): Subcode wsa:<subcode>, Subcode
    wsa:<subsubcode>, the wsa:Problem* detail, Action .../addressing/fault; SOAP 1.1 faultcode wsa:<most
    precise code>."""
    if request is not None:
        version = request.version
    if version not in _ENVELOPE_NS:
        raise ValueError(f"unknown SOAP version {version!r}: expected 1.1 or 1.2")
    ns = _ENVELOPE_NS[version]
    addressing_fault = fault.subcode_ns == WSA
    envelope, header, body = _skeleton(version, {"dmp": DMP_FAULTS} if not addressing_fault else {"wsa": WSA})
    fault_action = WSA_ADDRESSING_FAULT_ACTION if addressing_fault else WSA_FAULT_ACTION
    if request is not None or addressing_fault:   # a WS-A fault carries its [action] even before a request parsed
        _addressing(header, version, fault_action, request.message_id if request is not None else "", message_id)
    if fault.code == "VersionMismatch":
        upgrade = etree.SubElement(header, f"{{{SOAP12}}}Upgrade", nsmap={"upg": SOAP12})
        for supported in (SOAP12, SOAP11):
            etree.SubElement(upgrade, f"{{{SOAP12}}}SupportedEnvelope", nsmap={"ns1": supported},
                             qname="ns1:Envelope")
    if not len(header):
        envelope.remove(header)
    element = etree.SubElement(body, f"{{{ns}}}Fault")
    reason = _xml_text(fault.reason)
    if version == "1.2":
        code = etree.SubElement(element, f"{{{ns}}}Code")
        etree.SubElement(code, f"{{{ns}}}Value").text = f"soap:{fault.code}"
        prefix = "wsa" if addressing_fault else "dmp"
        subcode = etree.SubElement(code, f"{{{ns}}}Subcode")
        etree.SubElement(subcode, f"{{{ns}}}Value").text = f"{prefix}:{_ncname(fault.subcode)}"
        if fault.subsubcode:
            subsubcode = etree.SubElement(subcode, f"{{{ns}}}Subcode")
            etree.SubElement(subsubcode, f"{{{ns}}}Value").text = f"{prefix}:{_ncname(fault.subsubcode)}"
        text = etree.SubElement(etree.SubElement(element, f"{{{ns}}}Reason"), f"{{{ns}}}Text")
        text.set(f"{{{_XML_NS}}}lang", "en")
        text.text = reason
        detail_name = f"{{{ns}}}Detail"
    else:
        # WS-Addressing 1.0 SOAP Binding section 6.3 (SOAP 1.1): faultcode is the [Subsubcode] if any, else
        # the [Subcode]
        name = _ncname(fault.subsubcode or fault.subcode)
        etree.SubElement(element, "faultcode").text = (f"wsa:{name}" if addressing_fault
                                                       else f"soap:{_SOAP11_CODES[fault.code]}")
        faultstring = etree.SubElement(element, "faultstring")
        faultstring.set(f"{{{_XML_NS}}}lang", "en")
        faultstring.text = f"{name}: {reason}"
        detail_name = "detail"
    if fault.detail or fault.problem:
        detail = etree.SubElement(element, detail_name)
        if fault.problem:
            etree.SubElement(detail, f"{{{WSA}}}{fault.problem[0]}").text = _xml_text(fault.problem[1])
        if fault.detail:
            etree.SubElement(detail, f"{{{DMP_FAULTS}}}message").text = _xml_text(fault.detail)
    xml = etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")
    if mtom:
        content_type, payload = _mtom_package(version, xml, {}, fault_action)
    else:
        content_type, payload = _plain_type(version, fault_action if request is not None or addressing_fault
                                            else ""), xml
    # SOAP 1.1 section 6.2 and WS-I Basic Profile 1.1 R1126: a SOAP 1.1 Fault travels with HTTP 500 (1.1 has
    # no 400 binding; WCF and other 1.1 stacks do not read a Fault off a 400). Other statuses (404...) stay.
    status = 500 if version == "1.1" and fault.status == 400 else fault.status
    return status, content_type, payload


def _skeleton(version: str, extra_ns: dict[str, str] | None = None
              ) -> tuple[etree._Element, etree._Element, etree._Element]:
    ns = _ENVELOPE_NS[version]
    envelope = etree.Element(f"{{{ns}}}Envelope", nsmap={"soap": ns, "wsa": WSA, **(extra_ns or {})})
    return envelope, etree.SubElement(envelope, f"{{{ns}}}Header"), etree.SubElement(envelope, f"{{{ns}}}Body")


def _addressing(header: etree._Element, version: str, action: str, relates_to: str, message_id: str | None) -> None:
    ns = _ENVELOPE_NS[version]
    element = etree.SubElement(header, f"{{{WSA}}}Action")
    # DOMAIN.md section 1: the DMP marks Action mustUnderstand. The attribute is the envelope's own:
    # xs:boolean "true" in SOAP 1.2, "1" in SOAP 1.1 (which knows only "0" and "1").
    element.set(f"{{{ns}}}mustUnderstand", "true" if version == "1.2" else "1")
    element.text = _xml_text(action)
    etree.SubElement(header, f"{{{WSA}}}MessageID").text = _xml_text(message_id or f"urn:uuid:{uuid.uuid4()}")
    etree.SubElement(header, f"{{{WSA}}}To").text = WSA_ANONYMOUS
    if relates_to:
        etree.SubElement(header, f"{{{WSA}}}RelatesTo").text = _xml_text(relates_to)


def _plain_type(version: str, action: str) -> str:
    if version == "1.2":
        return "application/soap+xml; charset=UTF-8" + (f"; action={_quoted(action)}" if action else "")
    return "text/xml; charset=UTF-8"


def _mtom_package(version: str, xml: bytes, attachments: dict[str, bytes], action: str) -> tuple[str, bytes]:
    soap_type = _SOAP_TYPE[version]
    root_id = f"root.{uuid.uuid4().hex}@mockbench"
    parts = [((("Content-Type", f"{_XOP_TYPE}; charset=UTF-8; type={_quoted(soap_type)}"),
               ("Content-Transfer-Encoding", "binary"), ("Content-ID", f"<{root_id}>")), xml)]
    for cid, data in attachments.items():
        parts.append(((("Content-Type", "application/octet-stream"), ("Content-Transfer-Encoding", "binary"),
                       ("Content-ID", f"<{_cid_header(cid)}>")), bytes(data)))
    boundary = f"MIMEBoundary_{uuid.uuid4().hex}"
    while any(f"--{boundary}".encode() in data for _, data in parts):  # practically never loops
        boundary = f"MIMEBoundary_{uuid.uuid4().hex}"
    out = bytearray()
    for headers, data in parts:
        out += f"--{boundary}\r\n".encode()
        for name, value in headers:
            out += f"{name}: {value}\r\n".encode("ascii")
        out += b"\r\n" + data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    content_type = (f"multipart/related; type={_quoted(_XOP_TYPE)}; start={_quoted(f'<{root_id}>')}; "
                    f"start-info={_quoted(soap_type)}; boundary={_quoted(boundary)}")
    if version == "1.2" and action:
        content_type += f"; action={_quoted(action)}"
    return content_type, bytes(out)


# Small helpers ---------------------------------------------------------------------------------------------

def _cid_url(cid: str) -> str:
    # RFC 2392: the cid: URL is the Content-ID %-encoded; ":" and "/" too, as the DMP itself writes them.
    return quote(cid, safe="@!$&'()*+,;=-._~")


def _cid_header(cid: str) -> str:
    # In the Content-ID header only what would break the header or the URL-decoding is %-encoded.
    return quote(cid, safe="@!$&'()*+,;=-._~:/[]?#")


def _quoted(value: str) -> str:
    cleaned = "".join(char for char in value if char.isascii() and char.isprintable())
    return '"' + cleaned.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _xml_text(value: str) -> str:
    return _NOT_XML_CHAR.sub("\ufffd", value)


def _ncname(value: str) -> str:
    name = _NOT_NCNAME_CHAR.sub("_", value) or "DMPError"
    return name if name[0].isalpha() or name[0] == "_" else "_" + name


def _clip(value: str, limit: int = 80) -> str:
    return value if len(value) <= limit else value[:limit] + "..."


def _name(element: etree._Element) -> str:
    return etree.QName(element).localname if isinstance(element.tag, str) else "?"
