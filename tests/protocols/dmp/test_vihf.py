"""The VIHF (DMP security token): corpus tokens, required attributes, invalid values, both spellings of
Authentification_Mode, the actor it resolves to, and its XML signature.

Corpus tests need MOCKBENCH_CORPUS (they skip without it); the rest build tokens from a template."""

from __future__ import annotations

import base64
import datetime
import hashlib
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from mockbench.formats.xml import XmlError, parse_xml
from mockbench.protocols.dmp.vihf import (
    NS_DS,
    NS_SAML,
    NS_WSSE,
    OPTIONAL_ATTRIBUTES,
    REQUIRED_ATTRIBUTES,
    TokenCache,
    Vihf,
    VihfError,
    actor_for,
    check_signature,
    parse_vihf,
    patient_of,
    signature_problem,
    signer_findings,
)
from mockbench.world import errors, identity
from mockbench.world.model import Patient, Professional, Structure
from mockbench.world.store import Store
from mockbench.world.world import World

# --- tokens built from a template ----------------------------------------------------------------------

NIR_TEST = identity.OID_INS_NIR_TEST
INS = "207058575627097"                       # the corpus patient (valid NIR key)
IDNPS = "899900063480"                        # the corpus professional
ROLE = "urn:oasis:names:tc:xacml:2.0:subject:role"
PURPOSE = "urn:oasis:names:tc:xspa:1.0:subject:purposeofuse"
RESOURCE_ID = "urn:oasis:names:tc:xacml:2.0:resource:resource-id"
SUBJECT_ID = "urn:oasis:names:tc:xspa:1.0:subject:subject-id"
CONFIDENTIALITY = "urn:oasis:names:tc:xspa:1.0:resource:patient:hl7:confidentiality-code"


def role(code: str, system: str) -> str:
    return f'<Role xmlns="urn:hl7-org:v3" code="{code}" codeSystem="{system}" xsi:type="CE"/>'


def purpose(code: str, system: str = "1.2.250.1.213.1.1.4.248") -> str:
    return f'<PurposeOfUse xmlns="urn:hl7-org:v3" code="{code}" codeSystem="{system}" xsi:type="CE"/>'


def default_attributes() -> dict[str, list[str]]:
    """Attribute name -> its AttributeValue contents (XML), as a DPI in INDIRECTE_RENFORCEE mode sends."""
    return {
        "Identifiant_Structure": ["1010000024"],
        "Secteur_Activite": ["SA01^1.2.250.1.71.4.2.4"],
        SUBJECT_ID: ["Jeanne MARTIN"],
        ROLE: [role("10", "1.2.250.1.71.1.2.7"), role("SM26", "1.2.250.1.71.4.2.5")],
        "VIHF_Version": ["3.0"],
        "Authentification_Mode": ["INDIRECTE_RENFORCEE"],
        RESOURCE_ID: [f"{INS}^^^&amp;{NIR_TEST}&amp;ISO^NH"],
        "Ressource_URN": ["urn:dmp"],
        PURPOSE: [purpose("normal")],
        "LPS_ID": ["MB-42"],
        "LPS_Nom": ["DPI de test"],
        "LPS_Version": ["2.1"],
        "LPS_ID_HOMOLOGATION_DMP": ["HOMOL-1"],
    }


def token_xml(attributes: dict[str, list[str]] | None = None, *, issuer: str | None = "CN=DPI de test,O=CHU,C=FR",
              name_id: str | None = IDNPS, version: str = "2.0", assertion_id: str = "_vihf1") -> str:
    attributes = default_attributes() if attributes is None else attributes
    attrs = "".join(
        f'<saml2:Attribute Name="{name}">'
        + "".join(f"<saml2:AttributeValue>{v}</saml2:AttributeValue>" for v in values)
        + "</saml2:Attribute>"
        for name, values in attributes.items()
    )
    issuer_xml = ("" if issuer is None else f'<saml2:Issuer Format="urn:oasis:names:tc:SAML:1.1:nameid-format:'
                  f'X509SubjectName">{issuer}</saml2:Issuer>')
    subject = "" if name_id is None else f"<saml2:Subject><saml2:NameID>{name_id}</saml2:NameID></saml2:Subject>"
    return (f'<saml2:Assertion xmlns:saml2="{NS_SAML}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            f'ID="{assertion_id}" IssueInstant="2025-06-15T10:00:00Z" Version="{version}">{issuer_xml}{subject}'
            f"<saml2:AttributeStatement>{attrs}</saml2:AttributeStatement></saml2:Assertion>")


def security(inner: str) -> etree._Element:
    return parse_xml(f'<wsse:Security xmlns:wsse="{NS_WSSE}">{inner}</wsse:Security>'.encode())


def token(attributes: dict[str, list[str]] | None = None, **kw) -> etree._Element:
    return security(token_xml(attributes, **kw))


def with_attr(name: str, *values: str, drop: tuple[str, ...] = ()) -> dict[str, list[str]]:
    attrs = {k: v for k, v in default_attributes().items() if k not in drop}
    attrs[name] = list(values)
    return attrs


def without(*names: str) -> dict[str, list[str]]:
    return {k: v for k, v in default_attributes().items() if k not in names}


def rules(vihf: Vihf) -> dict[str, str]:
    return {f["rule"]: f["severity"] for f in vihf.findings}


# --- corpus ---------------------------------------------------------------------------------------------

LATIN1_DECLARATION = b'<?xml version="1.0" encoding="ISO-8859-1"?>'


def load_corpus(path: Path) -> etree._Element:
    """The wsse:Security of a request (the SOAP part of an MTOM one), or the bare Assertion of a VIHF file.
    VIHF_DIRECTE_*.xml are ISO-8859-1 without a declaration: parsed with one added."""
    data = path.read_bytes()
    if data.startswith(b"--"):  # MTOM (TD2.1): the root part is the SOAP envelope
        data = data[data.index(b"<soap:Envelope"):data.index(b"</soap:Envelope>") + len(b"</soap:Envelope>")]
    try:
        root = parse_xml(data)
    except XmlError:
        root = parse_xml(LATIN1_DECLARATION + data)
    if root.tag == f"{{{NS_SAML}}}Assertion":
        return root
    return root.find(f".//{{{NS_WSSE}}}Security")


