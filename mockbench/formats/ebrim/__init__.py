"""ebRIM 3.0 / IHE XDS.b metadata, shared by the DMP door and the XDM packages: reading requests into plain
records and writing answers, with no SOAP, MTOM or world calls (the door does those). One module per job:

- `vocabulary`: namespaces, schemes, statuses, error codes, code systems and display names (constants);
- `model`: the records (`Submission`, `DocumentEntry`, `Update`, `StoredQuery`) and `RegistryError(s)`;
- `reader`: ITI-41 (TD2.1) `parse_provide_and_register`, ITI-57 (TD3.3) `parse_update`, XDM METADATA.XML
  `parse_submit_objects`: validated like a registry; every problem of a request is collected and raised
  together as `RegistryErrors`. What a real DMP plausibly accepts but a strict reader would not (the ANS
  examples' quirks) is accepted and reported in `findings` (`mockbench.formats.findings.finding` dicts);
- `query`: ITI-18 (TD3.1) `parse_stored_query` -> `StoredQuery.world_filters()` -> keyword arguments of
  `world.dmp.find`; ITI-43 (TD3.2) `parse_retrieve`;
- `writer`: `render_extrinsic_object` + `render_query_response` for ITI-18, `render_retrieve_response`, and
  `render_registry_response` for ITI-41 and ITI-57.

Shapes follow the ANS/GIE "DMP LPS" example messages (corpus `dmp-wire/`, DOMAIN.md section 1) and the
ANS XDM examples; scheme UUIDs and slot names are IHE ITI TF-3 4.2.5, checked against those files.
`meta` dicts use the world's `Document` field names, except `author` (the author's IDNPS, from authorPerson
XCN.1): the door maps it to a world professional id (`world.directory.professional(idnps).id`).
HL7 DTM times are read and written by `mockbench.formats.times` (`dtm_to_iso`, `iso_to_dtm`, re-exported).
"""

from __future__ import annotations

from ..times import dtm_to_iso, iso_to_dtm
from .model import Association, DocumentEntry, RegistryError, RegistryErrors, StoredQuery, Submission, Update
from .query import matches_like, parse_retrieve, parse_stored_query
from .reader import parse_provide_and_register, parse_submit_objects, parse_update
from .vocabulary import (
    APND,
    CLASS_NAMES,
    CONFIDENTIALITY_NAMES,
    CONFIDENTIALITY_SYSTEMS,
    DE_AUTHOR,
    DE_CLASS_CODE,
    DE_CONFIDENTIALITY_CODE,
    DE_EVENT_CODE,
    DE_FACILITY_TYPE_CODE,
    DE_FORMAT_CODE,
    DE_OBJECT_TYPE,
    DE_OBJECT_TYPE_ON_DEMAND,
    DE_PATIENT_ID,
    DE_PRACTICE_SETTING_CODE,
    DE_TYPE_CODE,
    DE_UNIQUE_ID,
    DSG_CLASS_CODE,
    DSG_FORMAT_CODE,
    DSG_TYPE_CODE,
    ERR_DOCUMENT_UNIQUE_ID,
    ERR_DUPLICATE_UNIQUE_ID_IN_MESSAGE,
    ERR_METADATA_VERSION,
    ERR_MISSING_DOCUMENT,
    ERR_MISSING_DOCUMENT_METADATA,
    ERR_PATIENT_ID_DOES_NOT_MATCH,
    ERR_REGISTRY,
    ERR_REGISTRY_METADATA,
    ERR_REPOSITORY_METADATA,
    ERR_STORED_QUERY_MISSING_PARAM,
    ERR_STORED_QUERY_PARAM_NUMBER,
    ERR_UNKNOWN_PATIENT_ID,
    ERR_UNKNOWN_REPOSITORY_ID,
    ERR_UNKNOWN_STORED_QUERY,
    FACILITY_TYPE_NAMES,
    FIND_DOCUMENTS,
    FOLDER_CLASSIFICATION_NODE,
    FORMAT_NAMES,
    GET_DOCUMENTS,
    HAS_MEMBER,
    INS_OIDS,
    LCM,
    OID_CLASS,
    OID_CONTENT_TYPE,
    OID_DMP_CONFIDENTIALITY,
    OID_DMP_FORMAT,
    OID_DMP_TYPE,
    OID_FACILITY_TYPE,
    OID_HL7_CONFIDENTIALITY,
    OID_IDNPS,
    OID_IDNST,
    OID_IHE_FORMAT,
    OID_LOINC,
    OID_NON_PS_ROLE,
    OID_PRACTICE_SETTING,
    OID_PROFESSION_SPECIALTY,
    OID_SPECIALTY,
    PRACTICE_SETTING_NAMES,
    QUERY,
    RESPONSE_FAILURE,
    RESPONSE_PARTIAL_SUCCESS,
    RESPONSE_SUCCESS,
    RIM,
    RPLC,
    RS,
    SEVERITY_ERROR,
    SEVERITY_WARNING,
    SIGNS,
    SS_AUTHOR,
    SS_CLASSIFICATION_NODE,
    SS_CONTENT_TYPE_CODE,
    SS_PATIENT_ID,
    SS_SOURCE_ID,
    SS_UNIQUE_ID,
    STATUS_APPROVED,
    STATUS_ARCHIVED,
    STATUS_DELETED,
    STATUS_DEPRECATED,
    STATUS_NAMES,
    STATUS_URNS,
    STORED_QUERIES,
    TYPE_NAMES,
    UPDATE_AVAILABILITY_STATUS,
    XDS_B,
    XFRM,
    XFRM_RPLC,
    XOP,
)
from .writer import (
    render_extrinsic_object,
    render_query_response,
    render_registry_response,
    render_retrieve_response,
)

