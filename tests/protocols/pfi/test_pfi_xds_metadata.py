"""The XDS metadata a PFI-fed document gets from its CDA header (trans-cda-r2/mapping.md, "Mapping XDS", Fiche,
"Provenance de la donnée"), through python-hl7's MLLP client over real sockets, and what a DPI then reads
of the entry in a TD3.1 (ITI-18 FindDocuments) over SOAP: classCode (ASS_X04 from the typeCode),
healthcareFacilityTypeCode, practiceSettingCode, languageCode, serviceStart/StopTime, legalAuthenticator,
sourcePatientId and formatCode, as the vendor builder (mockbench/testing/messages.py `cda`) writes them."""

import re

import pytest
import requests
from kit.dpi_listener import field
from kit.pfi import mdm, send
from kit.wait import wait_for
from lxml import etree

from mockbench.testing import messages as m

RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
SCHEMES = {"urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a": "classCode",
           "urn:uuid:f33fb8ac-18af-42cc-ae0e-ed0b0bdb91e1": "healthcareFacilityTypeCode",
           "urn:uuid:cccf5598-8b07-4b77-a05e-ae952c785ead": "practiceSettingCode",
           "urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d": "formatCode",
           "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983": "typeCode"}


def td31_entry(bench, patient: dict, pro: dict, unique_id: str) -> dict:
    """The entry `unique_id` of a TD3.1 answer over SOAP: its slots and coded classifications."""
    idnst = next(s for s in bench.client.call("GET", "/structures") if s["id"] == "chu")["idnst"]
    answer = requests.post(bench.url + m.DMP_SERVICES + "/registry", timeout=10,
                           headers={"Content-Type": "application/soap+xml; charset=utf-8"},
                           data=m.soap_envelope(m.find_documents(patient), m.vihf(pro, idnst, patient, signer=bench.bench),
                                                m.ACTIONS["TD3.1"]))
    assert answer.status_code == 200, answer.text
    for eo in etree.fromstring(answer.content).iter(f"{{{RIM}}}ExtrinsicObject"):
        ids = {e.get("value") for e in eo.iter(f"{{{RIM}}}ExternalIdentifier")}
        if unique_id not in ids:
            continue
        entry = {s.get("name"): [v.text for v in s.iter(f"{{{RIM}}}Value")] for s in eo.findall(f"{{{RIM}}}Slot")}
        for c in eo.findall(f"{{{RIM}}}Classification"):
            if c.get("classificationScheme") in SCHEMES:
                entry[SCHEMES[c.get("classificationScheme")]] = c.get("nodeRepresentation")
        return entry
    raise AssertionError(f"{unique_id} is not in the TD3.1 answer")


def test_a_pfi_fed_entry_carries_what_its_cda_header_says(pfi_world):
    bench, patient, dr_a = pfi_world["bench"], pfi_world["patient"], pfi_world["pros"]["dr_a"]
    uid = "1.2.250.1.999.72.1"
    cda = m.cda(patient, dr_a, uid, type_code="18748-4", title="CR d'imagerie", facility_type="SA07",
                practice_setting="AMBULATOIRE", service_start="2026-11-20T08:00:00Z",
                service_stop="2026-11-20T09:30:00Z", language="fr-FR")
    [ack] = send(bench, mdm("T02", patient, dr_a, dr_a["finess"], uid, control_id="XM1", cda=cda))
    assert str(ack.segment("MSA")[1]) == "AA"
    pfi = next(e for e in bench.client.journal(channel="pfi") if e["operation"] == "MDM^T02")
    assert not [f for f in pfi["findings"] if f["severity"] == "error"]
    entry = td31_entry(bench, patient, dr_a, uid)
    assert {k: entry[k] for k in ("classCode", "healthcareFacilityTypeCode", "practiceSettingCode", "formatCode",
                                  "typeCode")} == {
        "classCode": "31",   # ASS_X04: 18748-4 (CR d'imagerie médicale) -> 31 (Imagerie médicale)
        "healthcareFacilityTypeCode": "SA07", "practiceSettingCode": "AMBULATOIRE",
        "formatCode": "urn:ihe:iti:xds-sd:text:2008",   # a CDA N1 of text/plain (ASS_A12)
        "typeCode": "18748-4"}
    assert entry["languageCode"] == ["fr-FR"]
    assert (entry["serviceStartTime"], entry["serviceStopTime"]) == (["20261120080000"], ["20261120093000"])
    assert entry["legalAuthenticator"] == [
        f"{dr_a['idnps']}^{dr_a['family_name']}^{dr_a['given_name']}^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS"]
    assert entry["sourcePatientId"] == [f"{patient['ins']}^^^&{patient['ins_oid']}&ISO^NH"]   # no IPP: the INS


def test_the_language_and_the_class_follow_the_cda(pfi_world):
    """Not the bench's defaults (fr-FR, no class): a document in English of type SYNTH (class 11)."""
    bench, patient, dr_a = pfi_world["bench"], pfi_world["patient"], pfi_world["pros"]["dr_a"]
    uid = "1.2.250.1.999.72.2"
    cda = m.cda(patient, dr_a, uid, type_code="60591-5", title="Synthèse", language="en-GB")
    [ack] = send(bench, mdm("T02", patient, dr_a, dr_a["finess"], uid, control_id="XM2", cda=cda))
    assert str(ack.segment("MSA")[1]) == "AA"
    doc = next(d for d in bench.client.documents("alice") if d["unique_id"] == uid)
    assert (doc["class_code"], doc["language"], doc["facility_type"], doc["practice_setting"]) == (
        "11", "en-GB", "SA01", "ETABLISSEMENT")