PROFESSION_ROLES = (("10", "1.2.250.1.71.1.2.7"), ("SM26", "1.2.250.1.71.4.2.5"))

# File by file: what the token says (all of them name the same test professional and patient).
CORPUS_VIHF = {
    "VIHF_DIRECTE_signed.xml": dict(structure_id="499900063480001", authentication="DIRECTE", signed=True,
                                    subject_id="", issuer_has="CN=899900038839"),
    "VIHF_DIRECTE_unsigned.xml": dict(structure_id="499900063480001", authentication="DIRECTE", signed=False,
                                      subject_id="", issuer_has="CN=899900038839"),
    "VIHF_INDIRECTE_signed.xml": dict(structure_id="339172288100052", authentication="INDIRECTE", signed=True,
                                      subject_id="MAX LIBRE", issuer_has="CN=serviceps.sesam-vitale.fr"),
    "VIHF_INDIRECTE_RENFORCEE_signed.xml": dict(structure_id="10B0127189", authentication="INDIRECTE_RENFORCEE",
                                                signed=True, subject_id="MAX LIBRE",
                                                issuer_has="CN=Certificat Wizard DMP 2019-R2"),
}


@pytest.mark.parametrize("name", sorted(CORPUS_VIHF))
def test_corpus_vihf_files(corpus, name):
    expected = CORPUS_VIHF[name]
    vihf = parse_vihf(load_corpus(corpus / "dmp-wire" / name))
    assert vihf.name_id == IDNPS
    assert vihf.structure_id == expected["structure_id"]
    assert vihf.authentication == expected["authentication"]
    assert vihf.mode == "normal"
    assert patient_of(vihf) == (INS, NIR_TEST)
    assert vihf.resource_id == f"{INS}^^^&{NIR_TEST}&ISO^NH"
    assert vihf.signed is expected["signed"]
    assert vihf.subject_id == expected["subject_id"]
    assert expected["issuer_has"] in vihf.issuer
    assert vihf.roles == PROFESSION_ROLES
    assert (vihf.version, vihf.resource_urn, vihf.sector) == ("3.0", "urn:dmp", "SA07^1.2.250.1.71.4.2.4")
    assert (vihf.lps_id, vihf.lps_name, vihf.lps_version, vihf.lps_homologation) == (
        "01.01.01.01", "LPS GIE-SV", "1", "NumAutorisation")
    assert vihf.confidentiality == ""
    # Every ANS example spells Authentification_mode with a lower-case m.
    assert rules(vihf)["VIHF/Authentification_Mode"] == "info"
    # signed or not, the parser only reads: the door checks the signature against its trust anchors
    assert "VIHF/Signature" not in rules(vihf)
    assert rules(vihf)["VIHF/VIHF_Version"] == "info"   # the version read is journaled


def test_corpus_direct_tokens_are_latin1_without_declaration(corpus):
    for name in ("VIHF_DIRECTE_signed.xml", "VIHF_DIRECTE_unsigned.xml"):
        with pytest.raises(XmlError, match="Invalid bytes in character encoding"):
            parse_xml((corpus / "dmp-wire" / name).read_bytes())


def request_files(corpus: Path) -> list[Path]:
    return sorted((corpus / "dmp-wire").glob("*_request.xml"))


def test_corpus_request_tokens(corpus):
    seen = []
    for path in request_files(corpus):
        sec = load_corpus(path)
        assert sec is not None, path.name
        if path.name == "WS_INS2_request.xml":
            # An INSi request: its token carries identifiantFacturation only, no DMP attribute.
            with pytest.raises(VihfError) as err:
                parse_vihf(sec)
            assert (err.value.subcode, err.value.attribute) == ("VIHFMissingAttribute", "VIHF_Version")
            assert "LPS_ID_HOMOLOGATION_DMP" in err.value.reason
            continue
        vihf = parse_vihf(sec)
        expected_ins = "153078987658513" if path.name == "TD0.5_request.xml" else INS
        assert (vihf.name_id, vihf.structure_id, vihf.authentication, vihf.mode) == (
            IDNPS, "499900063480001", "DIRECTE", "normal"), path.name
        assert patient_of(vihf) == (expected_ins, NIR_TEST), path.name
        assert vihf.signed is False and vihf.subject_id == "", path.name
        assert rules(vihf) == {"VIHF/Authentification_Mode": "info", "VIHF/VIHF_Version": "info"}, path.name
        seen.append(path.name.split("_")[0])
    assert seen == ["TD0.2", "TD0.3", "TD0.4", "TD0.5", "TD1.3a", "TD1.3b", "TD1.4", "TD1.5a", "TD1.5b", "TD1.5d",
                    "TD1.6", "TD2.1", "TD3.1", "TD3.2", "TD3.3c", "TD3.3d"]


def test_corpus_every_token_carries_the_required_attributes(corpus):
    files = [p for p in request_files(corpus) if p.name != "WS_INS2_request.xml"]
    files += [corpus / "dmp-wire" / name for name in CORPUS_VIHF]
    for path in files:
        assertion = load_corpus(path)
        if assertion.tag != f"{{{NS_SAML}}}Assertion":
            assertion = assertion.find(f"{{{NS_SAML}}}Assertion")
        names = {a.get("Name") for a in assertion.iter(f"{{{NS_SAML}}}Attribute")}
        wanted = {n for n in REQUIRED_ATTRIBUTES if n != "Authentification_Mode"} | {"Authentification_mode"}
        assert wanted <= names, path.name
        assert CONFIDENTIALITY not in names, path.name


