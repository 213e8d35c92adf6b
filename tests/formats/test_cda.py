"""read_cda_header: the CDA R2 header every door reads. Round trip with minimal_cda, the corner cases of the
French header (INS OIDs, birth names, root^extension ids, relatedDocument), hostile inputs, and the real ANS
documents of the corpus (MOCKBENCH_CORPUS; skipped where it is unset)."""

from __future__ import annotations

import base64
import os
import re
import zipfile
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mockbench.formats.cda import INS_OIDS, CdaError, CdaHeader, minimal_cda, read_cda_header, xds_unique_id
from mockbench.formats.xml import XmlError

NIR_TEST = "1.2.250.1.213.1.4.10"
RPPS = "1.2.250.1.71.4.2.1"
FINESS = "1.2.250.1.71.4.2.2"
LOINC = "2.16.840.1.113883.6.1"

# --- minimal_cda round trip ---------------------------------------------------------------------------

BASE = dict(unique_id="2.25.299113584512345678901234567890", ins="279035121518989", ins_oid=NIR_TEST,
            type_code="11488-4", title="Lettre de liaison & sortie <MCO>", author_idnps="801234567897",
            author_family="MARTIN", author_given="Paul", patient_family="PAT-TROIS",
            patient_given="DOMINIQUE", birth_date="1979-03-28", sex="F",
            effective_time="2024-01-02T03:04:05", text="Bonjour", set_id=None, version=1)


def test_minimal_cda_round_trip_of_every_field():
    header = read_cda_header(minimal_cda(**BASE))
    assert header == CdaHeader(
        id_root=BASE["unique_id"], id_extension="", set_id=BASE["unique_id"], version=1,
        type_code="11488-4", type_system=LOINC, title="Lettre de liaison & sortie <MCO>",
        effective_time="20240102030405+0000", confidentiality_code="N",
        patient_ids=((NIR_TEST, "279035121518989"),), ins=("279035121518989", NIR_TEST),
        patient_family="PAT-TROIS", patient_given="DOMINIQUE", birth_date="19790328", sex="F",
        author_ids=((RPPS, "801234567897"),),
        custodian_ids=(),  # minimal_cda writes no custodian (CDA R2 requires one): noted for its owner
        related=(), is_structured=False, patient_first_given="DOMINIQUE", self_presenting=False,
        language_code="fr-FR", facility_type="SA01", practice_setting="ETABLISSEMENT",
        service_start="20240102030405+0000", service_stop="20240102030405+0000",
        legal_authenticator=(RPPS, "801234567897", "MARTIN", "Paul"),
        template_ids=("2.16.840.1.113883.2.8.2.1", "1.2.250.1.213.1.1.1.1", "1.3.6.1.4.1.19376.1.2.20"),
        media_type="text/plain")
    assert header.unique_id == BASE["unique_id"]


def test_minimal_cda_takes_the_header_of_the_xds_metadata():
    """New keywords (defaults above): the encompassingEncounter's facility, the serviceEvent's practice setting
    and times, the language (trans-cda-r2/mapping.md, Mapping XDS, Fiche)."""
    header = read_cda_header(minimal_cda(**BASE, facility_type="SA07", practice_setting="AMBULATOIRE",
                                         service_start="2024-01-01T08:00:00Z", service_stop="20240101090000",
                                         language="en-GB"))
    assert (header.facility_type, header.practice_setting, header.service_start, header.service_stop,
            header.language_code) == ("SA07", "AMBULATOIRE", "20240101080000+0000", "20240101090000+0000", "en-GB")
    stop_from_start = read_cda_header(minimal_cda(**BASE, service_start="2024-01-01T08:00:00Z"))
    assert stop_from_start.service_stop == "20240101080000+0000"


def test_minimal_cda_set_id_version_and_sex_mapping():
    header = read_cda_header(minimal_cda(**{**BASE, "set_id": "2.25.42", "version": 3, "sex": "X"}))
    assert (header.set_id, header.version, header.sex) == ("2.25.42", 3, "UN")


def test_minimal_cda_writes_an_oid_unique_id_whole_as_the_root():
    header = read_cda_header(minimal_cda(**{**BASE, "unique_id": "1.2.250.1.213.1.1.9.42"}))
    assert (header.id_root, header.id_extension) == ("1.2.250.1.213.1.1.9.42", "")
    assert header.unique_id == header.set_id == "1.2.250.1.213.1.1.9.42"


def test_minimal_cda_names_its_custodian():
    header = read_cda_header(minimal_cda(**BASE, custodian_idnst="1300017985", custodian_name="CHU"))
    assert header.custodian_ids == (("1.2.250.1.71.4.2.2", "1300017985"),)


_XML_TEXT = st.text(st.characters(codec="utf-8", categories=("L", "M", "N", "P", "S", "Zs")),
                    min_size=1, max_size=40).map(str.strip).filter(bool)
_TOKEN = st.text("0123456789ABCDEFabcdef-", min_size=1, max_size=20)


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(title=_XML_TEXT, family=_XML_TEXT, given_name=_XML_TEXT, author_family=_XML_TEXT, text=_XML_TEXT,
       ins=st.from_regex(r"[12][0-9]{14}", fullmatch=True), ins_oid=st.sampled_from(sorted(INS_OIDS)),
       idnps=st.from_regex(r"8[0-9]{10}", fullmatch=True), type_code=_TOKEN,
       uuid_oid=st.integers(min_value=1, max_value=2**128).map(lambda n: f"2.25.{n}"),
       version=st.integers(min_value=1, max_value=10_000), sex=st.sampled_from(["M", "F"]),
       when=st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2099, 12, 31)),
       born=st.dates(min_value=datetime(1900, 1, 1).date(), max_value=datetime(2099, 1, 1).date()))
