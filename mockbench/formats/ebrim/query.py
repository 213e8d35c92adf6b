"""Reading ITI-18 stored queries (TD3.1) and ITI-43 retrieve requests (TD3.2) into plain records."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ..times import dtm_to_iso
from .model import StoredQuery, _children, _parse_cx, _q
from .reader import _Reader
from .vocabulary import (
    _CODE_PARAMS,
    _SINGLE_PARAMS,
    _TIME_PARAMS,
    DE_OBJECT_TYPE,
    ERR_DOCUMENT_UNIQUE_ID,
    ERR_REGISTRY,
    ERR_REPOSITORY_METADATA,
    ERR_STORED_QUERY_MISSING_PARAM,
    ERR_STORED_QUERY_PARAM_NUMBER,
    ERR_UNKNOWN_STORED_QUERY,
    QUERY,
    RIM,
    STATUS_NAMES,
    STORED_QUERIES,
    XDS_B,
)

if TYPE_CHECKING:
    from lxml.etree import _Element as Element


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
    kind = STORED_QUERIES.get(query_id, "")
    if not kind:
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

