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

# Table 0357 (symbolic name messageErrorCondition), codes and labels as trans-cda-r2/error-codes.md lists them.
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
    "202": "Unsupported processing", "203": "Unsupported version", "207": "Application error",
}


class Hl7Reject(Exception):
    """What is wrong with the message itself, answered by a technical ACK AE with ERR.

    trans-cda-r2/profils-messages.md, "Le message d'acquittement du message HL7v2", segment MSA: AE is for a
    message that contains errors (syntax, unsupported version, type or event, fields that contradict each
    other); AR means "rejected for a circumstantial reason, may be sent again later". Everything this module
    and messages.py find is about the message itself, hence AE; the door answers AR only when its own store is
    unavailable (door.py)."""

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
        # A long field's repetition as split into components, by (field text, repetition): the document's
        # OBX-5 (30 KiB to MBs) is read for its encoding (component 4), then for its data (component 5), and
        # each read copied its data out of it again. Keyed by the text's id, kept with the text itself.
        self._long: dict[tuple[int, int], tuple[str, str | None, list[str] | None]] = {}

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
        return self.value(segs[index], fld, rep, comp, sub) if len(segs) > index else ""

    def value(self, segment: Segment, fld: int, rep: int = 1, comp: int = 1, sub: int = 1) -> str:
        """`value(segment, ...)` with this message's separators; a long field is split once per repetition."""
        return value(segment, fld, rep, comp, sub, self._enc, self._sep, self._long)

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
          field_sep: str = "|", kept: dict | None = None) -> str:
    """One value by HL7 position (1-based), unescaped, '' when absent. MSH keeps HL7 numbering (MSH-1 is
    the field separator, MSH-2 the encoding characters, both returned as they are). `kept`: a message's
    long fields as split by earlier reads (`Inbound.value`)."""
    if fld >= len(segment):
        return ""
    text = segment[fld]
    if segment[0] == "MSH" and fld in (1, 2):
        return text
    if kept is not None and len(text) >= _LONG_TEXT:
        return _long_value(kept, text, rep, comp, sub, enc, field_sep)
    # repetition, then component, then subcomponent (unrolled: this runs a few dozen times per message)
    if enc[1] in text:
        parts = split(text, enc[1])
        if rep > len(parts):
            return ""
        text = parts[rep - 1]
    elif rep > 1:
        return ""
    if enc[0] in text:
        parts = split(text, enc[0])
        if comp > len(parts):
            return ""
        text = parts[comp - 1]
    elif comp > 1:
        return ""
    if enc[3] in text:
        parts = split(text, enc[3])
        if sub > len(parts):
            return ""
        text = parts[sub - 1]
    elif sub > 1:
        return ""
    return unescape(text, enc, field_sep) if enc[2] in text else text


def _long_value(kept: dict, text: str, rep: int, comp: int, sub: int, enc: str, field_sep: str) -> str:
    """`value`'s steps on a long field, its repetition and component splits kept in `kept` for the next read
    of the same field: by (id of the field's text, repetition), with the text itself (so an id reused by
    another text is not taken for it)."""
    key = (id(text), rep)
    found = kept.get(key)
    if found is None or found[0] is not text:
        rep_text: str | None = text
        if enc[1] in text:
            parts = split(text, enc[1])
            rep_text = parts[rep - 1] if rep <= len(parts) else None
        elif rep > 1:
            rep_text = None
        comps = split(rep_text, enc[0]) if rep_text is not None and enc[0] in rep_text else None
        found = (text, rep_text, comps)
        kept[key] = found
    _, rep_text, comps = found
    if rep_text is None:
        return ""
    if comps is not None:
        if comp > len(comps):
            return ""
        rep_text = comps[comp - 1]
    elif comp > 1:
        return ""
    if enc[3] in rep_text:
        parts = split(rep_text, enc[3])
        if sub > len(parts):
            return ""
        rep_text = parts[sub - 1]
    elif sub > 1:
        return ""
    return unescape(rep_text, enc, field_sep) if enc[2] in rep_text else rep_text