def test_minimal_cda_round_trip_property(title, family, given_name, author_family, text, ins, ins_oid, idnps,
                                         type_code, uuid_oid, version, sex, when, born):
    header = read_cda_header(minimal_cda(
        unique_id=uuid_oid, ins=ins, ins_oid=ins_oid, type_code=type_code, title=title, author_idnps=idnps,
        author_family=author_family, author_given="X", patient_family=family, patient_given=given_name,
        birth_date=born.isoformat(), sex=sex, effective_time=when.replace(microsecond=0).isoformat(),
        text=text, version=version))
    assert (header.unique_id, header.set_id, header.version) == (uuid_oid, uuid_oid, version)
    assert (header.title, header.patient_family, header.patient_given) == (title, family, given_name)
    assert (header.type_code, header.ins, header.sex) == (type_code, (ins, ins_oid), sex)
    assert header.birth_date == born.strftime("%Y%m%d")
    assert header.effective_time == when.strftime("%Y%m%d%H%M%S") + "+0000"
    assert header.author_ids == ((RPPS, idnps),)


# --- header corner cases ------------------------------------------------------------------------------

def _cda(header: str = "", *, ident: str = '<id root="1.2.3.4"/>',
         body: str = "<component><structuredBody/></component>", prolog: str = "") -> bytes:
    return (f'{prolog}<ClinicalDocument xmlns="urn:hl7-org:v3">{ident}{header}{body}'
            f"</ClinicalDocument>").encode()


def test_unique_id_convention():
    assert xds_unique_id("1.2.3") == "1.2.3"
    assert xds_unique_id("1.2.3", "") == "1.2.3"
    assert xds_unique_id("1.2.3", "ABC.4") == "1.2.3^ABC.4"


def test_id_set_id_and_parent_with_extensions():
    header = read_cda_header(_cda(
        '<setId root="1.2.250.1.213.1.1.9" extension="S-1"/><versionNumber value="2"/>'
        '<relatedDocument typeCode="RPLC"><parentDocument><id root="1.2.250.1.213.1.1.9" extension="D-1"/>'
        "</parentDocument></relatedDocument>",
        ident='<id root="1.2.250.1.213.1.1.9" extension="D-2"/>'))
    assert (header.id_root, header.id_extension, header.unique_id) == (
        "1.2.250.1.213.1.1.9", "D-2", "1.2.250.1.213.1.1.9^D-2")
    assert header.set_id == "1.2.250.1.213.1.1.9^S-1"
    assert header.related == (("RPLC", "1.2.250.1.213.1.1.9^D-1"),)


def test_absent_optional_fields_are_none_or_empty():
    header = read_cda_header(_cda())
    assert header.unique_id == "1.2.3.4"
    assert header.set_id is header.version is header.type_code is header.title is None
    assert header.effective_time is header.patient_family is header.birth_date is header.sex is None
    assert header.patient_ids == header.author_ids == header.custodian_ids == header.related == ()
    assert header.ins is None and header.is_structured


def test_ins_is_the_first_patient_id_under_an_ins_oid():
    header = read_cda_header(_cda(
        "<recordTarget><patientRole>"
        '<id root="1.2.3.4.567.8.9.10" extension="IPP-1"/>'
        '<id nullFlavor="UNK"/>'
        '<id root="1.2.250.1.213.1.4.8" extension=""/>'  # an INS OID without a value is no INS
        '<id root="1.2.250.1.213.1.4.9" extension="1790399123456"/>'
        '<id root="1.2.250.1.213.1.4.8" extension="279035121518989"/>'
        "</patientRole></recordTarget>"))
    assert header.patient_ids == (("1.2.3.4.567.8.9.10", "IPP-1"), ("1.2.250.1.213.1.4.8", ""),
                                  ("1.2.250.1.213.1.4.9", "1790399123456"),
                                  ("1.2.250.1.213.1.4.8", "279035121518989"))
    assert header.ins == ("1790399123456", "1.2.250.1.213.1.4.9")


def test_ins_oids():
    assert INS_OIDS == {"1.2.250.1.213.1.4.8", "1.2.250.1.213.1.4.9", "1.2.250.1.213.1.4.10",
                        "1.2.250.1.213.1.4.11"}


def test_no_ins_when_only_local_ids():
    header = read_cda_header(_cda('<recordTarget><patientRole><id root="1.2.3" extension="9"/>'
                                  "</patientRole></recordTarget>"))
    assert header.ins is None and header.patient_ids == (("1.2.3", "9"),)


def test_birth_names_are_preferred():
    # The CI-SIS layout: family BR / CL / SP, given without qualifier (the list) and given BR (the first).
    header = read_cda_header(_cda(
        "<recordTarget><patientRole><patient><name>"
        '<family qualifier="SP">EPOUSE</family><family qualifier="BR">\n  NAISSANCE  \n</family>'
        '<given qualifier="CL">Dom</given><given qualifier="BR">DOMINIQUE</given>'
        "<given>DOMINIQUE MARIE-LOUISE</given>"
        '</name><administrativeGenderCode code="F"/><birthTime value="19790328"/></patient>'
        "</patientRole></recordTarget>"))
    assert (header.patient_family, header.patient_given, header.patient_first_given) == (
        "NAISSANCE", "DOMINIQUE MARIE-LOUISE", "DOMINIQUE")
    assert (header.sex, header.birth_date) == ("F", "19790328")


