"""A minimal CDA R2 document for seeded DMP documents and the vendor builder (testing/messages.py `cda`): a
header that names the patient by INS, the author and the type and gives every XDS metadatum the PFI derives
from a header, and a non-structured narrative body. Enough for a DPI to retrieve, hash and display it.

Also `read_cda_header`: the reader of a CDA R2 header that the doors (PFI, MSSanté XDM, DMP) share."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from lxml import etree

from mockbench.formats.xml import XmlError, escape, parse_xml, quoteattr


def minimal_cda(*, unique_id: str, ins: str, ins_oid: str, type_code: str, title: str, author_idnps: str,
                author_family: str, author_given: str, patient_family: str, patient_given: str, birth_date: str,
                sex: str, effective_time: str, text: str, set_id: str | None = None, version: int = 1,
                custodian_idnst: str = "", custodian_name: str = "", facility_type: str = "SA01",
                practice_setting: str = "ETABLISSEMENT", service_start: str | None = None,
                service_stop: str | None = None, language: str = "fr-FR") -> bytes:
    """A CDA R2 (CI-SIS header, non-structured text body) whose header gives every XDS metadatum the PFI
    derives from it (trans-cda-r2/mapping.md, "Mapping XDS", Fiche): code (typeCode, classCode through
    ASS_X04), languageCode, recordTarget/patientRole/id (sourcePatientId), legalAuthenticator (the author),
    documentationOf/serviceEvent (serviceStartTime/StopTime from `service_start`/`service_stop`, the
    effectiveTime by default; practiceSettingCode, a JDV_J04 code, 1.2.250.1.213.1.1.4.9) and
    componentOf/encompassingEncounter (healthcareFacilityTypeCode, a JDV_J02 code, 1.2.250.1.71.4.2.4).
    Times are ISO 8601 (UTC) or HL7 digits."""
    # The whole OID is the id's root: the XDS uniqueId of a CDA with no extension is its root.
    doc_id = f"<id root={quoteattr(unique_id)}/>"
    custodian = (f'<custodian><assignedCustodian><representedCustodianOrganization><id root="1.2.250.1.71.4.2.2" '
                 f"extension={quoteattr(custodian_idnst)}/><name>{escape(custodian_name)}</name>"
                 "</representedCustodianOrganization></assignedCustodian></custodian>") if custodian_idnst else ""
    gender = {"M": "M", "F": "F"}.get(sex, "UN")
    when = _ts(effective_time)
    start, stop = _ts(service_start or effective_time), _ts(service_stop or service_start or effective_time)
    person = f"<name><given>{escape(author_given)}</given><family>{escape(author_family)}</family></name>"
    author_id = f'<id root="1.2.250.1.71.4.2.1" extension={quoteattr(author_idnps)}/>'
    xml = f"""<?xml version="1.0" encoding="UTF-8"?>
<ClinicalDocument xmlns="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <realmCode code="FR"/>
  <typeId root="2.16.840.1.113883.1.3" extension="POCD_HD000040"/>
  <templateId root="2.16.840.1.113883.2.8.2.1"/>
  <templateId root="1.2.250.1.213.1.1.1.1"/>
  <templateId root="1.3.6.1.4.1.19376.1.2.20"/>
  {doc_id}
  <code code={quoteattr(type_code)} codeSystem="2.16.840.1.113883.6.1" displayName={quoteattr(title)}/>
  <title>{escape(title)}</title>
  <effectiveTime value="{when}+0000"/>
  <confidentialityCode code="N" codeSystem="2.16.840.1.113883.5.25"/>
  <languageCode code={quoteattr(language)}/>
  <setId root={quoteattr(set_id or unique_id)}/>
  <versionNumber value="{version}"/>
  <recordTarget><patientRole>
    <id root={quoteattr(ins_oid)} extension={quoteattr(ins)}/>
    <patient>
      <name><given>{escape(patient_given)}</given><family qualifier="BR">{escape(patient_family)}</family></name>
      <administrativeGenderCode code="{gender}" codeSystem="2.16.840.1.113883.5.1"/>
      <birthTime value="{birth_date.replace('-', '')}"/>
    </patient>
  </patientRole></recordTarget>
  <author><time value="{when}+0000"/><assignedAuthor>
    {author_id}
    <assignedPerson>{person}</assignedPerson>
  </assignedAuthor></author>
  {custodian}
  <legalAuthenticator><time value="{when}+0000"/><signatureCode code="S"/><assignedEntity>
    {author_id}
    <assignedPerson>{person}</assignedPerson>
  </assignedEntity></legalAuthenticator>
  <documentationOf><serviceEvent>
    <effectiveTime><low value="{start}+0000"/><high value="{stop}+0000"/></effectiveTime>
    <performer typeCode="PRF"><assignedEntity>
      {author_id}
      <representedOrganization>
        <standardIndustryClassCode code={quoteattr(practice_setting)} codeSystem="1.2.250.1.213.1.1.4.9"/>
      </representedOrganization>
    </assignedEntity></performer>
  </serviceEvent></documentationOf>
  <componentOf><encompassingEncounter>
    <effectiveTime><low value="{start}+0000"/></effectiveTime>
    <location><healthCareFacility>
      <code code={quoteattr(facility_type)} codeSystem="1.2.250.1.71.4.2.4"/>
    </healthCareFacility></location>
  </encompassingEncounter></componentOf>
  <component><nonXMLBody><text mediaType="text/plain">{escape(text)}</text></nonXMLBody></component>