@pytest.mark.parametrize("name", ["VIHF_DIRECTE_signed.xml", "VIHF_INDIRECTE_signed.xml",
                                  "VIHF_INDIRECTE_RENFORCEE_signed.xml", "WS_INS2_request.xml"])
def test_corpus_signatures_do_not_verify(corpus, name):
    # The example tokens were edited after signing: the reference digest no longer matches (for the two
    # IGC-Santé signed ones the SignedInfo signature itself does verify with the embedded key).
    sec = load_corpus(corpus / "dmp-wire" / name)
    assert "digest does not match" in signature_problem(sec, b"")
    assert check_signature(sec, b"") is False


def test_corpus_actor(corpus, world):
    vihf = parse_vihf(load_corpus(corpus / "dmp-wire" / "TD0.2_request.xml"))
    with world.transaction() as tx:
        world.directory.add_structure(tx, Structure(id="499900063480001", finess=identity.make_faker(3).finess(),
                                                    name="Cabinet de test"))
        world.directory.add_professional(tx, Professional(id="dr-libre", idnps=IDNPS, family_name="LIBRE",
                                                          given_name="MAX", structure="499900063480001"),
                                         check_digits=False)
        actor, found = actor_for(world, tx, vihf)
    assert (actor.kind, actor.id, actor.structure, actor.mode, actor.authentication) == (
        "professional", "dr-libre", "499900063480001", "normal", "DIRECTE")
    assert found == []


# --- parsing, synthetic tokens ---------------------------------------------------------------------------


def test_template_token_parses():
    vihf = parse_vihf(token())
    assert vihf == Vihf(
        name_id=IDNPS, issuer="CN=DPI de test,O=CHU,C=FR", version="3.0", structure_id="1010000024",
        sector="SA01^1.2.250.1.71.4.2.4", subject_id="Jeanne MARTIN", roles=PROFESSION_ROLES,
        authentication="INDIRECTE_RENFORCEE", resource_id=f"{INS}^^^&{NIR_TEST}&ISO^NH", patient_ins=INS,
        patient_ins_oid=NIR_TEST, resource_urn="urn:dmp", mode="normal", lps_id="MB-42", lps_name="DPI de test",
        lps_version="2.1", lps_homologation="HOMOL-1", confidentiality="", signed=False,
        findings=vihf.findings)
    assert rules(vihf) == {"VIHF/VIHF_Version": "info"}  # unsigned: the door's business, not the parser's


def test_bare_assertion_is_accepted():
    assert parse_vihf(parse_xml(token_xml().encode())).name_id == IDNPS


@pytest.mark.parametrize("name", [*REQUIRED_ATTRIBUTES, "Issuer", "NameID"])
def test_each_required_attribute_missing(name):
    if name == "Issuer":
        sec = token(issuer=None)
    elif name == "NameID":
        sec = token(name_id=None)
    else:
        sec = token(without(name))
    with pytest.raises(VihfError) as err:
        parse_vihf(sec)
    assert (err.value.subcode, err.value.attribute) == ("VIHFMissingAttribute", name)
    assert f"{name} is missing" in err.value.reason
    assert "also missing" not in err.value.reason


@pytest.mark.parametrize("name", ["LPS_Nom", "Identifiant_Structure", ROLE, PURPOSE])
def test_empty_attribute_counts_as_missing(name):
    with pytest.raises(VihfError) as err:
        parse_vihf(token(with_attr(name, "  ")))
    assert (err.value.subcode, err.value.attribute) == ("VIHFMissingAttribute", name)


def test_empty_name_id_counts_as_missing():
    with pytest.raises(VihfError) as err:
        parse_vihf(token(name_id=" "))
    assert (err.value.subcode, err.value.attribute) == ("VIHFMissingAttribute", "NameID")


def test_several_missing_are_all_listed():
    with pytest.raises(VihfError) as err:
        parse_vihf(token(without("LPS_Nom", "Ressource_URN")))
    assert err.value.attribute == "Ressource_URN"
    assert "also missing: LPS_Nom" in err.value.reason


@pytest.mark.parametrize("name", OPTIONAL_ATTRIBUTES)
def test_optional_attributes(name):
    vihf = parse_vihf(token(without(name)))
    assert vihf.subject_id == ("" if name == SUBJECT_ID else "Jeanne MARTIN")
    assert vihf.confidentiality == ""


INVALID = [
    ("VIHF_Version", ["2.0"], "VIHF_Version"),
    ("VIHF_Version", ["3"], "VIHF_Version"),
    ("Authentification_Mode", ["CPS"], "Authentification_Mode"),
    ("Authentification_Mode", ["directe"], "Authentification_Mode"),
    (PURPOSE, [purpose("urgence")], PURPOSE),
    (PURPOSE, [purpose("normal"), purpose("centre_15")], PURPOSE),
    (PURPOSE, ['<PurposeOfUse xmlns="urn:hl7-org:v3" codeSystem="1.2.250.1.213.1.1.4.248"/>'], PURPOSE),
    (RESOURCE_ID, [INS], RESOURCE_ID),                                           # not a CX
    (RESOURCE_ID, [f"{INS}^^^&amp;1.2.3.4&amp;ISO^NH"], RESOURCE_ID),            # not an INS authority
    (RESOURCE_ID, [f"207058575627098^^^&amp;{NIR_TEST}&amp;ISO^NH"], RESOURCE_ID),  # wrong NIR key
    (RESOURCE_ID, [f"{INS}^^^&amp;{NIR_TEST}&amp;ISO^PI"], RESOURCE_ID),
    ("Ressource_URN", ["urn:dmp2"], "Ressource_URN"),
    (CONFIDENTIALITY, ["SECRET^1.2.250.1.213.1.1.4.13"], CONFIDENTIALITY),
    (CONFIDENTIALITY, ["N", "MASQUE_PS"], CONFIDENTIALITY),
    ("LPS_ID", ["a", "b"], "LPS_ID"),                                             # two values
    ("LPS_Nom", ["<x>element</x>"], "LPS_Nom"),                                   # not text
    (ROLE, ['<Role xmlns="urn:hl7-org:v3" codeSystem="1.2.250.1.71.1.2.7"/>'], ROLE),  # no code
]


