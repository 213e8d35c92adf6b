"""Writing ebRIM answers: a world document as rim:ExtrinsicObject (TD3.1), rs:RegistryResponse (ITI-41,
ITI-57), query:AdhocQueryResponse (ITI-18) and xdsb:RetrieveDocumentSetResponse (ITI-43)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from types import MappingProxyType
from typing import TYPE_CHECKING, Protocol

from lxml import etree

from ..times import iso_to_dtm
from .model import RegistryError, _q, _status_urn
from .vocabulary import (
    _RESPONSE_STATUSES,
    _XML_LANG,
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
    DE_PATIENT_ID,
    DE_PRACTICE_SETTING_CODE,
    DE_TYPE_CODE,
    DE_UNIQUE_ID,
    DSG_CLASS_CODE,
    DSG_FORMAT_CODE,
    FACILITY_TYPE_NAMES,
    FORMAT_NAMES,
    OID_CLASS,
    OID_DMP_CONFIDENTIALITY,
    OID_DMP_FORMAT,
    OID_FACILITY_TYPE,
    OID_IDNPS,
    OID_IDNST,
    OID_IHE_FORMAT,
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
    RS,
    SEVERITY_ERROR,
    SEVERITY_WARNING,
    TYPE_NAMES,
    XDS_B,
)

if TYPE_CHECKING:
    from lxml.etree import _Element as Element


class Document(Protocol):
    """What the writer reads of a document: the world's `Document` fields (world/model.py), named here so
    that the formats need no world import."""

    @property
    def entry_uuid(self) -> str: ...
    @property
    def unique_id(self) -> str: ...
    @property
    def lid(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def status(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def type_code(self) -> str: ...
    @property
    def type_system(self) -> str: ...
    @property
    def class_code(self) -> str: ...
    @property
    def format_code(self) -> str: ...
    @property
    def practice_setting(self) -> str: ...
    @property
    def facility_type(self) -> str: ...
    @property
    def mime_type(self) -> str: ...
    @property
    def language(self) -> str: ...
    @property
    def author(self) -> str: ...
    @property
    def author_specialty(self) -> str: ...
    @property
    def creation_time(self) -> str: ...
    @property
    def service_start(self) -> str | None: ...
    @property
    def service_stop(self) -> str | None: ...
    @property
    def confidentiality(self) -> list: ...
    @property
    def hash(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def repository_id(self) -> str: ...
    @property
    def extra(self) -> dict: ...


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
