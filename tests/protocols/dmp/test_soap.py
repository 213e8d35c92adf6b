"""The DMP door's SOAP wire format, without a server: the ANS example requests (plain SOAP 1.2, and the
TD2.1 MTOM package with its SOAP 1.1 envelope), responses and faults rendered then parsed back, hostile
input refused with a SoapFault, and random bytes or mutated packages that never raise anything else."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from mockbench.formats.xml import parse_xml
from mockbench.protocols.dmp import soap
from mockbench.protocols.dmp.soap import (
    SOAP11,
    SOAP12,
    WSA,
    WSSE,
    XOP,
    SoapFault,
    SoapLimits,
    SoapRequest,
    parse_request,
    render_fault,
    render_response,
    xop_include,
)

SOAP_XML = "application/soap+xml; charset=UTF-8"
XDS = "urn:ihe:iti:xds-b:2007"
HL7 = "urn:hl7-org:v3"
HAB = "urn:si-dmp-habilitations"
PAT = "urn:si-dmp-patients"
RIM_Q = "urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0"
RIM_LCM = "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"

# file -> (WS-A Action, MessageID, Body element), read by eye from the ANS examples in dmp-wire.
CORPUS_REQUESTS = {
    "TD0.2": ("urn:hl7-org:v3:PRPA_IN201307UV02", "urn:uuid:f2c3f93b-06e2-4333-b80d-4d0505c332aa",
              f"{{{HL7}}}PRPA_IN201307UV02"),
    "TD0.3": ("urn:si-dmp-habilitations:HabilitationsEndPoint:setAuthorization",
              "urn:uuid:a1440619-0a31-4e46-b085-978ad48342cd", f"{{{HAB}}}setAuthorization"),
    "TD0.4": ("urn:si-dmp-patients:PatientSpecificEndPoint:patientList",
              "urn:uuid:332adc8f-da89-47c1-8e2f-17dcc7917f08", f"{{{PAT}}}patientList"),
    "TD0.5": ("urn:hl7-org:v3:PRPA_IN201305UV02", "urn:uuid:0bf3c694-f444-4c9e-bdd4-6b72106a691f",
              f"{{{HL7}}}PRPA_IN201305UV02"),
    "TD1.3a": ("urn:hl7-org:v3:PRPA_IN201307UV02", "urn:uuid:25f76b8f-2eed-4a72-b66f-b940a4101dda",
               f"{{{HL7}}}PRPA_IN201307UV02"),
    "TD1.3b": ("urn:hl7-org:v3:PRPA_IN201314UV02", "urn:uuid:798d8243-b4e3-4890-a9d5-30fa13926e95",
               f"{{{HL7}}}PRPA_IN201314UV02"),
    "TD1.4": ("urn:hl7-org:v3:PRPA_IN201314UV02", "urn:uuid:b0a5dd26-3230-4d4f-acfa-d338118185ee",
              f"{{{HL7}}}PRPA_IN201314UV02"),
    "TD1.5a": ("urn:si-dmp-patients:PatientSpecificEndPoint:createPatientAccess",
               "urn:uuid:d857efb9-6f6b-4ba9-b808-dc40f9cdd7d2", f"{{{PAT}}}createPatientAccess"),
    "TD1.5b": ("urn:si-dmp-patients:PatientSpecificEndPoint:patientOTPUpdate",
               "urn:uuid:1e5b43a5-fa55-424e-a0e5-702825b9741a", f"{{{PAT}}}patientOTPUpdate"),
    "TD1.5d": ("urn:si-dmp-patients:PatientSpecificEndPoint:updatePatientAccess",
               "urn:uuid:fe5ceec2-5a11-4055-a9c6-72bbd89267b9", f"{{{PAT}}}updatePatientAccess"),
    "TD1.6": ("urn:si-dmp-habilitations:HabilitationsEndPoint:listAuthorizationByPatient",
              "urn:uuid:c771d76f-c39b-47ee-a360-fc47b74f0560", f"{{{HAB}}}listAuthorizationByPatient"),
    "TD3.1": ("urn:ihe:iti:2007:RegistryStoredQuery", "urn:uuid:b9b2834a-0e3f-4029-aea8-f0e09ec951d7",
              f"{{{RIM_Q}}}AdhocQueryRequest"),
    "TD3.2": ("urn:ihe:iti:2007:RetrieveDocumentSet", "urn:uuid:5113a6d8-3550-4c8f-a5f0-4290ebdbfe3e",
              f"{{{XDS}}}RetrieveDocumentSetRequest"),
    "TD3.3c": ("urn:ihe:iti:2010:UpdateDocumentSet", "urn:uuid:e90ffcf2-d6e8-4685-8e1f-7383458deb0c",
               f"{{{RIM_LCM}}}SubmitObjectsRequest"),
    "TD3.3d": ("urn:ihe:iti:2010:UpdateDocumentSet", "urn:uuid:4cab1a4c-d575-467a-a417-44268406a43d",
               f"{{{RIM_LCM}}}SubmitObjectsRequest"),
    # The INSi web service (not the DMP): MessageID without urn:uuid:, no ReplyTo.
    "WS_INS2": ("urn:ServiceIdentiteCertifiee:1.0.0:rechercherInsAvecTraitsIdentite",
                "0dfb8f66-de74-4f30-ba83-bebde1239ebf", "{http://www.cnamts.fr/INSiRecSans}RECSANSVITALE"),
}
TD21_ACTION = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"
TD21_MESSAGE_ID = "urn:uuid:b3745a7c-4d1a-4cfd-a752-536197e4ac7a"
TD21_ROOT_ID = "rootpart@soapui.org"  # the root part's Content-ID in TD2.1_request.xml


# Builders ---------------------------------------------------------------------------------------------------

def envelope(body: str = "<m:ping xmlns:m='urn:test'/>", *, ns: str = SOAP12, action: str | None = "urn:test:ping",
             message_id: str = "urn:uuid:11111111-2222-3333-4444-555555555555", extra_header: str = "") -> bytes:
    wsa = ""
    if action is not None:
        wsa += f"<wsa:Action soap:mustUnderstand='true'>{action}</wsa:Action>"
    if message_id:
        wsa += f"<wsa:MessageID>{message_id}</wsa:MessageID>"
    wsa += ("<wsa:To>http://bench/si-dmp-server/v2/services/repository</wsa:To><wsa:ReplyTo>"
            "<wsa:Address>http://www.w3.org/2005/08/addressing/anonymous</wsa:Address></wsa:ReplyTo>")
    return (f"<soap:Envelope xmlns:soap='{ns}' xmlns:wsa='{WSA}'><soap:Header>{wsa}{extra_header}</soap:Header>"
            f"<soap:Body>{body}</soap:Body></soap:Envelope>").encode()


def package(root: bytes, parts: dict[str, bytes], *, boundary: str = "MIME_boundary_42", eol: bytes = b"\r\n",
            soap_type: str = "application/soap+xml", root_id: str = "root@test", start: bool = True,
            encodings: dict[str, str] | None = None) -> tuple[str, bytes]:
    """An MTOM package as SoapUI / the ANS kit sends it: root application/xop+xml, then one part per cid."""
    out = [b"--" + boundary.encode() + eol,
           f'Content-Type: application/xop+xml; charset=UTF-8; type="{soap_type}"'.encode() + eol,
           b"Content-Transfer-Encoding: 8bit" + eol, f"Content-ID: <{root_id}>".encode() + eol, eol, root, eol]
    for cid, data in parts.items():
        encoding = (encodings or {}).get(cid, "binary")
        out += [b"--" + boundary.encode() + eol, b"Content-Type: application/octet-stream" + eol,
                f"Content-Transfer-Encoding: {encoding}".encode() + eol, f"Content-ID: <{cid}>".encode() + eol,
                eol, data, eol]
    out.append(b"--" + boundary.encode() + b"--" + eol)
    content_type = f'multipart/related; type="application/xop+xml"; boundary="{boundary}"; start-info="{soap_type}"'
    if start:
        content_type += f'; start="<{root_id}>"'
    return content_type, b"".join(out)


def itti41_root(cids: list[str], *, ns: str = SOAP12) -> bytes:
    docs = "".join(f"<x:Document id='d{i}'><xop:Include xmlns:xop='{XOP}' href='cid:{cid}'/></x:Document>"
                   for i, cid in enumerate(cids))
    return envelope(f"<x:ProvideAndRegisterDocumentSetRequest xmlns:x='{XDS}'>{docs}"
                    "</x:ProvideAndRegisterDocumentSetRequest>", ns=ns, action=TD21_ACTION)


def documents(request: SoapRequest) -> list[etree._Element]:
    return request.body.findall(f"{{{XDS}}}Document")


def refused(content_type: str, body: bytes, **kwargs) -> SoapFault:
    with pytest.raises(SoapFault) as caught:
        parse_request(content_type, body, **kwargs)
    return caught.value


def wsa(root: etree._Element, name: str) -> str:
    return root.findtext(f"{{*}}Header/{{{WSA}}}{name}") or ""


def split_mtom(content_type: str, payload: bytes) -> etree._Element:
    """The envelope of an MTOM package, read through parse_request's own MIME splitter."""
    return parse_request(content_type, payload).envelope