</ClinicalDocument>
"""
    return xml.encode("utf-8")


def _ts(value: str) -> str:
    """An HL7 TS (digits) from an ISO 8601 time ("2026-11-20T10:00:00Z") or from digits."""
    return value.replace("-", "").replace(":", "").replace("T", "").replace("Z", "")[:14]


# --- Reading a CDA R2 header -------------------------------------------------------------------------

_HL7 = "urn:hl7-org:v3"
_NS = {"h": _HL7}
_CLINICAL_DOCUMENT = f"{{{_HL7}}}ClinicalDocument"
_XSL_STYLESHEET = "{http://www.w3.org/1999/XSL/Transform}stylesheet"
_CISIS = "urn:asip-sante:ci-sis"
# INS-NIR, INS-NIA, and their test twins (.10, .11) used by ANS examples and test cards.
INS_OIDS = frozenset({"1.2.250.1.213.1.4.8", "1.2.250.1.213.1.4.9", "1.2.250.1.213.1.4.10",
                      "1.2.250.1.213.1.4.11"})


class CdaError(ValueError):
    """A document that is not a readable CDA R2; the message says why in plain words."""


def xds_unique_id(root: str, extension: str = "") -> str:
    """The XDS uniqueId of a CDA II: the root alone (the French usage: an OID root without extension), or
    `root^extension` when there is an extension, as the ANS CI-SIS maps ClinicalDocument/id to uniqueId.
    Never `root.extension`: an extension is not an OID arc and may hold any character."""
    return f"{root}^{extension}" if extension else root


@dataclass(frozen=True)
class CdaHeader:
    """What the doors need from a CDA R2 header. Text fields are None when absent (or nullFlavor'd);
    ids are (root, extension) pairs, extension "" when there is none. Patient names follow the CI-SIS:
    family is the birth name (qualifier BR) when given, patient_given the birth given names (the unqualified
    given, "DOMINIQUE MARIE-LOUISE"), patient_first_given the first of them (qualifier BR)."""

    id_root: str
    id_extension: str
    set_id: str | None  # as xds_unique_id(): root, or root^extension
    version: int | None
    type_code: str | None
    type_system: str | None
    title: str | None
    effective_time: str | None  # as written in the document, e.g. "20210104160527+0100"
    confidentiality_code: str | None
    patient_ids: tuple[tuple[str, str], ...]
    ins: tuple[str, str] | None  # (extension, root) of the first patient id under an INS OID
    patient_family: str | None
    patient_given: str | None
    birth_date: str | None
    sex: str | None
    author_ids: tuple[tuple[str, str], ...]
    custodian_ids: tuple[tuple[str, str], ...]
    related: tuple[tuple[str, str], ...]  # (typeCode, unique_id of parentDocument/id), e.g. ("RPLC", ...)
    is_structured: bool
    patient_first_given: str | None = None  # the INS "premier prénom": given qualifier="BR"
    self_presenting: bool = False  # the CDA came inside an ANS "auto-présentable" XSL envelope
    # What the XDS metadata of a document fed from its CDA come from (trans-cda-r2/mapping.md, "Mapping XDS",
    # Fiche, column "Provenance de la donnée"), each as written in the document, None when absent:
    language_code: str | None = None    # languageCode@code
    facility_type: str | None = None    # componentOf/encompassingEncounter/location/healthCareFacility/code@code
    practice_setting: str | None = None  # documentationOf/serviceEvent/performer/assignedEntity/
    #                                      representedOrganization/standardIndustryClassCode@code (the first)
    service_start: str | None = None    # documentationOf/serviceEvent/effectiveTime/low@value (a TS)
    service_stop: str | None = None     # documentationOf/serviceEvent/effectiveTime/high@value
    # legalAuthenticator/assignedEntity: (root, extension, family, given) of its first id and its person
    legal_authenticator: tuple[str, str, str, str] | None = None
    author_specialty: str | None = None  # author/assignedAuthor/code@code of the first author
    template_ids: tuple[str, ...] = ()  # templateId@root, in order (the model of the document: formatCode)
    media_type: str | None = None       # component/nonXMLBody/text@mediaType (a CDA N1)

    @property
    def unique_id(self) -> str:
        return xds_unique_id(self.id_root, self.id_extension)


def read_cda_header(data: bytes) -> CdaHeader:
    """Read the header of a CDA R2 document (bytes, parsed by formats.xml.parse_xml). Raises CdaError."""
    try:
        doc = parse_xml(data)
    except XmlError as err:
        raise CdaError(f"the document is not XML: {err}") from err
    self_presenting = False
    if doc.tag == _XSL_STYLESHEET:
        # ANS "document auto-présentable": an XSLT whose data:Contenu holds the CDA (XDM BIO examples).
        inner = doc.find(f"{{{_CISIS}}}Contenu/{_CLINICAL_DOCUMENT}")
        if inner is not None:
            doc, self_presenting = inner, True
    if doc.tag != _CLINICAL_DOCUMENT:
        raise CdaError(f"the document is XML but not a CDA (root element is {doc.tag}, "
                       f"expected {_CLINICAL_DOCUMENT})")
    # The root's children indexed by tag in one pass: the header asks for a dozen of them, and one walk costs
    # less than a lookup each (issue 21, point 4: the header's Python cost was as much as the parse itself).
    top: dict[object, list[etree._Element]] = {}
    for child in doc:
        top.setdefault(child.tag, []).append(child)
    ident = _first(top, "id")
    if ident is None:
        raise CdaError("the CDA has no id")
    id_root, id_ext = _ii(ident)
    if not id_root:
        raise CdaError("the CDA id has no root")
    set_el = _first(top, "setId")
    set_root, set_ext = _ii(set_el) if set_el is not None else ("", "")
    set_id = xds_unique_id(set_root, set_ext) if set_root else None
    code = _first(top, "code")
    patients = _PATIENT(doc)
    patient = patients[0] if patients else None
    patient_ids = _pairs(_PATIENT_IDS(doc))
    ins = next(((ext, root) for root, ext in patient_ids if root in INS_OIDS and ext), None)
    givens = _name_parts(patient, "given")   # read once for the given names and the first given name
    return _header(
        id_root=id_root, id_extension=id_ext, set_id=set_id, version=_version(_first(top, "versionNumber")),
        type_code=_attr(code, "code"), type_system=_attr(code, "codeSystem"),
        title=_text(_first(top, "title")), effective_time=_attr(_first(top, "effectiveTime"), "value"),
        confidentiality_code=_attr(_first(top, "confidentialityCode"), "code"),
        patient_ids=patient_ids, ins=ins,
        patient_family=_name_part(_name_parts(patient, "family"), ("BR", "")),
        patient_given=_name_part(givens, ("", "BR")),
        patient_first_given=_name_part(givens, ("BR", "")),
        birth_date=_attr(_one(patient, "h:birthTime"), "value"),
        sex=_attr(_one(patient, "h:administrativeGenderCode"), "code"),
        author_ids=_pairs(_AUTHOR_IDS(doc)), custodian_ids=_pairs(_CUSTODIAN_IDS(doc)),
        related=_related(top.get(_HL7_TAG["relatedDocument"], ())),
        is_structured=_is_structured(_first(top, "component")), self_presenting=self_presenting,
        language_code=_attr(_first(top, "languageCode"), "code"),
        facility_type=_value(_FACILITY(doc)), practice_setting=_value(_PRACTICE(doc)),
        service_start=_value(_SERVICE_START(doc)), service_stop=_value(_SERVICE_STOP(doc)),
        legal_authenticator=_legal_authenticator(doc),
        author_specialty=_value(_AUTHOR_CODE(doc)),
        template_ids=tuple(root for root in (_attr(el, "root") for el in top.get(_HL7_TAG["templateId"], ())) if root),
        media_type=_attr(_one(_first(top, "component"), "h:nonXMLBody/h:text"), "mediaType"),
    )


def _header(**values: object) -> CdaHeader:
    """CdaHeader(**values) without the frozen dataclass's __init__, which sets its 30 fields one by one through
    object.__setattr__ (54 k instructions, as much as the five XPaths of the XDS metadata): the same object,
    frozen all the same. read_cda_header gives every field (tests/formats/test_cda.py checks both)."""
    header = object.__new__(CdaHeader)
    header.__dict__.update(values)
    return header


def _xpath(path: str) -> etree.XPath:
    # The deep paths of the XDS metadata's elements, compiled once (a constant, not a cache): libxml2 walks
    # them in a third of the time the child-by-child walk takes for five or six steps. regexp=False: lxml
    # would otherwise register the EXSLT regular-expression functions, which no path here calls, at every
    # evaluation (a fifth of a call's cost).
    return etree.XPath(path, namespaces=_NS, smart_strings=False, regexp=False)


_FACILITY = _xpath("h:componentOf/h:encompassingEncounter/h:location/h:healthCareFacility/h:code/@code")
_PRACTICE = _xpath("h:documentationOf/h:serviceEvent/h:performer/h:assignedEntity/h:representedOrganization/"
                   "h:standardIndustryClassCode/@code")
_SERVICE_START = _xpath("h:documentationOf/h:serviceEvent/h:effectiveTime/h:low/@value")
_SERVICE_STOP = _xpath("h:documentationOf/h:serviceEvent/h:effectiveTime/h:high/@value")
_AUTHOR_CODE = _xpath("h:author/h:assignedAuthor/h:code/@code")
# The header's elements three or four steps down: libxml2 gives them in document order, as the child-by-child
# walk did (tests/formats/test_cda.py compares them), for less than the walk's Python generators.
_PATIENT = _xpath("h:recordTarget/h:patientRole/h:patient")
_PATIENT_IDS = _xpath("h:recordTarget/h:patientRole/h:id")
_AUTHOR_IDS = _xpath("h:author/h:assignedAuthor/h:id")
_CUSTODIAN_IDS = _xpath("h:custodian/h:assignedCustodian/h:representedCustodianOrganization/h:id")
_LEGAL_ENTITY = "h:legalAuthenticator[1]/h:assignedEntity[1]"
_LEGAL = _xpath(f"{_LEGAL_ENTITY}/h:id | {_LEGAL_ENTITY}/h:assignedPerson/h:name/h:family | "
                f"{_LEGAL_ENTITY}/h:assignedPerson/h:name/h:given")
_ID, _FAMILY, _GIVEN = (f"{{{_HL7}}}{name}" for name in ("id", "family", "given"))


def _value(values: object) -> str | None:
    """The first of an XPath's attribute values, trimmed; None when there is none or it is blank."""
    for value in values if isinstance(values, list) else ():
        text = str(value).strip()
        return text or None
    return None


def _legal_authenticator(doc: etree._Element) -> tuple[str, str, str, str] | None:
    """legalAuthenticator/assignedEntity: its first id with a root, and its person's family and given name."""
    root = ext = family = given = ""
    for el in _LEGAL(doc) if isinstance(doc, etree._Element) else ():
        tag = el.tag
        if tag == _ID and not root:
            root, ext = _ii(el)
        elif tag == _FAMILY and not family:
            family = _text(el) or ""
        elif tag == _GIVEN and not given:
            given = _text(el) or ""
    return (root, ext, family, given) if root or family else None


_HL7_TAG = {name: f"{{{_HL7}}}{name}" for name in (
    "id", "setId", "code", "title", "effectiveTime", "confidentialityCode", "versionNumber", "component",
    "relatedDocument", "recordTarget", "author", "custodian", "languageCode", "templateId")}


def _first(top: dict[object, list[etree._Element]], name: str) -> etree._Element | None:
    """The root's first child `name` (in the HL7 namespace), from the children indexed by tag."""
    found = top.get(_HL7_TAG[name])
    return found[0] if found else None


def _pairs(elements: Iterable[etree._Element]) -> tuple[tuple[str, str], ...]:
    # An id with only a nullFlavor identifies nothing: it is left out.
    return tuple(pair for pair in (_ii(el) for el in elements) if pair[0])


def _one(el: etree._Element | None, path: str) -> etree._Element | None:
    """The first element at `path` ("h:a/h:b", children of `el`), as `el.find(path, _NS)` finds it: walked
    child by child, which costs a fraction of ElementPath's own machinery for the few paths a header needs."""
    if el is None:
        return None
    tags = _tags(path)
    if len(tags) == 1:
        return next(el.iterchildren(tags[0]), None)
    return next(_iter_path(el, tags), None)


def _split(path: str) -> tuple[str, ...]:
    return tuple(f"{{{_HL7}}}{step.removeprefix('h:')}" for step in path.split("/"))


# The header's paths, split once (a constant table, not a cache).
_PATHS = {path: _split(path) for path in (
    "h:id", "h:setId", "h:code", "h:title", "h:effectiveTime", "h:confidentialityCode", "h:versionNumber",
    "h:component", "h:structuredBody", "h:nonXMLBody", "h:birthTime", "h:administrativeGenderCode",
    "h:name/h:family", "h:name/h:given",
    "h:relatedDocument", "h:parentDocument/h:id", "h:nonXMLBody/h:text")}


def _tags(path: str) -> tuple[str, ...]:
    return _PATHS.get(path) or _split(path)


def _iter_path(el: etree._Element, tags: tuple[str, ...]):
    """The elements at a path of child steps, in document order (ElementPath's order for such a path)."""
    if len(tags) == 1:
        yield from el.iterchildren(tags[0])
        return
    for child in el.iterchildren(tags[0]):
        yield from _iter_path(child, tags[1:])


def _attr(el: etree._Element | None, name: str) -> str | None:
    value = el.get(name) if el is not None else None
    return (value.strip() or None) if value is not None else None


def _text(el: etree._Element | None) -> str | None:
    # string(): the text of the element and its descendants, without comments; trimmed of indentation.
    if el is None:
        return None
    if len(el) == 0:   # no child node: string() is the element's own text
        return (el.text or "").strip() or None
    return el.xpath("string()").strip() or None


def _ii(el: etree._Element) -> tuple[str, str]:
    return (el.get("root") or "").strip(), (el.get("extension") or "").strip()


def _name_parts(patient: etree._Element | None, part: str) -> list[etree._Element]:
    """The patient's name/`part` elements, in document order."""
    return list(_iter_path(patient, _tags(f"h:name/h:{part}"))) if patient is not None else []


def _name_part(parts: list[etree._Element], qualifiers: tuple[str, ...]) -> str | None:
    """The first of `parts` (name/family or name/given) whose qualifier comes first in `qualifiers` ("" for
    none), else the first one."""
    for wanted in qualifiers:
        for el in parts:
            # qualifier is a space-separated set of codes (EntityNamePartQualifier).
            codes = (el.get("qualifier") or "").split()
            if (wanted in codes) if wanted else not codes:
                return _text(el)
    return _text(parts[0]) if parts else None


def _version(el: etree._Element | None) -> int | None:
    value = _attr(el, "value")
    if value is None:
        return None
    # Digits only: int() would also take "+1", " 1" or "1_0".
    if not value.isascii() or not value.isdigit():
        raise CdaError(f"the CDA versionNumber is not a non-negative integer ({value!r})")
    return int(value)


def _related(elements: Iterable[etree._Element]) -> tuple[tuple[str, str], ...]:
    related: list[tuple[str, str]] = []
    for rel in elements:
        parents = [_ii(el) for el in _iter_path(rel, _tags("h:parentDocument/h:id"))]
        type_code = (rel.get("typeCode") or "").strip()
        if not any(root for root, _ in parents):
            # A replacement that does not say what it replaces cannot be applied: refuse it here.
            raise CdaError(f"the CDA has a relatedDocument {type_code or '(no typeCode)'} without a parentDocument id")
        related.extend((type_code, xds_unique_id(root, ext)) for root, ext in parents if root)
    return tuple(related)


def _is_structured(body: etree._Element | None) -> bool:
    if _one(body, "h:structuredBody") is not None:
        return True
    if _one(body, "h:nonXMLBody") is not None:
        return False
    raise CdaError("the CDA has no body (neither structuredBody nor nonXMLBody)")
