"""The ANS NOS association tables of formats/nos.py: ASS_X04 (typeCode -> classCode), ASS_A12 and ASS_A11
(formatCode). The expected pairs are read off the NOS files (ASS_X04-CorrespondanceType-Classe-CISIS,
OID 1.2.250.1.213.1.1.4.249, of 2024-02-23; ASS-A11/A12 in ansforge/IG-terminologie-de-sante)."""

import pytest

from mockbench.formats import nos
from mockbench.formats.ebrim import CLASS_NAMES, DSG_CLASS_CODE, DSG_TYPE_CODE, TYPE_NAMES


@pytest.mark.parametrize("type_code,class_code", [
    ("11488-4", "10"), ("11490-0", "10"), ("11502-2", "10"), ("34133-9", "11"), ("60591-5", "11"),
    ("18748-4", "31"), ("52040-3", "31"), ("57833-6", "42"), ("60593-1", "43"), ("18776-5", "44"),
    ("80565-5", "45"), ("11369-6", "52"), ("74465-6", "90"), ("51851-4", "95"), ("SYNTH", "11"),
    ("CERT_DECL", "52"), ("REMB", "60"), ("PROT_ALD", "44"), ("DISP_AUT", "43"), ("IMG-KOS", "31"),
    ("FEUILLE-DE-STYLE", "99"), (DSG_TYPE_CODE, DSG_CLASS_CODE),
])
def test_ass_x04_gives_the_class_of_a_type(type_code, class_code):
    assert nos.class_of_type(type_code) == class_code


def test_ass_x04_has_every_row_once_and_knows_every_type_the_bench_names():
    # 124 rows in the NOS file (86 LOINC, 37 TRE_A05, the signature's E1762): none lost in writing it by class.
    assert len(nos.CLASS_OF_TYPE) == 124
    assert set(TYPE_NAMES) <= set(nos.CLASS_OF_TYPE)
    assert set(nos.CLASS_OF_TYPE[t] for t in TYPE_NAMES) <= set(CLASS_NAMES)


@pytest.mark.parametrize("type_code", [None, "", "99999-9", "11488-4 "])
def test_a_type_ass_x04_does_not_know_has_no_class(type_code):
    assert nos.class_of_type(type_code) is None


@pytest.mark.parametrize("media_type,expected", [
    ("application/pdf", "urn:ihe:iti:xds-sd:pdf:2008"),   # mapping.md: "CDA N1 => urn:ihe:iti:xds-sd:pdf:2008"
    ("APPLICATION/PDF", "urn:ihe:iti:xds-sd:pdf:2008"),
    ("text/plain", "urn:ihe:iti:xds-sd:text:2008"), (None, "urn:ihe:iti:xds-sd:text:2008"),  # ED's default
    ("image/jpeg", "urn:ihe:iti-fr:xds-sd:jpeg:2010"), ("image/tiff", "urn:ihe:iti-fr:xds-sd:tiff:2010"),
    ("video/mp4", None),
])
def test_the_format_of_a_cda_n1_is_its_media_types(media_type, expected):
    assert nos.format_code(structured=False, media_type=media_type, template_ids=(nos.N1_TEMPLATE,)) == expected


def test_ass_a12_has_its_five_rows():
    # ASS_A12 version 5.0.0 (IG-terminologie-de-sante): pdf, text, rtf, jpeg, tiff; no other mediaType.
    assert len(nos.FORMAT_OF_MEDIA_TYPE) == 5


@pytest.mark.parametrize("templates,expected", [
    (("2.16.840.1.113883.2.8.2.1", "1.2.250.1.213.1.1.1.1", "1.3.6.1.4.1.19376.1.3.3", "1.2.250.1.213.1.1.1.55"),
     "urn:ihe:lab:xd-lab:2008"),   # the ANS CR-BIO examples
    (("1.2.250.1.213.1.1.1.29",), "urn:asip:ci-sis:ldl-ses:2017"),
    (("1.2.250.1.213.1.1.1.47",), "urn:ans:ci-sis:img-da:2022"),
    (("1.2.250.1.213.1.1.1.2.1.3",), "urn:asip:ci-sis:dci:2009"),
    (("1.3.6.1.4.1.19376.1.8.1.1.2.16",), "urn:ihe:pat:apsr:urinary_bladder:2010"),
    (("1.2.250.1.213.1.1.1.1",), nos.DEFAULT_FORMAT_CODE), ((), nos.DEFAULT_FORMAT_CODE),
])
def test_the_format_of_a_cda_n3_is_its_models(templates, expected):
    assert nos.format_code(structured=True, media_type=None, template_ids=templates) == expected


def test_ass_a11_has_its_two_structured_groups():
    # 47 CI-SIS models (-> TRE_A06) and 31 IHE ones (-> TRE_A11, 20 of them the APSR organs), one code each.
    assert len(nos.FORMAT_OF_TEMPLATE) == 78
    assert nos.N1_TEMPLATE not in nos.FORMAT_OF_TEMPLATE   # an N1 goes by its mediaType