# Above this length `split` looks for separators with str.find (memchr) rather than str.split, whose loop for a
# one-character separator visits every character: the OBX-5 of a message carrying a base64 CDA (30 KiB to several
# MB) was scanned that way three times per message, 10 % of the PFI's instructions (issue 21, point 4).
_LONG_TEXT = 2048
_FIND_PARTS = 64   # at most this many parts found one by one


def split(text: str, sep: str) -> list[str]:
    """`text.split(sep)` for a one-character `sep`, the same list, cheaper on a long text with few separators."""
    if len(text) < _LONG_TEXT:
        return text.split(sep)
    parts: list[str] = []
    start, find = 0, text.find
    end = find(sep)
    while end >= 0:
        if len(parts) == _FIND_PARTS:   # separators are dense after all: str.split takes the rest
            return parts + text[start:].split(sep)
        parts.append(text[start:end])
        start = end + 1
        end = find(sep, start)
    parts.append(text[start:])
    return parts


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
def _msh_start(payload: bytes) -> int:
    """Where the MSH segment starts: at the beginning of the payload or of a line."""
    start = payload.find(b"MSH")
    while start > 0 and payload[start - 1:start] not in (b"\r", b"\n"):
        start = payload.find(b"MSH", start + 1)
    return start


def _declared_charset(line: bytes) -> tuple[str, str | None]:
    """(MSH-18 as written, its Python codec or None when the PFI does not know it), read from the raw bytes
    with the separator at MSH-1: MSH-18 is ASCII in every charset the guide allows."""
    sep = line[3:4] or b"|"
    fields = line.split(sep)
    charset = fields[17].decode("ascii", "replace").strip() if len(fields) > 17 else ""
    label = charset.split("~")[0].strip()
    return charset, CHARSETS.get(label.upper() if label.upper() in CHARSETS else label)


def codec_for(charset: str) -> str:
    """The codec an answer to a message declaring `charset` (MSH-18) is written in; UTF-8 when unknown."""
    label = (charset or "").split("~")[0].strip()
    return CHARSETS.get(label.upper() if label.upper() in CHARSETS else label) or "utf-8"


def known_charset(charset: str) -> str:
    """MSH-18 for an answer: the message's own when the PFI knows it, else UNICODE UTF-8."""
    label = (charset or "").split("~")[0].strip()
    return label.upper() if label and label.upper() in CHARSETS else DEFAULT_ENCODING


def decode(payload: bytes) -> tuple[str, str, list[dict]]:
    """(text, MSH-18 as received, findings). The charset is read from the raw bytes before decoding, as a
    receiver must; what an error quotes from the message is decoded in that charset too (ERR-8)."""
    findings: list[dict] = []
    start = _msh_start(payload)
    if start < 0:
        raise Hl7Reject("AE", E_SEGMENT_SEQUENCE, "the message does not start with an MSH segment", "MSH")
    if start > 0:
        junk = payload[:start]
        if junk.strip(b" \r\n\t\x00"):
            raise Hl7Reject("AE", E_SEGMENT_SEQUENCE, f"{len(junk)} bytes before the MSH segment", "MSH")
        payload = payload[start:]
    if len(payload) < 8:
        raise Hl7Reject("AE", E_REQUIRED_FIELD, "the MSH segment is truncated", "MSH^1^1")
    end = min([i for i in (payload.find(b"\r"), payload.find(b"\n")) if i >= 0] or [len(payload)])
    charset, encoding = _declared_charset(payload[:end])
    # before MSH-18 is trusted by position; the quote in ERR-8 is decoded as the message says it is written
    _check_delimiters(payload[:end].decode(encoding or "latin-1", "replace")[:9])
    label = charset.split("~")[0].strip()
    if encoding is None:
        raise Hl7Reject("AE", E_TABLE_VALUE, f"MSH-18 {charset!r} is not a character set the PFI accepts "
                        "(UNICODE UTF-8 or 8859/15)", "MSH^1^18")
    if not label:
        findings.append(finding("CDA-HL7/MSH-18", "MSH-18 is empty: the message was read as UTF-8",
                                fr="MSH-18 est vide : le message a été lu en UTF-8"))
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
        raise Hl7Reject("AE", E_REQUIRED_FIELD, "MSH-1 (the field separator) is missing or not a separator",
                        "MSH^1^1")
    sep, encoding_chars = head[3], head[4:8]
    if (len(set(encoding_chars)) != 4 or sep in encoding_chars or any(c.isalnum() for c in encoding_chars)
            or head[8] not in (sep, "\r", "\n")):
        raise Hl7Reject("AE", E_REQUIRED_FIELD, f"MSH-2 {head[4:].split(sep)[0]!r} does not hold four distinct "
                        "encoding characters", "MSH^1^2")


