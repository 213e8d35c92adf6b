"""ebRIM 3.0 / IHE XDS.b metadata, shared by the DMP door and the XDM packages: reading requests into plain
dataclasses and writing answers, with no SOAP, MTOM or world calls (the door does those).

- ITI-41 (TD2.1) `parse_provide_and_register`, ITI-57 (TD3.3) `parse_update`, XDM METADATA.XML
  `parse_submit_objects`: validated like a registry; every problem of a request is collected and raised
  together as `RegistryErrors`. What a real DMP plausibly accepts but a strict reader would not (the ANS
  examples' quirks) is accepted and reported in `findings` (`mockbench.world.journal.finding` dicts).
- ITI-18 (TD3.1) `parse_stored_query` -> `StoredQuery.world_filters()` -> keyword arguments of
  `world.dmp.find`; `render_extrinsic_object` + `render_query_response` for the answer.
- ITI-43 (TD3.2) `parse_retrieve`, `render_retrieve_response`.
- `render_registry_response` for ITI-41 and ITI-57.

Shapes follow the ANS/GIE "DMP LPS" example messages (corpus `dmp-wire/`, DOMAIN.md section 1) and the
ANS XDM examples; scheme UUIDs and slot names are IHE ITI TF-3 4.2.5, checked against those files.
`meta` dicts use the world's `Document` field names, except `author` (the author's IDNPS, from authorPerson
XCN.1): the door maps it to a world professional id (`world.directory.professional(idnps).id`).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from lxml import etree

from ..world.clock import parse_time
from ..world.journal import finding

if TYPE_CHECKING:
    from lxml.etree import _Element as Element

    from ..world.model import Document

__all__ = [
    "Association", "DocumentEntry", "RegistryError", "RegistryErrors", "StoredQuery", "Submission", "Update",
    "dtm_to_iso", "iso_to_dtm", "matches_like", "parse_provide_and_register", "parse_retrieve",
    "parse_stored_query", "parse_submit_objects", "parse_update", "render_extrinsic_object",
    "render_query_response", "render_registry_response", "render_retrieve_response",
]

# Namespaces -------------------------------------------------------------------------------------------------
RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
RS = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
LCM = "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"
QUERY = "urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0"
XDS_B = "urn:ihe:iti:xds-b:2007"
XOP = "http://www.w3.org/2004/08/xop/include"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"

# WS-Addressing actions, as the DMP examples carry them. The ITI-57 answer is `UpdateDocumentSet-Response`
# with a hyphen in TD3.3c/d_response.xml.
ACTION_PROVIDE_AND_REGISTER = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"
ACTION_PROVIDE_AND_REGISTER_RESPONSE = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-bResponse"
ACTION_STORED_QUERY = "urn:ihe:iti:2007:RegistryStoredQuery"
ACTION_STORED_QUERY_RESPONSE = "urn:ihe:iti:2007:RegistryStoredQueryResponse"
ACTION_RETRIEVE = "urn:ihe:iti:2007:RetrieveDocumentSet"
ACTION_RETRIEVE_RESPONSE = "urn:ihe:iti:2007:RetrieveDocumentSetResponse"
ACTION_UPDATE = "urn:ihe:iti:2010:UpdateDocumentSet"
ACTION_UPDATE_RESPONSE = "urn:ihe:iti:2010:UpdateDocumentSet-Response"

# XDSDocumentEntry classification and identification schemes (ITI TF-3 4.2.5; all seen in the corpus).
DE_OBJECT_TYPE = "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1"            # stable document entry
DE_OBJECT_TYPE_ON_DEMAND = "urn:uuid:34268e47-fdf5-41a6-ba33-82133c465248"  # not in the corpus
DE_AUTHOR = "urn:uuid:93606bcf-9494-43ec-9b4e-a7748d1a838d"
DE_CLASS_CODE = "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a"
DE_CONFIDENTIALITY_CODE = "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f"
DE_EVENT_CODE = "urn:uuid:2c6b8cb7-8b2a-4051-b291-b1ae6a575ef4"
DE_FORMAT_CODE = "urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d"
DE_FACILITY_TYPE_CODE = "urn:uuid:f33fb8ac-18af-42cc-ae0e-ed0b0bdb91e1"
DE_PRACTICE_SETTING_CODE = "urn:uuid:cccf5598-8b07-4b77-a05e-ae952c785ead"
DE_TYPE_CODE = "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983"
DE_PATIENT_ID = "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427"
DE_UNIQUE_ID = "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab"
# XDSSubmissionSet
SS_CLASSIFICATION_NODE = "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd"
SS_AUTHOR = "urn:uuid:a7058bb9-b4e4-4307-ba5b-e3f0ab85e12d"
SS_CONTENT_TYPE_CODE = "urn:uuid:aa543740-bdda-424e-8c96-df4873be8500"
SS_PATIENT_ID = "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446"
SS_SOURCE_ID = "urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832"
SS_UNIQUE_ID = "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8"
FOLDER_CLASSIFICATION_NODE = "urn:uuid:d9d542f3-6cc4-48b6-8870-ea235fbc94c2"

# Statuses: the DMP adds Archived and Deleted in its own namespace [GI EX_3.1-1030].
STATUS_APPROVED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
STATUS_DEPRECATED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Deprecated"
STATUS_ARCHIVED = "urn:asip:ci-sis:2010:StatusType:Archived"
STATUS_DELETED = "urn:asip:ci-sis:2010:StatusType:Deleted"
STATUS_URNS = MappingProxyType({"approved": STATUS_APPROVED, "deprecated": STATUS_DEPRECATED,
                                "archived": STATUS_ARCHIVED, "deleted": STATUS_DELETED})
STATUS_NAMES = MappingProxyType({urn: name for name, urn in STATUS_URNS.items()})

RESPONSE_SUCCESS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
RESPONSE_FAILURE = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure"
RESPONSE_PARTIAL_SUCCESS = "urn:ihe:iti:2007:ResponseStatusType:PartialSuccess"
_RESPONSE_STATUSES = MappingProxyType({"Success": RESPONSE_SUCCESS, "Failure": RESPONSE_FAILURE,
                                       "PartialSuccess": RESPONSE_PARTIAL_SUCCESS})
SEVERITY_ERROR = "urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Error"
SEVERITY_WARNING = "urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Warning"

HAS_MEMBER = "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember"
RPLC = "urn:ihe:iti:2007:AssociationType:RPLC"
SIGNS = "urn:ihe:iti:2007:AssociationType:signs"                 # IHE DSG; TD2.1 links its XAdES with it
UPDATE_AVAILABILITY_STATUS = "urn:ihe:iti:2010:AssociationType:UpdateAvailabilityStatus"
APND = "urn:ihe:iti:2007:AssociationType:APND"
XFRM = "urn:ihe:iti:2007:AssociationType:XFRM"
XFRM_RPLC = "urn:ihe:iti:2007:AssociationType:XFRM_RPLC"

# IHE error codes (ITI TF-3 table 4.2.4.1-2).
ERR_REGISTRY_METADATA = "XDSRegistryMetadataError"
ERR_REPOSITORY_METADATA = "XDSRepositoryMetadataError"
ERR_MISSING_DOCUMENT = "XDSMissingDocument"                    # an entry without its document
ERR_MISSING_DOCUMENT_METADATA = "XDSMissingDocumentMetadata"   # a document without its entry
ERR_PATIENT_ID_DOES_NOT_MATCH = "XDSPatientIdDoesNotMatch"
ERR_UNKNOWN_PATIENT_ID = "XDSUnknownPatientId"
ERR_DOCUMENT_UNIQUE_ID = "XDSDocumentUniqueIdError"
ERR_DUPLICATE_UNIQUE_ID_IN_MESSAGE = "XDSRegistryDuplicateUniqueIdInMessage"
ERR_REGISTRY = "XDSRegistryError"
ERR_STORED_QUERY_PARAM_NUMBER = "XDSStoredQueryParamNumber"
ERR_STORED_QUERY_MISSING_PARAM = "XDSStoredQueryMissingParam"
ERR_UNKNOWN_STORED_QUERY = "XDSUnknownStoredQuery"
ERR_UNKNOWN_REPOSITORY_ID = "XDSUnknownRepositoryId"
ERR_METADATA_VERSION = "XDSMetadataVersionError"

# Code systems (DOMAIN.md section 1 and the corpus).
OID_CLASS = "1.2.250.1.213.1.1.4.1"
OID_PRACTICE_SETTING = "1.2.250.1.213.1.1.4.9"
OID_FACILITY_TYPE = "1.2.250.1.71.4.2.4"
OID_LOINC = "2.16.840.1.113883.6.1"
OID_DMP_TYPE = "1.2.250.1.213.1.1.4.12"           # DMP types (SYNTH, CERT_DECL, PROT_ALD...) [TD3.1, XDM]
OID_HL7_CONFIDENTIALITY = "2.16.840.1.113883.5.25"
OID_DMP_CONFIDENTIALITY = "1.2.250.1.213.1.1.4.13"
OID_CONTENT_TYPE = "1.2.250.1.213.2.2"             # TD2.1; the XDM examples use the facility types instead
OID_IDNPS = "1.2.250.1.71.4.2.1"
OID_IDNST = "1.2.250.1.71.4.2.2"
OID_PROFESSION_SPECIALTY = "1.2.250.1.213.1.1.4.5"  # G15_10/SM26 (authorSpecialty in every example)
OID_NON_PS_ROLE = "1.2.250.1.213.1.1.4.6"           # ALIM_AM, DISPOSITIF, AUTOMATE
OID_SPECIALTY = "1.2.250.1.71.4.2.5"                 # SM26 alone (the VIHF role)
OID_IHE_FORMAT = "1.3.6.1.4.1.19376.1.2.3"
OID_DMP_FORMAT = "1.2.250.1.213.1.1.4.2.282"
INS_OIDS = ("1.2.250.1.213.1.4.8", "1.2.250.1.213.1.4.9", "1.2.250.1.213.1.4.10", "1.2.250.1.213.1.4.11",
            "1.2.250.1.213.1.4.2")

CONFIDENTIALITY_SYSTEMS = MappingProxyType({
    "N": OID_HL7_CONFIDENTIALITY, "MASQUE_PS": OID_DMP_CONFIDENTIALITY,
    "INVISIBLE_PATIENT": OID_DMP_CONFIDENTIALITY, "INVISIBLE_REPRESENTANTS_LEGAUX": OID_DMP_CONFIDENTIALITY,
})
# DSG signature entry (TD2.1 `Signature01`): its class, type and format codes are IHE's, not the DMP's.
DSG_FORMAT_CODE = "http://www.w3.org/2000/09/xmldsig#"
DSG_CLASS_CODE = "urn:oid:1.3.6.1.4.1.19376.1.2.1.1.1"
DSG_TYPE_CODE = "E1762"

# Display names for rendering a world document fed without them (the corpus's wording).
CLASS_NAMES = MappingProxyType({
    "10": "Compte rendu", "11": "Synthèse", "31": "Imagerie médicale", "42": "Prescription",
    "43": "Dispensation", "44": "Plan de soins, protocole de soins", "52": "Certificat, déclaration",
    "60": "Données de remboursement", DSG_CLASS_CODE: "Digital Signature",
})
PRACTICE_SETTING_NAMES = MappingProxyType({
    "AMBULATOIRE": "Ambulatoire", "AMO": "Organisme d'assurance maladie obligatoire",
    "DEPISTAGE": "Dépistage",
    "ESSMS": "Etablissement ou Service Social ou Médico-Social", "ETABLISSEMENT": "Etablissement de santé",
    "HAD": "Hospitalisation à domicile", "MAD": "Maintien à domicile", "PALLIATIF": "Soins palliatifs",
    "SAD": "Soins à domicile", "SAMU_SMUR": "SAMU/SMUR",
})
FACILITY_TYPE_NAMES = MappingProxyType({
    "SA01": "Etablissement public de santé", "SA02": "Hôpital militaire du Service de santé des armées",
    "SA04": "Etablissement privé non PSPH", "SA07": "Cabinet individuel", "SA08": "Cabinet de groupe",
    "SA17": "Etablissement pour personnes âgées", "SA25": "Laboratoire de biologie médicale",
    "SA29": "Laboratoire d'analyses et de biologie médicale", "SA33": "Pharmacie d'officine",
})
TYPE_NAMES = MappingProxyType({
    "11488-4": "CR ou fiche de consultation ou de visite", "11490-0":
    "Lettre de liaison à la sortie d'un établissement de soins", "11502-2": "CR d'examens biologiques",
    "18748-4": "CR d'imagerie médicale", "27899-4": "CR d'acte diagnostique (autre)",
    "34133-9": "Synthèse d'épisode de soins", "60591-5": "Synthèse médicale", "SYNTH": "Synthèse",
    "CERT_DECL": "Certificat, déclaration", DSG_TYPE_CODE: "Full Document",
})
FORMAT_NAMES = MappingProxyType({
    "urn:ihe:iti:xds-sd:text:2008": "Document à corps non structuré en texte brut",
    "urn:ihe:iti:xds-sd:pdf:2008": "Document à corps non structuré en Pdf/A-1",
    "urn:ihe:lab:xd-lab:2008": "Compte rendu structuré d'examens de biologie médicale",
    DSG_FORMAT_CODE: "Default Signature Style",
})
CONFIDENTIALITY_NAMES = MappingProxyType({
    "N": "Normal", "MASQUE_PS": "Masqué aux professionnels de santé",
    "INVISIBLE_PATIENT": "Non visible par le patient",
    "INVISIBLE_REPRESENTANTS_LEGAUX": "Non visible par les représentants légaux",  # INF: not in the corpus
})

# Stored queries (ITI TF-2a 3.18.4.1.2.3.7); only FindDocuments' id is in the corpus (TD3.1).
STORED_QUERIES = MappingProxyType({
    "urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d": "FindDocuments",
    "urn:uuid:f26abbcb-ac74-4422-8a30-edb644bbc1a9": "FindSubmissionSets",
    "urn:uuid:958f3006-baad-4929-a4de-ff1114824431": "FindFolders",
    "urn:uuid:10b545ea-725c-446d-9b95-8aeb444eddf3": "GetAll",
    "urn:uuid:5c4f972b-d56b-40ac-a5fc-c8ca9b40b9d4": "GetDocuments",
    "urn:uuid:5737b14c-8a1a-4539-b659-e03a34a5e1e4": "GetFolders",
    "urn:uuid:a7ae438b-4bc2-4642-93e9-be891f7bb155": "GetAssociations",
    "urn:uuid:bab9529a-4a10-40b3-a01f-f68a615d247a": "GetDocumentsAndAssociations",
    "urn:uuid:51224314-5390-4169-9b91-b1980040715a": "GetSubmissionSets",
    "urn:uuid:e8e3cb2c-e39c-46b9-99e4-c12f57260b83": "GetSubmissionSetAndContents",
    "urn:uuid:b909a503-523d-4517-8acf-8e5834dfc4c7": "GetFolderAndContents",
    "urn:uuid:10cae35a-c7f9-4cf5-b61e-fc3278ffb578": "GetFoldersForDocument",
    "urn:uuid:d90e5407-b356-4d91-a89f-873917b4b0e6": "GetRelatedDocuments",
    "urn:uuid:12941a89-e02e-4be5-967c-ce4bfc8fe492": "FindDocumentsByReferenceId",
})
FIND_DOCUMENTS = "urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d"
GET_DOCUMENTS = "urn:uuid:5c4f972b-d56b-40ac-a5fc-c8ca9b40b9d4"

# FindDocuments parameter -> world.dmp.find keyword.
_CODE_PARAMS = MappingProxyType({
    "$XDSDocumentEntryClassCode": "class_code", "$XDSDocumentEntryTypeCode": "type_code",
    "$XDSDocumentEntryPracticeSettingCode": "practice_setting",
    "$XDSDocumentEntryHealthcareFacilityTypeCode": "facility_type",
    "$XDSDocumentEntryFormatCode": "format_code",
    "$XDSDocumentEntryConfidentialityCode": "confidentiality",
})
_TIME_PARAMS = MappingProxyType({
    "$XDSDocumentEntryCreationTimeFrom": "creation_time_from",
    "$XDSDocumentEntryCreationTimeTo": "creation_time_to",
    "$XDSDocumentEntryServiceStartTimeFrom": "service_start_from",
    "$XDSDocumentEntryServiceStartTimeTo": "service_start_to",
    "$XDSDocumentEntryServiceStopTimeFrom": "service_stop_from",
    "$XDSDocumentEntryServiceStopTimeTo": "service_stop_to",
})
_SINGLE_PARAMS = frozenset({"$XDSDocumentEntryPatientId", *_TIME_PARAMS})
_AND_PARAMS = frozenset({"$XDSDocumentEntryConfidentialityCode", "$XDSDocumentEntryEventCodeList"})

# Slots read into meta; the others go to meta["extra"] under their own name.
_SINGLE_SLOTS = ("creationTime", "languageCode", "sourcePatientId", "serviceStartTime", "serviceStopTime",
                 "hash", "size", "repositoryUniqueId", "legalAuthenticator")
_CODED = (("class_code", DE_CLASS_CODE, "classCode"), ("type_code", DE_TYPE_CODE, "typeCode"),
          ("format_code", DE_FORMAT_CODE, "formatCode"),
          ("facility_type", DE_FACILITY_TYPE_CODE, "healthcareFacilityTypeCode"),
          ("practice_setting", DE_PRACTICE_SETTING_CODE, "practiceSettingCode"))
_SCHEME_NAMES = MappingProxyType({
    DE_AUTHOR: "author", DE_CLASS_CODE: "classCode", DE_CONFIDENTIALITY_CODE: "confidentialityCode",
    DE_EVENT_CODE: "eventCodeList", DE_FORMAT_CODE: "formatCode", DE_FACILITY_TYPE_CODE:
    "healthcareFacilityTypeCode", DE_PRACTICE_SETTING_CODE: "practiceSettingCode", DE_TYPE_CODE: "typeCode",
    DE_PATIENT_ID: "XDSDocumentEntry.patientId", DE_UNIQUE_ID: "XDSDocumentEntry.uniqueId",
})

_DTM = re.compile(r"(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.\d{1,4})?([+-]\d{4})?")
_HASH = re.compile(r"[0-9A-Fa-f]{40}")
_UNIQUE_ID = re.compile(r"\d+(\.\d+)+(\^[^\s^]{1,16})?")


# Errors -----------------------------------------------------------------------------------------------------
class RegistryError(Exception):
    """One rs:RegistryError. `code_context` is the text shown to the sender (the message unless given)."""

    def __init__(self, error_code: str, message: str, *, location: str = "", severity: str = SEVERITY_ERROR,
                 code_context: str = "") -> None:
        super().__init__(message)
        self.error_code = error_code
        self.message = message
        self.location = location
        self.severity = severity
        self.code_context = code_context or message

    @property
    def is_error(self) -> bool:
        return self.severity != SEVERITY_WARNING

    def __repr__(self) -> str:
        return f"RegistryError({self.error_code!r}, {self.message!r}, location={self.location!r})"


class RegistryErrors(Exception):
    """Every problem found in one request. `findings` holds what was accepted with a remark meanwhile."""

    def __init__(self, errors: Iterable[RegistryError], *, findings: Iterable[dict] = ()) -> None:
        self.errors = list(errors)
        self.findings = list(findings)
        super().__init__("; ".join(f"{e.error_code}: {e.message}" for e in self.errors))

    @property
    def codes(self) -> list[str]:
        return [e.error_code for e in self.errors]


# Dataclasses ------------------------------------------------------------------------------------------------
@dataclass
class DocumentEntry:
    """One XDSDocumentEntry. `meta` uses the world Document's field names (see the module docstring);
    `meta["extra"]` keeps what the world has no field for, ready to be stored in Document.extra:
    sourcePatientId (str), sourcePatientInfo (list), legalAuthenticator (str), description (str),
    authors (list of {slot name: values}), eventCodeList (list of {code, scheme, name}), codingSchemes and
    displayNames ({meta field: value}), and every other slot under its own name (list of values)."""

    symbolic_id: str
    unique_id: str
    patient_id: str
    patient_ins: str
    patient_oid: str
    meta: dict
    lid: str | None = None
    version_info: str | None = None
    availability_status: str | None = None
    document_ref: str | None = None   # the xdsb:Document id holding its bytes (ITI-41)

    @property
    def author_structure_idnst(self) -> str:
        """The first author's first authorInstitution IDNST (XON.10), for the door to map to a structure."""
        for author in self.meta.get("extra", {}).get("authors", []):
            for value in author.get("authorInstitution", []):
                parts = value.split("^")
                if len(parts) > 9 and parts[9]:
                    return parts[9]
        return ""