def test_names_without_qualifiers_and_with_comments():
    header = read_cda_header(_cda(
        "<recordTarget><patientRole><patient><name><family>DU<!-- x -->PONT</family>"
        '<given>Jean</given><given>Pierre</given><family qualifier="BR CL">MARTIN</family></name>'
        "</patient></patientRole></recordTarget>"))
    # qualifier is a set of codes: "BR CL" is a birth name.
    assert (header.patient_family, header.patient_given, header.patient_first_given) == (
        "MARTIN", "Jean", "Jean")
    header = read_cda_header(_cda(
        "<recordTarget><patientRole><patient><name><family>DU<!-- x -->PONT</family></name>"
        "</patient></patientRole></recordTarget>"))
    assert header.patient_family == "DUPONT"


def test_authors_custodian_and_several_related_documents():
    header = read_cda_header(_cda(
        f'<author><assignedAuthor><id root="{RPPS}" extension="801234567897"/></assignedAuthor></author>'
        '<author><assignedAuthor><id nullFlavor="NI"/></assignedAuthor></author>'
        f'<author><assignedAuthor><id root="{FINESS}" extension="1120456789"/></assignedAuthor></author>'
        "<custodian><assignedCustodian><representedCustodianOrganization>"
        f'<id root="{FINESS}" extension="1750803447"/></representedCustodianOrganization></assignedCustodian>'
        "</custodian>"
        '<relatedDocument typeCode="RPLC"><parentDocument><id root="1.2.3.1"/></parentDocument></relatedDocument>'
        '<relatedDocument typeCode="APND"><parentDocument><id root="1.2.3.2"/></parentDocument></relatedDocument>'))
    assert header.author_ids == ((RPPS, "801234567897"), (FINESS, "1120456789"))
    assert header.custodian_ids == ((FINESS, "1750803447"),)
    assert header.related == (("RPLC", "1.2.3.1"), ("APND", "1.2.3.2"))


def test_non_xml_body():
    header = read_cda_header(_cda(body='<component><nonXMLBody><text mediaType="application/pdf" '
                                       'representation="B64">JVBERi0=</text></nonXMLBody></component>'))
    assert header.is_structured is False


def test_self_presenting_envelope():
    inner = _cda('<code code="11502-2" codeSystem="2.16.840.1.113883.6.1"/>').decode()
    doc = ('<?xml version="1.0" encoding="UTF-8"?><?xml-stylesheet type="text/xsl" href="#"?>'
           '<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform" '
           f'xmlns:data="urn:asip-sante:ci-sis"><data:Contenu>{inner}</data:Contenu>'
           '<xsl:template match="/"/></xsl:stylesheet>').encode()
    header = read_cda_header(doc)
    assert (header.self_presenting, header.unique_id, header.type_code) == (True, "1.2.3.4", "11502-2")


def test_iso_8859_15_cda():
    data = ('<?xml version="1.0" encoding="ISO-8859-15"?>'
            + _cda("<title>Compte rendu à 15 €</title>").decode()).encode("iso-8859-15")
    assert read_cda_header(data).title == "Compte rendu à 15 €"


# --- refusals -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("data, message", [
    (b"", r"^the document is not XML: the document is empty$"),
    (b"MSH|^~\\&|not a CDA", r"^the document is not XML: the document is not well-formed XML: .*\(line 1"),
    (b"%PDF-1.4 binary", r"^the document is not XML: "),
    (b'<ClinicalDocument xmlns="urn:hl7-org:v3"><id root="1"/>', r"^the document is not XML: .*line 1"),
    (b'<foo xmlns="urn:example"/>',
     r"^the document is XML but not a CDA \(root element is \{urn:example\}foo, expected "
     r"\{urn:hl7-org:v3\}ClinicalDocument\)$"),
    (b'<ClinicalDocument><id root="1.2"/></ClinicalDocument>',
     r"^the document is XML but not a CDA \(root element is ClinicalDocument, "),
    (b'<xsl:stylesheet xmlns:xsl="http://www.w3.org/1999/XSL/Transform" version="1.0"/>',
     r"not a CDA \(root element is \{http://www.w3.org/1999/XSL/Transform\}stylesheet"),
    (b'<Envelope xmlns="http://www.w3.org/2003/05/soap-envelope"/>', r"not a CDA"),
    (_cda(ident=""), r"^the CDA has no id$"),
    (_cda(ident='<id nullFlavor="NI"/>'), r"^the CDA id has no root$"),
    (_cda(ident='<id root="  " extension="1"/>'), r"^the CDA id has no root$"),
    (_cda('<versionNumber value="deux"/>'), r"^the CDA versionNumber is not a non-negative integer \('deux'\)$"),
    (_cda('<versionNumber value="1_0"/>'), r"versionNumber is not a non-negative integer"),
    (_cda('<versionNumber value="-1"/>'), r"versionNumber is not a non-negative integer"),
    (_cda(body=""), r"^the CDA has no body \(neither structuredBody nor nonXMLBody\)$"),
    (_cda('<relatedDocument typeCode="RPLC"><parentDocument><id nullFlavor="UNK"/></parentDocument>'
          "</relatedDocument>"), r"^the CDA has a relatedDocument RPLC without a parentDocument id$"),
    (_cda("<relatedDocument/>"), r"^the CDA has a relatedDocument \(no typeCode\) without a parentDocument id$"),
])
def test_refusals(data, message):
    with pytest.raises(CdaError, match=message):
        read_cda_header(data)


