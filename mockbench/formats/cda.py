"""A minimal CDA R2 document for seeded DMP documents: a header that names the patient by INS, the author
and the type, and a non-structured narrative body. Enough for a DPI to retrieve, hash and display it.

Also `read_cda_header`: the reader of a CDA R2 header that the doors (PFI, MSSanté XDM, DMP) share."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from lxml import etree

from mockbench.formats.xml import XmlError, escape, parse_xml, quoteattr


def minimal_cda(*, unique_id: str, ins: str, ins_oid: str, type_code: str, title: str, author_idnps: str,
                author_family: str, author_given: str, patient_family: str, patient_given: str, birth_date: str,
                sex: str, effective_time: str, text: str, set_id: str | None = None, version: int = 1,
                custodian_idnst: str = "", custodian_name: str = "") -> bytes:
    # The whole OID is the id's root: the XDS uniqueId of a CDA with no extension is its root.
    doc_id = f"<id root={quoteattr(unique_id)}/>"
    custodian = (f'<custodian><assignedCustodian><representedCustodianOrganization><id root="1.2.250.1.71.4.2.2" '
                 f"extension={quoteattr(custodian_idnst)}/><name>{escape(custodian_name)}</name>"
                 "</representedCustodianOrganization></assignedCustodian></custodian>") if custodian_idnst else ""
    gender = {"M": "M", "F": "F"}.get(sex, "UN")
    when = effective_time.replace("-", "").replace(":", "").replace("T", "")[:14]
    xml = f"""<?xml version="1.0" encoding="UTF-8"?>
<ClinicalDocument xmlns="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <realmCode code="FR"/>
  <typeId root="2.16.840.1.113883.1.3" extension="POCD_HD000040"/>
  <templateId root="2.16.840.1.113883.2.8.2.1"/>
  <templateId root="1.2.250.1.213.1.1.1.1"/>
  {doc_id}
  <code code={quoteattr(type_code)} codeSystem="2.16.840.1.113883.6.1" displayName={quoteattr(title)}/>
  <title>{escape(title)}</title>
  <effectiveTime value="{when}+0000"/>
  <confidentialityCode code="N" codeSystem="2.16.840.1.113883.5.25"/>
  <languageCode code="fr-FR"/>
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
    <id root="1.2.250.1.71.4.2.1" extension={quoteattr(author_idnps)}/>
    <assignedPerson><name><given>{escape(author_given)}</given><family>{escape(author_family)}</family></name></assignedPerson>
  </assignedAuthor></author>
  {custodian}
  <component><nonXMLBody><text mediaType="text/plain">{escape(text)}</text></nonXMLBody></component>
</ClinicalDocument>
"""
    return xml.encode("utf-8")


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
    patient = next(_under(top, "h:recordTarget/h:patientRole/h:patient"), None)
    patient_ids = _pairs(_under(top, "h:recordTarget/h:patientRole/h:id"))
    ins = next(((ext, root) for root, ext in patient_ids if root in INS_OIDS and ext), None)
    return CdaHeader(
        id_root=id_root, id_extension=id_ext, set_id=set_id, version=_version(_first(top, "versionNumber")),
        type_code=_attr(code, "code"), type_system=_attr(code, "codeSystem"),
        title=_text(_first(top, "title")), effective_time=_attr(_first(top, "effectiveTime"), "value"),
        confidentiality_code=_attr(_first(top, "confidentialityCode"), "code"),
        patient_ids=patient_ids, ins=ins,
        patient_family=_name_part(patient, "family", ("BR", "")),
        patient_given=_name_part(patient, "given", ("", "BR")),
        patient_first_given=_name_part(patient, "given", ("BR", "")),
        birth_date=_attr(_one(patient, "h:birthTime"), "value"),
        sex=_attr(_one(patient, "h:administrativeGenderCode"), "code"),
        author_ids=_pairs(_under(top, "h:author/h:assignedAuthor/h:id")),
        custodian_ids=_pairs(_under(top, "h:custodian/h:assignedCustodian/h:representedCustodianOrganization/h:id")),
        related=_related(top.get(_HL7_TAG["relatedDocument"], ())),
        is_structured=_is_structured(_first(top, "component")), self_presenting=self_presenting,
    )


_HL7_TAG = {name: f"{{{_HL7}}}{name}" for name in (
    "id", "setId", "code", "title", "effectiveTime", "confidentialityCode", "versionNumber", "component",
    "relatedDocument", "recordTarget", "author", "custodian")}


def _first(top: dict[object, list[etree._Element]], name: str) -> etree._Element | None:
    """The root's first child `name` (in the HL7 namespace), from the children indexed by tag."""
    found = top.get(_HL7_TAG[name])
    return found[0] if found else None


def _under(top: dict[object, list[etree._Element]], path: str) -> Iterator[etree._Element]:
    """The elements at `path` below the root, in document order, from the children indexed by tag."""
    tags = _tags(path)
    for child in top.get(tags[0], ()):
        yield from _iter_path(child, tags[1:]) if len(tags) > 1 else (child,)


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
    "h:recordTarget/h:patientRole/h:patient", "h:recordTarget/h:patientRole/h:id", "h:author/h:assignedAuthor/h:id",
    "h:custodian/h:assignedCustodian/h:representedCustodianOrganization/h:id", "h:name/h:family", "h:name/h:given",
    "h:relatedDocument", "h:parentDocument/h:id")}


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


def _name_part(patient: etree._Element | None, part: str, qualifiers: tuple[str, ...]) -> str | None:
    """The first name/`part` whose qualifier comes first in `qualifiers` ("" for none), else the first one."""
    parts = list(_iter_path(patient, _tags(f"h:name/h:{part}"))) if patient is not None else []
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