@dataclass
class Association:
    type: str
    source: str
    target: str
    slots: dict = field(default_factory=dict)
    id: str = ""


@dataclass
class Submission:
    submission_set: dict
    documents: list[DocumentEntry]
    associations: list[Association]
    document_elements: dict = field(default_factory=dict)   # xdsb:Document id -> Element (ITI-41)
    findings: list = field(default_factory=list)

    def entry(self, symbolic_id: str) -> DocumentEntry | None:
        return next((d for d in self.documents if d.symbolic_id == symbolic_id), None)

    def document_element(self, entry: DocumentEntry) -> Element | None:
        return self.document_elements.get(entry.document_ref or "")

    def replacements(self) -> list[tuple[str, str]]:
        """(new entry's symbolic id, replaced entry's entryUUID) per RPLC association. The door checks that
        the target exists, is current and belongs to the same patient."""
        return [(a.source, a.target) for a in self.associations if a.type == RPLC]

    def signatures(self) -> list[str]:
        """Symbolic ids of the entries that are XAdES/DSG signatures: sources of a `signs` association, or
        with the DSG formatCode. TD2.1 sends one (`Signature01`, signing the submission set); its
        confidentiality (N + MASQUE_PS + INVISIBLE_PATIENT) is refused by world.dmp.submit
        (CONFIDENTIALITY_CONFLICT) while the patient's cumul parameter is false."""
        sources = {a.source for a in self.associations if a.type == SIGNS}
        return [d.symbolic_id for d in self.documents
                if d.symbolic_id in sources or d.meta.get("format_code") == DSG_FORMAT_CODE]