def _without(cda: bytes, element: str) -> bytes:
    """The CDA without its first `element` (empty, or with its content up to its end tag)."""
    name = re.escape(element.encode())
    edited = re.sub(rb"<" + name + rb"\b[^>]*/>|<" + name + rb"(?:\s[^>]*[^/])?>.*?</" + name + rb">", b"", cda, count=1,
                    flags=re.S)
    assert edited != cda and b"<" + element.encode() not in edited
    return edited


@pytest.mark.parametrize("element,xds_name", [
    ("componentOf", "healthcareFacilityTypeCode"),
    ("documentationOf", "practiceSettingCode"),
    ("languageCode", "languageCode"),
])
def test_a_cda_without_a_metadatum_the_dmp_requires_is_refused_and_the_z01_says_so(
        pfi_world, dpi_listener, element, xds_name):
    """trans-cda-r2/mapping.md, Mapping XDS, Fiche: "Requis". AA (the HL7 message is sound), then the DMP's
    refusal (world/dmp.py `_require_feeding_metadata`, the one the DMP door's reader makes over SOAP) in a
    ZAM^Z01 N whose ERR-5 carries XDSRegistryMetadataError, as for a CDA without creationTime."""
    bench, patient, dr_a = pfi_world["bench"], pfi_world["patient"], pfi_world["pros"]["dr_a"]
    listener = dpi_listener()
    uid = "1.2.250.1.999.72.3"
    cda = _without(m.cda(patient, dr_a, uid), element)
    [ack] = send(bench, mdm("T02", patient, dr_a, dr_a["finess"], uid, control_id="XM3", cda=cda))
    assert str(ack.segment("MSA")[1]) == "AA"
    assert uid not in {d["unique_id"] for d in bench.client.documents("alice", history=True)}
    pfi = next(e for e in bench.client.journal(channel="pfi") if e["operation"] == "MDM^T02")
    assert (f"CDA-HL7/{xds_name}", "error") in [(f["rule"], f["severity"]) for f in pfi["findings"]]
    dmp = bench.client.journal(channel="dmp")[-1]
    assert (dmp["verdict"], dmp["code"]) == ("refused", "METADATA_INVALID")
    assert xds_name in dmp["findings"][-1]["message"]
    assert wait_for(lambda: len(listener.of_type("ZAM^Z01")) == 1)
    [zam] = listener.of_type("ZAM^Z01")
    assert str(zam.segment("OBX")[5]).split("^")[0] == "N"
    code, label, system = field(zam, "ERR", 5).split("^")
    assert (code, system) == ("XDSRegistryMetadataError", "DMP_ERROR_CODE") and xds_name in label


def test_a_type_outside_ass_x04_has_no_class_and_is_refused(pfi_world, dpi_listener):
    bench, patient, dr_a = pfi_world["bench"], pfi_world["patient"], pfi_world["pros"]["dr_a"]
    listener = dpi_listener()
    uid = "1.2.250.1.999.72.4"
    [ack] = send(bench, mdm("T02", patient, dr_a, dr_a["finess"], uid, control_id="XM4",
                            cda=m.cda(patient, dr_a, uid, type_code="99999-9", title="Inconnu")))
    assert str(ack.segment("MSA")[1]) == "AA"
    assert wait_for(lambda: len(listener.of_type("ZAM^Z01")) == 1)
    assert field(listener.of_type("ZAM^Z01")[0], "ERR", 5).startswith("XDSRegistryMetadataError^")
    pfi = next(e for e in bench.client.journal(channel="pfi") if e["operation"] == "MDM^T02")
    assert any(f["rule"] == "CDA-HL7/classCode" and "99999-9 is not in ASS_X04" in f["message"]
               for f in pfi["findings"])


def test_a_cda_without_legal_authenticator_is_fed_with_a_warning(pfi_world):
    """mapping.md requires the legalAuthenticator of what the PFI sends, but the DMP takes a TD2.1 entry
    without it (formats/ebrim/reader.py): the document is fed, the PFI's journal entry warns."""
    bench, patient, dr_a = pfi_world["bench"], pfi_world["patient"], pfi_world["pros"]["dr_a"]
    uid = "1.2.250.1.999.72.5"
    cda = _without(m.cda(patient, dr_a, uid), "legalAuthenticator")
    [ack] = send(bench, mdm("T02", patient, dr_a, dr_a["finess"], uid, control_id="XM5", cda=cda))
    assert str(ack.segment("MSA")[1]) == "AA"
    assert uid in {d["unique_id"] for d in bench.client.documents("alice")}
    pfi = next(e for e in bench.client.journal(channel="pfi") if e["operation"] == "MDM^T02")
    assert ("CDA-HL7/legalAuthenticator", "warning") in [(f["rule"], f["severity"]) for f in pfi["findings"]]
