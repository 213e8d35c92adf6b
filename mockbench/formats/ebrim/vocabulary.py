"""ebRIM 3.0 / IHE XDS.b vocabulary as the DMP uses it: namespaces, classification and identification
schemes (IHE ITI TF-3 4.2.5), statuses, association types, IHE error codes (ITI TF-3 table 4.2.4.1-2), code
systems and display names (DOMAIN.md section 1 and the corpus), stored query ids. Constants only."""

from __future__ import annotations

import re
from types import MappingProxyType

# Namespaces -------------------------------------------------------------------------------------------------
RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
RS = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
LCM = "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"
QUERY = "urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0"
XDS_B = "urn:ihe:iti:xds-b:2007"
XOP = "http://www.w3.org/2004/08/xop/include"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"

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


_HASH = re.compile(r"[0-9A-Fa-f]{40}")
_UNIQUE_ID = re.compile(r"\d+(\.\d+)+(\^[^\s^]{1,16})?")