@pytest.mark.parametrize(("name", "values", "attribute"), INVALID,
                         ids=[f"{n.rsplit(':', 1)[-1]}={'|'.join(v)[:30]}" for n, v, _ in INVALID])
def test_invalid_values(name, values, attribute):
    with pytest.raises(VihfError) as err:
        parse_vihf(token(with_attr(name, *values)))
    assert (err.value.subcode, err.value.attribute) == ("VIHFInvalidAttribute", attribute)
    assert err.value.reason


def test_attribute_given_twice():
    xml = token_xml().replace('<saml2:Attribute Name="LPS_ID">',
                              '<saml2:Attribute Name="LPS_ID"><saml2:AttributeValue>x</saml2:AttributeValue>'
                              '</saml2:Attribute><saml2:Attribute Name="LPS_ID">')
    with pytest.raises(VihfError) as err:
        parse_vihf(security(xml))
    assert (err.value.subcode, err.value.attribute) == ("VIHFInvalidAttribute", "LPS_ID")


@pytest.mark.parametrize("mode", ["normal", "bris_de_glace", "centre_15"])
@pytest.mark.parametrize("authentication", ["DIRECTE", "INDIRECTE", "INDIRECTE_RENFORCEE"])
def test_every_mode_parses_with_every_authentication(mode, authentication):
    # The access-mode rules (bris de glace needs DIRECTE...) are the world's, not the parser's.
    attrs = with_attr(PURPOSE, purpose(mode))
    attrs["Authentification_Mode"] = [authentication]
    vihf = parse_vihf(token(attrs))
    assert (vihf.mode, vihf.authentication) == (mode, authentication)


# Authentification_Mode / Authentification_mode


def test_upper_case_spelling_has_no_finding():
    assert "VIHF/Authentification_Mode" not in rules(parse_vihf(token()))


def test_lower_case_spelling_is_read_and_noted():
    vihf = parse_vihf(token(with_attr("Authentification_mode", "DIRECTE", drop=("Authentification_Mode",))))
    assert vihf.authentication == "DIRECTE"
    assert rules(vihf)["VIHF/Authentification_Mode"] == "info"
    assert "lower-case m" in next(f["message"] for f in vihf.findings if f["rule"] == "VIHF/Authentification_Mode")


def test_both_spellings_agreeing():
    vihf = parse_vihf(token(with_attr("Authentification_mode", "INDIRECTE_RENFORCEE")))
    assert vihf.authentication == "INDIRECTE_RENFORCEE"
    assert rules(vihf)["VIHF/Authentification_Mode"] == "warning"


def test_both_spellings_disagreeing():
    with pytest.raises(VihfError) as err:
        parse_vihf(token(with_attr("Authentification_mode", "DIRECTE")))
    assert (err.value.subcode, err.value.attribute) == ("VIHFInvalidAttribute", "Authentification_Mode")


def test_lower_case_spelling_invalid_value_names_the_attribute():
    with pytest.raises(VihfError) as err:
        parse_vihf(token(with_attr("Authentification_mode", "CPS", drop=("Authentification_Mode",))))
    assert (err.value.subcode, err.value.attribute) == ("VIHFInvalidAttribute", "Authentification_Mode")


# Security / Assertion


def test_no_security_header():
    with pytest.raises(VihfError) as err:
        parse_vihf(None)
    assert err.value.subcode == "VIHFMissing"


def test_security_without_assertion():
    with pytest.raises(VihfError) as err:
        parse_vihf(security("<Timestamp/>"))
    assert err.value.subcode == "VIHFMissing"


@pytest.mark.parametrize("sec", [
    security(token_xml() + token_xml()),                                               # two assertions
    security('<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:1.0:assertion" MajorVersion="1"/>'),
    token(version="1.1"),                                                              # not SAML 2.0
    parse_xml(b'<Security xmlns="urn:not-wsse"/>'),                                    # not wsse:Security
    security(f'<saml2:Assertion xmlns:saml2="{NS_SAML}" Version="2.0"><saml2:Issuer>x</saml2:Issuer>'
             "</saml2:Assertion>"),                                                    # no AttributeStatement
], ids=["two-assertions", "saml1", "version-1.1", "other-security", "no-attribute-statement"])
def test_invalid_token(sec):
    with pytest.raises(VihfError) as err:
        parse_vihf(sec)
    assert err.value.subcode == "VIHFInvalid"
    assert err.value.as_dict()["error"] == "VIHFInvalid"


# Roles, confidentiality, findings


def test_automate_role():
    vihf = parse_vihf(token(with_attr(ROLE, role("AUTOMATE", "1.2.250.1.213.1.1.4.6"))))
    assert vihf.roles == (("AUTOMATE", "1.2.250.1.213.1.1.4.6"),)
    assert vihf.automated
    assert "VIHF/Role" not in rules(vihf)


def test_unknown_role_system_and_no_profession():
    vihf = parse_vihf(token(with_attr(ROLE, role("X1", "1.2.3"))))
    assert vihf.roles == (("X1", "1.2.3"),)
    messages = [f["message"] for f in vihf.findings if f["rule"] == "VIHF/Role"]
    assert len(messages) == 1 and "first role X1^1.2.3" in messages[0] and "TRE_G15" in messages[0]


def test_role_in_text_form_is_read_with_a_finding():
    vihf = parse_vihf(token(with_attr(ROLE, "10^1.2.250.1.71.1.2.7")))
    assert vihf.roles == (("10", "1.2.250.1.71.1.2.7"),)
    assert "VIHF/Role" in rules(vihf)


def test_purpose_code_system_other():
    vihf = parse_vihf(token(with_attr(PURPOSE, purpose("centre_15", "1.2.3"))))
    assert vihf.mode == "centre_15"
    assert "VIHF/PurposeOfUse" in rules(vihf)