# The ANS examples ---------------------------------------------------------------------------------------------

def test_the_table_covers_every_plain_corpus_request(corpus: Path) -> None:
    names = {p.name.removesuffix("_request.xml") for p in (corpus / "dmp-wire").glob("*_request.xml")}
    assert names - {"TD2.1"} == set(CORPUS_REQUESTS)


@pytest.mark.parametrize("name", sorted(CORPUS_REQUESTS))
def test_corpus_request_parses_as_plain_soap12(corpus: Path, name: str) -> None:
    action, message_id, body_tag = CORPUS_REQUESTS[name]
    request = parse_request(SOAP_XML, (corpus / "dmp-wire" / f"{name}_request.xml").read_bytes())
    assert (request.version, request.action, request.message_id, request.body.tag) == ("1.2", action, message_id,
                                                                                        body_tag)
    assert not request.mtom and request.attachments == {}
    assert request.security is not None and request.security.tag == f"{{{WSSE}}}Security"
    assert request.envelope.tag == f"{{{SOAP12}}}Envelope"
    assert request.header is not None and request.header.tag == f"{{{SOAP12}}}Header"
    if name.startswith("TD"):
        # Every DMP example: an empty To, ReplyTo anonymous.
        assert request.to == "" and request.reply_to == "http://www.w3.org/2005/08/addressing/anonymous"


