"""The Annuaire door: the Annuaire Santé's FHIR R4 API V2 under /fhir/v2, behind the `ESANTE-API-KEY` header;
/fhir/v1, retired by the ANS, answers 410 Gone.

Sources (corpus specs/annuaire-v2/):
- getting-started_api-basics.md: base `.../fhir/v2`, endpoints metadata / Practitioner / PractitionerRole /
  Organization / HealthcareService / Device, the ESANTE-API-KEY header, GET and POST `[type]/_search`,
  errors as OperationOutcome, 410 "La ressource n'est plus accessible".
- changelog.md: V1 available until July 2026, calls redirected to V2 from Dec. 2025 / Jan. 2026; the bench
  plays the world after that: V1 is gone, and no setting brings it back (`settings`): a V1 served by the bench
  would let a DPI pass here and fail against the real directory, and the corpus holds the V2 documentation
  only, which describes V1 by its differences from V2 (getting-started_nouveautes.md §1, §4; the ANS's V1
  pages and V1's IG 0.1.0 are not in it), not enough to serve V1 faithfully.
- use-case_uc-call-type.md §1-2: paging by a `next` link `[base]/_page?id=<opaque>` next to `self`, no
  `previous`; `total` on the first page.
- ig-fsh/AsServerDPCapabilityStatement.fsh through capability.py: what `metadata` lists and search serves.

resources.py turns the world into FHIR JSON, search.py parses and matches the search parameters; this module
checks the key, reads the directory and journals the exchange in one transaction, and renders the answer.
Every error becomes an OperationOutcome in one place (`_serve`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import math
import secrets
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from flask import Blueprint, Response, request

from ... import __version__
from ...world import xlock
from ...world.faults import Fired
from ...world.journal import finding
from ...world.store import NeedsWrite, StorageFull, Tx
from ...world.xlock import WriteLockTimeout
from ..context import DoorConfigError, DoorContext, HttpDoor
from ..faults import render as render_network
from . import resources as res
from .capability import IG_DATE, RESOURCES
from .errors import Refusal, outcome
from .resources import Directory
from .search import KINDS, Query, SearchError, parse, referenced, referencing, search

if TYPE_CHECKING:
    from ...config import Config

log = logging.getLogger("mockbench.annuaire")

PREFIX = "/fhir"
VERSION = "/v2"
CONTENT_TYPE = "application/fhir+json; charset=utf-8"
KEY_HEADER = "ESANTE-API-KEY"
DEFAULT_KEYS = ("mockbench",)
IG_CAPABILITY = "https://interop.esante.gouv.fr/ig/fhir/annuaire/CapabilityStatement/AsServerDPCapabilityStatement"
MAX_PAGE_TOKEN = 8192
FINDING_RULE = "ANNUAIRE/CAPABILITY"
RENDER: dict[str, Callable[[Directory, Any], dict]] = {
    "Practitioner": res.practitioner,
    "PractitionerRole": res.practitioner_role,
    "Organization": res.organization,
}
IDS: dict[str, Callable[[Any], str]] = {
    "Practitioner": res.practitioner_id,
    "PractitionerRole": res.role_id,
    "Organization": res.organization_id,
}
# Kept by _elements besides the ones asked: what the DP profiles make mandatory (advanced_modifying-search-
# results.md §5 shows `identifier` and `active` in an answer to `_elements=name`).
MANDATORY = {"Practitioner": ("identifier", "active"), "PractitionerRole": ("identifier", "active", "practitioner"),
             "Organization": ("identifier", "active")}
SUBSETTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED",
             "display": "Resource encoded in summary mode"}


def settings(values: dict) -> tuple[str, ...]:
    """`[doors.annuaire]`: `api_keys` (a list of strings), the keys accepted in ESANTE-API-KEY. Anything else
    is a ValueError, `v1` with the reason the bench serves no V1 (see the module's docstring)."""
    for name in values:
        if name == "v1":
            raise ValueError("v1: the bench serves no API V1 and no setting brings it back: the ANS retired V1 "
                             "(changelog.md: decommissioned July 2026), so a DPI passing on a V1 here would fail "
                             "against the real directory, and the corpus describes V1 only by its differences "
                             "from V2 (getting-started_nouveautes.md). /fhir/v1 answers 410 Gone; migrate to "
                             "/fhir/v2 (the README's Annuaire section says how)")
        if name != "api_keys":
            raise ValueError(f"unknown setting {name}; settings: api_keys")
    keys = values.get("api_keys", DEFAULT_KEYS)
    if isinstance(keys, str) or not isinstance(keys, list | tuple) or not all(isinstance(k, str) for k in keys):
        raise ValueError("api_keys must be a list of strings")
    return tuple(keys)


@dataclass
class Answered:
    """A request's answer and what its journal entry says besides the request and the fault rule."""

    response: Response
    operation: str
    actor: str
    verdict: str = "accepted"
    code: str | None = None
    findings: tuple[dict, ...] | list[dict] = ()


def build(context: DoorContext, config: Config) -> AnnuaireDoor:
    try:
        keys = settings(config.doors.get("annuaire", {}))
    except ValueError as exc:
        raise DoorConfigError(f"[doors.annuaire] {exc}") from None
    return AnnuaireDoor(context, api_keys=keys)


class AnnuaireDoor(HttpDoor):
    name = "annuaire"
    prefix = PREFIX
    base_path = PREFIX + VERSION
    key_header = KEY_HEADER

    def __init__(self, context: DoorContext, *, api_keys: tuple[str, ...] | list[str] = DEFAULT_KEYS) -> None:
        super().__init__(context)
        self.api_keys = frozenset(api_keys)
        self._cache: tuple[tuple, Directory] | None = None
        self._page_key = secrets.token_bytes(32)   # signs the paging ids: they die with this bench process

    def blueprint(self) -> Blueprint:
        bp = Blueprint("annuaire", __name__)
        v2 = VERSION
        bp.add_url_rule(f"{v2}/metadata", "metadata",
                        lambda: self._serve("read:CapabilityStatement", self._metadata))
        bp.add_url_rule(f"{v2}/_page", "page", lambda: self._serve("search:page", self._page))
        bp.add_url_rule(f"{v2}/<kind>", "search", lambda kind: self._serve(f"search:{kind}", self._search, kind))
        bp.add_url_rule(f"{v2}/<kind>/_search", "post_search", methods=["POST"],
                        view_func=lambda kind: self._serve(f"search:{kind}", self._search, kind))
        bp.add_url_rule(f"{v2}/<kind>/<rid>", "read",
                        lambda kind, rid: self._serve(f"read:{kind}", self._read, kind, rid))
        gone = ["GET", "POST", "PUT", "DELETE", "PATCH"]
        bp.add_url_rule("/v1", "v1_root", methods=gone, view_func=lambda: self._serve("v1", self._v1))
        bp.add_url_rule("/v1/<path:rest>", "v1", methods=gone, view_func=lambda rest: self._serve("v1", self._v1))
        return bp

    @property
    def base(self) -> str:
        return self.urls.url + PREFIX + VERSION

    def endpoints(self) -> dict[str, Any]:
        """Its section of /_bench/endpoints: the base on the back-channel URLs and the API keys."""
        urls = self.urls
        back, back_https = urls.backchannel_url(False) or urls.url, urls.backchannel_url(True)
        return {"base": back + self.base_path,
                "base_https": back_https + self.base_path if urls.https_url and back_https else None,
                "api_key_header": self.key_header, "api_keys": sorted(self.api_keys)}

    # The one place where an exchange is checked, journaled and its errors rendered -----------------------
    def _serve(self, operation: str, handler: Callable[..., dict], *args: str) -> Response:
        raw = request.full_path if request.query_string else request.path
        key = request.headers.get(KEY_HEADER, "")
        fired = None
        try:
            # Every request of the API only reads the world: in a world shared by several processes it is answered
            # on a read snapshot, out of the write transaction, which then journals it if the world did not change
            # meanwhile (issue 21, point 3); one process would pay the snapshot for nothing (DMP door's
            # SNAPSHOT_OPERATIONS).
            early = self._on_snapshot(operation, handler, args, key) if self.world.store.shared else None
            with self.world.transaction() as tx:
                if early is not None and not self.world.store.unchanged(tx, early[1]):
                    early = None   # the world changed since the snapshot: answered again, here
                # A fault rule (world/faults.py) is met before the API key is read, as at the API's front-end.
                fired = self.world.faults.decide(tx, "annuaire", operation, actor=key)
                if fired is not None and fired.refusing:
                    answer = self._injected(tx, operation, fired, key, raw)
                else:
                    answered = early[0] if early is not None else self._answer(tx, operation, handler, args, key)
                    self.world.journal.append(
                        tx, "annuaire", answered.operation, actor=answered.actor, verdict=answered.verdict,
                        code=answered.code, raw=raw, fault=fired.rule if fired else None,
                        findings=answered.findings, response=answered.response.get_data())
                    answer = answered.response
            # after the commit: a network fault never holds the store
            return render_network(self.world.faults, fired, answer, request.environ)
        except StorageFull as exc:   # logged once by the store; the journal cannot take an entry either
            return _json(507, outcome("STORAGE_FULL", str(exc)))
        except WriteLockTimeout as exc:   # the same (errors.py): 503, retry after the lock's wait
            response = _json(503, outcome(WriteLockTimeout.code, str(exc)))
            response.headers["Retry-After"] = str(math.ceil(xlock.WAIT))
            return response
        except Exception:  # the one place where an unexpected error becomes a 500 OperationOutcome, journaled
            log.exception("annuaire %s failed", operation)
            try:
                with self.world.transaction() as tx:
                    self.world.journal.append(tx, "annuaire", operation, actor=key, verdict="error",
                                              code="INTERNAL", raw=raw)
            except Exception:
                log.exception("could not journal the failure")
            return _json(500, outcome("INTERNAL", "the bench failed on this request; see its log"))

    def _on_snapshot(self, operation: str, handler: Callable[..., dict], args: tuple,
                     key: str) -> tuple[Answered, tuple[str, int] | None] | None:
        """The answer computed on a read snapshot, with the mark of the world it read (Store.unchanged); None
        when it needs to write or fails unexpectedly: the write transaction then answers it, as before."""
        try:
            with self.world.read_snapshot() as tx:
                return self._answer(tx, operation, handler, args, key), tx.mark
        except NeedsWrite:
            return None
        except Exception:   # answered (and logged) again in the write transaction, exactly as before
            return None

    def _answer(self, tx: Tx, operation: str, handler: Callable[..., dict], args: tuple, key: str) -> Answered:
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
            op = f"search:{body.pop('_kind')}" if operation == "search:page" else operation
            found = body.pop("_findings", ())   # e.g. a modifier the CapabilityStatement does not declare
            return Answered(_json(200, body), op, key, findings=found)
        return Answered(_json(refusal.status, outcome(refusal.code, refusal.message, refusal.parameter)), operation,
                        key if refusal.status != 401 else "", verdict="refused", code=refusal.code)

    def _injected(self, tx: Tx, operation: str, fired: Fired, key: str, raw: str) -> Response:
        """A refusing fault rule, journaled with nothing read: 429 with Retry-After (RFC 6585, section 4) when
        the caller is over its quota, 503 (RFC 9110, 15.6.4) when the API is down, each with an
        OperationOutcome as every error of the API [annuaire-v2/getting-started_api-basics.md, "Codes d'état
        HTTP": errors carry a 4XX or 5XX and an OperationOutcome]; reset and timeout: no answer."""
        code = f"FAULT_{fired.kind.upper()}"
        self.world.journal.append(tx, "annuaire", operation, actor=key, verdict="error", code=code, raw=raw,
                                  fault=fired.rule)
        if fired.kind == "http_429":
            response = _json(429, outcome("THROTTLED", "too many requests: slow down and retry after "
                                          f"{fired.params['retry_after']} seconds"))
            response.headers["Retry-After"] = str(fired.params["retry_after"])
            return response
        if fired.kind == "http_503":
            response = _json(503, outcome("UNAVAILABLE", "the Annuaire Santé API is temporarily unavailable"))
            if fired.get("retry_after") is not None:
                response.headers["Retry-After"] = str(fired.get("retry_after"))
            return response
        return _json(500, {})   # reset, timeout: never sent (protocols/faults.py drops the connection)

    def routing_error(self, status: int, message: str) -> Response:
        """A 404/405 that Flask's routing answered before the blueprint: the same OperationOutcome."""
        code = "TYPE_UNKNOWN" if status == 404 else "PARAMETER_INVALID"
        return _json(status, outcome(code, message))

    # Handlers ---------------------------------------------------------------------------------------------
    def _kind(self, kind: str) -> None:
        if kind not in KINDS:
            raise Refusal(404, "TYPE_UNKNOWN", f"Unknown resource type '{kind[:60]}' - the Annuaire Santé V2 "
                          f"serves {', '.join(KINDS)} and metadata")

    def _v1(self, tx: Tx) -> dict:
        raise Refusal(410, "API_VERSION_GONE", "the Annuaire Santé FHIR API V1 is retired (decommissioned July "
                      f"2026, calls redirected to V2 since January 2026): use {self.base}, e.g. "
                      f"{self.base}/Practitioner?identifier=<RPPS>; Practitioner and PractitionerRole ids "
                      "changed in V2: find them again by their identifiers (getting-started_nouveautes.md §3)")

    def _search(self, tx: Tx, kind: str) -> dict:
        self._kind(kind)
        args = list(request.args.items(multi=True))
        if request.method == "POST":
            args += list(request.form.items(multi=True))
        lenient = _lenient()
        q = parse(kind, args, lenient=lenient)
        body = self._bundle(tx, q, 0, lenient)
        if q.undeclared:
            body["_findings"] = [undeclared_finding(kind, key) for key in q.undeclared]
        return body

    def _page(self, tx: Tx) -> dict:
        token = request.args.get("id", "")
        if not token:
            raise Refusal(400, "PARAMETER_INVALID", "_page: the id parameter is missing", "id")
        state = self._unseal(token)
        q = parse(state["k"], [tuple(kv) for kv in state["p"]], lenient=state["l"])
        body = self._bundle(tx, q, state["o"], state["l"], self_url=f"{self.base}/_page?id={token}")
        body["_kind"] = state["k"]
        return body

    def _read(self, tx: Tx, kind: str, rid: str) -> dict:
        self._kind(kind)
        d = self.directory(tx)
        if kind in IDS:
            found = d.by_ref().get(f"{kind}/{rid}")
            if found is not None:
                return RENDER[kind](d, found)
        raise Refusal(404, "RESOURCE_UNKNOWN", f"Resource {kind}/{rid[:80]} is not known")

    def _metadata(self, tx: Tx) -> dict:
        return capability_statement(self.base, self.world.clock.now_iso())

    # The directory, read once per world (a loaded scenario's professionals do not change) -----------------
    def directory(self, tx: Tx) -> Directory:
        created = tx.meta_get("world:created") or self.world.clock.now_iso()
        key = (tx.ns, created, *self.world.directory.change_mark(tx))
        cached = self._cache
        if cached is not None and cached[0] == key:
            return cached[1]
        d = self.world.directory
        built = Directory.build(created, d.professionals(tx), d.structures(tx), d.mailboxes(tx))
        self._cache = (key, built)
        return built

    # Paging ids: the query and the offset, compressed and signed (opaque to the client, like the real one's)
    def _seal(self, q: Query, offset: int, lenient: bool) -> str:
        body = zlib.compress(json.dumps({"k": q.kind, "p": q.kept, "o": offset, "l": lenient},
                                        separators=(",", ":")).encode())
        mac = hmac.new(self._page_key, body, hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(mac + body).decode().rstrip("=")

    def _unseal(self, token: str) -> dict:
        gone = Refusal(410, "PAGE_UNKNOWN", f"Search id {token[:40]}... does not exist and may have expired: "
                       "start the search again", "id")
        if len(token) > MAX_PAGE_TOKEN:
            raise gone
        try:
            blob = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except ValueError:
            raise gone from None
        mac, body = blob[:16], blob[16:]
        if not hmac.compare_digest(mac, hmac.new(self._page_key, body, hashlib.sha256).digest()[:16]):
            raise gone
        inflate = zlib.decompressobj()
        try:
            text = inflate.decompress(body, MAX_PAGE_TOKEN * 4)
        except zlib.error:
            raise gone from None
        if inflate.unconsumed_tail:
            raise gone
        return json.loads(text)

    # Bundles ----------------------------------------------------------------------------------------------
    def _bundle(self, tx: Tx, q: Query, offset: int, lenient: bool, self_url: str | None = None) -> dict:
        d = self.directory(tx)
        matches = search(d, q, datetime.fromisoformat(self.world.clock.now_iso().replace("Z", "+00:00")))
        page = matches[offset:offset + q.count]
        links = []
        if q.count and offset + q.count < len(matches):
            links.append({"relation": "next", "url": f"{self.base}/_page?id="
                          f"{self._seal(q, offset + q.count, lenient)}"})
        links.append({"relation": "self", "url": self_url or _self_url(f"{self.base}/{q.kind}", q)})
        entries = [self._entry(d, q.kind, row, "match", q.elements) for row in page]
        seen = {(q.kind, IDS[q.kind](row)) for row in page} if q.kind in IDS else set()
        for kind, row in _included(d, q, page):
            if (kind, IDS[kind](row)) not in seen:
                seen.add((kind, IDS[kind](row)))
                entries.append(self._entry(d, kind, row, "include", []))
        bundle: dict = {"resourceType": "Bundle", "id": str(uuid.uuid4()),
                        "meta": {"lastUpdated": self.world.clock.now_iso()}, "type": "searchset"}
        if q.total != "none":
            bundle["total"] = len(matches)
        bundle["link"] = links
        if entries:
            bundle["entry"] = entries
        return bundle

    def _entry(self, d: Directory, kind: str, row: Any, mode: str, elements: list[str]) -> dict:
        resource = RENDER[kind](d, row)
        if elements:
            keep = {"resourceType", "id", "meta", *MANDATORY[kind], *elements}
            resource = {k: v for k, v in resource.items() if k in keep}
            resource["meta"] = {**resource["meta"], "tag": [SUBSETTED]}
        return {"fullUrl": f"{self.base}/{kind}/{IDS[kind](row)}", "resource": resource, "search": {"mode": mode}}


def undeclared_finding(kind: str, key: str) -> dict:
    """A search the real server answers although the IG's CapabilityStatement does not declare it (search.py,
    UNDECLARED_ACCEPTED): served as the real one serves it, the DPI warned on the journal entry."""
    name = key.partition(":")[0]
    return finding(FINDING_RULE, f"{kind}?{key}= is not in the IG's CapabilityStatement (AsServerDPCapability"
                   f"Statement: {name} takes :contains, :exact, :text); the real API V2 answers it but ignores the "
                   f"modifier, matching any part of the name as {name}= does (a given name satisfies "
                   "name:family; ansforge/annuaire-sante-fhir-documentation issue #398): search family= or given= "
                   "for the family or given name alone",
                   fr=f"{kind}?{key}= n'est pas dans le CapabilityStatement de l'IG (AsServerDPCapabilityStatement : "
                      f"{name} accepte :contains, :exact, :text) ; l'API V2 réelle y répond mais ignore le "
                      f"modificateur et cherche dans tout le nom comme {name}= (un prénom satisfait name:family ; "
                      "ansforge/annuaire-sante-fhir-documentation, ticket 398) : cherchez family= ou given= pour le "
                      "seul nom de famille ou le seul prénom")


def _lenient() -> bool:
    """FHIR R4 http.html#search: `Prefer: handling=lenient` has unknown parameters ignored."""
    prefer = request.headers.get("Prefer", "")
    return any(p.strip().replace(" ", "") == "handling=lenient" for p in prefer.split(","))


def _included(d: Directory, q: Query, page: list) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    includes = []
    for inc in q.include:
        includes += [i for i in RESOURCES[q.kind]["searchInclude"] if i != "*"] if inc == "*" else [inc]
    for inc in dict.fromkeys(includes):
        source, name = inc.split(":")
        out += referenced(d, source, name, page)
    if q.revinclude and page:
        targets = [f"{q.kind}/{IDS[q.kind](row)}" for row in page]
        for rev in q.revinclude:
            source, name = rev.split(":")
            if source in IDS:    # Device and HealthcareService: none in a world
                out += referencing(d, source, name, targets)
    return out


def _self_url(url: str, q: Query) -> str:
    return f"{url}?{urlencode(q.kept)}" if q.kept else url


def capability_statement(base: str, now: str) -> dict:
    """The IG's CapabilityStatement (capability.py), as an instance: the same resources, interactions,
    includes and search parameters, with the bench's software and address."""
    resources = []
    for kind, spec in RESOURCES.items():
        entry: dict = {"type": kind, "profile": spec["profile"],
                       "interaction": [{"code": c} for c in spec["interaction"]]}
        if spec["searchInclude"]:
            entry["searchInclude"] = list(spec["searchInclude"])
        if spec["searchRevInclude"]:
            entry["searchRevInclude"] = list(spec["searchRevInclude"])
        params = []
        for name, kind_, definition, documentation in spec["searchParam"]:
            p = {"name": name, "type": kind_}
            if definition:
                p["definition"] = definition
            p["documentation"] = documentation
            params.append(p)
        entry["searchParam"] = params
        resources.append(entry)
    return {
        "resourceType": "CapabilityStatement", "status": "active", "date": now, "publisher": "mockbench",
        "kind": "instance", "instantiates": [IG_CAPABILITY],
        "software": {"name": "mockbench", "version": __version__},
        "implementation": {"description": f"mockbench: the Annuaire Santé FHIR API V2 (test double; IG "
                                          f"CapabilityStatement of {IG_DATE[:10]})", "url": base},
        "fhirVersion": "4.0.1", "format": ["json"],
        "rest": [{"mode": "server",
                  "documentation": "Search results take _count (50 by default, at most 10000), _total (none, "
                                   "estimate, accurate), _elements, and page through the next link "
                                   "([base]/_page?id=...). POST [type]/_search takes the same parameters.",
                  "security": {"description": f"An API key in the {KEY_HEADER} header."},
                  "resource": resources}],
    }


def _json(status: int, body: dict) -> Response:
    return Response(json.dumps(body, ensure_ascii=False, separators=(",", ":")), status=status,
                    content_type=CONTENT_TYPE)