def test_secret_connection_of_a_minor():
    vihf = parse_vihf(token(with_attr(CONFIDENTIALITY, "INVISIBLE_REPRESENTANTS_LEGAUX^1.2.250.1.213.1.1.4.13")))
    assert vihf.confidentiality == "INVISIBLE_REPRESENTANTS_LEGAUX"
    assert "VIHF/confidentiality-code" not in rules(vihf)


def test_other_known_confidentiality_code_is_noted():
    vihf = parse_vihf(token(with_attr(CONFIDENTIALITY, "MASQUE_PS^1.2.250.1.213.1.1.4.13")))
    assert vihf.confidentiality == "MASQUE_PS"
    assert "VIHF/confidentiality-code" in rules(vihf)


def test_ins_c_is_accepted_with_a_finding():
    vihf = parse_vihf(token(with_attr(RESOURCE_ID, f"1234567890123456789012^^^&amp;{identity.OID_INS_C}"
                                                   "&amp;ISO^NH")))
    assert patient_of(vihf) == ("1234567890123456789012", identity.OID_INS_C)
    assert "VIHF/resource-id" in rules(vihf)


def test_unknown_attributes_noted():
    attrs = with_attr("identifiantFacturation", "991130972")
    attrs["Authentification_Mode"] = ["DIRECTE"]
    vihf = parse_vihf(token(attrs))
    assert rules(vihf) == {"VIHF/VIHF_Version": "info", "VIHF/Attribute": "info"}


def test_name_id_not_an_idnps_is_noted():
    assert "VIHF/NameID" in rules(parse_vihf(token(name_id="ABC")))


# --- actor_for ---------------------------------------------------------------------------------------------

FINESS = identity.make_faker(11).finess()
SIRET = identity.make_faker(11).siret()
OTHER_FINESS = identity.make_faker(12).finess()


@pytest.fixture
def world(tmp_path):
    return World(Store(tmp_path / "w.db"))


@pytest.fixture
def cast(world):
    with world.transaction() as tx:
        world.directory.add_structure(tx, Structure(id="chu", finess=FINESS, name="CHU", siret=SIRET))
        world.directory.add_structure(tx, Structure(id="clinic", finess=OTHER_FINESS, name="Clinique"))
        world.directory.add_professional(tx, Professional(id="dr-a", idnps=IDNPS, family_name="A", given_name="A",
                                                          structure="chu"), check_digits=False)
        world.directory.add_professional(tx, Professional(id="dr-free", idnps="810000000009", family_name="F",
                                                          given_name="F", profession="21"), check_digits=False)
        world.directory.add_patient(tx, Patient(id="alice", ins=INS, family_name="X", given_name="A",
                                                birth_date="1970-05-07", sex="F"))
    return world


def vihf_with(structure: str = "", name_id: str = IDNPS, mode: str = "normal", authentication: str = "DIRECTE",
              roles: tuple = PROFESSION_ROLES) -> Vihf:
    return Vihf(name_id=name_id, structure_id=structure, mode=mode, authentication=authentication, roles=roles,
                patient_ins=INS, patient_ins_oid=NIR_TEST)


def resolve(world, vihf, **kw):
    with world.transaction() as tx:
        return actor_for(world, tx, vihf, **kw)


@pytest.mark.parametrize("key", ["chu", FINESS, "1" + FINESS, "3" + SIRET, SIRET])
def test_structure_resolution(cast, key):
    actor, found = resolve(cast, vihf_with(key, mode="centre_15", authentication="INDIRECTE"))
    assert (actor.kind, actor.id, actor.structure, actor.mode, actor.authentication) == (
        "professional", "dr-a", "chu", "centre_15", "INDIRECTE")
    assert found == []


def test_other_structure_than_own_is_noted(cast):
    actor, found = resolve(cast, vihf_with("1" + OTHER_FINESS))
    assert actor.structure == "clinic"
    assert [(f["rule"], f["severity"]) for f in found] == [("VIHF/Identifiant_Structure", "info")]


def test_unknown_structure_falls_back_to_own(cast):
    actor, found = resolve(cast, vihf_with("10B0127189"))
    assert actor.structure == "chu"
    assert [(f["rule"], f["severity"]) for f in found] == [("VIHF/Identifiant_Structure", "warning")]


def test_unknown_structure_and_none_of_its_own(cast):
    with pytest.raises(VihfError) as err:
        resolve(cast, vihf_with("10B0127189", name_id="810000000009"))
    assert (err.value.subcode, err.value.attribute) == ("VIHFUnknownStructure", "Identifiant_Structure")
    actor, found = resolve(cast, vihf_with("10B0127189", name_id="810000000009"), accept_unknown=True)
    assert (actor.id, actor.structure) == ("dr-free", "")
    assert [f["rule"] for f in found] == ["VIHF/Identifiant_Structure", "VIHF/Role"]  # and profession 21 != 10


def test_unknown_professional(cast):
    with pytest.raises(VihfError) as err:
        resolve(cast, vihf_with("chu", name_id="899999999999"))
    assert (err.value.subcode, err.value.attribute) == ("VIHFUnknownProfessional", "NameID")
    actor, found = resolve(cast, vihf_with("chu", name_id="899999999999"), accept_unknown=True)
    assert (actor.kind, actor.id, actor.structure) == ("professional", "899999999999", "chu")
    assert [f["rule"] for f in found] == ["VIHF/NameID"]
    # The world then refuses with PROFESSIONAL_UNKNOWN.
    with cast.transaction() as tx, pytest.raises(errors.UnknownProfessional):
        cast.dmp.check_access(tx, actor, cast.directory.patient(tx, INS))


def test_automate_acts_as_professional_with_structure(cast):
    actor, found = resolve(cast, vihf_with("1" + FINESS, roles=(("AUTOMATE", "1.2.250.1.213.1.1.4.6"),)))
    assert (actor.kind, actor.id, actor.structure) == ("professional", "dr-a", "chu")
    assert [(f["rule"], f["severity"]) for f in found] == [("VIHF/Role", "info")]


