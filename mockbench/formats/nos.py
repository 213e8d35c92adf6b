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

# ASS_A12-CorresMediaTypeCDANonStructure-XdsFormatCode-CISIS (NOS version 5.0.0, active 2025-11-29, its five
# rows as IG-terminologie-de-sante renders them, ConceptMap-ASS-A12-CorresMediaTypeCDANonStructure-XdsFormatCode-
# CISIS): the formatCode of a CDA N1 from its component/nonXMLBody/text@mediaType (mapping.md gives the PDF row:
# "CDA N1 => urn:ihe:iti:xds-sd:pdf:2008").
FORMAT_OF_MEDIA_TYPE = MappingProxyType({
    "application/pdf": "urn:ihe:iti:xds-sd:pdf:2008",
    "text/plain": "urn:ihe:iti:xds-sd:text:2008",
    "text/rtf": "urn:ihe:iti-fr:xds-sd:rtf:2010",
    "image/jpeg": "urn:ihe:iti-fr:xds-sd:jpeg:2010",
    "image/tiff": "urn:ihe:iti-fr:xds-sd:tiff:2010",
})

# ASS_A11-CorresModeleCDA-XdsFormatCode-CISIS (github.com/ansforge/IG-terminologie-de-sante,
# input/fsh/ASS-A11-CorresModeleCDA-XdsFormatCode-CISIS.fsh, version 5.0.0): the formatCode of a CDA N3 from its
# model (templateId), its two groups of structured models (TRE_R220 -> TRE_A06 and TRE_A11). Its third group,
# the N1 model 1.3.6.1.4.1.19376.1.2.20, goes by the body's mediaType (ASS_A12, above).
_CISIS = "1.2.250.1.213.1.1.1."
_A11_ANS = {   # model (after 1.2.250.1.213.1.1.1.) -> urn:asip:ci-sis:<code>, urn:ans:ci-sis: where marked "ans:"
    "5.1": "cse-cs8:2017", "5.2": "cse-cs9:2017", "5.3": "cse-cs24:2017", "5.4": "ans:cse-mde:2023",
    "8": "frcp:2011", "9": "idap:2011", "10": "cva:2017", "12.1": "obp-sap:2023", "12.2": "obp-snm:2023",
    "12.3": "obp-sne:2023", "12.4": "obp-scm:2023", "12.5": "obp-sem:2023", "13": "vsm:2012", "15": "aunv:2013",
    "16": "eunv:2013", "17": "sunv:2013", "18": "crrtn:2013", "2.1.1": "avk:2009", "2.1.2": "tap:2009",
    "2.1.3": "dci:2009", "2.1.4": "psc:2009", "2.1.5": "ppv:2009", "20": "pps-paerpa:2017", "21": "ldl-ees:2017",
    "22": "dlu:2015", "23": "fludt:2017", "24": "fludr:2017", "25": "pavc:2016", "26": "pps-cancer:2017",
    "27": "d2lm-fin:2017", "28": "d2lm-fidd:2017", "29": "ldl-ses:2017", "30": "sdm-mr:2017", "32": "crgm:2018",
    "36": "hr:2019", "37": "vac:2019", "38": "tlm-da:2020", "40": "cr-anest:2020", "41": "cr-cpa:2020",
    "46": "vac-note:2021", "47": "ans:img-da:2022", "48": "dlu-dlu-dom:2022", "49": "dlu-fludt-dom:2022",
    "50": "dlu-fludr-dom:2022", "52": "ans:bio-ep-bio:2022", "58": "export-dui:2023", "56": "ppp:2023",
}
_APSR_ORGANS = ("breast colon prostate thyroid lung skin kidney cervix endometrium ovary esophagus stomach liver "
                "pancreas testis urinary_bladder lip_oral_cavity pharynx salivary_gland larynx").split()
FORMAT_OF_TEMPLATE = MappingProxyType({
    **{_CISIS + model: ("urn:ans:ci-sis:" + code[4:] if code.startswith("ans:") else "urn:asip:ci-sis:" + code)
       for model, code in _A11_ANS.items()},
    _CISIS + "39": "urn:ihe:pharm:pre:2010", _CISIS + "54": "urn:ihe:pharm:dis:2010",
    _CISIS + "42": "urn:ihe:eyecare:geneyeevalcn:2014", _CISIS + "43": "urn:ihe:eyecare:geneyeevalcn:2014",
    _CISIS + "44": "urn:ihe:eyecare:geneyeevalcn:2014",
    _CISIS + "45": "urn:ihe:rad:CDA:ImagingReportStructuredHeadings:2013",
    _CISIS + "55": "urn:ihe:lab:xd-lab:2008", _CISIS + "57": "urn:ihe:palm:apsr:2016",
    "1.3.6.1.4.1.19376.1.3.3": "urn:ihe:lab:xd-lab:2008", _CISIS + "51": "urn:ihe:pcc:ips:2020",
    "1.3.6.1.4.1.19376.1.8.1.1.1": "urn:ihe:pat:apsr:all:2010",
    **{f"1.3.6.1.4.1.19376.1.8.1.1.2.{n}": f"urn:ihe:pat:apsr:{organ}:2010"
       for n, organ in enumerate(_APSR_ORGANS, start=1)},
})
N1_TEMPLATE = "1.3.6.1.4.1.19376.1.2.20"      # IHE XDS-SD: a CDA with a non-structured body (N1)
# A structured CDA of no model ASS_A11 lists: the code the bench gave every PFI-fed document before.
DEFAULT_FORMAT_CODE = "urn:asip:ci-sis:2010"


def class_of_type(type_code: str | None) -> str | None:
    """The classCode ASS_X04 gives the typeCode; None for a type it does not know."""
    return CLASS_OF_TYPE.get(type_code or "")


def format_code(*, structured: bool, media_type: str | None, template_ids: tuple[str, ...]) -> str | None:
    """The formatCode of a CDA (trans-cda-r2/mapping.md, Mapping XDS, Fiche, formatCode): a CDA N1 by its
    mediaType (ASS_A12; absent, text/plain, the default of an HL7 ED), None for a mediaType the table does not
    know; a CDA N3 by its model (ASS_A11), the first templateId the table knows, else the CI-SIS generic
    code (a structured CDA of no model the table lists)."""
    if not structured:
        return FORMAT_OF_MEDIA_TYPE.get((media_type or "text/plain").strip().lower())
    return next((FORMAT_OF_TEMPLATE[t] for t in template_ids if t in FORMAT_OF_TEMPLATE), DEFAULT_FORMAT_CODE)