@dataclass
class Update:
    """ITI-57. `status_changes`: (target entryUUID, OriginalStatus URN, NewStatus URN);
    `metadata_updates`: (new version's entry, PreviousVersion) with `entry.lid` the document's lid."""

    status_changes: list[tuple[str, str, str]]
    metadata_updates: list[tuple[DocumentEntry, str]]
    submission_set: dict = field(default_factory=dict)
    findings: list = field(default_factory=list)


@dataclass
class StoredQuery:
    query_id: str
    kind: str                        # FindDocuments | GetDocuments | another stored query's name
    return_type: str                 # LeafClass | ObjectRef
    params: dict[str, list[str]]     # slot name -> values, ('a','b') lists flattened
    unsupported: dict[str, list[str]] = field(default_factory=dict)  # FindDocuments params world.find lacks
    and_groups: dict[str, list[list[str]]] = field(default_factory=dict)  # repeated slots (AND of ORs)
    home_community_id: str = ""
    findings: list = field(default_factory=list)

    @property
    def patient_id(self) -> str:
        return (self.params.get("$XDSDocumentEntryPatientId") or [""])[0]

    @property
    def patient_ins(self) -> str:
        """The INS of $XDSDocumentEntryPatientId (CX.1); compare it with the VIHF's resource-id patient."""
        cx = _parse_cx(self.patient_id)
        return cx[0] if cx else ""

    @property
    def patient_oid(self) -> str:
        cx = _parse_cx(self.patient_id)
        return cx[1] if cx else ""

    @property
    def unique_ids(self) -> list[str]:
        return list(self.params.get("$XDSDocumentEntryUniqueId", []))

    @property
    def entry_uuids(self) -> list[str]:
        return list(self.params.get("$XDSDocumentEntryEntryUUID", []))

    def world_filters(self, *, professional_id: Callable[[str], str | None] | None = None) -> dict:
        """FindDocuments -> keyword arguments of `world.dmp.find` after its patient (statuses, code lists as
        bare codes, *_from/*_to as ISO 8601): `dmp.find(tx, actor, query.patient_ins, **query.world_filters())`.
        `author` holds IDNPS values unless `professional_id` maps them to world ids (an unknown one is kept,
        so it matches nothing). Parameters the world cannot
        filter on (event codes, wildcards in AuthorPerson, AND-ed slots, $XDSDocumentEntryType...) are in
        `self.unsupported` for the door to apply or report.
        GetDocuments / GetDocumentsAndAssociations -> {"unique_ids": [...]} or {"entry_uuids": [...]}."""
        if self.kind in ("GetDocuments", "GetDocumentsAndAssociations"):
            return {"unique_ids": self.unique_ids} if self.unique_ids else {"entry_uuids": self.entry_uuids}
        if self.kind != "FindDocuments":
            raise ValueError(f"{self.kind} has no world filters")
        out: dict[str, Any] = {
            "statuses": [STATUS_NAMES[s] for s in self.params.get("$XDSDocumentEntryStatus", [])]}
        for param, key in _CODE_PARAMS.items():
            if param in self.params and param not in self.unsupported:
                out[key] = [_bare_code(v) for v in self.params[param]]
        authors = self.params.get("$XDSDocumentEntryAuthorPerson")
        if authors and "$XDSDocumentEntryAuthorPerson" not in self.unsupported:
            ids = [v.split("^")[0] for v in authors]
            out["author"] = [(professional_id(i) or i) if professional_id else i for i in ids]
        for param, key in _TIME_PARAMS.items():
            if param in self.params:
                out[key] = dtm_to_iso(self.params[param][0])
        return out


# Small helpers ----------------------------------------------------------------------------------------------
def _q(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


def _children(el: Element, ns: str, name: str) -> list[Element]:
    return el.findall(_q(ns, name))


def _localized(el: Element, name: str) -> str | None:
    ls = el.find(f"{{{RIM}}}{name}/{{{RIM}}}LocalizedString")
    return None if ls is None else ls.get("value", "")


def _bare_code(value: str) -> str:
    """'10^^1.2.250.1.213.1.1.4.1', '10^^^&1.2...&ISO' or '10' -> '10'."""
    return value.split("^")[0].strip()


def _parse_cx(value: str) -> tuple[str, str] | None:
    """'207058575627097^^^&1.2.250.1.213.1.4.10&ISO^NH' -> (id, assigning authority OID)."""
    parts = (value or "").strip().split("^")
    if len(parts) < 4 or not parts[0]:
        return None
    sub = parts[3].split("&")
    if len(sub) < 2 or not sub[1]:
        return None
    return parts[0], sub[1]


def dtm_to_iso(value: str) -> str:
    """HL7 DTM (YYYY[MM[DD[HH[MM[SS]]]]], UTC in XDS; an offset is honoured) -> 'YYYY-MM-DDTHH:MM:SSZ'.
    A truncated value gives its earliest instant. Raises ValueError."""
    m = _DTM.fullmatch((value or "").strip())
    if not m:
        raise ValueError(f"{value!r} is not an HL7 DTM (YYYYMMDDHHMMSS)")
    year, month, day, hour, minute, second, offset = m.groups()
    dt = datetime(int(year), int(month or 1), int(day or 1), int(hour or 0), int(minute or 0),
                  int(second or 0), tzinfo=UTC)
    if offset:
        sign = 1 if offset[0] == "+" else -1
        delta = timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5]))
        dt = dt.replace(tzinfo=timezone(sign * delta)).astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_to_dtm(value: str) -> str:
    """ISO 8601 (naive = UTC) -> HL7 DTM YYYYMMDDHHMMSS in UTC."""
    return parse_time(value).astimezone(UTC).strftime("%Y%m%d%H%M%S")


def matches_like(pattern: str, value: str) -> bool:
    """Stored-query wildcards ('%' any run, '_' one character), as in $XDSDocumentEntryAuthorPerson."""
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, flags=re.DOTALL) is not None