def td21_as_published(corpus: Path) -> tuple[str, bytes]:
    """TD2.1_request.xml is the whole multipart body (LF line breaks, no HTTP headers); its first line is the
    first delimiter, from which the boundary is read."""
    raw = (corpus / "dmp-wire" / "TD2.1_request.xml").read_bytes()
    first_line = raw.split(b"\n", 1)[0].rstrip(b"\r")
    assert first_line.startswith(b"--")
    boundary = first_line[2:].decode()
    return (f'multipart/related; type="application/xop+xml"; start="<{TD21_ROOT_ID}>"; '
            f'start-info="application/soap+xml"; boundary="{boundary}"', raw)


def test_td21_package_as_published(corpus: Path) -> None:
    content_type, raw = td21_as_published(corpus)
    request = parse_request(content_type, raw)
    assert (request.version, request.mtom, request.action, request.message_id) == (
        "1.1", True, TD21_ACTION, TD21_MESSAGE_ID)  # SOAP 1.1 envelope inside application/soap+xml MTOM
    # SoapUI's operation name as the root part's action: noted, not an ActionMismatch (the DMP answered Success)
    assert len(request.notes) == 1 and "DocumentRepository_ProvideAndRegisterDocumentSet-b" in request.notes[0]
    assert request.body.tag == f"{{{XDS}}}ProvideAndRegisterDocumentSetRequest"
    assert sorted(request.attachments) == ["WS_DMP_TD2.1-DocumentME2.xml", "WS_DMP_TD2.1-SignatureXades.xml"]
    document, signature = (request.binary(d) for d in documents(request))
    folder = corpus / "dmp-wire"
    assert signature == (folder / "TD2.1_xades.xml").read_bytes()
    # The loose TD2.1_document.xml is the same CDA with a BOM and CRLF line breaks.
    loose = (folder / "TD2.1_document.xml").read_bytes()
    assert document == loose.removeprefix(b"\xef\xbb\xbf").replace(b"\r\n", b"\n")
    assert request.security is not None


def test_td21_rebuilt_the_ans_kit_way(corpus: Path) -> None:
    """Root = the envelope of TD2.1_request.xml; attachments = the loose document and XAdES files, under the
    Content-IDs that the root's xop:Include hrefs name; CRLF line breaks as on the wire."""
    folder = corpus / "dmp-wire"
    root = td21_as_published(corpus)[1].split(b"\n\n", 1)[1].split(b"\n------=_Part", 1)[0]
    hrefs = [e.get("href") for e in parse_xml(root).iter(f"{{{XOP}}}Include")]
    assert hrefs == ["cid:WS_DMP_TD2.1-DocumentME2.xml", "cid:WS_DMP_TD2.1-SignatureXades.xml"]
    files = [(folder / "TD2.1_document.xml").read_bytes(), (folder / "TD2.1_xades.xml").read_bytes()]
    parts = {href.removeprefix("cid:"): data for href, data in zip(hrefs, files, strict=True)}
    content_type, body = package(root, parts, boundary="----=_Part_9_20030738.1554380517598",
                                 root_id=TD21_ROOT_ID)
    request = parse_request(content_type, body)
    assert [request.binary(d) for d in documents(request)] == files
    assert request.version == "1.1" and request.action == TD21_ACTION
    # A package sent without the start parameter: the root is the first part.
    request = parse_request(*package(root, parts, root_id=TD21_ROOT_ID, start=False))
    assert [request.binary(d) for d in documents(request)] == files


# MTOM details ---------------------------------------------------------------------------------------------------

def test_mtom_soap12_binary_and_encodings() -> None:
    blobs = {"doc1@x": bytes(range(256)) * 3 + b"\r\n--MIME_boundary_4", "doc%202@x": b"", "b64@x": b"\x00\xff"}
    content_type, body = package(itti41_root(["doc1@x", "doc%202@x", "b64@x"]),
                                 {"doc1@x": blobs["doc1@x"], "doc 2@x": b"", "b64@x": b"AP8=\r\n"},
                                 encodings={"b64@x": "base64"})
    request = parse_request(content_type, body)
    assert request.version == "1.2" and request.mtom
    assert [request.binary(d) for d in documents(request)] == list(blobs.values())
    assert request.attachment_types["doc1@x"] == "application/octet-stream"


def test_lf_only_package_and_inline_base64() -> None:
    inline = envelope(f"<x:Document xmlns:x='{XDS}'>\n  aGVs\n  bG8=\n</x:Document>")
    request = parse_request(*package(inline, {}, eol=b"\n"))
    assert request.binary(request.body) == b"hello"
    plain = parse_request(SOAP_XML, inline)
    assert plain.binary(plain.body) == b"hello"