def test_bris_de_glace_indirect_is_parsed_and_the_world_refuses(cast):
    vihf = parse_vihf(token(with_attr(PURPOSE, purpose("bris_de_glace"))))
    actor, _ = resolve(cast, vihf)
    assert (actor.mode, actor.authentication) == ("bris_de_glace", "INDIRECTE_RENFORCEE")
    with cast.transaction() as tx, pytest.raises(errors.AccessModeRefused):
        cast.dmp.check_access(tx, actor, cast.directory.patient(tx, INS))


# --- signature ---------------------------------------------------------------------------------------------

EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"


def make_cert(key, subject: str, issuer_key=None, issuer_name: x509.Name | None = None, ca: bool = False):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer_name or name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=3650))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    return builder.sign(issuer_key or key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki():
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = make_cert(ca_key, "TEST CA", ca=True)
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    other_key = ec.generate_private_key(ec.SECP256R1())
    return {
        "ca_pem": ca.public_bytes(serialization.Encoding.PEM),
        "other_ca_pem": make_cert(other_key, "OTHER CA", ca=True).public_bytes(serialization.Encoding.PEM),
        "rsa": (rsa_key, make_cert(rsa_key, "ORG_SIGN rsa", ca_key, ca.subject)),
        "ec": (ec_key, make_cert(ec_key, "ORG_SIGN ec", ca_key, ca.subject)),
    }


def sign(assertion: etree._Element, key, cert, *, reference: str | None = None) -> etree._Element:
    """Sign `assertion` in place as a DPI does: enveloped, exclusive c14n, SHA-256."""
    is_rsa = isinstance(key, rsa.RSAPrivateKey)
    method = "rsa-sha256" if is_rsa else "ecdsa-sha256"
    digest = base64.b64encode(hashlib.sha256(etree.tostring(assertion, method="c14n", exclusive=True)).digest())
    cert_b64 = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
    sig = etree.fromstring(
        f'<Signature xmlns="{NS_DS}"><SignedInfo><CanonicalizationMethod Algorithm="{EXC_C14N}"/>'
        f'<SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#{method}"/>'
        f'<Reference URI="{reference or "#" + assertion.get("ID")}"><Transforms>'
        f'<Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>'
        f'<Transform Algorithm="{EXC_C14N}"/></Transforms>'
        f'<DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/>'
        f"<DigestValue>{digest.decode()}</DigestValue></Reference></SignedInfo><SignatureValue/>"
        f"<KeyInfo><X509Data><X509Certificate>{cert_b64}</X509Certificate></X509Data></KeyInfo></Signature>")
    assertion.insert(1, sig)  # after the Issuer, as SAML wants
    signed_info = etree.tostring(sig.find(f"{{{NS_DS}}}SignedInfo"), method="c14n", exclusive=True)
    if is_rsa:
        value = key.sign(signed_info, padding.PKCS1v15(), hashes.SHA256())
    else:
        r, s = decode_dss_signature(key.sign(signed_info, ec.ECDSA(hashes.SHA256())))
        value = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    sig.find(f"{{{NS_DS}}}SignatureValue").text = base64.b64encode(value).decode()
    return assertion


def signed_in_envelope(pki, kind: str = "rsa", **kw) -> etree._Element:
    """A signed token, serialized, then placed in a SOAP envelope with other namespaces and parsed again."""
    assertion = sign(parse_xml(token_xml().encode()), *pki[kind], **kw)
    envelope = (f'<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope" xmlns:urn="urn:hl7-org:v3" '
                f'xmlns:wsse="{NS_WSSE}"><soap:Header><wsse:Security>'
                f"{etree.tostring(assertion).decode()}</wsse:Security></soap:Header><soap:Body/></soap:Envelope>")
    return parse_xml(envelope.encode()).find(f".//{{{NS_WSSE}}}Security")


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_signature_verifies(pki, kind):
    sec = signed_in_envelope(pki, kind)
    assert signature_problem(sec, pki["ca_pem"]) == ""
    assert check_signature(sec, pki["ca_pem"]) is True
    assert parse_vihf(sec).signed is True
    assert "VIHF/Signature" not in rules(parse_vihf(sec))


def test_signature_from_another_ca(pki):
    sec = signed_in_envelope(pki)
    assert "does not chain" in signature_problem(sec, pki["other_ca_pem"])
    assert check_signature(sec, pki["other_ca_pem"]) is False


def test_altered_token(pki):
    sec = signed_in_envelope(pki)
    value = next(v for v in sec.iter(f"{{{NS_SAML}}}AttributeValue") if v.text == "INDIRECTE_RENFORCEE")
    value.text = "DIRECTE"
    assert "digest does not match" in signature_problem(sec, pki["ca_pem"])


def test_altered_signed_info(pki):
    sec = signed_in_envelope(pki, "ec")
    sec.find(f".//{{{NS_DS}}}CanonicalizationMethod").set("Extra", "1")
    assert "SignatureValue does not verify" in signature_problem(sec, pki["ca_pem"])


def test_reference_to_something_else(pki):
    sec = signed_in_envelope(pki, reference="#other")
    assert "is not the Assertion" in signature_problem(sec, pki["ca_pem"])


def test_unsigned_and_missing(pki):
    assert signature_problem(token(), pki["ca_pem"]) == "the VIHF is not signed"
    assert check_signature(None, pki["ca_pem"]) is False


def test_comment_inside_a_value_does_not_truncate_it(pki):
    # SAML comment truncation: a comment inside the NameID must not make the parser read less than was
    # signed (exclusive c14n without comments ignores it, so the signature still verifies).
    sec = signed_in_envelope(pki)
    name_id = sec.find(f".//{{{NS_SAML}}}NameID")
    name_id.text = "8999"
    name_id.append(etree.Comment("x"))
    name_id[-1].tail = "00063480"
    assert check_signature(sec, pki["ca_pem"]) is True
    assert parse_vihf(sec).name_id == IDNPS


def test_trust_anchors_are_always_explicit(pki):
    """Issue 17 point 7: a signature that verifies with its own embedded certificate is not trusted without
    an anchor; before, `check_signatures` without --tls-dir believed any key."""
    sec = signed_in_envelope(pki, "ec")
    assert signature_problem(sec, b"") == "no trust anchor is configured: no VIHF signature can be trusted"
    assert check_signature(sec, b"  \n") is False
    assert check_signature(sec, pki["other_ca_pem"] + pki["ca_pem"]) is True   # one anchor among several


# --- VIHF table of the PFI guide (specs/trans-cda-r2/mapping.md, "Mapping VIHF pour le DMP") -----------------

def test_lps_id_is_optional():
    """mapping.md, row LPS_ID: "Facultatif"."""
    vihf = parse_vihf(token(without("LPS_ID")))
    assert vihf.lps_id == "" and "LPS_ID" in OPTIONAL_ATTRIBUTES and "LPS_ID" not in REQUIRED_ATTRIBUTES
    assert not any(f["severity"] != "info" for f in vihf.findings)


@pytest.mark.parametrize("version", ["3.0", "4.0"])
def test_vihf_versions_accepted_and_noted(version):
    """mapping.md, row VIHF_Version: Constante "4.0"; the ANS examples (corpus dmp-wire) carry 3.0."""
    vihf = parse_vihf(token(with_attr("VIHF_Version", version)))
    assert vihf.version == version
    assert [f["message"] for f in vihf.findings if f["rule"] == "VIHF/VIHF_Version"] == [f"VIHF {version}"]


@pytest.mark.parametrize("version", ["2.0", "4", "5.0", "3.0.1"])
def test_other_vihf_versions_refused_naming_the_attribute(version):
    with pytest.raises(VihfError) as err:
        parse_vihf(token(with_attr("VIHF_Version", version)))
    assert (err.value.subcode, err.value.attribute) == ("VIHFInvalidAttribute", "VIHF_Version")
    assert "3.0 or 4.0" in err.value.reason


def role_findings(*roles: str) -> list[str]:
    vihf = parse_vihf(token(with_attr(ROLE, *roles)))
    return [f["message"] for f in vihf.findings if f["rule"] == "VIHF/Role"]


G15, G16, R01, G05 = "1.2.250.1.71.1.2.7", "1.2.250.1.71.1.2.8", "1.2.250.1.71.4.2.5", "1.2.250.1.71.4.2.6"


@pytest.mark.parametrize("roles", [
    (role("10", G15), role("SM26", R01)),        # a doctor with a savoir-faire (every ANS example)
    (role("10", G16), role("SM26", R01)),        # a doctor in training (CPF card)
    (role("21", G15), role("A", G05)),           # a pharmacist with a CNOP sub-section
    (role("60", G15),),                          # a nurse: one occurrence
    (role("99", "1.2.250.1.213.1.6.1.140"), role("330", "1.2.250.1.213.1.6.1.107")),  # characterized by role
])
def test_roles_as_the_table_wants_them(roles):
    """mapping.md: role 1st occurrence (TRE_G15/G16 for health professionals), 2nd occurrence "uniquement et
    obligatoirement pour les médecins et pharmaciens" (TRE_R01, TRE_G05), and for professionals characterized
    by their role (TRE_R85)."""
    assert role_findings(*roles) == []


@pytest.mark.parametrize(("roles", "words"), [
    ((role("10", G15),), "a doctor (role 10^1.2.250.1.71.1.2.7) needs a second role occurrence from TRE_R01"),
    ((role("21", G15),), "a pharmacist (role 21^1.2.250.1.71.1.2.7) needs a second role occurrence from TRE_G05"),
    ((role("21", G15), role("SM26", R01)), "the second role SM26^1.2.250.1.71.4.2.5 of a pharmacist takes its code "
                                           "from TRE_G05"),
    ((role("10", G15), role("A", G05)), "of a doctor takes its code from TRE_R01"),
    ((role("99", "1.2.250.1.213.1.6.1.140"),), "needs a second role occurrence from TRE_R85"),
    ((role("60", G15), role("SM26", R01)), "has a second occurrence only for doctors, pharmacists"),
    ((role("SM26", R01),), "first role SM26^1.2.250.1.71.4.2.5"),
])
def test_roles_the_table_does_not_want_are_findings(roles, words):
    found = role_findings(*roles)
    assert len(found) == 1 and words in found[0], found


def test_the_ans_signed_example_names_its_seal_certificate(corpus):
    """mapping.md, rows //Assertion/ds:Signature and //Assertion/Issuer: VIHF_INDIRECTE_signed.xml is signed by
    the certificate whose OU is its Identifiant_Structure and whose DN is its Issuer: no finding."""
    sec = load_corpus(corpus / "dmp-wire" / "VIHF_INDIRECTE_signed.xml")
    vihf = parse_vihf(sec)
    assert signer_findings(sec, vihf) == []
    other = Vihf(name_id=vihf.name_id, issuer="CN=someone else", structure_id="1010000024")
    assert [(f["rule"], f["severity"]) for f in signer_findings(sec, other)] == [
        ("VIHF/Signature", "warning"), ("VIHF/Issuer", "info")]
    assert signer_findings(token(), vihf) == []   # unsigned: nothing to say about a signer


# --- mockbench.testing.sign_vihf against the verifier -------------------------------------------------------

@pytest.fixture(scope="module")
def bench_pki(tmp_path_factory):
    from mockbench.pki import init_pki

    files = init_pki(tmp_path_factory.mktemp("sign-pki"))
    return files.ca_cert.parent, files.ca_cert.read_bytes()


_XML_TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40).filter(
    lambda t: t.strip() and t == t.strip())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=_XML_TEXT, other=_XML_TEXT)