def parse(payload: bytes) -> Inbound:
    text, charset, findings = decode(payload)
    if "\n" in text:
        lf_only = "\r" not in text
        text = text.replace("\r\n", "\r").replace("\n", "\r")
        findings.append(finding("HL7/SEGMENT-SEPARATOR", "segments are separated by LF" if lf_only else
                                "segments are separated by CR LF",
                                fr="les segments sont séparés par LF" if lf_only else "les segments sont séparés par CR LF", severity="info"))
    text = text.rstrip("\r")
    _check_delimiters(text[:9])
    sep = text[3]
    segments: list[Segment] = []
    for i, line in enumerate(split(text, "\r")):
        if not line or line.isspace():   # as `not line.strip()`, without copying a segment of 300 KB
            continue
        fields = split(line, sep)
        name = fields[0]
        if len(name) != 3 or not name.isalnum() or not (name.isupper() or name[0] == "Z"):
            quoted = "".join(c for c in name[:3] if c.isalnum())   # ERL-1 is a segment id: no separators
            raise Hl7Reject("AE", E_SEGMENT_SEQUENCE, f"segment {i + 1} has no valid name ({name[:10]!r})",
                            f"{quoted}^{i + 1}" if quoted else "")
        segments.append(["MSH", sep, *fields[1:]] if name == "MSH" and i == 0 else fields)
    return Inbound(text, charset, segments, findings)


def read_header(payload: bytes) -> Inbound | None:
    """The MSH segment alone, for a message that `parse` refused as a whole (a bad segment further on, bytes
    invalid in its charset, an unreadable MSH-1 or MSH-2, junk before it): the ACK's MSA-2 must still name
    its MSH-10 whenever it can be found (trans-cda-r2/profils-messages.md, ACK section, MSA-2). When MSH-1 or
    MSH-2 cannot be read, the fields are taken by position: MSH-2 as the four characters after MSH-1 (or up to
    the next separator), then the fields split on MSH-1 (or on `|` when MSH-1 is not a separator). None when
    there is no MSH."""
    start = _msh_start(payload)
    if start < 0:
        return None
    line = payload[start:].split(b"\r", 1)[0].split(b"\n", 1)[0]
    try:
        return parse(line)
    except Hl7Reject:
        pass
    charset, encoding = _declared_charset(line)
    text = line.decode(encoding or "latin-1", "replace")
    if len(text) < 5:
        return None
    fields: list[str] = []
    for sep in dict.fromkeys((text[3], "|")):     # MSH-1 as written, else the usual one
        if sep in "^~\\&\r\n":
            continue
        if len(text) > 8 and text[8] == sep:
            rest = text[9:]
        else:
            cut = text.find(sep, 4)
            rest = text[cut + 1:] if cut >= 0 else ""
        fields = ["MSH", sep, "^~\\&", *rest.split(sep)]
        if len(fields) > 10 and fields[10]:
            break
    if not fields:
        return None
    return Inbound("|".join(fields[:1] + fields[2:]), charset, [fields])


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