@pytest.mark.parametrize("text, expected", [
    ("aGVs\r\n\tbG8=", b"hello"),                     # wrapped and indented: white space is not data
    ("aGVs\u00a0bG8=", b"hello"),                       # a non-ASCII space (no-break) is white space too
    ("", b""),
    ("aGVsbG8", None),                                   # padding missing
    ("aG=VsbG8=", None),                                 # padding in the middle
    ("aGVsbG8=QQ==", None),                              # data after the padding
    ("=aGVsbG8", None),
    ("aGVs*bG8=", None),                                 # not in the alphabet
    ("aGVsbG8é", None),
])
def test_inline_base64_is_strict_and_ignores_white_space(text, expected) -> None:
    request = parse_request(SOAP_XML, envelope(f"<x:Document xmlns:x='{XDS}'>{text}</x:Document>"))
    if expected is None:
        assert "base64" in pytest.raises(SoapFault, request.binary, request.body).value.reason
    else:
        assert request.binary(request.body) == expected


def test_preamble_epilogue_padding_and_near_delimiters() -> None:
    content = b"line\r\n--MIME_boundary_42X\r\nX--MIME_boundary_42 y\r\n--MIME_boundary_4"
    content_type, body = package(itti41_root(["a@x"]), {"a@x": content})
    body = b"This is a preamble\r\n" + body.replace(b"--MIME_boundary_42\r\n", b"--MIME_boundary_42 \t\r\n")
    request = parse_request(content_type, body + b"an epilogue\r\n--MIME_boundary_42\r\n")
    assert request.binary(documents(request)[0]) == content
    # Two delimiters in a row: an empty part, with no headers and no Content-ID, is ignored.
    content_type, body = package(itti41_root([]), {})
    request = parse_request(content_type, body.replace(b"--MIME_boundary_42--", b"--MIME_boundary_42\r\n"
                                                                                b"--MIME_boundary_42--"))
    assert request.attachments == {}


def test_limits_are_frozen_with_the_agreed_defaults() -> None:
    limits = SoapLimits()
    assert (limits.max_body_bytes, limits.max_parts, limits.max_depth) == (64 * 1024 * 1024, 32, 128)
    with pytest.raises(AttributeError):
        limits.max_parts = 1  # type: ignore[misc]


def test_binary_refusals() -> None:
    request = parse_request(*package(itti41_root(["there@x", "absent@x"]), {"there@x": b"1"}))
    there, absent = documents(request)
    assert request.binary(there) == b"1"
    fault = pytest.raises(SoapFault, request.binary, absent).value
    assert (fault.code, fault.subcode) == ("Sender", "DMPMtomError")
    assert "cid:absent@x" in fault.reason and "<there@x>" in fault.reason
    plain = parse_request(SOAP_XML, itti41_root(["there@x"]))
    assert "not an MTOM package" in pytest.raises(SoapFault, plain.binary, documents(plain)[0]).value.reason
    bad = parse_request(SOAP_XML, envelope(f"<x:Document xmlns:x='{XDS}'>not*base64</x:Document>"))
    assert "base64" in pytest.raises(SoapFault, bad.binary, bad.body).value.reason
    not_cid = parse_request(SOAP_XML, envelope(
        f"<x:Document xmlns:x='{XDS}'><xop:Include xmlns:xop='{XOP}' href='http://evil/x'/></x:Document>"))
    assert "not a cid: URL" in pytest.raises(SoapFault, not_cid.binary, not_cid.body).value.reason


# Responses --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("ns", [SOAP12, SOAP11])
def test_response_round_trip(ns: str) -> None:
    content_type = SOAP_XML if ns == SOAP12 else "text/xml; charset=utf-8"
    request = parse_request(content_type, envelope(ns=ns))
    answer = etree.Element("{urn:test}pong")
    answer.text = "é"
    out_type, payload = render_response(request, "urn:test:pingResponse", answer, message_id="urn:uuid:fixed")
    assert out_type.startswith("application/soap+xml" if ns == SOAP12 else "text/xml")
    back = parse_request(out_type, payload)
    assert (back.version, back.action, back.message_id, back.to) == (
        request.version, "urn:test:pingResponse", "urn:uuid:fixed", "http://www.w3.org/2005/08/addressing/anonymous")
    assert wsa(back.envelope, "RelatesTo") == request.message_id
    assert back.body.tag == "{urn:test}pong" and back.body.text == "é"
    action = back.header.find(f"{{{WSA}}}Action")
    assert action.get(f"{{{ns}}}mustUnderstand") == ("true" if ns == SOAP12 else "1")
    assert answer.getparent() is None  # the caller's element is copied, not moved


def test_response_message_ids_are_fresh_uuids() -> None:
    request = parse_request(SOAP_XML, envelope())
    request.message_id = ""   # a request parse_request refuses now (MessageID required); render_response copes
    ids = set()
    for _ in range(2):
        root = parse_xml(render_response(request, "urn:a", etree.Element("{urn:test}r"))[1])
        ids.add(wsa(root, "MessageID"))
        assert root.find(f"{{*}}Header/{{{WSA}}}RelatesTo") is None  # no MessageID in the request
    assert len(ids) == 2 and all(i.startswith("urn:uuid:") for i in ids)