def test_sign_vihf_verifies_and_any_change_is_caught(bench_pki, value, other):
    """What sign_vihf makes, signature_problem accepts (exclusive c14n, ECDSA r||s, the KeyInfo certificate
    chaining to the PKI's CA), whatever the attribute text; changing a signed value is caught."""
    from mockbench.testing import sign_vihf

    folder, ca_pem = bench_pki
    sec = sign_vihf(token(with_attr("LPS_Nom", escape(value))), folder, structure="1010000024")
    assert signature_problem(sec, ca_pem) == ""
    assert parse_vihf(sec).lps_name == value
    assert signer_findings(sec, parse_vihf(sec)) == []
    if other != value:
        attribute = next(a for a in sec.iter(f"{{{NS_SAML}}}Attribute") if a.get("Name") == "LPS_Nom")
        attribute[0].text = other
        assert "digest does not match" in signature_problem(sec, ca_pem)



# --- TokenCache: a success remembered, every failure still a failure (issue 21) ---------------------------------

def _altered_value(sec: etree._Element) -> None:
    next(v for v in sec.iter(f"{{{NS_SAML}}}AttributeValue") if v.text == "INDIRECTE_RENFORCEE").text = "DIRECTE"


def _altered_signed_info(sec: etree._Element) -> None:
    sec.find(f".//{{{NS_DS}}}CanonicalizationMethod").set("Extra", "1")


