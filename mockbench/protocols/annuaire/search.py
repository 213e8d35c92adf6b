"""FHIR search over the directory: the parameters each resource type serves, parsing a query string into
criteria (AND by repeating a parameter, OR with commas, modifiers, chains, date prefixes) and matching.

A parameter the door does not serve, a modifier it does not know and a malformed value are SearchErrors
naming the parameter; the door renders them as a 400 OperationOutcome. Nothing here knows HTTP.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from . import resources as r
from .resources import Directory

MAX_COUNT = 1000          # the real API caps a page too; asking more is an error, not a silent cut
DEFAULT_COUNT = 50
NOT_SEARCHABLE = {
    "address": "the street is not searchable in the Annuaire Santé: search by address-postalcode or "
               "address-city",
    "address-line": "the street is not searchable in the Annuaire Santé: search by address-postalcode or "
                    "address-city",
}


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
    kind: str                          # token | string | reference | date
    doc: str
    values: Callable[[Directory, Any], list]
    target: str = ""                   # reference: the type it points to (chains follow it)


# Value extractors ---------------------------------------------------------------------------------
def _pro_identifiers(_: Directory, p) -> list:
    out = [(r.SYS_IDNPS, p.idnps)]
    if p.rpps:
        out.append((r.SYS_RPPS, p.rpps))
    if p.adeli:
        out.append((r.SYS_ADELI, p.adeli))
    return out


def _org_identifiers(_: Directory, s) -> list:
    out = [(r.SYS_FINESS, s.finess), (r.SYS_IDNST, s.idnst)]
    if s.finess_ej:
        out.append((r.SYS_FINESS, s.finess_ej))
    if s.siret:
        out.append((r.SYS_SIRET, s.siret))
    return out


def _active(*_: Any) -> list:
    return [(None, "true")]


def _last_updated(d: Directory, _: Any) -> list:
    return [d.created]


def _role_codes(_: Directory, row) -> list:
    p, _s = row
    return [(r.PROFESSION, p.profession), (r.CATEGORY, "C")]


COMMON = {
    "_lastUpdated": Param("_lastUpdated", "date", "when the resource last changed (the scenario's loading "
                          "time); prefixes eq, gt, ge, lt, le", _last_updated),
}

PARAMS: dict[str, dict[str, Param]] = {
    "Practitioner": {
        "_id": Param("_id", "token", "the resource id (the IDNPS)", lambda d, p: [(None, r.practitioner_id(p))]),
        "identifier": Param("identifier", "token", "IDNPS (urn:oid:1.2.250.1.71.4.2.1) or RPPS (http://rpps.fr), "
                            "as system|value or value", _pro_identifiers),
        "name": Param("name", "string", "family or given name; :exact, :contains",
                      lambda d, p: [p.family_name, p.given_name, f"{p.given_name} {p.family_name}"]),
        "family": Param("family", "string", "family name; :exact, :contains", lambda d, p: [p.family_name]),
        "given": Param("given", "string", "given name; :exact, :contains", lambda d, p: [p.given_name]),
        "mailbox-mss": Param("mailbox-mss", "string", "an MSSanté address of the professional; :exact, "
                             ":contains", lambda d, p: [a for a, _ in d.pro_addresses(p)]),
        "active": Param("active", "token", "true or false", _active),
        **COMMON,
    },
    "PractitionerRole": {
        "_id": Param("_id", "token", "the resource id ({IDNPS}-{IDNST})",
                     lambda d, row: [(None, r.role_id(*row))]),
        "role": Param("role", "token", "profession (TRE-G15) or category (TRE-R09), as system|code or code",
                      _role_codes),
        "specialty": Param("specialty", "token", "specialty (TRE-R38, e.g. SM26), as system|code or code",
                           lambda d, row: [(r.SPECIALTY, row[0].specialty)] if row[0].specialty else []),
        "practitioner": Param("practitioner", "reference", "the Practitioner (id or Practitioner/id); chains: "
                              "practitioner.identifier, practitioner.name...",
                              lambda d, row: [f"Practitioner/{r.practitioner_id(row[0])}"], "Practitioner"),
        "organization": Param("organization", "reference", "the Organization (id or Organization/id); chains: "
                              "organization.name, organization.address-postalcode, organization.address-city...",
                              lambda d, row: [f"Organization/{r.organization_id(row[1])}"], "Organization"),
        "mailbox-mss": Param("mailbox-mss", "string", "an MSSanté address of the professional; :exact, "
                             ":contains", lambda d, row: [a for a, _ in d.pro_addresses(row[0])]),
        "active": Param("active", "token", "true or false", _active),
        **COMMON,
    },
    "Organization": {
        "_id": Param("_id", "token", "the resource id (the IDNST)", lambda d, s: [(None, r.organization_id(s))]),
        "identifier": Param("identifier", "token", "FINESS (http://finess.sante.gouv.fr), IDNST, SIRET "
                            "(https://sirene.fr), as system|value or value", _org_identifiers),
        "name": Param("name", "string", "the organisation's name; :exact, :contains", lambda d, s: [s.name]),
        "address-postalcode": Param("address-postalcode", "string", "postal code (starts with; :exact)",
                                    lambda d, s: [(s.address or {}).get("postal_code", "")]),
        "address-city": Param("address-city", "string", "city; :exact, :contains",
                              lambda d, s: [(s.address or {}).get("city", "")]),
        "type": Param("type", "token", "sector of activity (TRE-R02: SA01, SA07...), as system|code or code",
                      lambda d, s: [(r.SECTOR, r.org_type(s))]),
        "mailbox-mss": Param("mailbox-mss", "string", "an MSSanté address of the organisation; :exact, "
                             ":contains", lambda d, s: [a for a, _ in d.org_addresses(s)]),
        "active": Param("active", "token", "true or false", _active),
        **COMMON,
    },
    "HealthcareService": {
        "_id": Param("_id", "token", "the resource id (hs-{IDNST})", lambda d, s: [(None, r.service_id(s))]),
        "organization": Param("organization", "reference", "the providing Organization (id or Organization/id)",
                              lambda d, s: [f"Organization/{r.organization_id(s)}"], "Organization"),
        "name": Param("name", "string", "the service's name; :exact, :contains", lambda d, s: [s.name]),
        "active": Param("active", "token", "true or false", _active),
        **COMMON,
    },
}

# _include / _revinclude: "Source:param" -> the reference parameter on Source.
INCLUDES = {
    "PractitionerRole": ("PractitionerRole:practitioner", "PractitionerRole:organization"),
    "HealthcareService": ("HealthcareService:organization",),
}
REVINCLUDES = {
    "Practitioner": ("PractitionerRole:practitioner",),
    "Organization": ("PractitionerRole:organization", "HealthcareService:organization"),
}
MODIFIERS = {"string": ("", "exact", "contains"), "token": ("",), "reference": ("",), "date": ("",)}
CONTROL = ("_count", "_offset", "_total", "_include", "_revinclude", "_format", "_pretty")
FORMATS = ("json", "application/json", "application/fhir+json", "application/json+fhir")


# Parsed query -------------------------------------------------------------------------------------
@dataclass
class Criterion:
    param: Param
    modifier: str
    alternatives: list            # OR; parsed per kind
    chain: tuple[str, Criterion] | None = None   # (target type, criterion on it)


@dataclass
class Query:
    kind: str
    criteria: list[Criterion] = field(default_factory=list)    # AND
    count: int = DEFAULT_COUNT
    offset: int = 0
    total: str = "accurate"
    include: list[str] = field(default_factory=list)
    revinclude: list[str] = field(default_factory=list)
    kept: list[tuple[str, str]] = field(default_factory=list)   # the parameters, for paging links


def _fold(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)).casefold()


DATE = re.compile(r"(eq|ne|gt|ge|lt|le|sa|eb|ap)?(\d{4}(?:-\d{2}(?:-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?"
                  r"(?:Z|[+-]\d{2}:\d{2})?)?)?)?)")


def _date_range(name: str, text: str) -> tuple[str, datetime, datetime]:
    m = DATE.fullmatch(text)
    if not m:
        raise SearchError("PARAMETER_INVALID", name, f"{name}: {text!r} is not a FHIR date (YYYY, YYYY-MM, "
                          "YYYY-MM-DD or an instant, after a prefix eq, gt, ge, lt, le)")
    prefix, value = m.group(1) or "eq", m.group(2)
    if prefix not in ("eq", "gt", "ge", "lt", "le"):
        raise SearchError("PARAMETER_INVALID", name, f"{name}: the prefix {prefix} is not served; use eq, gt, ge, "
                          "lt or le")
    try:
        if len(value) == 4:
            lo = datetime(int(value), 1, 1, tzinfo=UTC)
            hi = datetime(int(value) + 1, 1, 1, tzinfo=UTC)
        elif len(value) == 7:
            y, mo = int(value[:4]), int(value[5:7])
            lo = datetime(y, mo, 1, tzinfo=UTC)
            hi = datetime(y + mo // 12, mo % 12 + 1, 1, tzinfo=UTC)
        elif len(value) == 10:
            lo = datetime.fromisoformat(value).replace(tzinfo=UTC)
            hi = lo + timedelta(days=1)
        else:
            lo = datetime.fromisoformat(value.replace("Z", "+00:00"))
            lo = lo if lo.tzinfo else lo.replace(tzinfo=UTC)
            hi = lo + timedelta(seconds=1 if "." not in value else 0.001)
    except ValueError:
        raise SearchError("PARAMETER_INVALID", name, f"{name}: {text!r} is not a valid date") from None
    return prefix, lo, hi


def _parse_values(p: Param, key: str, text: str) -> list:
    if text == "":
        raise SearchError("PARAMETER_INVALID", key, f"{key}: an empty value; give a value or leave the "
                          "parameter out")
    parts = [v.replace("\\,", ",") for v in re.split(r"(?<!\\),", text)]
    if any(v == "" for v in parts):
        raise SearchError("PARAMETER_INVALID", key, f"{key}: {text!r} holds an empty alternative")
    if p.kind == "token":
        out = []
        for v in parts:
            system, bar, code = v.partition("|")
            token = (system or None, code) if bar else (Ellipsis, v)   # Ellipsis: any system
            if p.name == "active" and token[1] not in ("true", "false"):
                raise SearchError("PARAMETER_INVALID", key, f"{key}: {v!r} is not true or false")
            out.append(token)
        return out
    if p.kind == "date":
        return [_date_range(key, v) for v in parts]
    if p.kind == "reference":
        out = []
        for v in parts:
            tail = v.rstrip("/").split("/")
            if len(tail) >= 2 and tail[-2] == p.target:
                out.append(f"{p.target}/{tail[-1]}")
            elif "/" not in v:
                out.append(f"{p.target}/{v}")
            else:
                raise SearchError("PARAMETER_INVALID", key, f"{key}: {v!r} is not a reference to a {p.target}")
        return out
    return parts


def _criterion(kind: str, key: str, value: str) -> Criterion:
    name, _, modifier = key.partition(":")
    if name in NOT_SEARCHABLE and kind == "Organization":
        raise SearchError("PARAMETER_NOT_SEARCHABLE", name, NOT_SEARCHABLE[name])
    head, dot, rest = name.partition(".")
    params = PARAMS[kind]
    p = params.get(head)
    if p is None:
        raise SearchError("PARAMETER_UNKNOWN", name, f"{kind} does not take the search parameter {name}; it "
                          f"takes {', '.join(params)} and {', '.join(CONTROL[:5])}")
    if dot:
        if p.kind != "reference" or modifier:
            raise SearchError("PARAMETER_UNKNOWN", key, f"{key}: only a reference parameter can be chained "
                              f"({', '.join(n for n, q in params.items() if q.kind == 'reference')})")
        inner = _criterion(p.target, rest, value)
        return Criterion(p, "", [], chain=(p.target, inner))
    if modifier not in MODIFIERS[p.kind]:
        raise SearchError("PARAMETER_UNKNOWN", key, f"{key}: the modifier :{modifier} is not served on "
                          f"{name} ({p.kind}); modifiers: {', '.join(':' + m for m in MODIFIERS[p.kind] if m) or 'none'}")
    return Criterion(p, modifier, _parse_values(p, key, value))


def parse(kind: str, args: Iterable[tuple[str, str]]) -> Query:
    q = Query(kind)
    seen_control: set[str] = set()
    for key, value in args:
        if key in CONTROL:
            if key in seen_control and key not in ("_include", "_revinclude"):
                raise SearchError("PARAMETER_INVALID", key, f"{key} is given twice")
            seen_control.add(key)
            _control(q, key, value)
            if key not in ("_offset", "_format", "_pretty"):
                q.kept.append((key, value))
            continue
        q.criteria.append(_criterion(kind, key, value))
        q.kept.append((key, value))
    return q


def _int(key: str, value: str, maximum: int | None = None) -> int:
    if not value.isdigit():
        raise SearchError("PARAMETER_INVALID", key, f"{key}: {value!r} is not a whole number")
    n = int(value)
    if maximum is not None and n > maximum:
        raise SearchError("PARAMETER_INVALID", key, f"{key}: {n} is above the maximum {maximum}")
    return n


def _control(q: Query, key: str, value: str) -> None:
    if key == "_count":
        q.count = _int(key, value, MAX_COUNT)
    elif key == "_offset":
        q.offset = _int(key, value)
    elif key == "_total":
        if value not in ("none", "estimate", "accurate"):
            raise SearchError("PARAMETER_INVALID", key, f"_total: {value!r} is not none, estimate or accurate")
        q.total = value
    elif key == "_include":
        allowed = INCLUDES.get(q.kind, ())
        if value.replace(":iterate", "") not in allowed:
            raise SearchError("PARAMETER_INVALID", key, f"_include: {value!r} is not served on {q.kind}"
                              + (f"; served: {', '.join(allowed)}" if allowed else ""))
        q.include.append(value.replace(":iterate", ""))
    elif key == "_revinclude":
        allowed = REVINCLUDES.get(q.kind, ())
        if value not in allowed:
            raise SearchError("PARAMETER_INVALID", key, f"_revinclude: {value!r} is not served on {q.kind}"
                              + (f"; served: {', '.join(allowed)}" if allowed else ""))
        q.revinclude.append(value)
    elif key == "_format":
        if value not in FORMATS:
            raise SearchError("PARAMETER_INVALID", key, f"_format: {value!r}: only JSON is served")


# Matching -----------------------------------------------------------------------------------------
def rows(d: Directory, kind: str) -> list:
    """The rows a resource type is rendered from, built once per directory."""
    key = ("rows", kind)
    if key not in d.memo:
        if kind == "Practitioner":
            d.memo[key] = list(d.professionals)
        elif kind == "PractitionerRole":
            d.memo[key] = d.roles()
        else:
            d.memo[key] = list(d.structures.values())
    return d.memo[key]


def _index(d: Directory, kind: str, p: Param) -> dict:
    """code (token) or reference -> [(row number, system)], built once per directory and parameter."""
    key = ("index", kind, p.name)
    if key not in d.memo:
        index: dict = {}
        for i, row in enumerate(rows(d, kind)):
            for value in p.values(d, row):
                system, code = value if p.kind == "token" else (None, value)
                index.setdefault(code, []).append((i, system))
        d.memo[key] = index
    return d.memo[key]


def _indexed(d: Directory, kind: str, c: Criterion) -> set[int]:
    index = _index(d, kind, c.param)
    hits: set[int] = set()
    for alt in c.alternatives:
        system, code = alt if c.param.kind == "token" else (Ellipsis, alt)
        hits.update(i for i, s in index.get(code, ()) if system is Ellipsis or system == s)
    return hits


def _match_one(d: Directory, c: Criterion, row: Any) -> bool:
    if c.chain is not None:
        target, inner = c.chain
        return any(_target_matches(d, target, ref, inner) for ref in c.param.values(d, row))
    values = c.param.values(d, row)
    kind = c.param.kind
    if kind == "token":
        return any(code == v_code and (system is Ellipsis or system == v_system or
                                       (system is None and v_system is None))
                   for system, code in c.alternatives for v_system, v_code in values)
    if kind == "string":
        if c.modifier == "exact":   # case and accents count
            return any(alt == v for alt in c.alternatives for v in values)
        folded = [_fold(v) for v in values if v]
        alternatives = [_fold(a) for a in c.alternatives]
        if c.modifier == "contains":
            return any(alt in v for alt in alternatives for v in folded)
        return any(v.startswith(alt) for alt in alternatives for v in folded)
    if kind == "reference":
        return any(v in c.alternatives for v in values)
    if kind == "date":
        for value in values:
            t = datetime.fromisoformat(value.replace("Z", "+00:00"))
            for prefix, lo, hi in c.alternatives:
                if {"eq": lo <= t < hi, "gt": t >= hi, "ge": t >= lo, "lt": t < lo, "le": t < hi}[prefix]:
                    return True
        return False
    return False


def _target_matches(d: Directory, target: str, ref: str, c: Criterion) -> bool:
    row = d.by_ref().get(ref)
    return row is not None and _match_one(d, c, row)


def search(d: Directory, q: Query) -> list:
    """The matching rows, in the directory's order. Token and reference criteria go through an index; the
    others (strings, dates, chains) are checked row by row on what the indexes left."""
    all_rows = rows(d, q.kind)
    selected: set[int] | None = None
    rest = []
    for c in q.criteria:
        if c.chain is None and c.param.kind in ("token", "reference"):
            hits = _indexed(d, q.kind, c)
            selected = hits if selected is None else selected & hits
        else:
            rest.append(c)
    numbers = sorted(selected) if selected is not None else range(len(all_rows))
    return [all_rows[i] for i in numbers if all(_match_one(d, c, all_rows[i]) for c in rest)]
