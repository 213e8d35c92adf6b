"""The report's pretty-printers on the ANS corpus (MOCKBENCH_CORPUS) and on hostile input: they never raise,
and say why when they cannot read something."""

from __future__ import annotations

import base64
import json
import zipfile

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey

from mockbench.formats.mime import xdm_mail
from mockbench.formats.xdm import read_package
from mockbench.report.pretty import (
    PrettyLimits,
    decode_jwt,
    find_tokens,
    pretty_hl7,
    pretty_mime,
    pretty_raw,
    pretty_xml,
    xdm_listing,
)

MDM = "hl7v2/Trans_Doc-CDA-HL7V2/MDM"


# HL7 v2 -------------------------------------------------------------------------------------------------
def test_hl7_one_segment_a_line_with_the_embedded_cda_decoded(corpus):
    folder = corpus / MDM / "Suppression_MDM"
    text = (folder / "message_MDM_CR_Radio_DEL_N1.er7").read_text("utf-8")
    printed = pretty_raw(text, "pfi")
    assert printed["kind"] == "hl7"
    lines = printed["text"].split("\n")
    segments = [s for s in text.replace("\r", "\n").split("\n") if s.strip()]
    assert len(lines) == len(segments) and [line[:3] for line in lines] == [s[:3] for s in segments]
    assert lines[0] == segments[0]                               # short segments are kept as they are
    obx = next(line for line in lines if line.startswith("OBX|1|ED|"))
    assert "caractères base64]" in obx and len(obx) < 400
    # The CDA rides without its base64 padding (a corpus quirk): decoded all the same, and indented.
    cda = printed["parts"][0]
    assert cda["kind"] == "xml" and cda["content_type"] == "text/xml"
    expected = (folder / "CR_Radio_CDAN1_v2.XML").read_bytes()
    assert abs(cda["size"] - len(expected)) < 200              # the same document, give or take line ends
    assert cda["text"].startswith("<ClinicalDocument") and "\n  <realmCode" in cda["text"]


def test_hl7_with_an_embedded_text_that_is_not_xml_says_so(corpus):
    text = (corpus / MDM / "Transmission_initiale_MDM" / "message_MDM_CR_Radio_INIT_N1.er7").read_text("utf-8")
    cda = pretty_hl7(text)["parts"][0]
    assert cda["kind"] == "text" and cda["note"].startswith("XML illisible")   # a sentence in base64, not a CDA


def test_hl7_consent_messages_have_no_parts(corpus):
    for path in sorted((corpus / "hl7v2" / "Consentement_DMP_PAMFR").glob("*.er7")):
        printed = pretty_raw(path.read_text("utf-8"), "pfi")
        assert printed["kind"] == "hl7" and printed["parts"] == [], path.name
        assert any(line.startswith("ZFA|") for line in printed["text"].split("\n")), path.name


# XML, SOAP and MTOM -----------------------------------------------------------------------------------
def test_soap_request_is_indented(corpus):
    raw = (corpus / "dmp-wire" / "TD3.1_request.xml").read_text("utf-8")
    printed = pretty_raw(raw, "dmp")
    assert printed["kind"] == "xml" and printed["note"] is None
    lines = printed["text"].split("\n")
    assert lines[0].startswith("<soap:Envelope") and lines[1] == "  <soap:Header>"
    # The SAML assertion, written on one line in the example, now has a line per element.
    assert any(line.strip().startswith("<saml2:Subject>") for line in lines)
    assert all(not line.endswith(" ") for line in lines)


def test_mtom_parts_are_listed_and_their_xml_indented(corpus):
    raw = (corpus / "dmp-wire" / "TD2.1_request.xml").read_bytes()
    printed = pretty_raw(raw, "dmp")
    assert printed["kind"] == "mime" and "MTOM" in printed["note"]
    soap, *attachments = printed["parts"]
    assert soap["content_type"] == "application/xop+xml" and soap["kind"] == "xml"
    assert soap["headers"]["Content-ID"] == "<rootpart@soapui.org>"
    assert "\n  <soap:Header>" in soap["text"]
    assert [a["content_type"] for a in attachments] == ["text/xml", "text/xml"]
    assert attachments[0]["text"].startswith("<ClinicalDocument")
    assert all(a["size"] > 0 for a in printed["parts"])