# Versions the PFI answers in (MSH-12 of an ACK): the message's own when the PFI reads it, else the one the
# guide fixes for the message type (trans-cda-r2/profils-messages.md, ACK section, MSH-12: 2.5 for ORU,
# 2.6 for MDM; its example answers an unsupported version with 2.5), so that the ACK stays well formed.
ACK_VERSIONS = ("2.5", "2.5.1", "2.6")
ACK_DEFAULT_VERSION = {"ORU": "2.5", "MDM": "2.6", "ZAM": "2.6", "ACK": "2.6"}
PROCESSING_IDS = ("P", "T", "D")
NULL = '""'   # HL7's explicit null, for a required field whose value cannot be known
HD_LIMIT, ID_LIMIT = 20, 199   # HD-1 (IS, 20) of MSH-3..6; MSA-2 / OBX-4 (ST, 199 as EI-1 in the guide's types)


def _hd(text: str) -> str:
    """An application or facility echoed from the message, within HD-1's length (a longer one would make
    the answer itself invalid)."""
    return _escape(text[:HD_LIMIT])


def build_ack(inbound: Inbound | None, ack_code: str, control_id: str, now: str,
              errors: Iterable[ErrorItem] = (), *, application: str = "PFI", facility: str = "MOCKBENCH") -> str:
    """ACK^{event}^ACK as trans-cda-r2/profils-messages.md ("Le message d'acquittement du message HL7v2",
    "Description des contraintes à appliquer sur l'acquittement") shapes it: MSH-3/4 and MSH-5/6 swapped
    from the message acknowledged, MSH-9 ACK^<its event>^ACK, MSH-11 its processing id, MSH-12 its version,
    MSH-17 FRA, MSH-18 its charset; MSA-2 its MSH-10 (HL7's null `""` when none can be found, MSA-2 being
    required); ERR as the guide's example, `ERR||MSH^1^12|203^Unsupported version^messageErrorCondition|E`."""
    if inbound is not None:
        msh = inbound.msh
        sending = (value(msh, 5) or application, value(msh, 6) or facility)
        receiving = (value(msh, 3), value(msh, 4))
        code, event, _ = inbound.message_type
        version = value(msh, 12)
        version = version if version in ACK_VERSIONS else ACK_DEFAULT_VERSION.get(code, "2.5")
        if not event and version == "2.6":
            version = "2.5"   # MSH-9.2 is required in 2.6: without an event, the ACK is well formed as 2.5
        processing = value(msh, 11)
        processing = processing if processing in PROCESSING_IDS else "P"
        charset = known_charset(inbound.charset)
        acked = inbound.control_id
    else:
        sending, receiving, event, version, processing, charset, acked = (
            (application, facility), ("", ""), "", "2.5", "P", DEFAULT_ENCODING, "")
    # Values read from the message are unescaped: escape them again, or a `\F\` (or a message with another
    # field separator) would add fields to the ACK and shift its MSH-9 and MSH-10.
    sending, receiving = (_hd(sending[0]), _hd(sending[1])), (_hd(receiving[0]), _hd(receiving[1]))
    event, acked = _escape(event[:3]), _escape(acked[:ID_LIMIT]) or NULL
    lines = [f"MSH|^~\\&|{sending[0]}|{sending[1]}|{receiving[0]}|{receiving[1]}|{now}||ACK^{event}^ACK|"
             f"{control_id}|{processing}|{version}|||||FRA|{charset}",
             f"MSA|{ack_code}|{acked}"]
    lines += [_err(e) for e in errors]
    return "\r".join(lines) + "\r"


ERR_TEXT_LIMIT = 2000   # ERR-8 is a TX of 2048 characters at most (HL7 2.5 / 2.6)