@pytest.mark.parametrize("ns", [SOAP12, SOAP11])
def test_mtom_response_round_trip(ns: str) -> None:
    request = parse_request(*package(itti41_root(["a@x"], ns=ns), {"a@x": b"x"}))
    body = etree.Element(f"{{{XDS}}}RetrieveDocumentSetResponse")
    document = etree.SubElement(etree.SubElement(body, f"{{{XDS}}}DocumentResponse"), f"{{{XDS}}}Document")
    cid = "doc1-2@urn:ihe:iti:xds-b:2007"
    xop_include(document, cid)
    assert document[0].get("href") == "cid:doc1-2@urn%3Aihe%3Aiti%3Axds-b%3A2007"  # as the DMP writes it
    data = b"%PDF-1.4\r\n--MIMEBoundary_\r\n\x00\xff" * 100
    content_type, payload = render_response(request, "urn:ihe:iti:2007:RetrieveDocumentSetResponse", body,
                                            attachments={cid: data}, mtom=True)
    assert content_type.startswith('multipart/related; type="application/xop+xml"; start="<')
    assert f'start-info="{"application/soap+xml" if ns == SOAP12 else "text/xml"}"' in content_type
    assert b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\nContent-ID: <doc1-2@" \
        in payload
    back = parse_request(content_type, payload)
    assert back.mtom and back.version == request.version and back.attachments == {cid: data}
    assert back.binary(back.body.find(f".//{{{XDS}}}Document")) == data
    assert wsa(back.envelope, "RelatesTo") == request.message_id


def test_mtom_response_without_attachments() -> None:
    request = parse_request(SOAP_XML, envelope())
    content_type, payload = render_response(request, "urn:r", etree.Element("{urn:test}r"), mtom=True)
    back = parse_request(content_type, payload)
    assert back.mtom and back.attachments == {} and back.action == "urn:r"
    with pytest.raises(ValueError):
        render_response(request, "urn:r", etree.Element("{urn:test}r"), attachments={"a": b""})


# Faults -----------------------------------------------------------------------------------------------------

def test_soap12_fault_with_request() -> None:
    request = parse_request(SOAP_XML, envelope())
    fault = SoapFault("Sender", "DMPInvalidRequest", "the patient \x01 is <unknown>", detail="INS 1 & 2")
    status, content_type, payload = render_fault(request, fault)
    assert (status, content_type.split(";")[0]) == (400, "application/soap+xml")
    root = parse_xml(payload)
    assert root.tag == f"{{{SOAP12}}}Envelope"
    f = root.find(f"{{{SOAP12}}}Body/{{{SOAP12}}}Fault")
    value = f.find(f"{{{SOAP12}}}Code/{{{SOAP12}}}Value")
    prefix, local = value.text.split(":")
    assert (value.nsmap[prefix], local) == (SOAP12, "Sender")
    sub = f.find(f"{{{SOAP12}}}Code/{{{SOAP12}}}Subcode/{{{SOAP12}}}Value").text
    assert sub == "dmp:DMPInvalidRequest" and root.nsmap["dmp"] == soap.DMP_FAULTS
    text = f.find(f"{{{SOAP12}}}Reason/{{{SOAP12}}}Text")
    assert text.get("{http://www.w3.org/XML/1998/namespace}lang") == "en"
    assert text.text == "the patient \ufffd is <unknown>"
    assert f.findtext(f"{{{SOAP12}}}Detail/{{{soap.DMP_FAULTS}}}message") == "INS 1 & 2"
    assert wsa(root, "Action") == "http://www.w3.org/2005/08/addressing/soap/fault"
    assert wsa(root, "RelatesTo") == request.message_id


def test_soap11_fault_and_receiver_status() -> None:
    request = parse_request("text/xml", envelope(ns=SOAP11))
    status, content_type, payload = render_fault(request, SoapFault("Receiver", "DMPInternalError", "boom"))
    assert (status, content_type) == (500, "text/xml; charset=UTF-8")
    root = parse_xml(payload)
    f = root.find(f"{{{SOAP11}}}Body/{{{SOAP11}}}Fault")
    assert f.findtext("faultcode") == "soap:Server" and root.nsmap["soap"] == SOAP11
    assert f.findtext("faultstring") == "DMPInternalError: boom" and f.find("detail") is None
    assert root.find(f"{{{SOAP11}}}Header/{{{WSA}}}Action").get(f"{{{SOAP11}}}mustUnderstand") == "1"
    status, _, payload = render_fault(None, SoapFault("Sender", "DMPX", "r", status=404), version="1.1")
    assert status == 404 and parse_xml(payload).find(f".//{{{SOAP11}}}Fault").findtext("faultcode") == "soap:Client"