def _query_values(text: str) -> list[str]:
    """"('a','b')" -> ['a', 'b']; "'a'" -> ['a']; "20040101" -> ['20040101']. '' inside quotes is a quote."""
    s = (text or "").strip()
    if s.startswith("(") and s.endswith(")"):
        s = s[1:-1]
    items, current, quoted, i = [], [], False, 0
    while i < len(s):
        c = s[i]
        if c == "'":
            if quoted and i + 1 < len(s) and s[i + 1] == "'":
                current.append("'")
                i += 1
            else:
                quoted = not quoted
        elif c == "," and not quoted:
            items.append("".join(current).strip())
            current = []
        else:
            current.append(c)
        i += 1
    items.append("".join(current).strip())
    return [v for v in items if v]


def _status_urn(status: str) -> str:
    return STATUS_URNS.get(status, status)


# Reading ----------------------------------------------------------------------------------------------------
@dataclass
class _Coded:
    scheme: str
    node: str
    code: str
    system: str
    name: str | None
    slots: dict


class _Reader:
    """One request's reading: errors and findings live here, never at module level."""

    def __init__(self) -> None:
        self.errors: list[RegistryError] = []
        self.findings: list[dict] = []

    def error(self, message: str, location: str = "", code: str = ERR_REGISTRY_METADATA) -> None:
        self.errors.append(RegistryError(code, message, location=location))

    def note(self, rule: str, message: str, severity: str = "warning", *, fr: str) -> None:
        f = finding(rule, message, severity, fr=fr)
        if f not in self.findings:
            self.findings.append(f)

    def fail_if_errors(self) -> None:
        if self.errors:
            raise RegistryErrors(self.errors, findings=self.findings)

    # Slots, classifications, external identifiers ---------------------------------------------------------
    def slots(self, el: Element, where: str) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for slot in _children(el, RIM, "Slot"):
            name = slot.get("name", "")
            values = [(v.text or "").strip() for v in slot.iter(_q(RIM, "Value"))]
            if not name:
                self.error(f"{where}: a Slot has no name", where)
            elif name in out:
                self.error(f"{where}: slot {name} appears twice", where)
            else:
                out[name] = values
        return out

    def single(self, slots: dict, name: str, where: str, *, required: bool = False) -> str | None:
        values = [v for v in slots.pop(name, []) if v]
        if not values:
            if required:
                self.error(f"{where}: the {name} slot is missing or empty", where)
            return None
        if len(values) > 1:
            self.error(f"{where}: the {name} slot has {len(values)} values, it takes one", where)
        return values[0]

    def time(self, value: str | None, name: str, where: str) -> str | None:
        if value is None:
            return None
        try:
            iso = dtm_to_iso(value)
        except ValueError:
            self.error(f"{where}: {name} {value!r} is not an HL7 DTM (YYYYMMDDHHMMSS)", where)
            return None
        if "+" in value or "-" in value:
            self.note("DMP/XDS-DTM", f"{where}: {name} {value} carries a UTC offset; XDS times are UTC",
                      fr=f"{where} : {name} {value} porte un décalage horaire ; les dates XDS sont en UTC")
        return iso

    def classifications(self, el: Element, obj_id: str, top: dict, where: str) -> list[_Coded]:
        out, foreign = [], set()
        for c in _children(el, RIM, "Classification"):
            target = c.get("classifiedObject")
            if target and target != obj_id:
                foreign.add(target)
            out.append(c)
        if foreign:
            self.note("DMP/XDS-CLASSIFIED-OBJECT", f"{where}: classifications nested in it name another "
                      f"classifiedObject ({', '.join(sorted(foreign))}); read as its own",
                      fr=f"{where} : des classifications imbriquées nomment un autre classifiedObject ({', '.join(sorted(foreign))}) ; lues comme les siennes")
        out.extend(top.get(obj_id, []))
        coded = []
        for c in out:
            slots = self.slots(c, where)
            system = slots.pop("codingScheme", [])
            coded.append(_Coded(c.get("classificationScheme", ""), c.get("classificationNode", ""),
                                c.get("nodeRepresentation", ""), system[0] if system else "",
                                _localized(c, "Name"), slots))
        return coded

    def identifiers(self, el: Element, obj_id: str, top: dict, where: str) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        nested = _children(el, RIM, "ExternalIdentifier")
        foreign = {t for ei in nested if (t := ei.get("registryObject")) and t != obj_id}
        for ei in [*nested, *top.get(obj_id, [])]:
            out.setdefault(ei.get("identificationScheme", ""), []).append(ei.get("value", "").strip())
        if foreign:
            self.note("DMP/XDS-REGISTRY-OBJECT", f"{where}: external identifiers nested in it name another "
                      f"registryObject ({', '.join(sorted(foreign))}); read as its own",
                      fr=f"{where} : des identifiants externes imbriqués nomment un autre registryObject ({', '.join(sorted(foreign))}) ; lus comme les siens")
        return out

    def one_identifier(self, ids: dict, scheme: str, name: str, where: str) -> str:
        values = ids.get(scheme, [])
        if not values or not values[0]:
            self.error(f"{where}: no {name} external identifier", where)
            return ""
        if len(values) > 1:
            self.error(f"{where}: {len(values)} {name} external identifiers, one expected", where)
        return values[0]

    def patient(self, value: str, name: str, where: str) -> tuple[str, str]:
        cx = _parse_cx(value)
        if value and cx is None:
            self.error(f"{where}: {name} {value!r} is not a CX with an assigning authority "
                       "(id^^^&OID&ISO)", where)
        if cx and cx[1] not in INS_OIDS:
            self.note("DMP/XDS-PATIENT-ID", f"{where}: {name} is not an INS (assigning authority {cx[1]})",
                      fr=f"{where} : {name} n'est pas une INS (autorité d'affectation {cx[1]})")
        return cx or ("", "")

    @staticmethod
    def authors(coded: list[_Coded], scheme: str) -> list[dict]:
        return [{k: [v for v in vals if v] for k, vals in c.slots.items()}
                for c in coded if c.scheme == scheme]

    # The submission set ------------------------------------------------------------------------------------
    def submission_set(self, pkg: Element, top_cls: dict, top_eis: dict) -> dict:
        sid = pkg.get("id", "")
        where = sid or "RegistryPackage"
        slots = self.slots(pkg, where)
        coded = self.classifications(pkg, sid, top_cls, where)
        ids = self.identifiers(pkg, sid, top_eis, where)
        submission_time = self.time(self.single(slots, "submissionTime", where, required=True),
                                    "submissionTime", where)
        patient_id = self.one_identifier(ids, SS_PATIENT_ID, "XDSSubmissionSet.patientId", where)
        ins, oid = self.patient(patient_id, "XDSSubmissionSet.patientId", where)
        authors = self.authors(coded, SS_AUTHOR)
        content = [c for c in coded if c.scheme == SS_CONTENT_TYPE_CODE]
        out = {
            "id": sid,
            "uniqueId": self.one_identifier(ids, SS_UNIQUE_ID, "XDSSubmissionSet.uniqueId", where),
            "sourceId": self.one_identifier(ids, SS_SOURCE_ID, "XDSSubmissionSet.sourceId", where),
            "patient_id": patient_id, "patient_ins": ins, "patient_oid": oid,
            "submission_time": submission_time,
            "content_type": "", "content_type_scheme": "", "content_type_name": "",
            "author": _xcn_id(authors), "authors": authors,
            "title": _localized(pkg, "Name") or "", "comments": _localized(pkg, "Description") or "",
            "availability_status": pkg.get("status"),
            "extra": slots,
        }
        if not content or not content[0].code:
            self.error(f"{where}: no contentTypeCode classification", where)
        else:
            c = content[0]
            out.update(content_type=c.code, content_type_scheme=c.system, content_type_name=c.name or "")
            if c.system not in (OID_CONTENT_TYPE, OID_FACILITY_TYPE):
                self.error(f"{where}: contentTypeCode {c.code} has codingScheme {c.system!r}, not "
                           f"{OID_CONTENT_TYPE} or {OID_FACILITY_TYPE}", where)
            if c.system == OID_FACILITY_TYPE:
                self.note("DMP/XDS-CONTENT-TYPE", f"{where}: contentTypeCode {c.code} is a facility type "
                          f"({OID_FACILITY_TYPE}), as in the ANS XDM examples; TD2.1 uses {OID_CONTENT_TYPE}",
                          "info",
                          fr=f"{where} : le contentTypeCode {c.code} est un type d'établissement ({OID_FACILITY_TYPE}), comme dans les exemples XDM de l'ANS ; la TD2.1 utilise {OID_CONTENT_TYPE}")
        if not authors:
            self.note("DMP/XDS-AUTHOR", f"{where}: the submission set has no author",
                      fr=f"{where} : le lot de soumission n'a pas d'auteur")
        return out

    # Document entries ---------------------------------------------------------------------------------------
    def entry(self, eo: Element, top_cls: dict, top_eis: dict) -> tuple[DocumentEntry, list[_Coded]]:
        sid = eo.get("id", "")
        where = sid or "ExtrinsicObject"
        object_type = eo.get("objectType")
        if object_type == DE_OBJECT_TYPE_ON_DEMAND:
            self.error(f"{where}: on-demand document entries are not accepted by the DMP", where)
        elif object_type != DE_OBJECT_TYPE:
            self.error(f"{where}: objectType {object_type!r} is not the stable document entry type "
                       f"{DE_OBJECT_TYPE}", where)
        if not eo.get("mimeType"):
            self.error(f"{where}: no mimeType", where)
        status = eo.get("status")
        if status and status not in STATUS_NAMES:
            self.note("DMP/XDS-STATUS", f"{where}: unknown availability status {status}",
                      fr=f"{where} : statut de disponibilité inconnu {status}")
        slots = self.slots(eo, where)
        coded = self.classifications(eo, sid, top_cls, where)
        ids = self.identifiers(eo, sid, top_eis, where)
        unique_id = self.one_identifier(ids, DE_UNIQUE_ID, "XDSDocumentEntry.uniqueId", where)
        if unique_id and not _UNIQUE_ID.fullmatch(unique_id):
            self.error(f"{where}: XDSDocumentEntry.uniqueId {unique_id!r} is not an OID (or OID^extension)",
                       where)
        patient_id = self.one_identifier(ids, DE_PATIENT_ID, "XDSDocumentEntry.patientId", where)
        ins, oid = self.patient(patient_id, "XDSDocumentEntry.patientId", where)

        meta: dict[str, Any] = {"unique_id": unique_id, "mime_type": eo.get("mimeType", "")}
        extra: dict[str, Any] = {}
        single = {name: self.single(slots, name, where, required=name in ("creationTime", "languageCode",
                                                                            "sourcePatientId"))
                  for name in _SINGLE_SLOTS}
        for key, name in (("creation_time", "creationTime"), ("service_start", "serviceStartTime"),
                          ("service_stop", "serviceStopTime")):
            iso = self.time(single[name], name, where)
            if iso:
                meta[key] = iso
        if single["languageCode"]:
            meta["language"] = single["languageCode"]
        if single["hash"]:
            if _HASH.fullmatch(single["hash"]):
                meta["hash"] = single["hash"].upper()
            else:
                self.error(f"{where}: hash {single['hash']!r} is not a SHA-1 in hexadecimal", where)
        if single["size"]:
            if single["size"].isdigit():
                meta["size"] = int(single["size"])
            else:
                self.error(f"{where}: size {single['size']!r} is not a number of bytes", where)
        if single["repositoryUniqueId"]:
            meta["repository_id"] = single["repositoryUniqueId"]
        for name in ("sourcePatientId", "legalAuthenticator"):
            if single[name]:
                extra[name] = single[name]
        if slots.get("sourcePatientInfo"):
            extra["sourcePatientInfo"] = slots.pop("sourcePatientInfo")
        title = _localized(eo, "Name")
        if title:
            meta["title"] = title
        description = _localized(eo, "Description")
        if description:
            extra["description"] = description

        schemes, names = {}, {}
        for key, scheme, name in _CODED:
            found = [c for c in coded if c.scheme == scheme]
            if not found:
                self.error(f"{where}: no {name} classification", where)
                continue
            if len(found) > 1:
                self.error(f"{where}: {len(found)} {name} classifications, one expected", where)
            c = found[0]
            if not c.code or not c.system:
                self.error(f"{where}: {name} needs a nodeRepresentation and a codingScheme slot", where)
            meta[key] = c.code
            schemes[key] = c.system
            if c.name:
                names[key] = c.name
        if "type_code" in schemes:
            meta["type_system"] = schemes.pop("type_code")
        confidentiality = [c for c in coded if c.scheme == DE_CONFIDENTIALITY_CODE]
        if not confidentiality:
            self.error(f"{where}: no confidentialityCode classification", where)
        meta["confidentiality"] = list(dict.fromkeys(c.code for c in confidentiality))
        authors = self.authors(coded, DE_AUTHOR)
        if authors:
            extra["authors"] = authors
            idnps = _xcn_id(authors)
            if idnps:
                meta["author"] = idnps
            else:
                self.note("DMP/XDS-AUTHOR", f"{where}: the author has no identifier (authorPerson XCN.1)",
                          fr=f"{where} : l'auteur n'a pas d'identifiant (authorPerson XCN.1)")
            specialty = next((v for a in authors for v in a.get("authorSpecialty", [])), "")
            if specialty:
                meta["author_specialty"] = _bare_code(specialty)
        else:
            self.note("DMP/XDS-AUTHOR", f"{where}: the document entry has no author",
                      fr=f"{where} : la fiche du document n'a pas d'auteur")
        events = [c for c in coded if c.scheme == DE_EVENT_CODE]
        if events:
            extra["eventCodeList"] = [{"code": c.code, "scheme": c.system, "name": c.name or ""}
                                      for c in events]
        known = {DE_AUTHOR, DE_CONFIDENTIALITY_CODE, DE_EVENT_CODE, *(s for _, s, _ in _CODED)}
        for c in coded:
            if c.scheme not in known:
                self.note("DMP/XDS-CLASSIFICATION", f"{where}: classification {c.scheme or c.node} ignored",
                          fr=f"{where} : classification {c.scheme or c.node} ignorée")
        extra["codingSchemes"] = schemes
        extra["displayNames"] = names
        extra.update(slots)
        meta["extra"] = extra
        version = eo.find(_q(RIM, "VersionInfo"))
        entry = DocumentEntry(symbolic_id=sid, unique_id=unique_id, patient_id=patient_id, patient_ins=ins,
                              patient_oid=oid, meta=meta, lid=eo.get("lid"),
                              version_info=None if version is None else version.get("versionName"),
                              availability_status=status)
        if not sid:
            self.error("an ExtrinsicObject has no id", where)
        return entry, coded

    def check_codes(self, entry: DocumentEntry, coded: list[_Coded], signature: bool) -> None:
        where = entry.symbolic_id
        wanted = {DE_PRACTICE_SETTING_CODE: (OID_PRACTICE_SETTING,),
                  DE_FACILITY_TYPE_CODE: (OID_FACILITY_TYPE,)}
        if not signature:
            wanted.update({DE_CLASS_CODE: (OID_CLASS,), DE_TYPE_CODE: (OID_LOINC, OID_DMP_TYPE)})
        for c in coded:
            if c.scheme in wanted and c.system and c.system not in wanted[c.scheme]:
                self.error(f"{where}: {_SCHEME_NAMES[c.scheme]} {c.code} has codingScheme {c.system}, not "
                           f"{' or '.join(wanted[c.scheme])}", where)
            if c.scheme == DE_CONFIDENTIALITY_CODE and CONFIDENTIALITY_SYSTEMS.get(c.code) != c.system:
                self.error(f"{where}: confidentialityCode {c.code} ({c.system}) is not a DMP confidentiality "
                           f"code (N {OID_HL7_CONFIDENTIALITY}; MASQUE_PS, INVISIBLE_PATIENT, "
                           f"INVISIBLE_REPRESENTANTS_LEGAUX {OID_DMP_CONFIDENTIALITY})", where)

    # The request -------------------------------------------------------------------------------------------
    def submit_objects(self, req: Element) -> Submission:
        if not isinstance(req.tag, str) or req.tag != _q(LCM, "SubmitObjectsRequest"):
            self.error(f"expected lcm:SubmitObjectsRequest, got {req.tag}")
            self.fail_if_errors()
        rol = req.find(_q(RIM, "RegistryObjectList"))
        if rol is None:
            self.error("the SubmitObjectsRequest has no RegistryObjectList")
            self.fail_if_errors()
        packages, eos, assoc_els, refs = [], [], [], set()
        top_cls: dict[str, list] = {}
        top_eis: dict[str, list] = {}
        seen: set[str] = set()
        for child in rol:
            if not isinstance(child.tag, str):
                continue
            name = etree.QName(child).localname if child.tag.startswith(f"{{{RIM}}}") else child.tag
            oid = child.get("id", "")
            if oid and oid in seen and name != "ObjectRef":
                self.error(f"two objects have the id {oid}", oid)
            seen.add(oid)
            if name == "RegistryPackage":
                packages.append(child)
            elif name == "ExtrinsicObject":
                eos.append(child)
            elif name == "Association":
                assoc_els.append(child)
            elif name == "Classification":
                top_cls.setdefault(child.get("classifiedObject", ""), []).append(child)
            elif name == "ExternalIdentifier":
                top_eis.setdefault(child.get("registryObject", ""), []).append(child)
            elif name == "ObjectRef":
                refs.add(oid)
            else:
                self.note("DMP/XDS-OBJECT", f"{name} in the RegistryObjectList ignored",
                          fr=f"{name} dans la RegistryObjectList ignoré")

        sets = []
        for pkg in packages:
            pid = pkg.get("id", "")
            nodes = {c.get("classificationNode") for c in [*_children(pkg, RIM, "Classification"),
                                                             *top_cls.get(pid, [])]}
            if SS_CLASSIFICATION_NODE in nodes:
                sets.append(pkg)
            elif FOLDER_CLASSIFICATION_NODE in nodes:
                self.error(f"{pid}: folders are not accepted by the DMP", pid)
            else:
                self.error(f"{pid}: a RegistryPackage that is neither a submission set nor a folder", pid)
        submission_set: dict = {}
        if len(sets) != 1:
            self.error(f"{len(sets)} submission sets (RegistryPackage classified {SS_CLASSIFICATION_NODE}); "
                       "one expected")
        if sets:
            submission_set = self.submission_set(sets[0], top_cls, top_eis)

        entries, coded_by_id = [], {}
        for eo in eos:
            entry, coded = self.entry(eo, top_cls, top_eis)
            if submission_set.get("content_type"):
                entry.meta["content_type"] = submission_set["content_type"]
            entries.append(entry)
            coded_by_id[entry.symbolic_id] = coded

        associations = [self.association(a) for a in assoc_els]
        self.check_associations(associations, submission_set.get("id", ""), entries, refs)
        signing = {a.source for a in associations if a.type == SIGNS}
        for entry in entries:
            signature = entry.symbolic_id in signing or entry.meta.get("format_code") == DSG_FORMAT_CODE
            self.check_codes(entry, coded_by_id[entry.symbolic_id], signature)
        self.check_patients(submission_set, entries)
        unique_ids: dict[str, str] = {}
        for entry in entries:
            if entry.unique_id and entry.unique_id in unique_ids:
                self.error(f"{entry.symbolic_id} and {unique_ids[entry.unique_id]} share the uniqueId "
                           f"{entry.unique_id}", entry.symbolic_id, ERR_DUPLICATE_UNIQUE_ID_IN_MESSAGE)
            unique_ids.setdefault(entry.unique_id, entry.symbolic_id)
        return Submission(submission_set=submission_set, documents=entries, associations=associations,
                          findings=self.findings)

    def association(self, el: Element) -> Association:
        assoc = Association(type=el.get("associationType", ""), source=el.get("sourceObject", ""),
                            target=el.get("targetObject", ""), id=el.get("id", ""))
        where = assoc.id or "Association"
        assoc.slots = self.slots(el, where)
        for attr in ("associationType", "sourceObject", "targetObject"):
            if not el.get(attr):
                self.error(f"{where}: the association has no {attr}", where)
        return assoc

    def check_associations(self, associations: list[Association], ss_id: str, entries: list[DocumentEntry],
                           refs: set[str]) -> None:
        entry_ids = {e.symbolic_id for e in entries}
        local = entry_ids | {ss_id} | {a.id for a in associations if a.id} | refs
        members, replaced = set(), {}
        for a in associations:
            where = a.id or f"{a.type} {a.source} -> {a.target}"
            for end in (a.source, a.target):
                if end and end not in local and not end.startswith("urn:uuid:"):
                    self.error(f"{where}: {end} is neither in the submission nor an entryUUID (urn:uuid:...)",
                               where)
            if a.type == HAS_MEMBER:
                if a.source != ss_id:
                    self.error(f"{where}: HasMember must come from the submission set {ss_id}", where)
                if a.target in entry_ids:
                    members.add(a.target)
                    if (a.slots.get("SubmissionSetStatus") or [""])[0] != "Original":
                        self.note("DMP/XDS-HAS-MEMBER", f"{where}: SubmissionSetStatus should be Original",
                                  fr=f"{where} : SubmissionSetStatus devrait valoir Original")
            elif a.type == RPLC:
                if a.source not in entry_ids:
                    self.error(f"{where}: the source of an RPLC must be a document entry of the submission",
                               where)
                if a.target in local or not a.target.startswith("urn:uuid:"):
                    self.error(f"{where}: the target of an RPLC must be the entryUUID (urn:uuid:...) of the "
                               f"replaced document, not {a.target!r}", where)
                if a.source in replaced:
                    self.error(f"{where}: {a.source} replaces two documents", where)
                replaced[a.source] = a.target
            elif a.type == SIGNS:
                if a.source not in entry_ids:
                    self.error(f"{where}: the source of a signs association must be a document entry", where)
            elif a.type == UPDATE_AVAILABILITY_STATUS:
                if a.source != ss_id:
                    self.error(f"{where}: UpdateAvailabilityStatus must come from the submission set", where)
                for slot in ("OriginalStatus", "NewStatus"):
                    value = (a.slots.get(slot) or [""])[0]
                    if value not in STATUS_NAMES:
                        self.error(f"{where}: {slot} {value!r} is not a DMP status "
                                   f"({', '.join(STATUS_NAMES)})", where)
            elif a.type in (APND, XFRM, XFRM_RPLC):
                self.error(f"{where}: {a.type} is not accepted by the DMP (it replaces with RPLC only)",
                           where)
            else:
                self.error(f"{where}: unknown association type {a.type!r}", where)
        for entry in entries:
            if entry.symbolic_id not in members:
                self.error(f"{entry.symbolic_id}: no HasMember association links it to the submission set",
                           entry.symbolic_id)

    def check_patients(self, submission_set: dict, entries: list[DocumentEntry]) -> None:
        ss_patient = (submission_set.get("patient_ins"), submission_set.get("patient_oid"))
        if not submission_set or not ss_patient[0]:
            return
        for entry in entries:
            if entry.patient_ins and (entry.patient_ins, entry.patient_oid) != ss_patient:
                self.error(f"{entry.symbolic_id}: XDSDocumentEntry.patientId {entry.patient_id} is not the "
                           f"submission set's {submission_set['patient_id']}", entry.symbolic_id,
                           ERR_PATIENT_ID_DOES_NOT_MATCH)


