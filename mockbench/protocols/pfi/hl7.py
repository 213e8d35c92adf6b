"""HL7 v2 payloads: decoding by MSH-18, splitting into segments and fields, reading values by position,
and building the ACK and ZAM messages. No sockets and no world here.

The reader is a plain split on the message's own separators, read lazily by position: the door reads a
few dozen values per message, and building python-hl7's full container tree for a 300 KB message cost
more than the rest of the work (the tests still talk to the door with python-hl7's client and read its
answers with python-hl7's parser). Segments are separated by CR; the ANS example files use LF, which the
bench accepts too, with a finding.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property

from ...world.journal import finding

# MSH-18 values of the ANS guide, and the Python codecs they name.
CHARSETS = {"UNICODE UTF-8": "utf-8", "8859/15": "iso-8859-15", "8859/1": "iso-8859-1", "ASCII": "ascii", "": "utf-8"}
DEFAULT_ENCODING = "UNICODE UTF-8"

# Table 0357 (message error condition), as the ANS guide lists it.
E_SEGMENT_SEQUENCE = "100"
E_REQUIRED_FIELD = "101"
E_DATA_TYPE = "102"
E_TABLE_VALUE = "103"
E_OTHER_HL7 = "199"
E_MESSAGE_TYPE = "200"
E_EVENT = "201"
E_PROCESSING_ID = "202"
E_VERSION = "203"
E_APPLICATION = "207"
TABLE_0357 = {
    "0": "Message accepted", "100": "Segment sequence error", "101": "Required field missing",
    "102": "Data type error", "103": "Table value not found", "198": "Non-conformant cardinality",
    "199": "Other HL7 Error", "200": "Unsupported message type", "201": "Unsupported event code",
    "202": "Unsupported processing id", "203": "Unsupported version id", "207": "Application error",
}


class Hl7Reject(Exception):
    """What is wrong with the message itself: answered by a technical ACK AE (error) or AR (reject)."""

    def __init__(self, ack_code: str, error: str, text: str, location: str = "") -> None:
        super().__init__(text)
        self.ack_code, self.error, self.text, self.location = ack_code, error, text, location


Segment = list[str]   # index = HL7 field number; [0] is the segment name, MSH [1] the field separator


@dataclass
class Inbound:
    text: str
    charset: str                     # MSH-18 as received ("" when absent)
    all: list[Segment]
    findings: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        # Read once: the door asks for a few dozen values per message, each needing the separators.
        self._enc = self.all[0][2]
        self._sep = self.all[0][1]
        self._by_name: dict[str, list[Segment]] = {}
        for segment in self.all:
            self._by_name.setdefault(segment[0], []).append(segment)

    @property
    def msh(self) -> Segment:
        return self.all[0]

    @property
    def encoding_characters(self) -> str:
        return self._enc

    def segments(self, name: str) -> list[Segment]:
        return list(self._by_name.get(name, ()))

    def names(self) -> list[str]:
        return [s[0] for s in self.all]

    def get(self, segment: str, fld: int, rep: int = 1, comp: int = 1, sub: int = 1, *, index: int = 0) -> str:
        segs = self._by_name.get(segment, ())
        return value(segs[index], fld, rep, comp, sub, self._enc, self._sep) if len(segs) > index else ""

    def value(self, segment: Segment, fld: int, rep: int = 1, comp: int = 1, sub: int = 1) -> str:
        return value(segment, fld, rep, comp, sub, self._enc, self._sep)

    def repetitions(self, segment: Segment, fld: int) -> int:
        return segment[fld].count(self._enc[1]) + 1 if fld < len(segment) else 0

    @cached_property
    def control_id(self) -> str:
        return self.value(self.msh, 10)

    @cached_property
    def message_type(self) -> tuple[str, str, str]:
        return self.value(self.msh, 9, 1, 1), self.value(self.msh, 9, 1, 2), self.value(self.msh, 9, 1, 3)

    @cached_property
    def operation(self) -> str:
        code, event, _ = self.message_type
        return f"{code}^{event}" if event else code


def value(segment: Segment, fld: int, rep: int = 1, comp: int = 1, sub: int = 1, enc: str = "^~\\&",
          field_sep: str = "|") -> str:
    """One value by HL7 position (1-based), unescaped, '' when absent. MSH keeps HL7 numbering (MSH-1 is
    the field separator, MSH-2 the encoding characters, both returned as they are)."""
    if fld >= len(segment):
        return ""
    text = segment[fld]
    if segment[0] == "MSH" and fld in (1, 2):
        return text
    comp_sep, rep_sep, _, sub_sep = enc
    for sep, index in ((rep_sep, rep), (comp_sep, comp), (sub_sep, sub)):   # repetition, component, subcomponent
        if sep in text:
            parts = text.split(sep)
            if index > len(parts):
                return ""
            text = parts[index - 1]
        elif index > 1:
            return ""
    return unescape(text, enc, field_sep) if enc[2] in text else text


def unescape(text: str, enc: str = "^~\\&", field_sep: str = "|") -> str:
    esc = enc[2]
    if esc not in text:
        return text
    table = {"F": field_sep, "S": enc[0], "R": enc[1], "E": esc, "T": enc[3]}
    out, i = [], 0
    while i < len(text):
        j = text.find(esc, i + 1) if text[i] == esc else -1
        if j > i and text[i + 1:j] in table:
            out.append(table[text[i + 1:j]])
            i = j + 1
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


# Decoding -----------------------------------------------------------------------------------------
def decode(payload: bytes) -> tuple[str, str, list[dict]]:
    """(text, MSH-18 as received, findings). The charset is read from the raw bytes before decoding, as a
    receiver must: MSH-18 is ASCII in every charset the guide allows."""
    findings: list[dict] = []
    start = payload.find(b"MSH")
    if start < 0:
        raise Hl7Reject("AR", E_SEGMENT_SEQUENCE, "the message does not start with an MSH segment", "MSH")
    if start > 0:
        junk = payload[:start]
        if junk.strip(b" \r\n\t\x00"):
            raise Hl7Reject("AR", E_SEGMENT_SEQUENCE, f"{len(junk)} bytes before the MSH segment", "MSH")
        payload = payload[start:]
    if len(payload) < 8:
        raise Hl7Reject("AR", E_REQUIRED_FIELD, "the MSH segment is truncated", "MSH^1^1")
    _check_delimiters(payload[:9].decode("latin-1"))  # before MSH-18 is looked for by position
    sep = payload[3:4]
    end = min([i for i in (payload.find(b"\r"), payload.find(b"\n")) if i >= 0] or [len(payload)])
    fields = payload[:end].split(sep)
    charset = fields[17].decode("ascii", "replace").strip() if len(fields) > 17 else ""
    label = charset.split("~")[0].strip()
    encoding = CHARSETS.get(label.upper() if label.upper() in CHARSETS else label)
    if encoding is None:
        raise Hl7Reject("AR", E_TABLE_VALUE, f"MSH-18 {charset!r} is not a character set the PFI accepts "
                        "(UNICODE UTF-8 or 8859/15)", "MSH^1^18")
    if not label:
        findings.append(finding("CDA-HL7/MSH-18", "MSH-18 is empty: the message was read as UTF-8"))
    try:
        text = payload.decode(encoding)
    except UnicodeDecodeError as exc:
        raise Hl7Reject("AE", E_DATA_TYPE, f"the message is not valid {label or 'UTF-8'}: byte "
                        f"{payload[exc.start]:#04x} at offset {exc.start}", "MSH^1^18") from None
    return text, charset, findings


def _check_delimiters(head: str) -> None:
    """MSH-1 and MSH-2 from the first 9 characters of the message: a separator, then exactly four distinct
    encoding characters (HL7 2.5 / 2.6) that end MSH-2."""
    if len(head) < 9 or head[3] in "\r\n^~\\&" or head[3].isalnum():
        raise Hl7Reject("AR", E_REQUIRED_FIELD, "MSH-1 (the field separator) is missing or not a separator",
                        "MSH^1^1")
    sep, encoding_chars = head[3], head[4:8]
    if (len(set(encoding_chars)) != 4 or sep in encoding_chars or any(c.isalnum() for c in encoding_chars)
            or head[8] not in (sep, "\r", "\n")):
        raise Hl7Reject("AR", E_REQUIRED_FIELD, f"MSH-2 {head[4:].split(sep)[0]!r} does not hold four distinct "
                        "encoding characters", "MSH^1^2")


def parse(payload: bytes) -> Inbound:
    text, charset, findings = decode(payload)
    if "\n" in text:
        lf_only = "\r" not in text
        text = text.replace("\r\n", "\r").replace("\n", "\r")
        findings.append(finding("HL7/SEGMENT-SEPARATOR", "segments are separated by LF" if lf_only else
                                "segments are separated by CR LF", severity="info"))
    text = text.rstrip("\r")
    _check_delimiters(text[:9])
    sep = text[3]
    segments: list[Segment] = []
    for i, line in enumerate(text.split("\r")):
        if not line or line.isspace():   # as `not line.strip()`, without copying a segment of 300 KB
            continue
        fields = line.split(sep)
        name = fields[0]
        if len(name) != 3 or not name.isalnum() or not (name.isupper() or name[0] == "Z"):
            raise Hl7Reject("AE", E_SEGMENT_SEQUENCE, f"segment {i + 1} has no valid name ({name[:10]!r})",
                            f"{name[:3]}^{i + 1}")
        segments.append(["MSH", sep, *fields[1:]] if name == "MSH" and i == 0 else fields)
    return Inbound(text, charset, segments, findings)


def read_header(payload: bytes) -> Inbound | None:
    """The MSH segment alone, for a message that `parse` refused as a whole (a bad segment further on, bytes
    invalid in its charset after the MSH): the ACK's MSA-2 must still name its MSH-10. None when the MSH
    itself cannot be read."""
    start = payload.find(b"MSH")
    if start < 0 or payload[:start].strip(b" \r\n\t\x00"):
        return None
    line = payload[start:].split(b"\r", 1)[0].split(b"\n", 1)[0]
    try:
        return parse(line)
    except Hl7Reject:
        return None


# Building answers ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ErrorItem:
    code: str                       # table 0357
    text: str                       # ERR-8, the reason in plain words
    location: str = ""              # ERR-2: segment^sequence^field
    severity: str = "E"
    application: str = ""           # ERR-5: code^label^system


def _escape(text: str, enc: str = "^~\\&", sep: str = "|") -> str:
    """HL7 escaping for a free text placed in a field."""
    out = text.replace("\\", "\\E\\").replace(sep, "\\F\\").replace(enc[0], "\\S\\").replace(enc[1], "\\R\\")
    return out.replace(enc[3], "\\T\\").replace("\r", " ").replace("\n", " ")


def build_ack(inbound: Inbound | None, ack_code: str, control_id: str, now: str,
              errors: Iterable[ErrorItem] = (), *, application: str = "PFI", facility: str = "MOCKBENCH") -> str:
    """ACK^{event}^ACK with MSH-3/4 and MSH-5/6 swapped from the message acknowledged; MSA-2 is its MSH-10."""
    if inbound is not None:
        msh = inbound.msh
        sending = (value(msh, 5) or application, value(msh, 6) or facility)
        receiving = (value(msh, 3), value(msh, 4))
        event = inbound.message_type[1]
        version = value(msh, 12) or "2.6"
        processing = value(msh, 11) or "P"
        charset = inbound.charset or DEFAULT_ENCODING
        acked = inbound.control_id
    else:
        sending, receiving, event, version, processing, charset, acked = (
            (application, facility), ("", ""), "", "2.6", "P", DEFAULT_ENCODING, "")
    # Values read from the message are unescaped: escape them again, or a `\F\` (or a message with another
    # field separator) would add fields to the ACK and shift its MSH-9 and MSH-10.
    sending, receiving = (_escape(sending[0]), _escape(sending[1])), (_escape(receiving[0]), _escape(receiving[1]))
    event, version, processing, charset, acked = map(_escape, (event, version, processing, charset, acked))
    msg_type = f"ACK^{event}^ACK" if event else "ACK"
    lines = [f"MSH|^~\\&|{sending[0]}|{sending[1]}|{receiving[0]}|{receiving[1]}|{now}||{msg_type}|{control_id}|"
             f"{processing}|{version}|||||FRA|{charset}",
             f"MSA|{ack_code}|{acked}"]
    lines += [_err(e) for e in errors]
    return "\r".join(lines) + "\r"


def _err(e: ErrorItem) -> str:
    label = TABLE_0357.get(e.code, "")
    # A location may quote a segment name read from the message: escape each component.
    location = "^".join(_escape(part) for part in e.location.split("^"))
    return (f"ERR||{location}|{e.code}^{label}^HL70357|{e.severity}|{e.application}|||"
            f"{_escape(e.text)}")


ZAM_EVENTS = {"Z01": ("ACK_RECEPTION_DMP", "Accusé de réception DMP"),
              "Z02": ("ACK_RECEPTION_MSS", "Accusé de réception MSSanté"),
              "Z03": ("ACK_LECTURE_MSS", "Accusé de lecture")}


# The OBX naming the mailbox a Z02 / Z03 is about.
ZAM_ADDRESSES = {"Z02": ("DESTINATAIRE_MSS", "Destinataire MSSanté"), "Z03": ("LECTEUR_MSS", "Lecteur MSSanté")}


def build_zam(event: str, original: Inbound, control_id: str, now: str, *, success: bool,
              error: ErrorItem | None = None, address: str = "", application: str = "PFI",
              facility: str = "MOCKBENCH") -> str:
    """A business acknowledgement ZAM^{event}^ZAM_Z01 (HL7 2.6) for a message the PFI accepted earlier.
    `address`, for Z02 / Z03: the recipient (DESTINATAIRE_MSS) or reader (LECTEUR_MSS) in a second OBX."""
    code, label = ZAM_EVENTS[event]
    v = original.value
    msh = original.msh
    sending = _escape(v(msh, 5) or application), _escape(v(msh, 6) or facility)
    receiving = _escape(v(msh, 3)), _escape(v(msh, 4))
    charset = _escape(original.charset or DEFAULT_ENCODING)
    lines = [
        f"MSH|^~\\&|{sending[0]}|{sending[1]}|{receiving[0]}|{receiving[1]}|{now}||ZAM^{event}^ZAM_Z01|"
        f"{control_id}|{_escape(v(msh, 11) or 'P')}|2.6|||||FRA|{charset}|||2.1^CISIS_CDA_HL7_V2",
        f"OBX|1|CWE|{code}^{label}^AckMetierZAM|{_escape(original.control_id)}|{'Y' if success else 'N'}^^"
        "expandedYes-NoIndicator||||||F",
    ]
    if address and event in ZAM_ADDRESSES:
        acode, alabel = ZAM_ADDRESSES[event]
        lines.append(f"OBX|2|ST|{acode}^{alabel}^AckMetierZAM|{_escape(original.control_id)}|{_escape(address)}"
                     "||||||F")
    if not success and error is not None:
        lines.append(_err(error))
    return "\r".join(lines) + "\r"

