"""The ANS NOS association tables the PFI derives XDS metadata with, from a CDA header (trans-cda-r2/mapping.md,
"Mapping XDS", Fiche): ASS_X04 (typeCode -> classCode) and the formatCode tables ASS_A12 (the mediaType of a
CDA N1) and ASS_A11 (the model, templateId, of a CDA N3). Plain tables, no rules."""

from __future__ import annotations

from types import MappingProxyType

# ASS_X04-CorrespondanceType-Classe-CISIS (OID 1.2.250.1.213.1.1.4.249, NOS version of 2024-02-23,
# https://mos.esante.gouv.fr/NOS/ASS_X04-CorrespondanceType-Classe-CISIS, rendered as
# https://ansforge.github.io/IG-terminologie-de-sante/ig/main/ConceptMap-ASS-X04-CorrespondanceType-Classe-CISIS.html):
# every typeCode (LOINC 2.16.840.1.113883.6.1, or TRE_A05-TypeDocComplementaire 1.2.250.1.213.1.1.4.12) and
# the classCode (TRE_A03-ClasseDocument, 1.2.250.1.213.1.1.4.1) it belongs to. Written by class, read by type.
_X04_BY_CLASS = {
    "10": ("10213-7 11488-4 11490-0 11493-4 11502-2 11505-5 11506-3 11526-1 11528-7 15507-7 15508-5 24611-6 "
           "27899-4 28653-4 29274-8 29554-3 34112-3 34749-2 34794-8 34874-8 34875-5 39256-3 46241-6 47420-5 "
           "51969-4 59283-2 60568-3 67851-6 70004-7 75482-0 75492-9 75497-8 75496-0 77436-4 78513-9 78601-2 "
           "83981-1 85208-7 93024-8 96349-6 BIL_AUTO DOCPAT03 DOCPAT05 DOCPAT06"),
    "11": ("18761-7 34133-9 34842-5 56445-0 57055-6 57057-2 57075-4 60591-5 68599-0 68817-6 74207-2 78489-2 "
           "80820-4 83836-7 83901-9 89235-6 88348-8 EXPORT_DUI DOCPAT01 DOCPAT08 SYNTH"),
    "31": "18748-4 52040-3 DOCPAT04 IMG-KOS",
    "42": ("29551-9 52063-5 52521-2 55115-0 57828-6 57832-8 57833-6 61357-0 75468-9 DOCPAT02 PRESC-AAT "
           "PRESC-BIO PRESC-KINE PRESC-INF PRESC-PEDI PRESC-ORTHOPHO PRESC-ORTHOPTIE"),
    "43": "29550-1 60593-1 DISP_AUT",
    "44": "18776-5 77604-7 80771-9 80788-3 83869-8 PROT_ALD",
    "45": "80565-5",
    "52": "11369-6 87273-9 89601-9 96874-3 96173-0 CERT_DECL DOCPAT07",
    "60": "REMB",
    "90": "74465-6 EXPPAT_1 EXPPAT_2 EXPPAT_3 DOCPAT10",
    "95": ("51851-4 56446-8 59284-0 86531-1 ATTEST-ASS-COMPL ATTEST-HEBGT ATTEST-RESID ATTEST-DROITS-AM "
           "AUTORIS-SOINS CONTACTS-URGENCE DOCPAT09 PIECE-IDENTITE FICHE-CONTACTS"),
    "99": "FEUILLE-DE-STYLE",
    # The signature entry (ASTM E1762, "Full Document") is of IHE's class (the DSG profile).
    "urn:oid:1.3.6.1.4.1.19376.1.2.1.1.1": "E1762",
}
CLASS_OF_TYPE = MappingProxyType({type_code: class_code for class_code, types in _X04_BY_CLASS.items()
                                  for type_code in types.split()})

