"""protocols/pfi/xds.py: the XDS metadata the PFI derives from a CDA header (trans-cda-r2/mapping.md, "Mapping
XDS", Fiche, column "Provenance de la donnée"), on the CDAs the ANS corpus's HL7 v2 messages carry and on
headers lacking one element. The door's behaviour over MLLP is in test_pfi_xds_metadata.py."""

import base64
import dataclasses
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mockbench.formats.cda import read_cda_header
from mockbench.formats.times import dtm_to_iso
from mockbench.protocols.pfi import xds
from mockbench.protocols.pfi.messages import SINGLE, _creation_time

HL7V2 = "hl7v2/Trans_Doc-CDA-HL7V2"
REQUIRED = set(xds.SOURCES)


def _embedded(message: bytes) -> bytes:
    for segment in re.split(rb"\r\n|\r|\n", message):
        fields = segment.split(b"|")
        if fields[0] == b"OBX" and len(fields) > 5 and fields[2] == b"ED" and b"MetaDMPMSS" not in fields[3]:
            data = fields[5].split(b"^")[4]
            return base64.b64decode(data + b"=" * (-len(data) % 4))
    raise AssertionError("no OBX ED document")


MDM = {"class_code": "31", "facility_type": "SA07", "practice_setting": "ETABLISSEMENT", "language": "fr-FR",
       "service_start": "2023-02-27T08:28:27Z", "service_stop": "2023-02-27T08:28:27Z",
       "legal_authenticator": "801234564895^Eric^Thomas^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS",
       "source_patient_id": "279035121518989^^^&1.2.250.1.213.1.4.10&ISO^NH",
       "format_code": "urn:ihe:iti:xds-sd:pdf:2008"}
ORU = {"class_code": "10", "facility_type": "SA25", "practice_setting": "AMBULATOIRE", "language": "fr-FR",
       "author_specialty": "G15_10/SM03", "service_start": "2023-01-04T08:22:00Z",
       "service_stop": "2023-01-04T15:05:00Z",
       "legal_authenticator": "801234534765^CAMPARINI^Marcel^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS",
       # The IPP, not the INS: "l'identifiant secondaire (IPP) ou l'INS s'il n'y a pas d'identifiant secondaire"
       "source_patient_id": "1234567890121^^^&1.2.3.4.567.8.9.10&ISO^PI",
       "format_code": "urn:ihe:lab:xd-lab:2008"}
CORPUS = {
    "MDM/Transmission_initiale_MDM/message_MDM_CR_Radio_INIT_N1_Base64.er7": MDM,
    "MDM/Remplacement_MDM/message_MDM_CR_Radio_RPLC_N1.er7": MDM,
    "ORU/Transmission_initiale_ORU/message_ORU_CR_Bio_INIT_N3_SEGUR.hl7": ORU,
    "ORU/Remplacement_ORU/message_ORU_CR_Bio_RPLC_N3_SEGUR.hl7": ORU,
}


@pytest.mark.parametrize("relpath", sorted(CORPUS))
def test_every_required_metadatum_comes_from_the_corpus_cdas(corpus: Path, relpath: str):
    """The ANS examples give every metadatum mapping.md requires: the PFI refuses none of them."""
    findings: list[dict] = []
    header = read_cda_header(_embedded((corpus / HL7V2 / relpath).read_bytes()))
    meta = xds.derive(header, header.type_code or "", "submit", findings, SINGLE)
    assert meta == CORPUS[relpath]
    assert REQUIRED <= set(meta) and findings == []


LEGAL = (b'<legalAuthenticator><assignedEntity><id root="1.2.250.1.71.4.2.1" extension="81"/><assignedPerson><name>'
         b'<family>DURAND</family><given>Anne</given></name></assignedPerson></assignedEntity></legalAuthenticator>')
EVENT = (b'<documentationOf><serviceEvent><effectiveTime><low value="20261120080000"/></effectiveTime><performer>'
         b'<assignedEntity><representedOrganization><standardIndustryClassCode code="AMBULATOIRE"/>'
         b'</representedOrganization></assignedEntity></performer></serviceEvent></documentationOf>')
ENCOUNTER = (b'<componentOf><encompassingEncounter><location><healthCareFacility><code code="SA07"/>'
             b'</healthCareFacility></location></encompassingEncounter></componentOf>')
PARTS = {"language": b'<languageCode code="fr-FR"/>', "legal_authenticator": LEGAL, "service_start": EVENT,
         "facility_type": ENCOUNTER,
         "source_patient_id": b'<recordTarget><patientRole><id root="1.2.250.1.213.1.4.10" extension="279035121518989"/>'
                              b'</patientRole></recordTarget>'}


def _cda(type_code: str = "11488-4", leave_out: str = "", body: bytes = b'<nonXMLBody><text mediaType="application/pdf"/>'
         b'</nonXMLBody>') -> bytes:
    parts = b"".join(v for k, v in PARTS.items() if k != leave_out)
    return (b'<ClinicalDocument xmlns="urn:hl7-org:v3"><id root="1.2.3"/><code code="' + type_code.encode() + b'"/>'
            + parts + b"<component>" + body + b"</component></ClinicalDocument>")