def _xcn_id(authors: list[dict]) -> str:
    for author in authors:
        for value in author.get("authorPerson", []):
            ident = value.split("^")[0].strip()
            if ident:
                return ident
    return ""


# Public parsers ---------------------------------------------------------------------------------------------
def parse_submit_objects(req: Element) -> Submission:
    """lcm:SubmitObjectsRequest (XDM METADATA.XML, ITI-57's body, ITI-41's metadata). No document bytes are
    looked for. Raises RegistryErrors with every problem found."""
    reader = _Reader()
    submission = reader.submit_objects(req)
    reader.fail_if_errors()
    return submission


def parse_provide_and_register(body: Element) -> Submission:
    """xdsb:ProvideAndRegisterDocumentSetRequest (ITI-41, TD2.1). Besides the metadata checks, each entry
    must have its xdsb:Document and each xdsb:Document its entry (ids compared exactly, then ignoring case
    with a finding: TD2.1 pairs ExtrinsicObject `DocumentME2` with Document `documentME2`)."""
    reader = _Reader()
    if not isinstance(body.tag, str) or body.tag != _q(XDS_B, "ProvideAndRegisterDocumentSetRequest"):
        reader.error(f"expected xdsb:ProvideAndRegisterDocumentSetRequest, got {body.tag}", "",
                     ERR_REPOSITORY_METADATA)
        reader.fail_if_errors()
    req = body.find(_q(LCM, "SubmitObjectsRequest"))
    if req is None:
        reader.error("the request has no lcm:SubmitObjectsRequest", "", ERR_REPOSITORY_METADATA)
        reader.fail_if_errors()
    submission = reader.submit_objects(req)
    documents: dict[str, Element] = {}
    for doc in _children(body, XDS_B, "Document"):
        did = doc.get("id", "")
        if not did:
            reader.error("an xdsb:Document has no id", "", ERR_REPOSITORY_METADATA)
        elif did in documents:
            reader.error(f"two xdsb:Document elements have the id {did}", did, ERR_REPOSITORY_METADATA)
        else:
            documents[did] = doc
    unused = dict(documents)
    for entry in submission.documents:
        if entry.symbolic_id in unused:
            entry.document_ref = entry.symbolic_id
        else:
            folded = [d for d in unused if d.casefold() == entry.symbolic_id.casefold()]
            if len(folded) == 1:
                entry.document_ref = folded[0]
                reader.note("DMP/XDS-DOCUMENT-ID", f"xdsb:Document {folded[0]} matches ExtrinsicObject "
                            f"{entry.symbolic_id} only when case is ignored",
                            fr=f"le xdsb:Document {folded[0]} ne correspond à l'ExtrinsicObject {entry.symbolic_id} qu'en ignorant la casse")
            else:
                reader.error(f"{entry.symbolic_id}: no xdsb:Document carries this entry's content",
                             entry.symbolic_id, ERR_MISSING_DOCUMENT)
                continue
        unused.pop(entry.document_ref)
    for did in unused:
        reader.error(f"xdsb:Document {did} has no ExtrinsicObject", did, ERR_MISSING_DOCUMENT_METADATA)
    if not submission.documents and not reader.errors:
        reader.error("the submission carries no document entry", "", ERR_REGISTRY_METADATA)
    for a in submission.associations:
        if a.type == UPDATE_AVAILABILITY_STATUS:
            reader.error(f"{a.id}: UpdateAvailabilityStatus belongs to ITI-57, not ITI-41", a.id)
    submission.document_elements = documents
    submission.findings = reader.findings
    reader.fail_if_errors()
    return submission