def test_fault_without_request_and_as_mtom() -> None:
    fault = SoapFault("Sender", "DMPMalformedXML", "nope")
    status, content_type, payload = render_fault(None, fault)
    root = parse_xml(payload)
    assert status == 400 and root.find(f"{{{SOAP12}}}Header") is None  # nothing to relate to
    status, content_type, payload = render_fault(parse_request(SOAP_XML, envelope()), fault, mtom=True)
    assert content_type.startswith("multipart/related")
    back = parse_request(content_type, payload)  # an ITI-43 error answer: MTOM, a Fault as the body
    assert back.body.tag == f"{{{SOAP12}}}Fault" and back.action.endswith("/soap/fault") and back.attachments == {}
    with pytest.raises(ValueError):
        SoapFault("Client", "X", "1.1 names are not fault codes here")


def test_version_mismatch_fault() -> None:
    fault = refused(SOAP_XML, envelope(ns=SOAP11))
    assert (fault.code, fault.subcode, fault.status, fault.version) == ("VersionMismatch", "DMPVersionMismatch",
                                                                        500, "1.1")
    assert "SOAP 1.1 envelope" in fault.reason and "application/soap+xml" in fault.reason
    status, _, payload = render_fault(None, fault, version=fault.version)
    root = parse_xml(payload)
    assert status == 500 and root.find(f".//{{{SOAP11}}}Fault").findtext("faultcode") == "soap:VersionMismatch"
    supported = root.findall(f"{{{SOAP11}}}Header/{{{SOAP12}}}Upgrade/{{{SOAP12}}}SupportedEnvelope")
    qnames = [etree.QName(s.nsmap[s.get("qname").split(":")[0]], "Envelope").text for s in supported]
    assert qnames == [f"{{{SOAP12}}}Envelope", f"{{{SOAP11}}}Envelope"]
    code = parse_xml(render_fault(None, fault)[2]).find(f".//{{{SOAP12}}}Code/{{{SOAP12}}}Value")
    assert code.text == "soap:VersionMismatch"
    assert refused("text/xml", envelope()).version == "1.2"  # a 1.2 envelope as text/xml: the other way round


# Hostile and broken input ----------------------------------------------------------------------------------

def test_xxe_never_reads_the_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-MARKER")
    for doctype in (f'<!DOCTYPE e [<!ENTITY x SYSTEM "file://{secret}">]>',
                    f'<!DOCTYPE e [<!ENTITY % p SYSTEM "file://{secret}"> %p;]>'):
        body = doctype.encode() + envelope("<m:ping xmlns:m='urn:test'>&x;</m:ping>")
        fault = refused(SOAP_XML, body)
        assert fault.subcode == "DMPMalformedXML" and "TOP-SECRET" not in fault.reason


def test_billion_laughs_is_refused_quickly() -> None:
    lol = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    body = f'<!DOCTYPE e [<!ENTITY l0 "lol">{lol}]>'.encode() + envelope("<m:p xmlns:m='urn:t'>&l9;</m:p>")
    started = time.monotonic()
    assert refused(SOAP_XML, body).subcode == "DMPMalformedXML"
    assert time.monotonic() - started < 1


def test_doctype_without_entities_is_refused() -> None:
    fault = refused(SOAP_XML, b'<!DOCTYPE soap:Envelope SYSTEM "http://evil.example/x.dtd">' + envelope())
    assert fault.subcode == "DMPMalformedXML" and "DOCTYPE" in fault.reason


def test_oversize_is_refused_before_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    def never(*args, **kwargs):
        raise AssertionError("parse_xml was called")

    monkeypatch.setattr(soap, "parse_xml", never)
    limits = SoapLimits(max_body_bytes=1000)
    for content_type, body in ((SOAP_XML, b"<" * 1001), package(b"x" * 1000, {})):
        fault = refused(content_type, body, limits=limits)
        assert (fault.subcode, fault.status) == ("DMPTooLarge", 400) and "1000" in fault.reason


def test_depth_limit() -> None:
    deep = "<a xmlns='urn:t'>" * 40 + "</a>" * 40
    assert parse_request(SOAP_XML, envelope(deep)).body.tag == "{urn:t}a"
    fault = refused(SOAP_XML, envelope(deep), limits=SoapLimits(max_depth=20))
    assert fault.subcode == "DMPMalformedXML" and "deeper than 20" in fault.reason


def test_too_many_parts() -> None:
    content_type, body = package(itti41_root([]), {f"p{i}@x": b"." for i in range(5)})
    assert parse_request(content_type, body, SoapLimits(max_parts=6)).attachments
    fault = refused(content_type, body, limits=SoapLimits(max_parts=5))
    assert fault.subcode == "DMPTooLarge" and "more than 5 MIME parts" in fault.reason


