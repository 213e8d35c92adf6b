"""find_attachment (formats/mime.py): the boundary split gives what the email package's full parse gives."""

import base64
import email.policy
import os
from email.parser import BytesHeaderParser, BytesParser
from email.utils import collapse_rfc2231_value

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mockbench.formats.mime import (
    SUMMARY_HEADERS,
    _split_attachment,
    find_attachment,
    header_end,
    header_problems,
    header_summary,
    xdm_mail,
)

NAME = "IHE_XDM.ZIP"


def _reference(raw: bytes) -> tuple[dict, bytes | None]:
    """The door's former code: the feed parser, then walk()."""
    message = BytesParser(policy=email.policy.compat32).parsebytes(raw)
    for part in message.walk():
        name = part.get_filename() or part.get_param("name") or ""
        if isinstance(name, tuple):
            name = collapse_rfc2231_value(name)
        if str(name).upper() == NAME:
            return dict(message.items()), part.get_payload(decode=True) or b""
    return dict(message.items()), None


def _same(raw: bytes) -> None:
    try:
        expected: object = _reference(raw)
    except Exception as exc:   # the email package's own failure (a bare CR inside an RFC 2231 name): the same
        with pytest.raises(type(exc)):
            find_attachment(raw, NAME)
        return
    message, payload = find_attachment(raw, NAME)
    assert (dict(message.items()), payload) == expected


_PARTS = {
    "text": b'Content-Type: text/plain; charset="utf-8"\r\n\r\nBonjour,\r\nci-joint.\r\n',
    "noheaders": b"\r\nno headers at all\r\n",
    "zip": b"Content-Type: application/zip; name=IHE_XDM.ZIP\r\nContent-Transfer-Encoding: base64\r\n"
           b'Content-Disposition: attachment; filename="ihe_xdm.zip"\r\n\r\n' +
           base64.encodebytes(b"PK\x03\x04" + bytes(range(256)) * 3).replace(b"\n", b"\r\n"),
    "zip2231": b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
               b"Content-Disposition: attachment; filename*0=IHE_; filename*1=XDM.ZIP\r\n\r\nQUJD\r\nREVG\r\n",
    "qp": b"Content-Type: application/zip; name=IHE_XDM.ZIP\r\nContent-Transfer-Encoding: quoted-printable\r\n"
          b"\r\nab=3D=\r\ncd\r\n",
    "badb64": b"Content-Type: application/zip; name=IHE_XDM.ZIP\r\nContent-Transfer-Encoding: base64\r\n"
              b"\r\n!!!notbase64\r\n",
    "b64bytes": b"Content-Type: application/zip; name=IHE_XDM.ZIP\r\nContent-Transfer-Encoding: BASE64\r\n"
                b"\r\nQU\xe9JD\r\nRE=VG\r\nQQ\r\n",
    "empty": b"Content-Type: application/zip; name=IHE_XDM.ZIP\r\n\r\n",
    "nested": b'Content-Type: multipart/alternative; boundary="in"\r\n\r\n--in\r\n'
              b"Content-Type: application/zip; name=IHE_XDM.ZIP\r\n\r\ninner\r\n--in--\r\n",
    "rfc822": b"Content-Type: message/rfc822\r\n\r\nSubject: x\r\nContent-Type: application/zip; name=IHE_XDM.ZIP"
              b"\r\n\r\ninner\r\n",
    "notheader": b"Content-Type: application/zip; name=IHE_XDM.ZIP\r\nnot a header line\r\n\r\nQUJD\r\n",
    "fromline": b"From someone\r\nContent-Type: application/zip; name=IHE_XDM.ZIP\r\n\r\nQUJD\r\n",
    "trailing": b"Content-Type: text/plain\r\n\r\nends with spaces  \r\n\r\n",
}


@pytest.mark.slow
@settings(max_examples=400, deadline=None)
@given(parts=st.lists(st.sampled_from(sorted(_PARTS)), max_size=4),
       boundary=st.sampled_from(["zz", "==_b.1", "a b", "x"]),
       delimiter_ws=st.sampled_from([b"", b" ", b"\t "]),
       close=st.sampled_from([b"--", b"-- ", b"", None]),
       preamble=st.sampled_from([b"", b"This is MIME.\r\n", b"--zzz\r\n"]),
       epilogue=st.sampled_from([b"", b"after\r\n", b"--x--\r\n"]),
       top=st.sampled_from(["multipart/mixed", "multipart/related", "text/plain", "application/zip",
                            "multipart/mixed-noboundary"]),
       line_end=st.sampled_from([b"\r\n", b"\n"]), doubled=st.booleans(),
       stray=st.sampled_from([b"", b"\r", b"\n", b"\r\r\n"]), where=st.floats(0, 1))
