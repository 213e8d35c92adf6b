"""FHIR search over the directory as the Annuaire Santé API V2 serves it: the parameters, modifiers,
_include / _revinclude of the IG's CapabilityStatement (capability.py) and nothing else; parsing a query
string into criteria (AND by repeating a parameter, OR with commas) and matching them.

Sources (corpus specs/annuaire-v2/):
- ig-fsh/AsServerDPCapabilityStatement.fsh: the parameters per resource, their types, the includes; its
  documentation texts give the string modifiers (`contains`, `exact`, `text` on name / family / given and
  Organization.name; `contains`, `exact` on mailbox-mss, as ig-fsh/AsMailboxMssSearchParameter.fsh too).
- advanced_common-search-params.md §2-4, §7: string search (case and accent insensitive, :contains anywhere,
  :exact with case and accents), tokens by `system|`, `code` or `system|code`, date prefixes (eq ne gt lt ge le
  sa eb ap) and precisions, AND by repetition, OR by commas.
- advanced_modifying-search-results.md: _count (50 by default), _total (none, estimate, accurate), _include,
  _revinclude, _elements (with the SUBSETTED tag).
- FHIR R4 search §3.1.1.4 (http.html#search, search.html#errors): a parameter the server does not know is an
  error unless the client sends `Prefer: handling=lenient`, then it is ignored.
- Outside the CapabilityStatement, what the real server is seen to accept (UNDECLARED_ACCEPTED): the
  documentation's `Practitioner?name:family=MASI&name:given=BRUNO` (resources_practitioner.md §4.3). The real
  V2 answers it and ignores the modifier, matching any part of the name as `name=` does: a given name or the
  start of a family name satisfies `name:family` (ansforge/annuaire-sante-fhir-documentation issue #398, May
  2026, on gateway.api.esante.gouv.fr/fhir/v2), which is what HAPI FHIR's StringParam does with a qualifier
  other than :exact, :contains, :text (hapi-fhir-base, rest/param/StringParam.java, doSetValueAsQueryToken).
  The door puts a finding on the journal entry: the CapabilityStatement does not declare these modifiers.
- `_revinclude=Organization:partof` (advanced_modifying-search-results.md §4) stays refused: the
  CapabilityStatement declares Organization:partof as an _include only, no report shows the real server
  answering it, and the example's own comment ("les EG et les EJ de rattachement") is what
  `_include=Organization:partof` returns.

An unknown parameter or modifier and a malformed value are SearchErrors naming the parameter; the door
renders them as a 400 OperationOutcome. Nothing here knows HTTP. Token and reference criteria go through
indexes built once per directory; strings are matched on values folded once per directory.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from . import resources as r
from .capability import RESOURCES
from .resources import Directory, LegalEntity, Role

# advanced_modifying-search-results.md §1: 50 by default; its example asks `_count=10000` and gets 10000. A
# larger `_count` is served as 10000 (FHIR R4 search.html#count: the server may return fewer, never more).
DEFAULT_COUNT = 50
MAX_COUNT = 10000
MAX_VALUES = 100          # alternatives in one parameter (commas): bounded, the real gateway caps URLs too


class SearchError(Exception):
    def __init__(self, code: str, parameter: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.parameter = parameter
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Param:
    name: str
    kind: str                          # token | string | reference | date | uri
    values: Callable[[Directory, Any], list]
    modifiers: tuple[str, ...] = ("",)
    target: str = ""                   # reference: the type it points to


# Value extractors ---------------------------------------------------------------------------------
def _none(*_: Any) -> list:
    return []


def _active(*_: Any) -> list:
    return [(None, "true")]


def _last_updated(d: Directory, row: Any) -> list:
    if isinstance(row, Role):
        meta = row.spec.get("meta")
    elif isinstance(row, LegalEntity):
        meta = None
    else:
        meta = (row.annuaire or {}).get("meta")
    return [(meta or {}).get("lastUpdated") or d.created]


def _pro_identifiers(_: Directory, p) -> list:
    return [(r.SYS_IDNPS, p.idnps)] + ([(r.SYS_RPPS, p.rpps)] if p.rpps else [])


def _pro_id_types(_: Directory, p) -> list:
    return [(r.ID_TYPE, "IDNPS")] + ([(r.ID_TYPE, "RPPS")] if p.rpps else [])


def _qualifications(_: Directory, p) -> list:
    return [(c["system"], c["code"]) for q in r._qualifications(p) for c in q["code"]["coding"]]


def _pro_names(_: Directory, p) -> list:
    prefix = (p.annuaire or {}).get("prefix")
    return [p.family_name, p.given_name, f"{p.given_name} {p.family_name}"] + ([prefix] if prefix else [])


def _org_identifiers(_: Directory, o) -> list:
    return [(s, v) for s, v, _t in r.org_identifiers(o)]


def _org_id_types(_: Directory, o) -> list:
    return [(r.ID_TYPE, t) for _s, _v, t in r.org_identifiers(o)]


def _org_names(_: Directory, o) -> list:
    alias = None if isinstance(o, LegalEntity) else (o.annuaire or {}).get("alias")
    return [o.name] + ([alias] if alias else [])


def _address_part(part: str) -> Callable[[Directory, Any], list]:
    def values(_: Directory, o) -> list:
        if isinstance(o, LegalEntity):
            return []
        a, given = o.address or {}, (o.annuaire or {}).get("address") or {}
        street = " ".join(given[k] for k in ("houseNumber", "streetNameType", "streetNameBase") if given.get(k)) \
            or a.get("line", "")
        found = {"line": [street], "city": [a.get("city", "")], "postal_code": [a.get("postal_code", "")],
                 "all": [street, a.get("city", ""), a.get("postal_code", "")]}[part]
        return [v for v in found if v]
    return values


def _org_types(d: Directory, o) -> list:
    return [(r.ORG_TYPE, r.org_kind(o)), (r.SECTOR, r.sector(o))]


def _partof(d: Directory, o) -> list:
    ej = d.ej_of(o) if not isinstance(o, LegalEntity) and r.org_kind(o) == "GEOGRAPHICAL-ENTITY" else None
    return [f"Organization/{r.organization_id(ej)}"] if ej is not None else []


def _org_system(_: Directory, o) -> list:
    # the source system of the record (as-ext-data-trace `systeme-information`): FINESS for what FINESS
    # registers, RPPS for a cabinet known only from the RPPS
    return [(None, "FINESS" if getattr(o, "finess", "") else "RPPS")]


def _string(name: str, values, modifiers=("", "exact", "contains")) -> Param:
    return Param(name, "string", values, modifiers)


WITH_TEXT = ("", "exact", "contains", "text")

# Per resource type, each parameter of the CapabilityStatement (capability.RESOURCES) and how it reads a row.
# Device and HealthcareService: no row in a world (the world holds no EML nor activité de soins).
EXTRACT: dict[str, dict[str, Param]] = {
    "Organization": {
        "_id": Param("_id", "token", lambda d, o: [(None, r.organization_id(o))]),
        "_lastUpdated": Param("_lastUpdated", "date", _last_updated),
        "active": Param("active", "token", _active),
        "address": _string("address", _address_part("all")),
        "address-city": _string("address-city", _address_part("city")),
        "address-line": _string("address-line", _address_part("line")),
        "address-postalcode": _string("address-postalcode", _address_part("postal_code")),
        "data-information-system": Param("data-information-system", "token", _org_system),
        "data-registration-authority": Param("data-registration-authority", "token", _none),
        "identifier": Param("identifier", "token", _org_identifiers),
        "identifier-type": Param("identifier-type", "token", _org_id_types),
        "mailbox-mss": _string("mailbox-mss", lambda d, o: [a for a, _ in d.org_addresses(o)]),
        "name": _string("name", _org_names, WITH_TEXT),
        "partof": Param("partof", "reference", _partof, target="Organization"),
        "pharmacy-licence": _string("pharmacy-licence", _none),
        "type": Param("type", "token", _org_types),
    },
    "Device": {
        "_id": Param("_id", "token", _none), "_lastUpdated": Param("_lastUpdated", "date", _none),
        "data-information-system": Param("data-information-system", "token", _none),
        "data-registration-authority": Param("data-registration-authority", "token", _none),
        "identifier": Param("identifier", "token", _none), "manufacturer": _string("manufacturer", _none),
        "model": _string("model", _none),
        "organization": Param("organization", "reference", _none, target="Organization"),
        "status": Param("status", "token", _none), "type": Param("type", "token", _none),
    },
    "Practitioner": {
        "_id": Param("_id", "token", lambda d, p: [(None, r.practitioner_id(p))]),
        "_lastUpdated": Param("_lastUpdated", "date", _last_updated),
        "active": Param("active", "token", _active),
        "data-information-system": Param("data-information-system", "token", lambda d, p: [(None, "RPPS")]),
        "data-registration-authority": Param("data-registration-authority", "token", _none),
        "family": _string("family", lambda d, p: [p.family_name], WITH_TEXT),
        "given": _string("given", lambda d, p: [p.given_name], WITH_TEXT),
        "identifier": Param("identifier", "token", _pro_identifiers),
        "identifier-type": Param("identifier-type", "token", _pro_id_types),
        "mailbox-mss": _string("mailbox-mss", lambda d, p: [a for a, _ in d.pro_addresses(p)]),
        "name": _string("name", _pro_names, WITH_TEXT),
        "number-smartcard": _string("number-smartcard", _none),
        "qualification-code": Param("qualification-code", "token", _qualifications),
        "type-smartcard": Param("type-smartcard", "token", _none),
    },
    "PractitionerRole": {
        "_id": Param("_id", "token", lambda d, x: [(None, r.role_id(x))]),
        "_lastUpdated": Param("_lastUpdated", "date", _last_updated),
        "active": Param("active", "token", _active),
        "data-information-system": Param("data-information-system", "token", lambda d, x: [(None, "RPPS")]),
        "data-registration-authority": Param("data-registration-authority", "token", _none),
        "identifier": Param("identifier", "token", lambda d, x: [(r.SYS_RPPS, r.role_identifier(x))]),
        "mailbox-mss": _string("mailbox-mss", lambda d, x: [a for a, _ in d.pro_addresses(x.pro)]
                               if x.spec.get("mailboxes", not x.spec) else []),
        "organization": Param("organization", "reference",
                              lambda d, x: [f"Organization/{r.organization_id(x.org)}"], target="Organization"),
        "practitioner": Param("practitioner", "reference",
                              lambda d, x: [f"Practitioner/{r.practitioner_id(x.pro)}"], target="Practitioner"),
        "role": Param("role", "token", lambda d, x: r.role_codes(x)),
    },
    "HealthcareService": {
        "_id": Param("_id", "token", _none), "_lastUpdated": Param("_lastUpdated", "date", _none),
        "_profile": Param("_profile", "uri", _none), "active": Param("active", "token", _none),
        "characteristic": Param("characteristic", "token", _none),
        "data-information-system": Param("data-information-system", "token", _none),
        "data-registration-authority": Param("data-registration-authority", "token", _none),
        "identifier": Param("identifier", "token", _none),
        "organization": Param("organization", "reference", _none, target="Organization"),
        "service-category": Param("service-category", "token", _none),
        "service-type": Param("service-type", "token", _none),
    },
}
PARAMS = EXTRACT
KINDS = tuple(RESOURCES)
INCLUDES = {kind: spec["searchInclude"] for kind, spec in RESOURCES.items()}
REVINCLUDES = {kind: spec["searchRevInclude"] for kind, spec in RESOURCES.items()}
# The result parameters the documentation serves (advanced_modifying-search-results.md), and _format for JSON.
CONTROL = ("_count", "_total", "_include", "_revinclude", "_elements", "_format", "_pretty")
FORMATS = ("json", "application/json", "application/fhir+json", "application/json+fhir")
PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
ELEMENT = re.compile(r"[a-z][A-Za-z]{0,63}")


# Parsed query -------------------------------------------------------------------------------------
@dataclass
class Criterion:
    param: Param
    modifier: str
    alternatives: list            # OR; parsed per kind
    undeclared: bool = False      # accepted although the CapabilityStatement does not declare it


# (resource, parameter, modifier) that the real server answers although the CapabilityStatement does not
# declare them, with the modifier ignored (see the module's docstring: issue #398, HAPI's StringParam).
UNDECLARED_ACCEPTED = {("Practitioner", "name", "family"), ("Practitioner", "name", "given")}


@dataclass
class Query:
    kind: str
    criteria: list[Criterion] = field(default_factory=list)    # AND
    count: int = DEFAULT_COUNT
    total: str = "accurate"
    include: list[str] = field(default_factory=list)
    revinclude: list[str] = field(default_factory=list)
    elements: list[str] = field(default_factory=list)
    kept: list[tuple[str, str]] = field(default_factory=list)   # what was applied, for the links
    ignored: list[str] = field(default_factory=list)            # unknown, under handling=lenient
    undeclared: list[str] = field(default_factory=list)         # accepted outside the CapabilityStatement


def _fold(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)).casefold()


DATE = re.compile(r"([a-z]{2})?(\d{4}(?:-\d{2}(?:-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?"
                  r"(?:Z|[+-]\d{2}:\d{2})?)?)?)?)")


def _date_range(name: str, text: str) -> tuple[str, datetime, datetime]:
    m = DATE.fullmatch(text)
    if not m:
        raise SearchError("PARAMETER_INVALID", name, f"{name}: {text!r} is not a FHIR date (YYYY, YYYY-MM, "
                          "YYYY-MM-DD or a date-time, after an optional prefix eq, ne, gt, lt, ge, le, sa, eb, ap)")
    prefix, value = m.group(1) or "eq", m.group(2)
    if prefix not in PREFIXES:
        raise SearchError("PARAMETER_INVALID", name, f"{name}: {prefix!r} is not a date prefix; use "
                          f"{', '.join(PREFIXES)}")
    try:
        if len(value) == 4:
            lo = datetime(int(value), 1, 1, tzinfo=UTC)
            hi = datetime(int(value) + 1, 1, 1, tzinfo=UTC)
        elif len(value) == 7:
            y, mo = int(value[:4]), int(value[5:7])
            lo = datetime(y, mo, 1, tzinfo=UTC)
            hi = datetime(y + (mo == 12), mo % 12 + 1, 1, tzinfo=UTC)
        elif len(value) == 10:
            lo = datetime.fromisoformat(value).replace(tzinfo=UTC)
            hi = lo + timedelta(days=1)
        else:
            lo = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if lo.tzinfo is None:            # "15h (GMT)" in the documentation's examples
                lo = lo.replace(tzinfo=UTC)
            hi = lo + (timedelta(seconds=1) if len(value) >= 19 else timedelta(minutes=1))
    except ValueError:
        raise SearchError("PARAMETER_INVALID", name, f"{name}: {value!r} is not a valid date") from None
    return prefix, lo, hi


def _split(value: str) -> list[str]:
    """Commas separate alternatives (OR), `\\,` is a comma inside a value (FHIR R4 search.html#escaping)."""
    parts, cur, i = [], "", 0
    while i < len(value):
        if value[i] == "\\" and i + 1 < len(value):
            cur += value[i + 1]
            i += 2
            continue
        if value[i] == ",":
            parts.append(cur)
            cur = ""
        else:
            cur += value[i]
        i += 1
    parts.append(cur)
    return parts


def _parse_values(p: Param, key: str, value: str) -> list:
    parts = _split(value)
    if len(parts) > MAX_VALUES:
        raise SearchError("PARAMETER_INVALID", key, f"{key}: at most {MAX_VALUES} values separated by commas")
    if any(not v for v in parts):
        raise SearchError("PARAMETER_INVALID", key, f"{key}: an empty value")
    if p.kind == "token":
        out = []
        for v in parts:
            if "|" in v:
                system, code = v.split("|", 1)
                if not system and not code:
                    raise SearchError("PARAMETER_INVALID", key, f"{key}: {v!r} has neither system nor code")
                token = (system or None, code or None, True)     # `|code`: no system; `system|`: any code
            else:
                token = (None, v, False)
            if p.name == "active" and token[1] not in ("true", "false"):
                raise SearchError("PARAMETER_INVALID", key, f"{key}: {v!r} is not true or false")
            out.append(token)
        return out
    if p.kind == "date":
        return [_date_range(key, v) for v in parts]
    if p.kind == "reference":
        references: list[str] = []
        for v in parts:
            tail = v.rstrip("/").split("/")
            if len(tail) >= 2 and tail[-2] == p.target:
                references.append(f"{p.target}/{tail[-1]}")
            elif "/" not in v:
                references.append(f"{p.target}/{v}")
            else:
                raise SearchError("PARAMETER_INVALID", key, f"{key}: {v!r} is not a reference to a {p.target}")
        return references
    return parts


def _criterion(kind: str, key: str, value: str) -> Criterion | None:
    """The criterion, or None for a parameter this resource type does not declare (the caller decides)."""
    name, colon, modifier = key.partition(":")
    p = EXTRACT[kind].get(name)
    if p is None:
        return None
    if (kind, name, modifier) in UNDECLARED_ACCEPTED:
        return Criterion(p, "", _parse_values(p, key, value), undeclared=True)
    if colon and modifier not in p.modifiers or (colon and not modifier):
        raise SearchError("PARAMETER_UNKNOWN", key, f"{key}: the modifier :{modifier} is not served on {name} "
                          f"({p.kind}); modifiers: {', '.join(':' + m for m in p.modifiers if m) or 'none'}")
    return Criterion(p, modifier, _parse_values(p, key, value))


def parse(kind: str, args: Iterable[tuple[str, str]], *, lenient: bool = False) -> Query:
    q = Query(kind)
    seen_control: set[str] = set()
    for key, value in args:
        if key in CONTROL:
            if key in seen_control and key not in ("_include", "_revinclude", "_elements"):
                raise SearchError("PARAMETER_INVALID", key, f"{key} is given twice")
            seen_control.add(key)
            _control(q, key, value)
            if key not in ("_format", "_pretty"):
                q.kept.append((key, value))
            continue
        try:
            c = _criterion(kind, key, value)
        except SearchError as exc:
            if lenient and exc.code == "PARAMETER_UNKNOWN":
                q.ignored.append(key)
                continue
            raise
        if c is None:
            if lenient:
                q.ignored.append(key)
                continue
            served = ", ".join(EXTRACT[kind])
            raise SearchError("PARAMETER_UNKNOWN", key, f"{kind} does not take the search parameter {key}; the "
                              f"Annuaire Santé V2 serves {served} and {', '.join(CONTROL[:5])} (send `Prefer: "
                              "handling=lenient` to have unknown parameters ignored)")
        q.criteria.append(c)
        q.kept.append((key, value))
        if c.undeclared and key not in q.undeclared:
            q.undeclared.append(key)
    return q


def _int(key: str, value: str) -> int:
    if not value.isdigit() or len(value) > 9:
        raise SearchError("PARAMETER_INVALID", key, f"{key}: {value[:20]!r} is not a whole number")
    return int(value)


def _control(q: Query, key: str, value: str) -> None:
    if key == "_count":
        q.count = min(_int(key, value), MAX_COUNT)
    elif key == "_total":
        if value not in ("none", "estimate", "accurate"):
            raise SearchError("PARAMETER_INVALID", key, f"_total: {value!r} is not none, estimate or accurate")
        q.total = value
    elif key in ("_include", "_revinclude"):
        allowed = (INCLUDES if key == "_include" else REVINCLUDES)[q.kind]
        if value not in allowed:
            other = INCLUDES if key == "_revinclude" else REVINCLUDES
            hint = (f" ({value} is declared as {'_include' if key == '_revinclude' else '_revinclude'} there)"
                    if value in other[q.kind] else "")
            raise SearchError("PARAMETER_INVALID", key, f"{key}: {value!r} is not served on {q.kind}: the IG's "
                              f"CapabilityStatement (AsServerDPCapabilityStatement) declares "
                              + (", ".join(allowed) if allowed else "none") + hint)
        (q.include if key == "_include" else q.revinclude).append(value)
    elif key == "_elements":
        names = [n.strip() for n in value.split(",")]
        if not all(ELEMENT.fullmatch(n) for n in names):
            raise SearchError("PARAMETER_INVALID", key, f"_elements: {value[:60]!r} is not a list of element "
                              "names separated by commas")
        q.elements += names
    elif key == "_format":
        if value not in FORMATS:
            raise SearchError("PARAMETER_INVALID", key, f"_format: {value!r}: only JSON is served")
    elif key == "_pretty":
        if value not in ("true", "false"):
            raise SearchError("PARAMETER_INVALID", key, f"_pretty: {value!r} is not true or false")


# Matching -----------------------------------------------------------------------------------------
def rows(d: Directory, kind: str) -> list:
    """The rows a resource type is rendered from, built once per directory."""
    key = ("rows", kind)
    if key not in d.memo:
        if kind == "Practitioner":
            d.memo[key] = list(d.professionals)
        elif kind == "PractitionerRole":
            d.memo[key] = d.roles()
        elif kind == "Organization":
            d.memo[key] = d.organizations()
        else:
            d.memo[key] = []
    return d.memo[key]


def _index(d: Directory, kind: str, p: Param) -> tuple[dict, dict]:
    """(code or reference -> [(row number, system)], system -> {row numbers}), built once per directory."""
    key = ("index", kind, p.name)
    if key not in d.memo:
        by_code: dict = {}
        by_system: dict = {}
        for i, row in enumerate(rows(d, kind)):
            for value in p.values(d, row):
                system, code = value if p.kind == "token" else (None, value)
                by_code.setdefault(code, []).append((i, system))
                by_system.setdefault(system, set()).add(i)
        d.memo[key] = (by_code, by_system)
    return d.memo[key]


def _indexed(d: Directory, kind: str, c: Criterion) -> set[int]:
    by_code, by_system = _index(d, kind, c.param)
    hits: set[int] = set()
    for alt in c.alternatives:
        if c.param.kind == "reference":
            hits.update(i for i, _ in by_code.get(alt, ()))
            continue
        system, code, explicit = alt
        if code is None:                                   # `system|`: any code of the system
            hits |= by_system.get(system, set())
        elif not explicit:                                 # `code`: any system
            hits.update(i for i, _ in by_code.get(code, ()))
        else:                                              # `system|code`, `|code`
            hits.update(i for i, s in by_code.get(code, ()) if s == system)
    return hits


def _folded(d: Directory, kind: str, p: Param) -> list[tuple[list[str], list[str]]]:
    key = ("folded", kind, p.name)
    if key not in d.memo:
        d.memo[key] = [(vals, [_fold(v) for v in vals]) for vals in (p.values(d, row) for row in rows(d, kind))]
    return d.memo[key]


def _prefixed(d: Directory, kind: str, c: Criterion) -> set[int]:
    """The rows with a value starting with one of the criterion's alternatives (the default string search, case
    and accents aside), by bisection in the folded values sorted once per directory: a search by family name
    over 100,000 practitioners scanned them all (200 ms here; issue 21, point 6)."""
    key = ("prefix", kind, c.param.name)
    if key not in d.memo:
        pairs = sorted((v, i) for i, (_, folded) in enumerate(_folded(d, kind, c.param)) for v in folded)
        d.memo[key] = ([v for v, _ in pairs], [i for _, i in pairs])
    values, numbers = d.memo[key]
    found: set[int] = set()
    for alt in {_fold(a) for a in c.alternatives}:
        found.update(numbers[bisect.bisect_left(values, alt):bisect.bisect_left(values, alt + "\U0010ffff")])
    return found


def _contained(d: Directory, kind: str, c: Criterion) -> set[int] | None:
    """The rows with a value holding one of the alternatives (`:contains`), by str.find over the folded values
    joined once per directory, NUL-separated (a row per match instead of a Python test per row: 80 -> a few
    ms over 100,000 practitioners). None when a value holds a NUL itself (then the rows are tested one by one)."""
    key = ("joined", kind, c.param.name)
    if key not in d.memo:
        parts: list[str] = []
        starts: list[int] = []
        owners: list[int] = []
        at = 0
        for i, (_, folded) in enumerate(_folded(d, kind, c.param)):
            for v in folded:
                parts.append(v)
                starts.append(at)
                owners.append(i)
                at += len(v) + 1
        joined = "\0".join(parts)
        d.memo[key] = None if any("\0" in v for v in parts) else (joined, starts, owners)
    memo = d.memo[key]
    if memo is None:
        return None
    joined, starts, owners = memo
    found: set[int] = set()
    for alt in {_fold(a) for a in c.alternatives}:
        if not alt:
            found.update(owners)
            continue
        at = joined.find(alt)
        while at != -1:
            k = bisect.bisect_right(starts, at) - 1
            found.add(owners[k])
            at = joined.find(alt, starts[k + 1] if k + 1 < len(starts) else len(joined))
    return found


def _string_matcher(c: Criterion) -> Callable[[list[str], list[str]], bool]:
    """A test of one row's (raw, folded) values, the alternatives folded once per query."""
    if c.modifier == "exact":   # case and accents count
        exact = set(c.alternatives)
        return lambda raw, folded: any(v in exact for v in raw)
    alternatives = [_fold(a) for a in c.alternatives]
    if c.modifier == "contains":
        return lambda raw, folded: any(alt in v for v in folded for alt in alternatives)
    if c.modifier == "text":    # any word starts with the text
        return lambda raw, folded: any(w.startswith(alt) for v in folded for w in re.split(r"[\s'-]+", v)
                                       for alt in alternatives)
    starts = tuple(alternatives)
    return lambda raw, folded: any(v.startswith(starts) for v in folded)


def _date_matches(c: Criterion, values: list[str], now: datetime) -> bool:
    for value in values:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
        for prefix, lo, hi in c.alternatives:
            if prefix == "ap":    # within 10% of the distance to now (FHIR R4 search.html#prefix)
                slack = abs(now - lo) * 0.1
                ok = lo - slack <= t < hi + slack
            else:
                ok = {"eq": lo <= t < hi, "ne": not lo <= t < hi, "gt": t >= hi, "ge": t >= lo, "lt": t < lo,
                      "le": t < hi, "sa": t >= hi, "eb": t < lo}[prefix]
            if ok:
                return True
    return False


def search(d: Directory, q: Query, now: datetime | None = None) -> list:
    """The matching rows, in the directory's order."""
    all_rows = rows(d, q.kind)
    selected: set[int] | None = None
    rest = []
    for c in q.criteria:
        if c.param.kind in ("token", "reference"):
            hits = _indexed(d, q.kind, c)
            selected = hits if selected is None else selected & hits
        else:
            rest.append(c)
    numbers: Iterable[int] = sorted(selected) if selected is not None else range(len(all_rows))
    now = now or datetime.now(UTC)
    for c in rest:
        if c.param.kind == "string" and c.modifier not in ("exact", "contains", "text"):
            hits = _prefixed(d, q.kind, c)
            numbers = sorted(hits) if isinstance(numbers, range) else [i for i in numbers if i in hits]
        elif c.param.kind == "string" and c.modifier == "contains" and \
                (contained := _contained(d, q.kind, c)) is not None:
            numbers = sorted(contained) if isinstance(numbers, range) else [i for i in numbers if i in contained]
        elif c.param.kind == "string":
            folded = _folded(d, q.kind, c.param)
            matches = _string_matcher(c)
            numbers = [i for i in numbers if matches(*folded[i])]
        elif c.param.kind == "date":
            numbers = [i for i in numbers if _date_matches(c, c.param.values(d, all_rows[i]), now)]
        else:   # uri (_profile on HealthcareService): exact
            numbers = [i for i in numbers if any(v in c.alternatives for v in c.param.values(d, all_rows[i]))]
    return [all_rows[i] for i in numbers]


def referenced(d: Directory, kind: str, name: str, page: list) -> list[tuple[str, Any]]:
    """_include: the rows that the page's `name` references point at."""
    p = EXTRACT[kind][name]
    found = []
    index = d.by_ref()
    for row in page:
        for ref in p.values(d, row):
            if ref in index:
                found.append((ref.split("/")[0], index[ref]))
    return found


def referencing(d: Directory, source: str, name: str, targets: list[str]) -> list[tuple[str, Any]]:
    """_revinclude: the `source` rows whose `name` reference points at one of `targets` ("Type/id")."""
    by_code, _ = _index(d, source, EXTRACT[source][name])
    numbers = sorted({i for t in targets for i, _ in by_code.get(t, ())})
    all_rows = rows(d, source)
    return [(source, all_rows[i]) for i in numbers]