def parse_update(body: Element) -> Update:
    """lcm:SubmitObjectsRequest of ITI-57 (TD3.3a-d): UpdateAvailabilityStatus associations and new metadata
    versions (an ExtrinsicObject with the document's lid, linked by a HasMember carrying
    SubmissionSetStatus=Original and PreviousVersion). Whether the target exists, is the current version
    and belongs to the patient is the door's check (XDSMetadataVersionError, XDSDocumentUniqueIdError)."""
    reader = _Reader()
    submission = reader.submit_objects(body)
    changes = [(a.target, (a.slots.get("OriginalStatus") or [""])[0], (a.slots.get("NewStatus") or [""])[0])
               for a in submission.associations if a.type == UPDATE_AVAILABILITY_STATUS]
    previous = {}
    for a in submission.associations:
        if a.type == HAS_MEMBER and "PreviousVersion" in a.slots:
            previous[a.target] = (a.slots["PreviousVersion"] or [""])[0]
        if a.type == RPLC:
            reader.error(f"{a.id}: RPLC belongs to ITI-41, not ITI-57", a.id)
    updates = []
    for entry in submission.documents:
        where = entry.symbolic_id
        version = previous.get(where)
        if not version:
            reader.error(f"{where}: a new metadata version needs a HasMember association with the "
                         "PreviousVersion slot", where)
            continue
        if not version.isdigit():
            reader.error(f"{where}: PreviousVersion {version!r} is not a version number", where)
        if not entry.lid or not entry.lid.startswith("urn:uuid:") or entry.lid == entry.symbolic_id:
            reader.error(f"{where}: a new metadata version must carry the document's lid (urn:uuid:...)",
                         where)
        updates.append((entry, version))
    if not changes and not updates and not reader.errors:
        reader.error("the update carries neither an UpdateAvailabilityStatus association nor a new metadata "
                     "version")
    reader.fail_if_errors()
    return Update(status_changes=changes, metadata_updates=updates, submission_set=submission.submission_set,
                  findings=reader.findings)


