"""The XDS metadata the PFI derives from a document's CDA header to feed the DMP (trans-cda-r2/mapping.md,
"Mapping XDS", Fiche, column "Provenance de la donnée"). Read from the message: what is missing is a finding
here, and the DMP's refusal later when the DMP requires it (world/dmp.py `_require_feeding_metadata`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...formats import nos
from ...formats.cda import INS_OIDS, CdaHeader
from ...formats.findings import finding
from ...formats.times import dtm_to_iso
from ...world.dmp import REQUIRED_METADATA

if TYPE_CHECKING:
    from .messages import DocLabel

OID_IDNPS = "1.2.250.1.71.4.2.1"

# Metadatum -> (the CDA element it comes from, as mapping.md names it), for the findings.
SOURCES = {
    "class_code": "code@code (ASS_X04-CorrespondanceType-Classe)",
    "facility_type": "componentOf/encompassingEncounter/location/healthCareFacility/code@code",
    "practice_setting": "documentationOf/serviceEvent/performer/assignedEntity/representedOrganization/"
                        "standardIndustryClassCode@code",
    "language": "languageCode@code",
    "service_start": "documentationOf/serviceEvent/effectiveTime/low@value",
    "legal_authenticator": "legalAuthenticator/assignedEntity",
    "source_patient_id": "recordTarget/patientRole/id",
    "format_code": "component/nonXMLBody/text@mediaType (ASS_A12)",
}
XDS_NAMES = {"class_code": "classCode", "facility_type": "healthcareFacilityTypeCode",
             "practice_setting": "practiceSettingCode", "language": "languageCode",
             "service_start": "serviceStartTime", "service_stop": "serviceStopTime",
             "legal_authenticator": "legalAuthenticator", "source_patient_id": "sourcePatientId",
             "format_code": "formatCode"}


def derive(cda: CdaHeader, type_code: str, action: str, findings: list[dict], label: DocLabel,
           times: dict[str, str] | None = None) -> dict[str, str]:
    """The document entry's metadata from its CDA, with the world's keys (class_code, facility_type,
    practice_setting, language, service_start, service_stop, format_code, author_specialty) and two XDS
    slots the world keeps as sent (legal_authenticator, an XCN; source_patient_id, a CX). mapping.md marks
    classCode, healthcareFacilityTypeCode, practiceSettingCode, languageCode, legalAuthenticator,
    serviceStartTime, sourcePatientId and formatCode "Requis": one that cannot be derived is left out with a
    finding (none for a deletion, which gives the DMP no metadata): an error when the DMP refuses the document
    without it (world/dmp.py REQUIRED_METADATA), else a warning. `times`: the document's HL7 times already
    converted to ISO (`dtm_to_iso`), by value: the service times are often the effectiveTime or each other."""
    meta: dict[str, str] = {}
    converted = {} if times is None else times
    bad: dict[str, tuple[str, str]] = {}   # key -> why, in English and French
    class_code = nos.class_of_type(type_code)
    if class_code:
        meta["class_code"] = class_code
    elif type_code:
        bad["class_code"] = (f"typeCode {type_code} is not in ASS_X04", f"le typeCode {type_code} n'est pas dans ASS_X04")
    for key, value in (("facility_type", cda.facility_type), ("practice_setting", cda.practice_setting),
                       ("language", cda.language_code), ("author_specialty", cda.author_specialty)):
        if value:
            meta[key] = value
    for key, value in (("service_start", cda.service_start), ("service_stop", cda.service_stop)):
        if value:
            iso = converted.get(value)
            if iso is None:
                try:
                    iso = converted[value] = dtm_to_iso(value)
                except ValueError:
                    bad[key] = (f"{value!r} is not an HL7 TS", f"{value!r} n'est pas un TS HL7")
                    continue
            meta[key] = iso
    if cda.legal_authenticator:
        root, ext, family, given = cda.legal_authenticator
        kind = "^D^^^IDNPS" if root == OID_IDNPS else ""
        meta["legal_authenticator"] = f"{ext}^{family}^{given}^^^^^^&{root}&ISO{kind}"
    source = source_patient_id(cda)
    if source:
        meta["source_patient_id"] = source
    fmt = nos.format_code(structured=cda.is_structured, media_type=cda.media_type, template_ids=cda.template_ids)
    if fmt:
        meta["format_code"] = fmt
    elif cda.media_type:
        bad["format_code"] = (f"mediaType {cda.media_type} is not in ASS_A12",
                              f"le mediaType {cda.media_type} n'est pas dans ASS_A12")
    if action != "delete":
        for key, source_path in SOURCES.items():
            if key not in meta:
                en, fr = bad.get(key, ("absent", "absent"))
                if key in REQUIRED_METADATA:   # the DMP refuses the document (world/dmp.py)
                    then, then_fr, severity = "the DMP refuses the document without it", \
                        "le DMP refuse le document sans elle", "error"
                else:
                    then, then_fr, severity = "the PFI feeds the DMP without it", "le PFI alimente le DMP sans elle", \
                        "warning"
                findings.append(finding(
                    f"CDA-HL7/{XDS_NAMES[key]}", f"the {XDS_NAMES[key]} of {label}, which trans-cda-r2/mapping.md "
                    f"(Mapping XDS, Fiche) requires, cannot be derived from its CDA ({source_path}: {en}): {then}",
                    severity,
                    fr=f"la métadonnée {XDS_NAMES[key]} {label.fr}, que trans-cda-r2/mapping.md (Mapping XDS, Fiche) "
                       f"exige, ne peut pas être déduite de son CDA ({source_path} : {fr}) : {then_fr}"))
        if "service_stop" in bad:
            findings.append(finding(
                "CDA-HL7/serviceStopTime", f"the serviceStopTime of {label} is left out: its CDA's "
                f"documentationOf/serviceEvent/effectiveTime/high@value: {bad['service_stop'][0]}", "warning",
                fr=f"la serviceStopTime {label.fr} est omise : documentationOf/serviceEvent/effectiveTime/high@value "
                   f"de son CDA : {bad['service_stop'][1]}"))
    return meta


def source_patient_id(cda: CdaHeader) -> str | None:
    """sourcePatientId (a CX) from recordTarget/patientRole/id: "l'identifiant secondaire du patient dans le
    système d'information du producteur (IPP) ou l'INS, s'il n'y a pas d'identifiant secondaire" (mapping.md):
    the first id outside the INS OIDs (PI), else the INS (NH)."""
    ipp = next(((root, ext) for root, ext in cda.patient_ids if root not in INS_OIDS and ext), None)
    if ipp:
        return f"{ipp[1]}^^^&{ipp[0]}&ISO^PI"
    if cda.ins:
        ext, root = cda.ins
        return f"{ext}^^^&{root}&ISO^NH"
    return None