def test_entity_bomb_in_a_cda_is_refused_as_not_xml():
    lol = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10 if i else "lol"}">' for i in range(10))
    data = _cda("<title>&l9;</title>", prolog=f"<!DOCTYPE ClinicalDocument [{lol}]>")
    with pytest.raises(CdaError, match="^the document is not XML: entity declarations are not accepted$") as caught:
        read_cda_header(data)
    assert isinstance(caught.value.__cause__, XmlError)


def test_external_entity_in_a_cda_is_refused(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET-PATIENT-LIST")
    data = _cda("<title>&x;</title>", prolog=f'<!DOCTYPE ClinicalDocument [<!ENTITY x SYSTEM "{secret.as_uri()}">]>')
    with pytest.raises(CdaError, match="entity declarations are not accepted") as caught:
        read_cda_header(data)
    assert "SECRET" not in str(caught.value)


def test_cda_error_is_a_value_error():
    assert issubclass(CdaError, ValueError)


# --- the ANS corpus: HL7 v2 "Vague 2" CDAs, as files beside the messages --------------------------------

HL7V2 = "hl7v2/Trans_Doc-CDA-HL7V2"
MDM_ROOT = "1.2.250.1.71.4.2.2.120456789.7102400008"
ORU_ROOT = "1.2.250.1.213.1.1."
PAT_TROIS = ("279035121518989", NIR_TEST)
IPP = ("1.2.3.4.567.8.9.10", "1234567890121")
MDM_COMMON = dict(set_id=None, type_code="18748-4", is_structured=False, ins=PAT_TROIS,
                  patient_ids=((NIR_TEST, "279035121518989"),), author_ids=((RPPS, "801234564895"),),
                  custodian_ids=((FINESS, "1120456789"),), effective_time="20050411103328",
                  patient_family="PAT-TROIS", patient_given="DOMINIQUE", patient_first_given="DOMINIQUE",
                  birth_date="19790328", sex="F", title="Radio de hanche",
                  # What the XDS metadata come from (trans-cda-r2/mapping.md, Mapping XDS, Fiche)
                  language_code="fr-FR", facility_type="SA07", practice_setting="ETABLISSEMENT",
                  service_start="20230227102827+0200", service_stop="20230227102827+0200",
                  legal_authenticator=(RPPS, "801234564895", "Eric", "Thomas"), author_specialty=None,
                  media_type="application/pdf")
ORU_COMMON = dict(set_id=ORU_ROOT + "9", type_code="11502-2", is_structured=True, ins=PAT_TROIS,
                  patient_ids=((NIR_TEST, "279035121518989"), IPP), author_ids=((RPPS, "801234534765"),),
                  custodian_ids=((FINESS, "1120459876"),), effective_time="20210104160527+0100",
                  patient_family="PAT-TROIS", birth_date="19790328", sex="F",
                  language_code="fr-FR", facility_type="SA25", practice_setting="AMBULATOIRE",
                  service_start="20230104092200+0100", service_stop="20230104160500+0100",
                  legal_authenticator=(RPPS, "801234534765", "CAMPARINI", "Marcel"), author_specialty="G15_10/SM03")

# File by file. The MDM CDAs have no setId (versionNumber only); the v2 file of "Suppression" is the same
# bytes as the one of "Remplacement" (the deletion names the current version). The ORU files on disk are
# not the CDAs inside the ORU messages (see the next table).
HL7V2_FILES = {
    "MDM/Transmission_initiale_MDM/CR_Radio_CDAN1_v1.XML":
        dict(MDM_COMMON, unique_id=MDM_ROOT + "1", version=1, related=()),
    "MDM/Remplacement_MDM/CR_Radio_CDAN1_v2.XML":
        dict(MDM_COMMON, unique_id=MDM_ROOT + "2", version=2, related=(("RPLC", MDM_ROOT + "1"),)),
    "MDM/Suppression_MDM/CR_Radio_CDAN1_v2.XML":
        dict(MDM_COMMON, unique_id=MDM_ROOT + "2", version=2, related=(("RPLC", MDM_ROOT + "1"),)),
    "ORU/Transmission_initiale_ORU/SEGUR_CR-BIO_2023.01_Electrophorese.xml":
        dict(ORU_COMMON, unique_id=ORU_ROOT + "12", version=1, related=()),
    "ORU/Remplacement_ORU/SEGUR_CR_Bio_CDA_Niv3_v2.xml":
        dict(ORU_COMMON, unique_id=ORU_ROOT + "13", version=2, related=(("RPLC", ORU_ROOT + "12"),)),
    "ORU/Suppression_ORU/SEGUR_CR_Bio_CDA_Niv3_v2.xml":
        dict(ORU_COMMON, unique_id=ORU_ROOT + "13", version=2, related=(("RPLC", ORU_ROOT + "12"),)),
}


def _fields(header: CdaHeader, names) -> dict:
    return {name: getattr(header, name) for name in names}


@pytest.mark.parametrize("relpath", sorted(HL7V2_FILES))
def test_hl7v2_corpus_cda_files(corpus: Path, relpath: str):
    expected = HL7V2_FILES[relpath]
    header = read_cda_header((corpus / HL7V2 / relpath).read_bytes())
    assert _fields(header, expected) == expected


def test_hl7v2_corpus_cda_files_are_all_listed(corpus: Path):
    on_disk = {p.relative_to(corpus / HL7V2).as_posix()
               for p in [*(corpus / HL7V2).glob("MDM/*/*.XML"), *(corpus / HL7V2).glob("ORU/*/*.xml")]}
    assert on_disk == set(HL7V2_FILES)


# The CDAs carried in OBX-5 (ED, base64) of the messages themselves: what the PFI door actually receives.
HL7V2_EMBEDDED = {
    "MDM/Transmission_initiale_MDM/message_MDM_CR_Radio_INIT_N1.er7": None,  # base64 of a sentence
    "MDM/Transmission_initiale_MDM/message_MDM_CR_Radio_INIT_N1_Base64.er7":
        dict(MDM_COMMON, unique_id=MDM_ROOT + "1", version=1, related=()),
    "MDM/Remplacement_MDM/message_MDM_CR_Radio_RPLC_N1.er7":
        dict(MDM_COMMON, unique_id=MDM_ROOT + "2", version=2, related=(("RPLC", MDM_ROOT + "1"),)),
    "MDM/Suppression_MDM/message_MDM_CR_Radio_DEL_N1.er7":  # base64 without its padding
        dict(MDM_COMMON, unique_id=MDM_ROOT + "2", version=2, related=(("RPLC", MDM_ROOT + "1"),)),
    # ORU INIT: id = setId = ...1.1.9 (the file on disk says ...1.1.12).
    "ORU/Transmission_initiale_ORU/message_ORU_CR_Bio_INIT_N3_SEGUR.hl7":
        dict(ORU_COMMON, unique_id=ORU_ROOT + "9", version=1, related=()),
    "ORU/Remplacement_ORU/message_ORU_CR_Bio_RPLC_N3_SEGUR.hl7":  # base64 without its padding
        dict(ORU_COMMON, unique_id=ORU_ROOT + "13", version=2, related=(("RPLC", ORU_ROOT + "12"),)),
    # ORU DEL: another patient (INS-NIR .4.8, not PID-3's .4.10), another series, a non-structured body,
    # and an RPLC whose parent is its own setId.
    "ORU/Suppression_ORU/message_ORU_CR_Bio_DEL_N3_SEGUR.hl7":
        dict(unique_id=ORU_ROOT + "12", set_id=ORU_ROOT + "10", version=2, related=(("RPLC", ORU_ROOT + "10"),),
             # Its unqualified given is "ISABELLE" alone, not the list "RUTH ISABELLE" the CI-SIS asks for.
             ins=("277076322082910", "1.2.250.1.213.1.4.8"), patient_family="NESSI", patient_given="ISABELLE",
             patient_first_given="RUTH",
             birth_date="19770714", is_structured=False, type_code="11502-2",
             custodian_ids=((FINESS, "1120459877"),)),
}


def _obx_document(message: bytes) -> bytes:
    """The document of the first OBX of type ED that is not a MetaDMPMSS item, base64-decoded. Segments
    split on CR or LF (the files use LF); missing base64 padding is restored, as the door must."""
    for segment in re.split(rb"\r\n|\r|\n", message):
        fields = segment.split(b"|")
        if fields[0] == b"OBX" and len(fields) > 5 and fields[2] == b"ED" and b"MetaDMPMSS" not in fields[3]:
            data = fields[5].split(b"^")[4]
            return base64.b64decode(data + b"=" * (-len(data) % 4), validate=True)
    raise AssertionError("no OBX ED document")


@pytest.mark.parametrize("relpath", sorted(HL7V2_EMBEDDED))
def test_hl7v2_corpus_embedded_cdas(corpus: Path, relpath: str):
    expected = HL7V2_EMBEDDED[relpath]
    document = _obx_document((corpus / HL7V2 / relpath).read_bytes())
    if expected is None:
        with pytest.raises(CdaError, match="^the document is not XML: the document is not well-formed XML"):
            read_cda_header(document)
        return
    assert _fields(read_cda_header(document), expected) == expected


# --- the ANS corpus: 72 XDM packages ------------------------------------------------------------------

_DOC_MEMBER = re.compile(r"(?i)(?:.*/)?DOC[^/]*\.XML")
_XDS_UNIQUE_ID = "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab"


def _xdm_documents(corpus: Path):
    for package in sorted((corpus / "xdm").glob("*.zip")):
        with zipfile.ZipFile(package) as zf:
            for name in zf.namelist():
                if _DOC_MEMBER.fullmatch(name):
                    yield package.name, name, zf.read(name), zf.read(name.rsplit("/", 1)[0] + "/METADATA.XML")


def test_xdm_corpus_every_cda_header_reads(corpus: Path):
    from mockbench.formats.xml import parse_xml

    seen, problems = 0, []
    for package, member, document, metadata in _xdm_documents(corpus):
        seen += 1
        try:
            h = read_cda_header(document)
        except CdaError as err:
            problems.append(f"{package}/{member}: {err}")
            continue
        checks = {
            "INS under an INS OID, 15 digits": h.ins is not None and h.ins[1] in INS_OIDS
            and re.fullmatch(r"[0-9]{15}", h.ins[0]) is not None,
            "an OID id without extension": re.fullmatch(r"[0-2](\.[0-9]+)+", h.id_root) is not None
            and h.id_extension == "",
            "a LOINC or ANS type code": bool(h.type_code) and h.type_system in (LOINC, "1.2.250.1.213.1.1.4.12"),
            "a version >= 1": h.version is not None and h.version >= 1,
            "author and custodian ids": bool(h.author_ids) and bool(h.custodian_ids),
            "non-empty ids": all(root and ext for root, ext in h.author_ids + h.custodian_ids + h.patient_ids),
            "patient traits": all((h.patient_family, h.patient_given, h.birth_date, h.sex)),
            "RPLC only, to a named parent": all(t == "RPLC" and p for t, p in h.related),
            "setId differs from id": h.set_id != h.unique_id,
            "a title and a time": bool(h.title) and bool(h.effective_time),
        }
        # The CDA id is the XDS uniqueId the package's metadata announces.
        meta_ids = [e.get("value") for e in parse_xml(metadata).iter("{*}ExternalIdentifier")
                    if e.get("identificationScheme") == _XDS_UNIQUE_ID]
        checks["uniqueId of METADATA.XML"] = meta_ids == [h.unique_id]
        problems += [f"{package}: not {what}" for what, ok in checks.items() if not ok]
    assert seen == 72
    assert problems == []


# Package by package, what the series and envelopes look like.
XDM_CASES = {
    "BIO-CR-BIO_2021.01_Microbiologie_V1.zip":
        dict(unique_id="1.2.250.1.213.1.1.1.55.2021.6.1", set_id="1.2.250.1.213.1.1.1.55.2021.6", version=1,
             related=()),
    "BIO-CR-BIO_2021.01_Microbiologie_V2.zip":
        dict(unique_id="1.2.250.1.213.1.1.1.55.2021.6.2", set_id="1.2.250.1.213.1.1.1.55.2021.6", version=2,
             related=(("RPLC", "1.2.250.1.213.1.1.1.55.2021.6.1"),)),
    # The deletion package carries the same CDA as V2: the deletion is in the metadata slot, not the CDA.
    "BIO-CR-BIO_2021.01_Microbiologie_V2_Delete.zip":
        dict(unique_id="1.2.250.1.213.1.1.1.55.2021.6.2", version=2,
             related=(("RPLC", "1.2.250.1.213.1.1.1.55.2021.6.1"),)),
    "BIO-CR-BIO_2024.01_Microbiologie_V2.zip":
        dict(unique_id="1.2.250.1.213.1.1.1.55.2024.8.2", set_id="1.2.250.1.213.1.1.1.55.2024.8", version=2,
             related=(("RPLC", "1.2.250.1.213.1.1.1.55.2024.8.1"),)),
    "BIO-CR-BIO_2021.01_Auto-Presentable.zip":
        dict(unique_id="1.2.250.1.213.1.1.1.55.2021.1.1", self_presenting=True, is_structured=True),
    "BIO-CR-BIO_2021.01_Auto-Presentable_avec-image.zip":
        dict(unique_id="1.2.250.1.213.1.1.1.55.2021.2.1", self_presenting=True),
    "AVC-AUNV_2022.01.zip": dict(unique_id="1.2.250.1.213.1.1.1.15.2022.1.1", set_id=None, version=1),
    "DOC_NON_STRUCTURE_CDA-R2-N1.zip":
        dict(unique_id="1.3.6.1.4.1.19376.1.2.20.12345.1.1", is_structured=False),
    "BIO-CR-BIO_2021.01_CDA-R2-Niveau-1.zip": dict(is_structured=False),
    "IMG_CR_IMG_2024.01_CDA-R2-Niveau-1.zip":
        dict(is_structured=False, related=(("RPLC", "90E1C8EC-F951-4B26-A305-A34848818DD6"),)),
    # Parents named by a UUID root, or by root^extension.
    "IMG_CR_IMG_2024.01.zip": dict(version=2, related=(("RPLC", "90E1C8EC-F951-4B26-A305-A34848818DD6"),)),
    "IPS-FR_2024.01.zip": dict(version=2, related=(("RPLC", "8D5E778C-E155-4685-95C6-5FF65A362964"),)),
    "CNAM-HR_2021.01_sans-info.zip": dict(type_code="REMB", related=(("RPLC", "1.2.250.1.213.1.1.9^10002-1"),)),
    "OPH-BRE_2022.02.zip":
        dict(version=3, related=(("RPLC", "1.2.250.1.213.1.1.9^OPH-BRE_2021.01_20210827_00001_2"),)),
    # versionNumber > 1 without any relatedDocument.
    "CARD-F-PRC-AVK_2022.01.zip": dict(version=2, related=()),
    "VSM_1.4_2022.01.zip": dict(type_code="SYNTH", version=6, related=()),
    # Other patients than PAT-TROIS.
    "SDM-MR_2025.01_nouveau-ne.zip":
        dict(ins=("224027511583555", NIR_TEST), patient_family="DECOURCY", patient_given="Léa Marie",
             patient_first_given="Léa", birth_date="20240228", version=2, related=()),
    "SDM-MR_2025.01_patiente-enceinte.zip":
        dict(ins=("277076322082910", NIR_TEST), patient_family="NESSI", patient_given="Ruth Isabelle"),
    "ANEST-CR-ANEST_2022.01.zip":
        dict(ins=PAT_TROIS, patient_family="PAT-TROIS", patient_given="DOMINIQUE MARIE-LOUISE",
             patient_first_given="DOMINIQUE", birth_date="19790328", sex="F", self_presenting=False),
}


@pytest.mark.parametrize("package", sorted(XDM_CASES))
def test_xdm_corpus_cases(corpus: Path, package: str):
    expected = XDM_CASES[package]
    with zipfile.ZipFile(corpus / "xdm" / package) as zf:
        (member,) = [n for n in zf.namelist() if _DOC_MEMBER.fullmatch(n)]
        header = read_cda_header(zf.read(member))
    assert _fields(header, expected) == expected


# --- the header elements the XDS metadata come from ------------------------------------------------------

FULL_HEADER = b"""<ClinicalDocument xmlns="urn:hl7-org:v3"><id root="1.2.3"/>
<templateId root="1.2.250.1.213.1.1.1.1"/><templateId nullFlavor="NA"/><templateId root="1.3.6.1.4.1.19376.1.3.3"/>
<languageCode code=" en-GB "/>
<author><assignedAuthor><id root="1.2.250.1.71.4.2.1" extension="8"/><code code="G15_10/SM26"/></assignedAuthor></author>
<legalAuthenticator><time value="2026"/><assignedEntity><id nullFlavor="UNK"/><id root="1.2.250.1.71.4.2.1" extension="81"/>
<assignedPerson><name><given>Anne</given><family>DURAND</family></name></assignedPerson></assignedEntity></legalAuthenticator>
<documentationOf><serviceEvent><effectiveTime><low value="20261120080000+0100"/><high value="20261120090000"/></effectiveTime>
<performer typeCode="PRF"><assignedEntity><id root="1.2.250.1.71.4.2.1" extension="81"/><representedOrganization>
<standardIndustryClassCode code="AMBULATOIRE" codeSystem="1.2.250.1.213.1.1.4.9"/></representedOrganization></assignedEntity></performer>
</serviceEvent></documentationOf>
<documentationOf><serviceEvent><performer><assignedEntity><representedOrganization>
<standardIndustryClassCode code="HAD"/></representedOrganization></assignedEntity></performer></serviceEvent></documentationOf>
<componentOf><encompassingEncounter><effectiveTime value="2026"/><location><healthCareFacility>
<code code="SA01" codeSystem="1.2.250.1.71.4.2.4"/></healthCareFacility></location></encompassingEncounter></componentOf>
<component><structuredBody/></component></ClinicalDocument>"""


def test_the_header_elements_of_the_xds_metadata_are_read():
    """trans-cda-r2/mapping.md, "Mapping XDS", Fiche, "Provenance de la donnée": each element, the first of
    several (the first serviceEvent's performer), ids with only a nullFlavor skipped, values trimmed."""
    header = read_cda_header(FULL_HEADER)
    assert _fields(header, ("language_code", "facility_type", "practice_setting", "service_start", "service_stop",
                            "legal_authenticator", "author_specialty", "template_ids", "media_type")) == dict(
        language_code="en-GB", facility_type="SA01", practice_setting="AMBULATOIRE",
        service_start="20261120080000+0100", service_stop="20261120090000",
        legal_authenticator=(RPPS, "81", "DURAND", "Anne"), author_specialty="G15_10/SM26",
        template_ids=("1.2.250.1.213.1.1.1.1", "1.3.6.1.4.1.19376.1.3.3"), media_type=None)


def test_a_header_without_them_reads_none():
    header = read_cda_header(b'<ClinicalDocument xmlns="urn:hl7-org:v3"><id root="1.2.3"/><legalAuthenticator/>'
                             b'<component><nonXMLBody><text mediaType="application/pdf">JVBE</text></nonXMLBody>'
                             b'</component></ClinicalDocument>')
    assert (header.language_code, header.facility_type, header.practice_setting, header.service_start,
            header.service_stop, header.legal_authenticator, header.author_specialty, header.template_ids,
            header.media_type) == (None, None, None, None, None, None, None, (), "application/pdf")


# --- issue 21 point 4: the header read with less, the same answers ----------------------------------------

_V3 = "{urn:hl7-org:v3}"


def _former_path(el, steps):
    """The child-by-child walk read_cda_header used before its multi-step paths were compiled XPaths."""
    if len(steps) == 1:
        yield from el.iterchildren(_V3 + steps[0])
        return
    for child in el.iterchildren(_V3 + steps[0]):
        yield from _former_path(child, steps[1:])


def _former_name_part(patient, part, qualifiers):
    parts = list(_former_path(patient, ("name", part))) if patient is not None else []
    for wanted in qualifiers:
        for el in parts:
            codes = (el.get("qualifier") or "").split()
            if (wanted in codes) if wanted else not codes:
                return el.xpath("string()").strip() or None
    return (parts[0].xpath("string()").strip() or None) if parts else None


def _former_reading(data: bytes) -> dict:
    from mockbench.formats.xml import parse_xml

    doc = parse_xml(data)
    inner = doc.find("{urn:asip-sante:ci-sis}Contenu/" + _V3 + "ClinicalDocument")   # a self-presenting CDA
    doc = inner if inner is not None else doc

    def ids(*steps):
        return tuple((r, e) for r, e in (((el.get("root") or "").strip(), (el.get("extension") or "").strip())
                                         for el in _former_path(doc, steps)) if r)

    patient = next(_former_path(doc, ("recordTarget", "patientRole", "patient")), None)

    def attr(tag, name):
        el = next(patient.iterchildren(_V3 + tag), None) if patient is not None else None
        return ((el.get(name) or "").strip() or None) if el is not None else None

    return dict(patient_ids=ids("recordTarget", "patientRole", "id"), author_ids=ids("author", "assignedAuthor", "id"),
                custodian_ids=ids("custodian", "assignedCustodian", "representedCustodianOrganization", "id"),
                patient_family=_former_name_part(patient, "family", ("BR", "")),
                patient_given=_former_name_part(patient, "given", ("", "BR")),
                patient_first_given=_former_name_part(patient, "given", ("BR", "")),
                birth_date=attr("birthTime", "value"), sex=attr("administrativeGenderCode", "code"))


_ID = st.builds(lambda r, e: f'<id root="{r}" extension="{e}"/>' if r else '<id nullFlavor="UNK"/>',
                st.sampled_from(["", "1.2.250.1.213.1.4.8", "1.2.3", " 1.2.4 "]), st.sampled_from(["", "A1", " 7 "]))
_PART = st.builds(lambda tag, q, text: f"<{tag}{q}>{text}</{tag}>", st.sampled_from(["given", "family"]),
                  st.sampled_from(["", ' qualifier="BR"', ' qualifier="CL BR"', ' qualifier="SP"']),
                  st.sampled_from(["", "ANNE", " MARIE ", "X<!-- c -->Y"]))
_PATIENT_XML = st.builds(lambda names, extra: "<patient>" + "".join(f"<name>{''.join(n)}</name>" for n in names)
                         + extra + "</patient>", st.lists(st.lists(_PART, max_size=3), max_size=2),
                         st.sampled_from(["", '<birthTime value="1980"/><administrativeGenderCode code="F"/>']))
_ROLE = st.builds(lambda ids, patients: "<patientRole>" + "".join(ids) + "".join(patients) + "</patientRole>",
                  st.lists(_ID, max_size=3), st.lists(_PATIENT_XML, max_size=2))
_AUTHOR = st.builds(lambda ids: "<author><assignedAuthor>" + "".join(ids) + "</assignedAuthor></author>",
                    st.lists(_ID, max_size=2))
# An id one level too high is no custodian id (the walk's steps are exact).
_CUSTODIAN = st.builds(lambda ids: '<custodian><assignedCustodian><id root="9.9"/><representedCustodianOrganization>' + "".join(ids)
                       + "</representedCustodianOrganization></assignedCustodian></custodian>", st.lists(_ID, max_size=2))


@settings(max_examples=300, deadline=None)
@given(targets=st.lists(st.lists(_ROLE, max_size=2), max_size=2), authors=st.lists(_AUTHOR, max_size=3),
       custodians=st.lists(_CUSTODIAN, max_size=2))
def test_the_patient_author_and_custodian_read_as_the_former_walk_read_them(targets, authors, custodians):
    """The patient, its ids and names, the author and custodian ids, now compiled XPaths and the given names
    read once, against the child-by-child walk they replace: several recordTargets, patientRoles, patients,
    names and parts in any order, qualifiers, nullFlavor'd ids."""
    data = ('<ClinicalDocument xmlns="urn:hl7-org:v3"><id root="1.2.3"/>'
            + "".join("<recordTarget>" + "".join(roles) + "</recordTarget>" for roles in targets)
            + "".join(authors) + "".join(custodians)
            + "<component><structuredBody/></component></ClinicalDocument>").encode()
    former = _former_reading(data)
    assert _fields(read_cda_header(data), former) == former


def _every_header(corpus: Path | None):
    yield minimal_cda(**BASE)
    yield FULL_HEADER
    if corpus is not None:
        for relpath in sorted(HL7V2_FILES):
            yield (corpus / HL7V2 / relpath).read_bytes()
        for _, _, document, _ in _xdm_documents(corpus):
            yield document


def test_the_header_object_is_the_dataclass_of_its_fields():
    """read_cda_header builds its CdaHeader without the dataclass's __init__ (cda.py `_header`): every field
    is set, the object equals and hashes as CdaHeader(**fields) does, and it is still frozen. The corpus's
    headers are compared with the former walk as well."""
    import dataclasses

    names = [f.name for f in dataclasses.fields(CdaHeader)]
    corpus = os.environ.get("MOCKBENCH_CORPUS")
    for data in _every_header(Path(corpus) if corpus else None):
        try:
            header = read_cda_header(data)
        except CdaError:
            continue
        assert sorted(vars(header)) == sorted(names)
        again = CdaHeader(**{name: getattr(header, name) for name in names})
        assert header == again and hash(header) == hash(again) and repr(header) == repr(again)
        with pytest.raises(dataclasses.FrozenInstanceError):
            header.title = "x"  # type: ignore[misc]
        former = _former_reading(data)
        assert _fields(header, former) == former


def test_the_compiled_xpaths_without_exslt_regexp_find_what_they_found_with_it():
    """cda.py's XPaths and parse_xml's depth check are compiled with regexp=False (lxml registers no EXSLT
    regular-expression functions per evaluation): on the headers here, and a comment one level too deep, each
    finds what the same path compiled with lxml's defaults finds."""
    from lxml import etree

    from mockbench.formats import cda, xml

    compiled = [v for v in vars(cda).values() if isinstance(v, etree.XPath)]
    assert len(compiled) >= 10
    corpus = os.environ.get("MOCKBENCH_CORPUS")
    for data in _every_header(Path(corpus) if corpus else None):
        doc = etree.fromstring(data)
        for xp in compiled:
            before = etree.XPath(xp.path, namespaces={"h": "urn:hl7-org:v3"}, smart_strings=False)
            assert xp(doc) == before(doc), xp.path
    deep = etree.fromstring(("<a>" * 256 + "<!-- deep -->" + "</a>" * 256).encode())
    found = xml._DEFAULT_DEPTH_XPATH(deep)
    assert len(found) == 1 and found == etree.XPath(xml._DEFAULT_DEPTH_XPATH.path)(deep)