def test_long_base64_in_xml_is_abbreviated_and_long_text_cut():
    payload = base64.b64encode(bytes(range(256)) * 40).decode()
    printed = pretty_xml(f"<a><b>{payload}</b><c>court</c></a>".encode())
    assert "caractères base64]" in printed["text"] and "<c>court</c>" in printed["text"]
    assert len(printed["text"]) < 400
    small = PrettyLimits(text_chars=50)
    cut = pretty_xml(b"<a>" + b"<b>x</b>" * 50 + b"</a>", small)
    assert cut["note"] == "coupé" and "caractères de plus" in cut["text"]


@pytest.mark.parametrize("hostile", [
    b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "xxxxxxxx"><!ENTITY y "&x;&x;&x;">]><a>&y;</a>',
    b"<a><b></a>",
    b"<" + b"<a>" * 300,
])
def test_xml_that_cannot_be_read_is_shown_as_text_with_the_reason(hostile):
    printed = pretty_xml(hostile)
    assert printed["kind"] == "text" and printed["note"].startswith("XML illisible")
    assert printed["text"]


# MIME and XDM -----------------------------------------------------------------------------------------
def test_an_mss_mail_lists_its_parts_and_its_xdm_package(corpus):
    path = corpus / "xdm" / "BIO-CR-BIO_2024.01_Microbiologie_V2.zip"
    if not path.exists():
        path = sorted((corpus / "xdm").glob("*.zip"))[0]
    package = path.read_bytes()
    raw = xdm_mail(sender="a@chu.mssante.fr", to=["b@ville.mssante.fr"], subject="Compte rendu de biologie",
                   package=package, text="Bonjour, ci-joint.", disposition_notification_to="a@chu.mssante.fr")
    printed = pretty_mime(raw)
    assert printed["kind"] == "mime"
    assert printed["headers"]["Subject"] == "Compte rendu de biologie"
    assert printed["headers"]["Disposition-Notification-To"] == "a@chu.mssante.fr"
    body, zipped = printed["parts"]
    assert body["text"] == "Bonjour, ci-joint." and body["size"] == len("Bonjour, ci-joint.")
    assert zipped["kind"] == "zip" and zipped["size"] == len(package)
    with zipfile.ZipFile(path) as zf:
        assert [m["name"] for m in zipped["members"]] == [i.filename for i in zf.infolist()]
        assert [m["size"] for m in zipped["members"]] == [i.file_size for i in zf.infolist()]
    package_read = read_package(package)
    assert [e["unique_id"] for e in zipped["entries"]] == [d.entry.unique_id for d in package_read.documents]
    first = zipped["entries"][0]
    assert first["title"] == package_read.documents[0].entry.meta["title"]
    assert first["type_code"] and first["hash_ok"] and first["size_ok"]
    assert zipped["note"].startswith("métadonnées : IHE_XDM/")


def test_every_corpus_package_is_listed(corpus):
    for path in sorted((corpus / "xdm").glob("*.zip")):
        listing = xdm_listing(path.read_bytes())
        assert listing["entries"], (path.name, listing["note"])
        assert any(m["name"].endswith("METADATA.XML") for m in listing["members"]), path.name