@pytest.mark.parametrize(("mangle", "words"), [
    (lambda ct, b: (ct.replace('; boundary="MIME_boundary_42"', ""), b), "no boundary parameter"),
    (lambda ct, b: (ct.replace("MIME_boundary_42", "other"), b), "does not match the body"),
    (lambda ct, b: (ct.replace("<root@test>", "<gone@test>"), b), "no MIME part has the Content-ID"),
    (lambda ct, b: (ct, b[:b.rindex(b"--MIME_boundary_42--")]), "truncated"),
    (lambda ct, b: (ct, b[:len(b) // 2]), "truncated"),
    (lambda ct, b: (ct.replace('type="application/xop+xml"', 'type="text/xml"'), b), "is not MTOM"),
    (lambda ct, b: (ct, b.replace(b"application/xop+xml", b"text/plain", 1)), "root part is 'text/plain'"),
    (lambda ct, b: (ct, b.replace(b"Content-ID: <a@x>", b"Content-ID: <root@test>")), "two MIME parts"),
    (lambda ct, b: (ct, b.replace(b"Content-Transfer-Encoding: binary", b"Content-Transfer-Encoding: x-uu")),
     "Content-Transfer-Encoding 'x-uu'"),
    (lambda ct, b: (ct, b.replace(b"Content-Type: application/octet-stream", b"Broken header")), "malformed header"),
    (lambda ct, b: (ct, b.replace(b"--MIME_boundary_42\r\n", b"--MIME_boundary_42--\r\n", 1)), "before its first"),
    (lambda ct, b: (ct.replace("MIME_boundary_42", "x" * 71), b.replace(b"MIME_boundary_42", b"x" * 71)),
     "1 to 70 ASCII"),
])
def test_broken_mtom(mangle, words: str) -> None:
    content_type, body = mangle(*package(itti41_root(["a@x"]), {"a@x": b"payload"}))
    fault = refused(content_type, body)
    assert fault.code == "Sender" and fault.subcode == "DMPMtomError" and words in fault.reason, fault.reason
    assert fault.version == "1.2"


@pytest.mark.parametrize(("content_type", "body", "subcode", "words"), [
    (SOAP_XML, b"", "DMPInvalidRequest", "body is empty"),
    (SOAP_XML, b" \r\n ", "DMPInvalidRequest", "body is empty"),
    (SOAP_XML, b"\xff\xfe\x00junk\x80\x81 not xml", "DMPMalformedXML", "not acceptable XML"),
    (SOAP_XML, "<a>é</a>".encode("latin-1"), "DMPMalformedXML", "not acceptable XML"),
    (SOAP_XML, b"<soap:Envelope xmlns:soap='urn:not-soap'/>", "DMPVersionMismatch", "urn:not-soap"),
    (SOAP_XML, b"<html/>", "DMPInvalidRequest", "<html>, not a SOAP Envelope"),
    (SOAP_XML, envelope("").replace(b"<soap:Body></soap:Body>", b""), "DMPInvalidRequest", "no Body"),
    (SOAP_XML, envelope(""), "DMPInvalidRequest", "Body is empty"),
    (SOAP_XML, envelope("<!-- only a comment -->text"), "DMPInvalidRequest", "Body is empty"),
    (SOAP_XML, envelope(action=None), "MessageAddressingHeaderRequired", "Action header"),
    (SOAP_XML, envelope(action=" "), "MessageAddressingHeaderRequired", "is empty"),
    (SOAP_XML, envelope(message_id=""), "MessageAddressingHeaderRequired", "MessageID header"),
    (SOAP_XML, envelope(action="urn:a", extra_header=f"<Action xmlns='{WSA}'>urn:b</Action>"),
     "DMPInvalidRequest", "2 WS-Addressing Action"),
    (SOAP_XML, envelope(action=None, extra_header="<Action xmlns='http://schemas.xmlsoap.org/ws/2004/08/"
                                                   "addressing'>urn:a</Action>"),
     "MessageAddressingHeaderRequired", "ws/2004/08/addressing"),
    (SOAP_XML, envelope().replace(b"<soap:Header>", b"<soap:Header/><soap:Header>"), "DMPInvalidRequest",
     "2 Header"),
    ("application/json", envelope(), "DMPInvalidRequest", "is not SOAP"),
    ("", envelope(), "DMPInvalidRequest", "no Content-Type"),
])
def test_refused_requests(content_type: str, body: bytes, subcode: str, words: str) -> None:
    fault = refused(content_type, body)
    assert fault.subcode == subcode and words in fault.reason, fault.reason
    assert fault.status in (400, 415, 500)
    render_fault(None, fault, version=fault.version or "1.2")  # every refusal renders


def test_no_action_fallback_and_action_mismatch() -> None:
    """IHE ITI TF-2x Appendix V: WS-Addressing is required, the Action is never taken from elsewhere. WS-Addressing
    1.0 SOAP Binding: a Content-Type action (SOAP 1.2, section 5.1) or a non-empty SOAPAction (SOAP 1.1, section
    4.1) that differs from wsa:Action is an ActionMismatch (section 6.4.1: Subcode wsa:InvalidAddressingHeader,
    Subsubcode wsa:ActionMismatch, detail wsa:ProblemAction)."""
    no_action = envelope(action=None)
    fault = refused('application/soap+xml; action="urn:from:ct"', no_action)
    assert (fault.subcode, fault.subcode_ns, fault.problem) == ("MessageAddressingHeaderRequired", WSA,
                                                                ("ProblemHeaderQName", "wsa:Action"))
    fault = refused("text/xml", envelope(ns=SOAP11, action=None), soap_action='"urn:soapaction"')
    assert fault.subcode == "MessageAddressingHeaderRequired"
    # Agreeing (or empty) Content-Type action and SOAPAction are fine.
    assert parse_request('application/soap+xml; action="urn:test:ping"', envelope(),
                         soap_action="urn:test:ping").action == "urn:test:ping"
    assert parse_request("text/xml", envelope(ns=SOAP11), soap_action='""').action == "urn:test:ping"
    for content_type, soap_action in (('application/soap+xml; action="urn:ct"', ""),
                                      ("application/soap+xml", "urn:sa")):
        fault = refused(content_type, envelope(), soap_action=soap_action)
        assert (fault.code, fault.subcode, fault.subsubcode) == ("Sender", "InvalidAddressingHeader",
                                                                 "ActionMismatch")
        assert fault.problem == ("ProblemAction", "urn:test:ping") and fault.journal_code == "wsa:ActionMismatch"
        status, content_type_out, payload = render_fault(None, fault, version="1.2")
        root = parse_xml(payload)
        assert status == 400 and 'action="http://www.w3.org/2005/08/addressing/fault"' in content_type_out
        assert wsa(root, "Action") == "http://www.w3.org/2005/08/addressing/fault"
        values = [v.text for v in root.iter(f"{{{SOAP12}}}Value")]
        assert values == ["soap:Sender", "wsa:InvalidAddressingHeader", "wsa:ActionMismatch"]
        assert root.findtext(f".//{{{WSA}}}ProblemAction") == "urn:test:ping"
    fault = refused("text/xml", envelope(ns=SOAP11), soap_action="urn:other")
    status, _type, payload = render_fault(None, fault, version="1.1")
    assert status == 500 and parse_xml(payload).findtext(".//faultcode") == "wsa:ActionMismatch"
    assert refused("application/json", envelope()).status == 415


# Random input ------------------------------------------------------------------------------------------------

CONTENT_TYPES = [SOAP_XML, "text/xml", "", "application/json", 'multipart/related; type="application/xop+xml"; '
                 'boundary="b"', 'multipart/related; type="application/xop+xml"; boundary="MIME_boundary_42"; '
                 'start="<root@test>"', 'multipart/related; boundary=";;"\\"; type=', "a/b; =; x"]


def exercise(content_type: str, body: bytes) -> None:
    limits = SoapLimits(max_body_bytes=4096, max_parts=4, max_depth=16)
    try:
        request = parse_request(content_type, body, limits)
    except SoapFault as fault:
        render_fault(None, fault, version=fault.version or "1.2")
        return
    for element in request.body.iter():
        if isinstance(element.tag, str):
            try:
                request.binary(element)
            except SoapFault:
                pass
    render_fault(request, SoapFault("Sender", "DMPX", "x"), mtom=request.mtom)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(CONTENT_TYPES) | st.text(max_size=80), st.binary(max_size=600))
def test_random_bytes_raise_only_soap_faults(content_type: str, body: bytes) -> None:
    exercise(content_type, body)


_CT, _PACKAGE = package(itti41_root(["a@x", "b@x"]), {"a@x": b"first", "b@x": b"second"})
_MARKERS = [b"\r\n", b"\n", b"--", b"--MIME_boundary_42", b"--MIME_boundary_42--", b"\r\n\r\n", b":", b"<", b">",
            b"cid:", b"Content-ID: <a@x>", b"Content-Transfer-Encoding: base64", b"&x;", b"\x00", b"\xff"]


@st.composite
def mutated_packages(draw) -> tuple[str, bytes]:
    body = bytearray(_PACKAGE)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(body)))
        kind = draw(st.sampled_from(["cut", "delete", "insert", "flip", "duplicate"]))
        if kind == "cut":
            del body[at:]
        elif kind == "delete":
            del body[at:at + draw(st.integers(1, 40))]
        elif kind == "insert":
            body[at:at] = draw(st.sampled_from(_MARKERS) | st.binary(min_size=1, max_size=8))
        elif kind == "flip" and at < len(body):
            body[at] ^= draw(st.integers(1, 255))
        elif kind == "duplicate":
            body[at:at] = body[at:at + draw(st.integers(1, 200))]
    content_type = _CT
    if draw(st.booleans()):
        params = _CT.split("; ")
        del params[draw(st.integers(1, len(params) - 1))]
        content_type = "; ".join(params)
    return content_type, bytes(body)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_packages())
def test_mutated_packages_raise_only_soap_faults(case: tuple[str, bytes]) -> None:
    exercise(*case)


def test_the_characters_replaced_in_a_fault_text_are_those_xml_excludes() -> None:
    """soap._NOT_XML_CHAR lists what XML 1.0 section 2.2 (Char) excludes instead of negating what it allows
    (cheaper to compile at start-up): the same code points, every one of them checked."""
    allowed = re.compile("[\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
    every = "".join(map(chr, range(0x110000)))
    excluded = soap._NOT_XML_CHAR.findall(every)
    assert len(excluded) == 2079   # 29 controls, 2,048 surrogates, U+FFFE and U+FFFF
    assert "".join(excluded) == allowed.sub("", every)