# ASS_A12-CorresMediaTypeCDANonStructure-XdsFormatCode-CISIS: the formatCode of a CDA N1 from its
# component/nonXMLBody/text@mediaType (mapping.md gives the PDF row: "CDA N1 => urn:ihe:iti:xds-sd:pdf:2008").
FORMAT_OF_MEDIA_TYPE = MappingProxyType({
    "application/pdf": "urn:ihe:iti:xds-sd:pdf:2008",
    "text/plain": "urn:ihe:iti:xds-sd:text:2008",
    "text/rtf": "urn:ihe:iti-fr:xds-sd:rtf:2010",
    "image/jpeg": "urn:ihe:iti-fr:xds-sd:jpeg:2010",
})

# ASS_A11-CorresModeleCDA-XdsFormatCode-CISIS (github.com/ansforge/IG-terminologie-de-sante,
# input/fsh/ASS-A11-CorresModeleCDA-XdsFormatCode-CISIS.fsh): the formatCode of a CDA N3 from its model
# (templateId). Only the rows of the models the bench and the ANS corpus meet; a model not listed keeps the
# CI-SIS generic formatCode (DEFAULT_FORMAT_CODE).
FORMAT_OF_TEMPLATE = MappingProxyType({
    "1.3.6.1.4.1.19376.1.3.3": "urn:ihe:lab:xd-lab:2008",          # IHE XD-LAB (CR-BIO)
    "1.2.250.1.213.1.1.1.55": "urn:ihe:lab:xd-lab:2008",           # CR-BIO (CI-SIS)
    "1.2.250.1.213.1.1.1.45": "urn:ihe:rad:CDA:ImagingReportStructuredHeadings:2013",  # CR-IMG
    "1.2.250.1.213.1.1.1.47": "urn:ans:ci-sis:img-da:2022",        # IMG-DA
    "1.2.250.1.213.1.1.1.39": "urn:ihe:pharm:pre:2010",            # prescription
    "1.2.250.1.213.1.1.1.54": "urn:ihe:pharm:dis:2010",            # dispensation
    "1.2.250.1.213.1.1.1.51": "urn:ihe:pcc:ips:2020",              # IPS
    "1.2.250.1.213.1.1.1.29": "urn:asip:ci-sis:ldl-ses:2017",      # lettre de liaison de sortie
    "1.2.250.1.213.1.1.1.21": "urn:asip:ci-sis:ldl-ees:2017",      # lettre de liaison d'entrée
    "1.2.250.1.213.1.1.1.37": "urn:asip:ci-sis:vac:2019",          # vaccination
    "1.2.250.1.213.1.1.1.46": "urn:asip:ci-sis:vac-note:2021",     # note de vaccination
})
N1_TEMPLATE = "1.3.6.1.4.1.19376.1.2.20"      # IHE XDS-SD: a CDA with a non-structured body (N1)
DEFAULT_FORMAT_CODE = "urn:asip:ci-sis:2010"   # JDV_J60: "Document CI-SIS" (any CI-SIS structured document)


def class_of_type(type_code: str | None) -> str | None:
    """The classCode ASS_X04 gives the typeCode; None for a type it does not know."""
    return CLASS_OF_TYPE.get(type_code or "")


def format_code(*, structured: bool, media_type: str | None, template_ids: tuple[str, ...]) -> str | None:
    """The formatCode of a CDA (trans-cda-r2/mapping.md, Mapping XDS, Fiche, formatCode): a CDA N1 by its
    mediaType (ASS_A12; absent, text/plain, the default of an HL7 ED), None for a mediaType the table does not
    know; a CDA N3 by its model (ASS_A11), the
    first templateId the table knows, else the CI-SIS generic code."""
    if not structured:
        return FORMAT_OF_MEDIA_TYPE.get((media_type or "text/plain").strip().lower())
    return next((FORMAT_OF_TEMPLATE[t] for t in template_ids if t in FORMAT_OF_TEMPLATE), DEFAULT_FORMAT_CODE)