def _err(e: ErrorItem) -> str:
    """ERR-2 location, ERR-3 code^label^messageErrorCondition (the symbolic name guide v2.1 gives table
    0357, trans-cda-r2/profils-messages.md ACK section and change-log.md, not `HL70357`), ERR-4 severity,
    ERR-5 the application error when there is one, ERR-8 the reason in plain words."""
    label = TABLE_0357.get(e.code, "")
    # A location may quote a segment name read from the message: escape each component. ERL-2 (the
    # segment's sequence) is required when ERR-2 is given: a bare segment name means its first occurrence.
    parts = [_escape(part) for part in e.location.split("^")] if e.location else []
    location = "^".join(parts + ["1"] if len(parts) == 1 else parts)
    return (f"ERR||{location}|{e.code}^{label}^messageErrorCondition|{e.severity}|{e.application}|||"
            f"{_escape(e.text[:ERR_TEXT_LIMIT])}")


ZAM_EVENTS = {"Z01": ("ACK_RECEPTION_DMP", "Accusé de réception DMP"),
              "Z02": ("ACK_RECEPTION_MSS", "Accusé de réception MSSanté"),
              "Z03": ("ACK_LECTURE_MSS", "Accusé de lecture")}


# The second OBX of a Z02 / Z03: the mailbox it is about (trans-cda-r2/ack-metier-zam.md).
ZAM_ADDRESSES = {"Z02": ("DESTINATAIRE_MSS", "Destinataire MSSanté"),
                 "Z03": ("LECTEUR_MSS", "Lecteur du courriel MSSanté")}


def build_zam(event: str, original: Inbound, control_id: str, now: str, *, success: bool,
              error: ErrorItem | None = None, address: str = "", application: str = "PFI",
              facility: str = "MOCKBENCH") -> str:
    """A business acknowledgement ZAM^{event}^ZAM_Z01 (HL7 2.6) for a message the PFI accepted earlier, as
    trans-cda-r2/profils-messages.md ("Description des contraintes à appliquer sur les accusés métiers")
    describes it: MSH-21 `2.1^CISIS_CDA_HL7_V2`; OBX 1 CWE, OBX-3 from AckMetierZAM, OBX-4 the original MSH-10,
    OBX-5 `Y|N^^expandedYes-NoIndicator`; for Z02 / Z03 a second OBX, XTN, whose OBX-5 is `^^X.400^<address>`
    (the recipient, DESTINATAIRE_MSS, or the reader, LECTEUR_MSS); ERR when OBX-5 is N, ERR-3
    `207^Application error^messageErrorCondition`, ERR-5 as the caller made it (errors.py)."""
    code, label = ZAM_EVENTS[event]
    v = original.value
    msh = original.msh
    sending = _hd(v(msh, 5) or application), _hd(v(msh, 6) or facility)
    receiving = _hd(v(msh, 3)), _hd(v(msh, 4))
    charset = known_charset(original.charset)
    processing = v(msh, 11) if v(msh, 11) in PROCESSING_IDS else "P"
    lines = [
        f"MSH|^~\\&|{sending[0]}|{sending[1]}|{receiving[0]}|{receiving[1]}|{now}||ZAM^{event}^ZAM_Z01|"
        f"{control_id}|{processing}|2.6|||||FRA|{charset}|||2.1^CISIS_CDA_HL7_V2",
        f"OBX|1|CWE|{code}^{label}^AckMetierZAM|{_escape(original.control_id[:ID_LIMIT])}|{'Y' if success else 'N'}^^"
        "expandedYes-NoIndicator||||||F",
    ]
    if event in ZAM_ADDRESSES:
        acode, alabel = ZAM_ADDRESSES[event]
        lines.append(f"OBX|2|XTN|{acode}^{alabel}^AckMetierZAM||^^X.400^{_escape(address)}||||||F")
    if not success and error is not None:
        lines.append(_err(error))
    return "\r".join(lines) + "\r"