def parse_stored_query(body: Element) -> StoredQuery:
    """query:AdhocQueryRequest (ITI-18, TD3.1). Checks the query id and, for FindDocuments and
    GetDocuments, the required parameters, their number of values, statuses and times."""
    reader = _Reader()
    if not isinstance(body.tag, str) or body.tag != _q(QUERY, "AdhocQueryRequest"):
        reader.error(f"expected query:AdhocQueryRequest, got {body.tag}", "", ERR_REGISTRY)
        reader.fail_if_errors()
    option = body.find(_q(QUERY, "ResponseOption"))
    return_type = option.get("returnType", "") if option is not None else ""
    if return_type not in ("LeafClass", "ObjectRef"):
        reader.error(f"ResponseOption returnType {return_type!r} is neither LeafClass nor ObjectRef",
                     "ResponseOption", ERR_REGISTRY)
    query = body.find(_q(RIM, "AdhocQuery"))
    if query is None:
        reader.error("the request has no rim:AdhocQuery", "", ERR_REGISTRY)
        reader.fail_if_errors()
    query_id = query.get("id", "")
    kind = STORED_QUERIES.get(query_id)
    if kind is None:
        reader.error(f"unknown stored query {query_id!r}", query_id, ERR_UNKNOWN_STORED_QUERY)
        reader.fail_if_errors()
    params: dict[str, list[str]] = {}
    groups: dict[str, list[list[str]]] = {}
    for slot in _children(query, RIM, "Slot"):
        name = slot.get("name", "")
        values = [v for el in slot.iter(_q(RIM, "Value")) for v in _query_values(el.text or "")]
        params.setdefault(name, []).extend(values)
        groups.setdefault(name, []).append(values)
    and_groups = {k: v for k, v in groups.items() if len(v) > 1}
    sq = StoredQuery(query_id=query_id, kind=kind, return_type=return_type, params=params,
                     home_community_id=query.get("home", ""), findings=reader.findings)
    if kind == "FindDocuments":
        _check_find_documents(reader, sq, and_groups)
    elif kind in ("GetDocuments", "GetDocumentsAndAssociations"):
        given = [p for p in ("$XDSDocumentEntryEntryUUID", "$XDSDocumentEntryUniqueId") if params.get(p)]
        if not given:
            reader.error(f"{kind} needs $XDSDocumentEntryEntryUUID or $XDSDocumentEntryUniqueId",
                         "$XDSDocumentEntryUniqueId", ERR_STORED_QUERY_MISSING_PARAM)
        elif len(given) > 1:
            reader.error(f"{kind} takes $XDSDocumentEntryEntryUUID or $XDSDocumentEntryUniqueId, not both",
                         given[1], ERR_STORED_QUERY_PARAM_NUMBER)
    reader.fail_if_errors()
    return sq


def _check_find_documents(reader: _Reader, sq: StoredQuery, and_groups: dict) -> None:
    params = sq.params
    for name in ("$XDSDocumentEntryPatientId", "$XDSDocumentEntryStatus"):
        if not params.get(name):
            reader.error(f"FindDocuments needs {name}", name, ERR_STORED_QUERY_MISSING_PARAM)
    for name in _SINGLE_PARAMS:
        if len(params.get(name, [])) > 1:
            reader.error(f"{name} takes one value, got {len(params[name])}", name,
                         ERR_STORED_QUERY_PARAM_NUMBER)
    patient = (params.get("$XDSDocumentEntryPatientId") or [""])[0]   # a Slot may hold no Value
    if patient and _parse_cx(patient) is None:
        reader.error(f"$XDSDocumentEntryPatientId {patient!r} is not a CX (id^^^&OID&ISO)",
                     "$XDSDocumentEntryPatientId", ERR_REGISTRY)
    for status in params.get("$XDSDocumentEntryStatus", []):
        if status not in STATUS_NAMES:
            reader.error(f"$XDSDocumentEntryStatus {status!r} is not a DMP status "
                         f"({', '.join(STATUS_NAMES)})",
                         "$XDSDocumentEntryStatus", ERR_REGISTRY)
    for name in _TIME_PARAMS:
        for value in params.get(name, []):
            try:
                dtm_to_iso(value)
            except ValueError:
                reader.error(f"{name} {value!r} is not an HL7 DTM (YYYYMMDDHHMMSS)", name, ERR_REGISTRY)
    mapped = {"$XDSDocumentEntryPatientId", "$XDSDocumentEntryStatus", "$XDSDocumentEntryAuthorPerson",
              *_CODE_PARAMS, *_TIME_PARAMS}
    for name, values in params.items():
        if name not in mapped or name in and_groups:
            sq.unsupported[name] = values
            if name in and_groups:
                sq.and_groups[name] = and_groups[name]
    authors = params.get("$XDSDocumentEntryAuthorPerson", [])
    if any("%" in v or "_" in v for v in authors):
        sq.unsupported["$XDSDocumentEntryAuthorPerson"] = authors
    if DE_OBJECT_TYPE in sq.unsupported.get("$XDSDocumentEntryType", []):
        del sq.unsupported["$XDSDocumentEntryType"]    # the world holds stable entries only: no filter needed


def parse_retrieve(body: Element) -> list[tuple[str, str, str]]:
    """xdsb:RetrieveDocumentSetRequest (ITI-43, TD3.2) -> [(repository unique id, document unique id,
    home community id or '')]. Whether each id is known (and not an entryUUID, which the DMP answers with
    XDSDocumentUniqueIdError) is the door's, per document, so that it can answer PartialSuccess."""
    reader = _Reader()
    if not isinstance(body.tag, str) or body.tag != _q(XDS_B, "RetrieveDocumentSetRequest"):
        reader.error(f"expected xdsb:RetrieveDocumentSetRequest, got {body.tag}", "", ERR_REPOSITORY_METADATA)
        reader.fail_if_errors()
    out = []
    requests = _children(body, XDS_B, "DocumentRequest")
    if not requests:
        reader.error("the request has no DocumentRequest", "", ERR_REPOSITORY_METADATA)
    for i, req in enumerate(requests, 1):
        values = {}
        for name in ("HomeCommunityId", "RepositoryUniqueId", "DocumentUniqueId"):
            el = req.find(_q(XDS_B, name))
            values[name] = (el.text or "").strip() if el is not None else ""
        if not values["RepositoryUniqueId"]:
            reader.error(f"DocumentRequest {i} has no RepositoryUniqueId", f"DocumentRequest[{i}]",
                         ERR_REPOSITORY_METADATA)
        if not values["DocumentUniqueId"]:
            reader.error(f"DocumentRequest {i} has no DocumentUniqueId", f"DocumentRequest[{i}]",
                         ERR_DOCUMENT_UNIQUE_ID)
        out.append((values["RepositoryUniqueId"], values["DocumentUniqueId"], values["HomeCommunityId"]))
    reader.fail_if_errors()
    return out


# Rendering --------------------------------------------------------------------------------------------------
def _sub(parent: Element, ns: str, name: str, attrib: dict | None = None, text: str | None = None) -> Element:
    el = etree.SubElement(parent, _q(ns, name), attrib or {})
    if text is not None:
        el.text = text
    return el


def _slot(parent: Element, name: str, values: Iterable[str]) -> None:
    slot = _sub(parent, RIM, "Slot", {"name": name})
    value_list = _sub(slot, RIM, "ValueList")
    for value in values:
        _sub(value_list, RIM, "Value", text=value)


def _localized_string(parent: Element, name: str, value: str) -> None:
    holder = _sub(parent, RIM, name)
    _sub(holder, RIM, "LocalizedString", {"charset": "UTF8", "value": value, _XML_LANG: "FR"})


def _stable_id(*parts: str) -> str:
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, '/'.join(parts))}"


def _format_system(code: str) -> str:
    if code.startswith(("urn:ihe:iti:xds-sd:", "urn:ihe:iti-fr:xds-sd:")):
        return OID_IHE_FORMAT
    return "URN" if code == DSG_FORMAT_CODE else OID_DMP_FORMAT


def _specialty_system(code: str) -> str:
    if code.startswith("G15_"):
        return OID_PROFESSION_SPECIALTY
    return OID_SPECIALTY if re.fullmatch(r"[A-Z]{1,3}\d{2}", code) else OID_NON_PS_ROLE


def _default_system(key: str, code: str, doc: Document) -> str:
    if key == "class_code":
        return "URN" if code == DSG_CLASS_CODE else OID_CLASS
    if key == "type_code":
        return doc.type_system
    if key == "format_code":
        return _format_system(code)
    return OID_FACILITY_TYPE if key == "facility_type" else OID_PRACTICE_SETTING


_DEFAULT_NAMES = MappingProxyType({"class_code": CLASS_NAMES, "type_code": TYPE_NAMES,
                                   "format_code": FORMAT_NAMES, "facility_type": FACILITY_TYPE_NAMES,
                                   "practice_setting": PRACTICE_SETTING_NAMES})


def _classification(eo: Element, scheme: str, entry_uuid: str, code: str, system: str | None,
                    name: str | None, slots: Iterable[tuple[str, list[str]]] = ()) -> None:
    c = _sub(eo, RIM, "Classification", {
        "classificationScheme": scheme, "classifiedObject": entry_uuid,
        "id": _stable_id(entry_uuid, scheme, code, str(len(eo))), "nodeRepresentation": code})
    for slot_name, values in slots:
        _slot(c, slot_name, values)
    if system is not None:
        _slot(c, "codingScheme", [system])
    if name is not None:
        _localized_string(c, "Name", name)


