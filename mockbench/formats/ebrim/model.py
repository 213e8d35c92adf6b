"""The plain records an ebRIM request is read into (an XDS.b submission, an ITI-57 update, an ITI-18 stored
query), the registry errors, and the small XML and HL7 datatype helpers the reader, the query parser and the
writer share."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..times import dtm_to_iso
from .vocabulary import (
    _CODE_PARAMS,
    _TIME_PARAMS,
    DSG_FORMAT_CODE,
    RIM,
    RPLC,
    SEVERITY_ERROR,
    SEVERITY_WARNING,
    SIGNS,
    STATUS_NAMES,
    STATUS_URNS,
)

if TYPE_CHECKING:
    from lxml.etree import _Element as Element


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


def _status_urn(status: str) -> str:
    return STATUS_URNS.get(status, status)


def _xcn_id(authors: list[dict]) -> str:
    for author in authors:
        for value in author.get("authorPerson", []):
            ident = value.split("^")[0].strip()
            if ident:
                return ident
    return ""

