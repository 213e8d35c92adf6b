"""The Annuaire door: the Annuaire Santé's FHIR R4 API (read and search on Practitioner, PractitionerRole,
Organization, HealthcareService; `metadata`) under /fhir/v1, behind the `ESANTE-API-KEY` header.

resources.py turns the world into FHIR JSON, search.py parses and matches the search parameters; this module
checks the key, reads the directory and journals the exchange in one transaction, and renders the answer.
Every error becomes an OperationOutcome in one place (`_serve`).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from flask import Blueprint, Response, request

from ... import __version__
from ...world.store import StorageFull, Tx
from . import resources as res
from .resources import Directory
from .search import INCLUDES, PARAMS, REVINCLUDES, Query, SearchError, parse, rows, search

if TYPE_CHECKING:
    from ...bench import Bench

log = logging.getLogger("mockbench.annuaire")

PREFIX = "/fhir/v1"
CONTENT_TYPE = "application/fhir+json; charset=utf-8"
KEY_HEADER = "ESANTE-API-KEY"
DEFAULT_KEYS = ("mockbench",)
KINDS = tuple(PARAMS)
RENDER: dict[str, Callable[[Directory, Any], dict]] = {
    "Practitioner": res.practitioner,
    "PractitionerRole": lambda d, row: res.practitioner_role(d, *row),
    "Organization": res.organization,
    "HealthcareService": res.healthcare_service,
}
IDS: dict[str, Callable[[Any], str]] = {
    "Practitioner": res.practitioner_id,
    "PractitionerRole": lambda row: res.role_id(*row),
    "Organization": res.organization_id,
    "HealthcareService": res.service_id,
}
# OperationOutcome.issue.code (FHIR IssueType) for each of the door's error codes.
ISSUE_TYPES = {
    "UNAUTHORIZED": "login", "PARAMETER_UNKNOWN": "not-supported", "PARAMETER_INVALID": "invalid",
    "PARAMETER_NOT_SEARCHABLE": "not-supported", "RESOURCE_UNKNOWN": "not-found", "TYPE_UNKNOWN": "not-supported",
    "INTERNAL": "exception",
    "STORAGE_FULL": "transient",   # FHIR R4 issue-type: "may be able to resubmit the same content" later
}


@dataclass
class Refusal(Exception):
    status: int
    code: str
    message: str
    parameter: str | None = None


class AnnuaireDoor:
    name = "annuaire"

    def __init__(self, bench: Bench, *, api_keys: tuple[str, ...] | list[str] = DEFAULT_KEYS) -> None:
        self.bench = bench
        self.world = bench.world
        self.api_keys = frozenset(api_keys)
        self._cache: tuple[tuple, Directory] | None = None

    def blueprint(self) -> Blueprint:
        bp = Blueprint("annuaire", __name__)
        bp.add_url_rule("/metadata", "metadata", lambda: self._serve("read:CapabilityStatement", self._metadata))
        bp.add_url_rule("/<kind>", "search", lambda kind: self._serve(f"search:{kind}", self._search, kind))
        bp.add_url_rule("/<kind>/<rid>", "read",
                        lambda kind, rid: self._serve(f"read:{kind}", self._read, kind, rid))
        return bp

    @property
    def base(self) -> str:
        return self.bench.url + PREFIX

    # The one place where an exchange is checked, journaled and its errors rendered -----------------------
    def _serve(self, operation: str, handler: Callable[..., dict], *args: str) -> Response:
        raw = request.full_path if request.query_string else request.path
        key = request.headers.get(KEY_HEADER, "")
        try:
            with self.world.transaction() as tx:
                try:
                    if key not in self.api_keys:
                        raise Refusal(401, "UNAUTHORIZED", f"missing or unknown {KEY_HEADER} header: send the API "
                                      "key (mockbench by default, [doors.annuaire] api_keys in the config file)")
                    body = handler(tx, *args)
                except SearchError as exc:
                    refusal = Refusal(exc.status, exc.code, exc.message, exc.parameter)
                except Refusal as exc:
                    refusal = exc
                else:
                    self.world.journal.append(tx, "annuaire", operation, actor=key, raw=raw)
                    return _json(200, body)
                self.world.journal.append(tx, "annuaire", operation, actor=key if refusal.status != 401 else "",
                                          verdict="refused", code=refusal.code, raw=raw)
            return _json(refusal.status, outcome(refusal.code, refusal.message, refusal.parameter))
        except StorageFull as exc:   # logged once by the store; the journal cannot take an entry either
            return _json(507, outcome("STORAGE_FULL", str(exc)))
        except Exception:  # the one place where an unexpected error becomes a 500 OperationOutcome, journaled
            log.exception("annuaire %s failed", operation)
            try:
                with self.world.transaction() as tx:
                    self.world.journal.append(tx, "annuaire", operation, actor=key, verdict="error",
                                              code="INTERNAL", raw=raw)
            except Exception:
                log.exception("could not journal the failure")
            return _json(500, outcome("INTERNAL", "the bench failed on this request; see its log"))

    def routing_error(self, status: int, message: str) -> Response:
        """A 404/405 that Flask's routing answered before the blueprint: the same OperationOutcome."""
        code = "TYPE_UNKNOWN" if status == 404 else "PARAMETER_INVALID"
        return _json(status, outcome(code, message))

    # Handlers ---------------------------------------------------------------------------------------------
    def _kind(self, kind: str) -> None:
        if kind not in KINDS:
            raise Refusal(404, "TYPE_UNKNOWN", f"the Annuaire door serves {', '.join(KINDS)} and metadata, not "
                          f"{kind}")

    def _search(self, tx: Tx, kind: str) -> dict:
        self._kind(kind)
        q = parse(kind, request.args.items(multi=True))
        d = self.directory(tx)
        matches = search(d, q)
        return self._bundle(d, q, matches)

    def _read(self, tx: Tx, kind: str, rid: str) -> dict:
        self._kind(kind)
        d = self.directory(tx)
        ident = IDS[kind]
        for row in rows(d, kind):
            if ident(row) == rid:
                return RENDER[kind](d, row)
        raise Refusal(404, "RESOURCE_UNKNOWN", f"no {kind} with id {rid}")

    def _metadata(self, tx: Tx) -> dict:
        return capability_statement(self.base, self.world.clock.now_iso())

    # The directory, read once per world (a loaded scenario's professionals do not change) -----------------
    def directory(self, tx: Tx) -> Directory:
        created = tx.meta_get("world:created") or self.world.clock.now_iso()
        key = (tx.ns, created, tx.count("professionals"), tx.count("structures"), tx.count("mailboxes"))
        cached = self._cache
        if cached is not None and cached[0] == key:
            return cached[1]
        d = self.world.directory
        built = Directory.build(created, d.professionals(tx), d.structures(tx), d.mailboxes(tx))
        self._cache = (key, built)
        return built

    # Bundles ----------------------------------------------------------------------------------------------
    def _bundle(self, d: Directory, q: Query, matches: list) -> dict:
        page = matches[q.offset:q.offset + q.count]
        url = f"{self.base}/{q.kind}"
        links = [{"relation": "self", "url": _page_url(url, q, q.offset)}]
        if q.offset + q.count < len(matches) and q.count:
            links.append({"relation": "next", "url": _page_url(url, q, q.offset + q.count)})
        if q.offset > 0 and q.count:
            links.append({"relation": "previous", "url": _page_url(url, q, max(0, q.offset - q.count))})
        entries = [self._entry(d, q.kind, row, "match") for row in page]
        seen = {(q.kind, IDS[q.kind](row)) for row in page}
        for kind, row in _included(d, q, page):
            if (kind, IDS[kind](row)) not in seen:
                seen.add((kind, IDS[kind](row)))
                entries.append(self._entry(d, kind, row, "include"))
        bundle: dict = {"resourceType": "Bundle", "id": str(uuid.uuid4()),
                        "meta": {"lastUpdated": self.world.clock.now_iso()}, "type": "searchset"}
        if q.total != "none":
            bundle["total"] = len(matches)
        bundle["link"] = links
        if entries:
            bundle["entry"] = entries
        return bundle

    def _entry(self, d: Directory, kind: str, row: Any, mode: str) -> dict:
        return {"fullUrl": f"{self.base}/{kind}/{IDS[kind](row)}", "resource": RENDER[kind](d, row),
                "search": {"mode": mode}}