__all__ = [
    "APND", "Association", "CLASS_NAMES", "CONFIDENTIALITY_NAMES", "CONFIDENTIALITY_SYSTEMS", "DE_AUTHOR",
    "DE_CLASS_CODE", "DE_CONFIDENTIALITY_CODE", "DE_EVENT_CODE", "DE_FACILITY_TYPE_CODE", "DE_FORMAT_CODE",
    "DE_OBJECT_TYPE", "DE_OBJECT_TYPE_ON_DEMAND", "DE_PATIENT_ID", "DE_PRACTICE_SETTING_CODE",
    "DE_TYPE_CODE", "DE_UNIQUE_ID", "DSG_CLASS_CODE", "DSG_FORMAT_CODE", "DSG_TYPE_CODE", "DocumentEntry",
    "ERR_DOCUMENT_UNIQUE_ID", "ERR_DUPLICATE_UNIQUE_ID_IN_MESSAGE", "ERR_METADATA_VERSION",
    "ERR_MISSING_DOCUMENT", "ERR_MISSING_DOCUMENT_METADATA", "ERR_PATIENT_ID_DOES_NOT_MATCH",
    "ERR_REGISTRY", "ERR_REGISTRY_METADATA", "ERR_REPOSITORY_METADATA", "ERR_STORED_QUERY_MISSING_PARAM",
    "ERR_STORED_QUERY_PARAM_NUMBER", "ERR_UNKNOWN_PATIENT_ID", "ERR_UNKNOWN_REPOSITORY_ID",
    "ERR_UNKNOWN_STORED_QUERY", "FACILITY_TYPE_NAMES", "FIND_DOCUMENTS", "FOLDER_CLASSIFICATION_NODE",
    "FORMAT_NAMES", "GET_DOCUMENTS", "HAS_MEMBER", "INS_OIDS", "LCM", "OID_CLASS", "OID_CONTENT_TYPE",
    "OID_DMP_CONFIDENTIALITY", "OID_DMP_FORMAT", "OID_DMP_TYPE", "OID_FACILITY_TYPE",
    "OID_HL7_CONFIDENTIALITY", "OID_IDNPS", "OID_IDNST", "OID_IHE_FORMAT", "OID_LOINC", "OID_NON_PS_ROLE",
    "OID_PRACTICE_SETTING", "OID_PROFESSION_SPECIALTY", "OID_SPECIALTY", "PRACTICE_SETTING_NAMES", "QUERY",
    "RESPONSE_FAILURE", "RESPONSE_PARTIAL_SUCCESS", "RESPONSE_SUCCESS", "RIM", "RPLC", "RS",
    "RegistryError", "RegistryErrors", "SEVERITY_ERROR", "SEVERITY_WARNING", "SIGNS", "SS_AUTHOR",
    "SS_CLASSIFICATION_NODE", "SS_CONTENT_TYPE_CODE", "SS_PATIENT_ID", "SS_SOURCE_ID", "SS_UNIQUE_ID",
    "STATUS_APPROVED", "STATUS_ARCHIVED", "STATUS_DELETED", "STATUS_DEPRECATED", "STATUS_NAMES",
    "STATUS_URNS", "STORED_QUERIES", "StoredQuery", "Submission", "TYPE_NAMES",
    "UPDATE_AVAILABILITY_STATUS", "Update", "XDS_B", "XFRM", "XFRM_RPLC", "XOP", "dtm_to_iso", "iso_to_dtm",
    "matches_like", "parse_provide_and_register", "parse_retrieve", "parse_stored_query",
    "parse_submit_objects", "parse_update", "render_extrinsic_object", "render_query_response",
    "render_registry_response", "render_retrieve_response",
]