def test_a_complete_header_gives_no_finding():
    findings: list[dict] = []
    meta = xds.derive(read_cda_header(_cda()), "11488-4", "submit", findings, SINGLE)
    assert findings == [] and REQUIRED <= set(meta)
    assert meta["source_patient_id"] == "279035121518989^^^&1.2.250.1.213.1.4.10&ISO^NH"   # no IPP: the INS
    assert meta["legal_authenticator"] == "81^DURAND^Anne^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS"


@pytest.mark.parametrize("key,xds_name,severity", [
    # The DMP refuses the document without these (world/dmp.py REQUIRED_METADATA): an error...
    ("language", "languageCode", "error"), ("facility_type", "healthcareFacilityTypeCode", "error"),
    # ... and takes it without these, which mapping.md requires of the PFI all the same: a warning.
    ("legal_authenticator", "legalAuthenticator", "warning"), ("source_patient_id", "sourcePatientId", "warning"),
])
def test_a_missing_element_is_left_out_with_a_finding(key, xds_name, severity):
    findings: list[dict] = []
    meta = xds.derive(read_cda_header(_cda(leave_out=key)), "11488-4", "submit", findings, SINGLE)
    assert key not in meta
    assert [(f["rule"], f["severity"]) for f in findings] == [(f"CDA-HL7/{xds_name}", severity)]
    assert "mapping.md" in findings[0]["message"] and findings[0]["message_fr"].startswith(f"la métadonnée {xds_name}")
    assert ("refuses" in findings[0]["message"]) == (severity == "error")


def test_without_a_service_event_neither_start_nor_practice_setting():
    findings: list[dict] = []
    meta = xds.derive(read_cda_header(_cda(leave_out="service_start")), "11488-4", "submit", findings, SINGLE)
    assert not {"service_start", "practice_setting"} & set(meta)
    assert sorted(f["rule"] for f in findings) == ["CDA-HL7/practiceSettingCode", "CDA-HL7/serviceStartTime"]


def test_a_type_outside_ass_x04_has_no_class_and_says_why():
    findings: list[dict] = []
    meta = xds.derive(read_cda_header(_cda("99999-9")), "99999-9", "submit", findings, SINGLE)
    assert "class_code" not in meta
    [f] = findings
    assert f["rule"] == "CDA-HL7/classCode" and "typeCode 99999-9 is not in ASS_X04" in f["message"]


def test_a_bad_service_time_and_an_unknown_media_type_say_so():
    body = b'<nonXMLBody><text mediaType="video/mp4"/></nonXMLBody>'
    cda = _cda(body=body).replace(b'<low value="20261120080000"/>', b'<low value="hier"/><high value="2026-13"/>')
    findings: list[dict] = []
    meta = xds.derive(read_cda_header(cda), "11488-4", "submit", findings, SINGLE)
    assert not {"service_start", "service_stop", "format_code"} & set(meta)
    assert sorted((f["rule"], f["severity"]) for f in findings) == [
        ("CDA-HL7/formatCode", "error"), ("CDA-HL7/serviceStartTime", "warning"),
        ("CDA-HL7/serviceStopTime", "warning")]


def test_a_deletion_asks_for_nothing():
    findings: list[dict] = []
    xds.derive(read_cda_header(_cda(leave_out="language")), "11488-4", "delete", findings, SINGLE)
    assert findings == []


class _Forgetful(dict):
    """A memo of converted times that keeps nothing: every time converted again, as before the memo."""

    def __setitem__(self, key, value):
        pass


_TIMES = st.sampled_from([None, "20261120080000", "20261120080000+0000", "20261120090000+0100", "2026112008",
                          "2026-11-20", "20261345", " 20261120080000 "])


@settings(max_examples=200, deadline=None)
@given(effective=_TIMES, start=_TIMES, stop=_TIMES, action=st.sampled_from(["submit", "replace", "delete"]))
def test_the_times_converted_once_per_document_give_what_each_conversion_gave(effective, start, stop, action):
    """read_document converts the CDA's effectiveTime and service times once by value (a memo shared by
    `_creation_time` and `derive`): the creationTime, the metadata and the findings are those of converting
    every one again, valid or not, equal or not."""
    header = dataclasses.replace(read_cda_header(_cda()), effective_time=effective, service_start=start,
                                 service_stop=stop)
    answers = []
    for times in (_Forgetful(), {}):
        findings: list[dict] = []
        creation = _creation_time(header, action, findings, SINGLE, times)
        answers.append((creation, xds.derive(header, "11488-4", action, findings, SINGLE, times), findings))
    assert answers[0] == answers[1]
    creation, meta, _ = answers[1]
    for key, value in (("creation", effective), ("service_start", start), ("service_stop", stop)):
        try:   # the former code: each value converted where it is read, left out when it is not a TS
            want = dtm_to_iso(value) if value else None
        except ValueError:
            want = None
        got = creation if key == "creation" else meta.get(key)
        assert got == want and (key == "creation" or (key in meta) == (want is not None))