def test_split_matches_the_feed_parser(parts, boundary, delimiter_ws, close, preamble, epilogue, top, line_end,
                                       doubled, stray, where):
    b = boundary.encode()
    if top == "multipart/mixed-noboundary":
        head = b"Content-Type: multipart/mixed\r\n"
    elif top.startswith("multipart"):
        head = f'Content-Type: {top}; boundary="{boundary}"\r\n'.encode()
    else:
        head = f"Content-Type: {top}; name=IHE_XDM.ZIP\r\n".encode()
    raw = b"Subject: =?utf-8?q?XDM/1.0/DDM?=\r\nMIME-Version: 1.0\r\n" + head + b"\r\n" + preamble
    for i, name in enumerate(parts):
        raw += b"--" + b + delimiter_ws + b"\r\n" + (b"--" + b + b"\r\n" if doubled and i == 1 else b"") + _PARTS[name]
    if close is not None:
        raw += b"--" + b + close + b"\r\n" + epilogue
    if line_end == b"\n":
        raw = raw.replace(b"\r\n", b"\n")
    at = int(len(raw) * where)   # a bare CR or LF anywhere (a header, a delimiter, a payload)
    _same(raw[:at] + stray + raw[at:])


def test_a_real_mail_and_junk():
    package = os.urandom(50_000)
    raw = xdm_mail(sender="a@chu.mssante.fr", to=["b@chu.mssante.fr"], package=package, subject="XDM/1.0/DDM x")
    message, found = find_attachment(raw, NAME)
    assert found == package and message["Subject"] == "=?utf-8?q?XDM/1=2E0/DDM_x?="
    assert _split_attachment(raw, NAME) is not None          # the split, not the feed parser, answered
    _same(raw)
    for junk in (b"", b"\r\n\r\n", b"no headers", b"\xff\xfe\x00\r\n\r\n\x00", b"Subject: x\r\n",
                 b"Content-Type: multipart/mixed; boundary=q\r\n\r\n--q--\r\n",
                 b"Content-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\n"
                 b"Content-Type: text/plain; name=ihe_xdm.zip\r\n\r\nx\r\n--q\r\n"):
        _same(junk)


@given(st.binary(max_size=12).map(lambda b: b.replace(b"a", b"\r").replace(b"b", b"\n")))
def test_header_end_is_the_first_empty_line(raw):
    ends = [i for i in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if i >= 0]
    assert header_end(raw) == (min(ends) if ends else None)


_FIELDS = st.sampled_from([b"From: Jeanne <j@chu.mssante.fr>", b"from: =?utf-8?q?J=C3=A9?= <j@x.fr>",
                           b"To: a@b.fr,\r\n c@d.fr", b"Subject: =?utf-8?q?XDM/1=2E0/DDM?= x", b"Subject: second",
                           b"Date: Thu, 26 Nov 2026 02:48:56 -0000", b"Date: not a date",
                           b"Message-ID: <x@y>", b"Content-Type: multipart/mixed; boundary=\"q\"",
                           b"X-MSS-INS: O", b"CC: \xc3\xa9 <e@f.fr>", b"Return-Receipt-To: <r@s>"])


@given(st.lists(_FIELDS, max_size=10))
def test_header_summary_as_message_get(fields):
    raw = b"\r\n".join(fields) + b"\r\n\r\nbody\r\n"
    headers = BytesHeaderParser(policy=email.policy.default).parsebytes(raw)
    expected = {name: str(headers.get(name)) for name in SUMMARY_HEADERS if headers.get(name) is not None}
    assert header_summary(raw) == expected
    # a header block's summary is kept: asked again (another body), the same; a caller's change stays its own
    again = header_summary(raw.replace(b"body", b"other body"))
    assert again == expected
    again["Subject"] = "changed"
    assert header_summary(raw) == expected


_BAD_FIELDS = st.sampled_from([b"Message-ID: <>", b'From: "', b"To: <a@", b"Date: 99 Foo 1", b"Cc: ,,,",
                               b"Content-Type: /", b"Disposition-Notification-To: <>"])


@given(st.lists(st.one_of(_FIELDS, _BAD_FIELDS), max_size=10))
def test_header_problems_as_each_field_parsed_alone(fields):
    """header_problems shares header_summary's memo of decoded fields: the same problems as parsing each
    summary field with policy.default, whatever was decoded before (the summary first, or not)."""
    raw = b"\r\n".join(fields) + b"\r\n\r\nbody\r\n"
    headers = BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw)
    wanted = {h.lower() for h in SUMMARY_HEADERS}
    expected = []
    for name, value in headers.items():
        if name.lower() in wanted:
            try:
                str(email.policy.default.header_fetch_parse(name, str(value)))
            except Exception as exc:
                expected.append((name, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__))
    assert header_problems(raw) == expected
    header_summary(raw)
    assert header_problems(raw) == expected


_B64_TEXT = st.binary(max_size=48).map(base64.b64encode)
_NOISE = st.sampled_from([b"", b"=", b"==", b"===", b"!", b"\xc3\xa9", b" ", b"-", b"A", b"Zg"])


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(_B64_TEXT, _NOISE), max_size=4).map(b"".join), st.integers(0, 64))
def test_base64_step_is_what_get_payload_does(text, cut):
    # The part's base64 step (`_decode_b`) against the email package's public get_payload(decode=True), on
    # valid, unpadded, over-padded, truncated and non-alphabet texts: every branch of the step.
    from email.message import Message

    from mockbench.formats.mime import _decode_b

    text = text[: len(text) - cut % (len(text) + 1)]
    part = Message()
    part["Content-Transfer-Encoding"] = "base64"
    part.set_payload(text.decode("ascii", "surrogateescape"))
    assert _decode_b(text) == part.get_payload(decode=True)