def _external_identifier(eo: Element, scheme: str, entry_uuid: str, value: str, name: str) -> None:
    ei = _sub(eo, RIM, "ExternalIdentifier", {"id": _stable_id(entry_uuid, scheme),
                                              "identificationScheme": scheme, "registryObject": entry_uuid,
                                              "value": value})
    _localized_string(ei, "Name", name)


def render_extrinsic_object(doc: Document, patient_cx: str, *, author_idnps: str = "",
                            author_structure_name: str = "", object_ref: bool = False,
                            author_family: str = "", author_given: str = "",
                            author_structure_idnst: str = "") -> Element:
    """A world Document as the DMP's TD3.1 answer shows it (rim:ExtrinsicObject, or rim:ObjectRef when
    `object_ref`): slots in alphabetical order, Name, Description, VersionInfo, classifications (author,
    class, confidentiality, event codes, format, facility, practice, type), then the patientId and uniqueId
    identifiers. What the world does not hold (legalAuthenticator, sourcePatientInfo, the authors as sent,
    coding schemes and display names) comes from `doc.extra` as the parsers store it; failing that, the
    author is built from `author_idnps` (or `doc.author`) and the names given, and display names from the
    corpus's tables. The hash is written in lower case, as the DMP's TD3.1 answer does."""
    entry_uuid = doc.entry_uuid
    if object_ref:
        return etree.Element(_q(RIM, "ObjectRef"), {"id": entry_uuid}, nsmap={"rim": RIM})
    extra = doc.extra or {}
    eo = etree.Element(_q(RIM, "ExtrinsicObject"), nsmap={"rim": RIM})
    for key, value in (("id", entry_uuid), ("isOpaque", "false"), ("lid", doc.lid or entry_uuid),
                       ("mimeType", doc.mime_type), ("objectType", DE_OBJECT_TYPE),
                       ("status", _status_urn(doc.status))):
        eo.set(key, value)
    slots: dict[str, list[str]] = {}
    if doc.creation_time:
        slots["creationTime"] = [iso_to_dtm(doc.creation_time)]
    if doc.hash:
        slots["hash"] = [doc.hash.lower()]
    slots["languageCode"] = [doc.language]
    if extra.get("legalAuthenticator"):
        slots["legalAuthenticator"] = [extra["legalAuthenticator"]]
    slots["repositoryUniqueId"] = [doc.repository_id]
    if doc.service_start:
        slots["serviceStartTime"] = [iso_to_dtm(doc.service_start)]
    if doc.service_stop:
        slots["serviceStopTime"] = [iso_to_dtm(doc.service_stop)]
    slots["size"] = [str(doc.size)]
    slots["sourcePatientId"] = [extra.get("sourcePatientId") or patient_cx]
    if extra.get("sourcePatientInfo"):
        slots["sourcePatientInfo"] = list(extra["sourcePatientInfo"])
    for name in sorted(slots):
        _slot(eo, name, slots[name])
    if doc.title:
        _localized_string(eo, "Name", doc.title)
    if extra.get("description"):
        _localized_string(eo, "Description", extra["description"])
    _sub(eo, RIM, "VersionInfo", {"versionName": str(doc.version)})

    for author in _render_authors(doc, extra, author_idnps, author_structure_name, author_structure_idnst,
                                  author_family, author_given):
        _classification(eo, DE_AUTHOR, entry_uuid, "", None, None, sorted(author.items()))
    schemes, names = extra.get("codingSchemes") or {}, extra.get("displayNames") or {}

    def coded(key: str, scheme: str) -> None:
        code = getattr(doc, key)
        if code:
            _classification(eo, scheme, entry_uuid, code, schemes.get(key) or _default_system(key, code, doc),
                            names.get(key) or _DEFAULT_NAMES[key].get(code, code))

    coded("class_code", DE_CLASS_CODE)
    for code in doc.confidentiality or ["N"]:
        _classification(eo, DE_CONFIDENTIALITY_CODE, entry_uuid, code, CONFIDENTIALITY_SYSTEMS.get(code,
                        OID_DMP_CONFIDENTIALITY), CONFIDENTIALITY_NAMES.get(code, code))
    for event in extra.get("eventCodeList") or []:
        _classification(eo, DE_EVENT_CODE, entry_uuid, event.get("code", ""), event.get("scheme", ""),
                        event.get("name") or event.get("code", ""))
    coded("format_code", DE_FORMAT_CODE)
    coded("facility_type", DE_FACILITY_TYPE_CODE)
    coded("practice_setting", DE_PRACTICE_SETTING_CODE)
    coded("type_code", DE_TYPE_CODE)
    _external_identifier(eo, DE_PATIENT_ID, entry_uuid, patient_cx, "XDSDocumentEntry.patientId")
    _external_identifier(eo, DE_UNIQUE_ID, entry_uuid, doc.unique_id, "XDSDocumentEntry.uniqueId")
    return eo


def _render_authors(doc: Document, extra: dict, idnps: str, structure_name: str, structure_idnst: str,
                    family: str, given: str) -> list[dict[str, list[str]]]:
    if extra.get("authors"):
        return [{k: list(v) for k, v in a.items() if v} for a in extra["authors"]]
    ident = idnps or doc.author
    if not ident:
        return []
    author = {"authorPerson": [f"{ident}^{family}^{given}^^^^^^&{OID_IDNPS}&ISO^D^^^IDNPS"]}
    if structure_idnst:
        author["authorInstitution"] = [f"{structure_name}^^^^^&{OID_IDNST}&ISO^IDNST^^^{structure_idnst}"]
    elif structure_name:
        author["authorInstitution"] = [structure_name]
    if doc.author_specialty:
        code = doc.author_specialty
        author["authorSpecialty"] = [f"{code}^^{_specialty_system(code)}"]
    return [author]


def _error_list(parent: Element, errors: list[tuple[RegistryError, str]]) -> None:
    """rs:RegistryErrorList from (error, severity) pairs; nothing when there are none."""
    if not errors:
        return
    severities = [severity for _, severity in errors]
    highest = SEVERITY_ERROR if SEVERITY_ERROR in severities else severities[0]
    error_list = _sub(parent, RS, "RegistryErrorList", {"highestSeverity": highest})
    for e, severity in errors:
        attrib = {"codeContext": e.code_context, "errorCode": e.error_code, "severity": severity}
        if e.location:
            attrib["location"] = e.location
        _sub(error_list, RS, "RegistryError", attrib)


def _has_error(errors: Iterable[RegistryError]) -> bool:
    return any(e.is_error for e in errors)


def render_registry_response(errors: Iterable[RegistryError] = (), *,
                             warnings: Iterable[RegistryError] = ()) -> Element:
    """rs:RegistryResponse (ITI-41, ITI-57): Success, or Failure with one rs:RegistryError per problem.
    `warnings` are written with the Warning severity and leave the status Success."""
    errors, warnings = list(errors), list(warnings)
    status = RESPONSE_FAILURE if _has_error(errors) else RESPONSE_SUCCESS
    root = etree.Element(_q(RS, "RegistryResponse"), {"status": status}, nsmap={"rs": RS})
    _error_list(root, [(e, e.severity) for e in errors] + [(w, SEVERITY_WARNING) for w in warnings])
    return root


def render_query_response(objects: Iterable[Element], *, status: str = "Success",
                          errors: Iterable[RegistryError] = ()) -> Element:
    """query:AdhocQueryResponse with its rim:RegistryObjectList (always present, maybe empty). With errors:
    PartialSuccess when objects are returned too, Failure otherwise."""
    objects, errors = list(objects), list(errors)
    status = _RESPONSE_STATUSES.get(status, status)
    if _has_error(errors):
        status = RESPONSE_PARTIAL_SUCCESS if objects else RESPONSE_FAILURE
    root = etree.Element(_q(QUERY, "AdhocQueryResponse"), nsmap={"query": QUERY, "rs": RS, "rim": RIM})
    root.set("startIndex", "0")
    root.set("status", status)
    root.set("totalResultCount", str(len(objects)))
    _error_list(root, [(e, e.severity) for e in errors])
    object_list = _sub(root, RIM, "RegistryObjectList")
    for obj in objects:
        object_list.append(obj)
    etree.cleanup_namespaces(root)
    return root


def render_retrieve_response(found: Iterable[tuple[str, str, str]],
                             errors: Iterable[RegistryError] = ()) -> Element:
    """xdsb:RetrieveDocumentSetResponse: rs:RegistryResponse (Success, PartialSuccess or Failure, with its
    errors), then one xdsb:DocumentResponse per (repository id, unique id, mime type) in `found`, each with
    an empty xdsb:Document: the door puts the bytes in it (an xop:Include under MTOM, as TD3.2 does, or
    base64 text)."""
    found, errors = list(found), list(errors)
    if _has_error(errors):
        status = RESPONSE_PARTIAL_SUCCESS if found else RESPONSE_FAILURE
    else:
        status = RESPONSE_SUCCESS
    root = etree.Element(_q(XDS_B, "RetrieveDocumentSetResponse"), nsmap={"xdsb": XDS_B, "rs": RS})
    response = _sub(root, RS, "RegistryResponse", {"status": status})
    _error_list(response, [(e, e.severity) for e in errors])
    for repository_id, unique_id, mime_type in found:
        doc = _sub(root, XDS_B, "DocumentResponse")
        _sub(doc, XDS_B, "RepositoryUniqueId", text=repository_id)
        _sub(doc, XDS_B, "DocumentUniqueId", text=unique_id)
        _sub(doc, XDS_B, "mimeType", text=mime_type)
        _sub(doc, XDS_B, "Document")
    return root