def _included(d: Directory, q: Query, page: list) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for inc in q.include:
        if inc == "PractitionerRole:practitioner":
            out += [("Practitioner", p) for p, _ in page]
        elif inc == "PractitionerRole:organization":
            out += [("Organization", s) for _, s in page]
        elif inc == "HealthcareService:organization":
            out += [("Organization", s) for s in page]
    for rev in q.revinclude:
        if rev == "PractitionerRole:practitioner":
            ids = {p.id for p in page}
            out += [("PractitionerRole", row) for row in rows(d, "PractitionerRole") if row[0].id in ids]
        elif rev == "PractitionerRole:organization":
            ids = {s.id for s in page}
            out += [("PractitionerRole", row) for row in rows(d, "PractitionerRole") if row[1].id in ids]
        elif rev == "HealthcareService:organization":
            out += [("HealthcareService", s) for s in page]
    return out


def _page_url(url: str, q: Query, offset: int) -> str:
    params = [(k, v) for k, v in q.kept]
    if not any(k == "_count" for k, _ in params):
        params.append(("_count", str(q.count)))
    if offset:
        params.append(("_offset", str(offset)))
    return f"{url}?{urlencode(params)}" if params else url


def outcome(code: str, message: str, parameter: str | None = None) -> dict:
    issue: dict = {"severity": "error", "code": ISSUE_TYPES.get(code, "processing"),
                   "details": {"coding": [{"system": "https://mockbench.dev/annuaire-error", "code": code}],
                               "text": message},
                   "diagnostics": message}
    if parameter:
        issue["expression"] = [parameter]
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def capability_statement(base: str, now: str) -> dict:
    resources = []
    for kind, params in PARAMS.items():
        entry: dict = {"type": kind, "profile": res.PROFILE[kind],
                       "interaction": [{"code": "read"}, {"code": "search-type"}]}
        if INCLUDES.get(kind):
            entry["searchInclude"] = list(INCLUDES[kind])
        if REVINCLUDES.get(kind):
            entry["searchRevInclude"] = list(REVINCLUDES[kind])
        entry["searchParam"] = [{"name": p.name, "type": p.kind, "documentation": p.doc} for p in params.values()]
        resources.append(entry)
    return {
        "resourceType": "CapabilityStatement", "status": "active", "date": now, "publisher": "mockbench",
        "kind": "instance", "software": {"name": "mockbench", "version": __version__},
        "implementation": {"description": "mockbench: the Annuaire Santé FHIR API (test double)", "url": base},
        "fhirVersion": "4.0.1", "format": ["application/fhir+json", "json"],
        "rest": [{"mode": "server",
                  "documentation": "Search results take _count (at most 1000, 50 by default), _total "
                                   "(none, estimate, accurate) and the paging links of Bundle.link.",
                  "security": {"description": f"An API key in the {KEY_HEADER} header."},
                  "resource": resources}],
    }


def _json(status: int, body: dict) -> Response:
    return Response(json.dumps(body, ensure_ascii=False, separators=(",", ":")), status=status,
                    content_type=CONTENT_TYPE)
