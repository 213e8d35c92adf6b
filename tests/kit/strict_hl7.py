"""Every ACK and ZAM the bench sends, read by an independent HL7 parser in strict mode (hl7apy), as the
issue's "Done when" asks, on top of python-hl7 (which accepts nearly anything).

- ACK: hl7apy knows the ACK structure of HL7 2.5 / 2.5.1 / 2.6; the whole message is parsed with
  VALIDATION_LEVEL.STRICT and find_groups, then validated (required fields and segments, cardinalities,
  data types' component counts, the version in MSH-12).
- ZAM^Z0x^ZAM_Z01 is the ANS guide's own message (trans-cda-r2/profils-messages.md, "Description des
  messages HL7 d'accusés métier"). hl7apy does not know its structure: in strict mode it parses it into an
  empty message and validates that as true, which checks nothing. So each segment is parsed and validated on
  its own in strict mode against HL7 2.6 (MSH, OBX, ERR are standard segments), and the structure the guide
  gives is checked here: MSH, OBX 1 (CWE, AckMetierZAM), for Z02 / Z03 OBX 2 (XTN whose OBX-5 is
  `^^X.400^<address>`), ERR when OBX-5 is N.
"""

from __future__ import annotations

from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.core import Message, Segment
from hl7apy.parser import parse_message, parse_segment

CODECS = {"UNICODE UTF-8": "utf-8", "8859/15": "iso-8859-15", "8859/1": "iso-8859-1", "ASCII": "ascii"}


def decode(raw: bytes) -> str:
    """The message in the charset its own MSH-18 declares (the answer must be readable in it)."""
    raw = raw.strip(b"\x0b\x1c\r\n")
    head = raw.split(b"\r", 1)[0].split(b"|")
    label = head[17].decode("ascii").split("~")[0].strip() if len(head) > 17 else ""
    assert label in CODECS, f"MSH-18 {label!r} is not a charset of the guide"
    return raw.decode(CODECS[label])


def check_ack(raw: bytes) -> Message:
    text = decode(raw)
    message = parse_message(text, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
    assert message.validate() is True
    msh9 = message.msh.msh_9
    assert (msh9.msh_9_1.to_er7(), msh9.msh_9_3.to_er7()) == ("ACK", "ACK"), msh9.to_er7()
    assert message.msh.msh_12.to_er7() in ("2.5", "2.5.1", "2.6")
    assert message.msh.msh_17.to_er7() == "FRA"
    assert message.msa.msa_2.to_er7(), "MSA-2 is required"
    for seg in message.children:
        if seg.name == "ERR":
            assert seg.err_3.to_er7().split("^")[2] == "messageErrorCondition", seg.to_er7()
    return message


def check_zam(raw: bytes) -> list[Segment]:
    text = decode(raw)
    lines = [line for line in text.split("\r") if line]
    segments = [parse_segment(line, version="2.6", validation_level=VALIDATION_LEVEL.STRICT) for line in lines]
    for segment in segments:
        assert segment.validate() is True, segment.to_er7()
    names = [s.name for s in segments]
    msh = segments[0]
    event = msh.msh_9.msh_9_2.to_er7()
    assert names[0] == "MSH" and msh.msh_9.to_er7() == f"ZAM^{event}^ZAM_Z01" and event in ("Z01", "Z02", "Z03")
    assert msh.msh_12.to_er7() == "2.6" and msh.msh_17.to_er7() == "FRA"
    assert msh.msh_21.to_er7() == "2.1^CISIS_CDA_HL7_V2"
    addressed = event in ("Z02", "Z03")
    obx = segments[1:3] if addressed else segments[1:2]
    assert [s.name for s in obx] == ["OBX"] * len(obx), names
    first = obx[0]
    status = first.obx_5.to_er7().split("^")
    assert first.obx_1.to_er7() == "1" and first.obx_2.to_er7() == "CWE" and first.obx_11.to_er7() == "F"
    assert first.obx_3.to_er7().split("^")[2] == "AckMetierZAM" and first.obx_4.to_er7()
    assert status[0] in ("Y", "N") and status[2] == "expandedYes-NoIndicator", status
    if addressed:
        second = obx[1]
        xtn = second.obx_5.to_er7().split("^")
        assert second.obx_1.to_er7() == "2" and second.obx_2.to_er7() == "XTN" and second.obx_11.to_er7() == "F"
        assert second.obx_3.to_er7().split("^")[0] == ("DESTINATAIRE_MSS" if event == "Z02" else "LECTEUR_MSS")
        assert len(xtn) == 4 and xtn[:3] == ["", "", "X.400"], xtn
    rest = segments[1 + len(obx):]
    assert [s.name for s in rest] == (["ERR"] if status[0] == "N" else []), names
    if rest:
        err = rest[0]
        assert err.err_3.to_er7() == "207^Application error^messageErrorCondition"
        system = {"Z01": "DMP_ERROR_CODE", "Z02": "SMTPERRORCODE", "Z03": "applicationErrorCondition"}[event]
        assert err.err_5.to_er7().split("^")[2:3] == [system], err.to_er7()
    return segments