def test_a_truncated_package_says_it_cannot_be_read(corpus):
    package = sorted((corpus / "xdm").glob("*.zip"))[0].read_bytes()
    listing = xdm_listing(package[: len(package) // 2])
    assert listing["entries"] == [] and "illisible" in listing["note"]
    # A mail cut by the journal's bound: what is left is listed, nothing raises.
    raw = xdm_mail(sender="a@chu.mssante.fr", to=["b@ville.mssante.fr"], subject="x", package=package)
    printed = pretty_raw(raw[:5000].decode("ascii"), "mss")
    assert printed["kind"] == "mime" and printed["parts"][-1]["kind"] == "zip"


def test_a_disposition_notification_is_listed():
    from mockbench.formats.mime import mdn

    report = mdn(original={"Message-ID": "<m1@x>", "Subject": "Essai"}, reporter="b@ville.mssante.fr",
                 to="a@chu.mssante.fr", error="E12^Document illisible")
    printed = pretty_raw(report, "mss")
    assert printed["headers"]["Subject"] == "[KO Intégration système !][E12] Essai"
    assert [p["content_type"] for p in printed["parts"]] == ["text/plain", "message/disposition-notification"]
    assert "processed/Error: E12^Document illisible" in printed["parts"][1]["text"]


# Tokens -----------------------------------------------------------------------------------------------
def test_a_jwt_is_decoded_and_its_signature_never_verified():
    key = ECKey.generate_key("P-256")
    claims = {"iss": "https://auth.esante.gouv.fr/auth/realms/esante-wallet", "sub": "f:550dc1c8:899700218896",
              "aud": "mockbench", "exp": 1_900_000_000, "SubjectNameID": "899700218896"}
    token = jwt.encode({"alg": "ES256", "kid": "k1"}, claims, key)
    decoded = decode_jwt(token)
    assert decoded["header"] == {"alg": "ES256", "kid": "k1", "typ": "JWT"}
    assert decoded["claims"] == claims
    assert decoded["signature"] == {"present": True, "verified": False, "algorithm": "ES256"}
    assert decoded["token"].endswith("…") and len(decoded["token"]) == 41
    # A forged signature decodes the same: the report shows, it does not vouch.
    forged = token.rsplit(".", 1)[0] + ".AAAA"
    assert decode_jwt(forged)["claims"] == claims
    found = find_tokens(json.dumps({"access_token": token, "id_token": token, "token_type": "Bearer"}))
    assert len(found) == 1                                       # one token, seen twice
    assert pretty_raw(json.dumps({"id_token": token}), "oidc")["tokens"][0]["claims"]["sub"] == claims["sub"]


@pytest.mark.parametrize("text", ["eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", "eyJnot.eyJjson.x", "a.b.c", "eyJ.eyJ"])
def test_things_that_look_like_tokens(text):
    decoded = decode_jwt(text)
    if text.startswith("eyJhbGciOiJub25lIn0"):
        assert decoded["header"] == {"alg": "none"} and decoded["signature"]["present"] is False
    else:
        assert decoded is None
    assert isinstance(find_tokens(f"x={text}"), list)


# JSON, forms, text --------------------------------------------------------------------------------------
def test_json_form_and_text():
    printed = pretty_raw('{"b": [1, 2], "é": "à"}')
    assert printed["kind"] == "json" and printed["text"] == '{\n  "b": [\n    1,\n    2\n  ],\n  "é": "à"\n}'
    form = pretty_raw("psc POST token grant_type=authorization_code&code=abc&client_secret=***", "oidc")
    assert form["kind"] == "form"
    assert form["text"].split("\n") == ["psc POST token", "  grant_type = authorization_code", "  code = abc",
                                        "  client_secret = ***"]
    assert pretty_raw("", "dmp")["kind"] == "empty"
    assert pretty_raw("message m1 from a into b", "mss")["kind"] == "text"
    broken = pretty_raw('{"a": ', "dmp")
    assert broken["kind"] == "text" and broken["note"].startswith("JSON illisible")


@pytest.mark.parametrize("garbage", [b"\x00\xff\xfe" * 100, "MSH", "--\n\n--", "From: x\n\n" + "\x00" * 10,
                                     "<" * 1000, "MSH|^~\\&|" + "|" * 10_000])
def test_garbage_never_raises(garbage):
    printed = pretty_raw(garbage)
    assert printed["kind"] in ("empty", "xml", "hl7", "mime", "json", "form", "text")
    assert isinstance(printed["tokens"], list) and isinstance(printed["parts"], list)


def test_times_are_shown_in_utc_for_the_reader():
    from mockbench.report.html import _when

    assert _when("2026-11-26T10:04:12.345Z") == "2026-11-26 10:04:12 UTC"
    assert _when("2026-11-26T10:04:12+01:00") == "2026-11-26 10:04:12 +01:00"
    assert _when(None) == "—" and _when("demain") == "demain"