def _comment_in_name_id(sec: etree._Element) -> None:
    sec.find(f".//{{{NS_SAML}}}NameID").append(etree.Comment("x"))


def _problem(cache: TokenCache, sec: etree._Element | None, anchors: bytes) -> tuple[str, bytes | None]:
    return cache.problem(sec, anchors, cache.key(sec))


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_token_cache_refuses_what_signature_problem_refuses(pki, kind):
    """After a success is kept, the same token altered (a value, the SignedInfo), checked against other
    anchors or none, is refused with signature_problem's own reason; a comment (outside exclusive c14n) still
    verifies; the same token, unaltered, is answered from the cache with the same signer findings."""
    cache = TokenCache()
    sec = signed_in_envelope(pki, kind)
    problem, key = _problem(cache, sec, pki["ca_pem"])
    assert (problem, key is not None) == ("", True)
    assert _problem(cache, sec, pki["ca_pem"]) == ("", key)   # the same token again: from the cache
    vihf = parse_vihf(sec)
    other = Vihf(name_id=vihf.name_id, issuer="CN=someone else", structure_id="1010000024")
    for who in (vihf, other):
        assert cache.signer_findings(sec, who, key) == signer_findings(sec, who)
    for anchors in (pki["other_ca_pem"], b"", b"  \n"):
        assert signature_problem(sec, anchors)
        assert _problem(cache, sec, anchors) == (signature_problem(sec, anchors), None)
    for alter in (_altered_value, _altered_signed_info):
        changed = signed_in_envelope(pki, kind)
        alter(changed)
        assert signature_problem(changed, pki["ca_pem"])
        assert _problem(cache, changed, pki["ca_pem"]) == (signature_problem(changed, pki["ca_pem"]), None)
    commented = signed_in_envelope(pki, kind)
    _comment_in_name_id(commented)
    problem, other_key = _problem(cache, commented, pki["ca_pem"])
    assert problem == "" and other_key not in (None, key)
    assert _problem(cache, token(), pki["ca_pem"]) == ("the VIHF is not signed", None)
    assert _problem(cache, None, pki["ca_pem"]) == (signature_problem(None, pki["ca_pem"]), None)


def test_token_cache_reads_as_parse_vihf(pki):
    """The Vihf kept is parse_vihf's, its findings a copy per request; a token parse_vihf refuses is refused
    each time with its own error; an altered value is read afresh."""
    cache = TokenCache()
    sec = token(with_attr("Secteur_Activite", "SA99^1.2.250.1.71.4.2.4"))
    first = cache.vihf(sec, cache.key(sec))
    assert first == parse_vihf(sec) and first.findings
    first.findings[0]["message"] = "changed by a door"
    assert cache.vihf(sec, cache.key(sec)) == parse_vihf(sec)
    broken = token(without("Identifiant_Structure"))
    for _ in range(2):
        with pytest.raises(VihfError) as caught:
            cache.vihf(broken, cache.key(broken))
        with pytest.raises(VihfError) as direct:
            parse_vihf(broken)
        assert (caught.value.subcode, caught.value.reason) == (direct.value.subcode, direct.value.reason)
    sec = signed_in_envelope(pki)
    assert cache.vihf(sec, cache.key(sec)).authentication == "INDIRECTE_RENFORCEE"
    _altered_value(sec)
    assert cache.vihf(sec, cache.key(sec)) == parse_vihf(sec) and parse_vihf(sec).authentication == "DIRECTE"
    with pytest.raises(VihfError):
        cache.vihf(None, cache.key(None))


def test_token_cache_keys_on_the_namespaces_in_scope(pki):
    """The same Assertion text under an envelope declaring one more namespace is another key: exclusive c14n
    with an InclusiveNamespaces PrefixList may take an inherited declaration into the digest."""
    sec = signed_in_envelope(pki, "ec")
    text = etree.tostring(sec[0]).decode()
    other = parse_xml(f'<wsse:Security xmlns:wsse="{NS_WSSE}" xmlns:x="urn:x">{text}</wsse:Security>'.encode())
    assert TokenCache.key(sec) != TokenCache.key(other)
    cache = TokenCache()
    assert _problem(cache, sec, pki["ca_pem"])[1] != _problem(cache, sec, pki["other_ca_pem"] + pki["ca_pem"])[1]


def test_token_cache_is_bounded(pki):
    cache = TokenCache(size=2)
    keys = []
    for _ in range(3):
        problem, key = _problem(cache, signed_in_envelope(pki, "ec"), pki["ca_pem"])   # ECDSA: a new value each time
        assert problem == ""
        keys.append(key)
    assert len(set(keys)) == 3 and list(cache._verified) == keys[1:]
