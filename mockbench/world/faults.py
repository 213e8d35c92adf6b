"""Faults on demand (issue 23): rules that make a door fail the way the real service fails, scripted,
seeded and journaled.

A rule says which door, which exchanges (the same matching as a scenario step: operation, patient, actor,
document), what happens (`kind`, with its own parameters), how many times (`times`) or how often
(`probability`, drawn from the rule's `seed`: the same seed gives the same sequence) and from when to when on
the virtual clock (`from`, `until`). The world owns the rules and decides, at each door's entry point, whether
one applies (`decide`); the door renders the fault on its own wire. The rules live in the store (meta
`faults:*`), so they survive a restart, are emptied by a reset and travel with snapshots.

A fault that refuses applies nothing: the door asks before it changes the world, and journals the exchange
with `fault` set to the rule's id (and `verdict` refused or error), so that steps and reports tell an injected
outcome from a genuine one. `delay` and `trickle` only slow the answer: the exchange is applied as usual.
"""

from __future__ import annotations

import builtins
import random
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import errors
from .clock import parse_duration, parse_time
from .store import Tx

if TYPE_CHECKING:
    from .world import World

MAX_RULES = 64            # rules held at once
MAX_FIRED_LOG = 500       # the firings kept for the report (the oldest dropped first)
MAX_SECONDS = 120.0       # the longest delay, hold or trickle a rule may ask for
MAX_HELD = 8              # HTTP answers held by a fault at once (delay, timeout, trickle): the HTTP port has 32
                          # workers, so that a rule never stops the bench serving its other doors
MAX_TEXT = 500
RULES = "faults:rules"
STATE = "faults:state"
FIRED = "faults:fired"

NETWORK = ("delay", "reset", "timeout", "trickle")
# door -> the kinds it renders (NETWORK on every door)
KINDS: dict[str, tuple[str, ...]] = {
    "dmp": (*NETWORK, "soap_fault", "http_503"),
    "pfi": (*NETWORK, "ack_ar", "no_ack", "zam_error", "zam_delay", "zam_duplicate"),
    "mss": (*NETWORK, "smtp_reply", "imap_bye", "imap_no", "mdn_delay"),
    "oidc": (*NETWORK, "temporarily_unavailable", "http_503"),
    "annuaire": (*NETWORK, "http_429", "http_503"),
}
SMTP_CODES = (421, 451, 452)
SMTP_STAGES = ("connect", "MAIL", "RCPT", "DATA")
# Kinds whose door applies nothing of the exchange (what the client sees is a refusal or no answer at all).
REFUSING = {"reset", "timeout", "soap_fault", "http_503", "ack_ar", "no_ack", "smtp_reply", "imap_bye",
            "imap_no", "temporarily_unavailable", "http_429"}
MATCH_FIELDS = ("operation", "patient", "actor", "document")
COMMON = ("id", "door", "kind", "match", "times", "probability", "seed", "from", "until", "enabled", "say")


def _seconds(default: float, low: float = 0.0):
    def check(value: Any) -> float:
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            raise ValueError(str(exc)) from None
        if not low <= seconds <= MAX_SECONDS:
            raise ValueError(f"must be between {low:g} and {MAX_SECONDS:g} seconds")
        return seconds
    return check, default


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty text")
    if len(value) > MAX_TEXT:
        raise ValueError(f"must be at most {MAX_TEXT} characters")
    return value


def _token(value: Any) -> str:
    """A DMP error code as the DMP door answers it (IHE's XDS... or DMP...), ERR-5 of a ZAM^Z01."""
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_.]{0,63}", value):
        raise ValueError("must be a DMP error code such as XDSRegistryNotAvailable or DMPAuthorizationWithdrawn")
    return value


def _choice(*choices: Any):
    def check(value: Any) -> Any:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(str(c) for c in choices)}")
        return value
    return check


def _retry_after(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 86400:
        raise ValueError("must be a whole number of seconds between 0 and 86400")
    return value


# kind -> {parameter: (check, default)}; a default of None means optional without a value
PARAMS: dict[str, dict[str, tuple[Any, Any]]] = {
    "delay": {"seconds": _seconds(5.0, 0.001)},
    "timeout": {"seconds": _seconds(30.0, 0.001)},
    "trickle": {"seconds": _seconds(10.0, 0.001)},
    "reset": {},
    "soap_fault": {"subcode": (_text, "DMPServiceUnavailable"),
                   "reason": (_text, "the DMP is temporarily unavailable; send the request again later")},
    "http_503": {"retry_after": (_retry_after, None)},
    "http_429": {"retry_after": (_retry_after, 10)},
    "temporarily_unavailable": {"description": (_text, "the server is temporarily unavailable; try again later")},
    "ack_ar": {"error": (_choice("100", "101", "102", "103", "200", "201", "202", "203", "204", "205", "206",
                                 "207"), "207"),
               "text": (_text, "the PFI cannot take the message now: send it again later")},
    "no_ack": {},
    "zam_error": {"code": (_token, "XDSRegistryNotAvailable"),
                  "text": (_text, "the DMP could not be reached: the document was not fed")},
    "zam_delay": {"seconds": _seconds(60.0, 0.001)},
    "zam_duplicate": {},
    "smtp_reply": {"code": (_choice(*SMTP_CODES), 451), "stage": (_choice(*SMTP_STAGES), "RCPT"),
                   "text": (_text, None)},
    "imap_bye": {"text": (_text, "server shutting down")},
    "imap_no": {"text": (_text, "[UNAVAILABLE] try again later")},
    "mdn_delay": {"seconds": _seconds(60.0, 0.001)},
}


class FaultRuleInvalid(errors.InvalidRequest):
    """A malformed rule: `field` names the field at fault (`match.operation`, `seconds`...)."""

    code = "FAULT_RULE_INVALID"
    message = "the fault rule is not valid"

    def __init__(self, field: str = "(rule)", message: str = "the fault rule is not valid") -> None:
        super().__init__(f"{field}: {message}")
        self.field = field

    def as_dict(self) -> dict:
        return {**super().as_dict(), "field": self.field}


class TooManyFaultRules(errors.InvalidRequest):
    code = "FAULT_RULES_TOO_MANY"
    message = f"at most {MAX_RULES} fault rules at once"


class UnknownFaultRule(errors.NotFound):
    code = "FAULT_RULE_UNKNOWN"
    message = "no fault rule has that id"


@dataclass(frozen=True)
class Fired:
    """A rule that applies to this exchange: what the door renders."""

    rule: str
    door: str
    kind: str
    params: dict

    @property
    def refusing(self) -> bool:
        return self.kind in REFUSING

    def get(self, name: str) -> Any:
        return self.params.get(name)


def parse_rule(data: Any, *, now: float, index: int | None = None) -> dict:
    """A rule as given (control API JSON, scenario YAML) -> the rule as stored; FaultRuleInvalid names the
    first field at fault. `from` and `until` are `+30s` (from `now`, the virtual clock), or an ISO time."""
    if not isinstance(data, dict):
        raise FaultRuleInvalid("(rule)", "a rule is a mapping of fields (door, kind, ...)")
    door = data.get("door")
    if door not in KINDS:
        raise FaultRuleInvalid("door", f"{door!r} is not a door; doors: {', '.join(KINDS)}")
    kind = data.get("kind")
    if kind not in KINDS[door]:
        raise FaultRuleInvalid("kind", f"{kind!r} is not a fault of the {door} door; its faults: "
                               f"{', '.join(KINDS[door])}")
    params = PARAMS[kind]
    for key in data:
        if key not in COMMON and key not in params:
            known = ", ".join([*COMMON, *params])
            raise FaultRuleInvalid(key, f"unknown field for a {kind} fault; known fields: {known}")
    rule: dict[str, Any] = {"id": data.get("id") or f"fault-{index if index is not None else 1}",
                            "door": door, "kind": kind}
    if not isinstance(rule["id"], str) or not rule["id"].replace("-", "").replace("_", "").isalnum() \
            or len(rule["id"]) > 64:
        raise FaultRuleInvalid("id", "must be letters, digits, - and _ (at most 64)")
    match = data.get("match") or {}
    if not isinstance(match, dict):
        raise FaultRuleInvalid("match", "must be a mapping of operation, patient, actor, document")
    for key, value in match.items():
        if key not in MATCH_FIELDS:
            raise FaultRuleInvalid(f"match.{key}", f"unknown field; known fields: {', '.join(MATCH_FIELDS)}")
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(v, str) and v for v in values) or len(values) > 32:
            raise FaultRuleInvalid(f"match.{key}", "must be a text or a list of texts")
    rule["match"] = {k: (v if isinstance(v, list) else [v]) for k, v in match.items()}
    for name, (check, default) in params.items():
        if name in data:
            try:
                rule[name] = check(data[name])
            except ValueError as exc:
                raise FaultRuleInvalid(name, str(exc)) from None
        elif default is not None:
            rule[name] = default
    if kind == "smtp_reply" and rule["stage"] == "connect" and rule["code"] != 421:
        # RFC 5321, 3.1 and 4.2.3: the greeting is 220 or 554; only 421 may come at any time
        raise FaultRuleInvalid("code", "at the connect stage the reply is 421 (RFC 5321, 3.1 and 4.2.3)")
    times = data.get("times")
    if times is not None and (isinstance(times, bool) or not isinstance(times, int) or not 1 <= times <= 1_000_000):
        raise FaultRuleInvalid("times", "must be a whole number from 1 (absent: every matching exchange)")
    rule["times"] = times
    probability = data.get("probability", 1.0)
    if isinstance(probability, bool) or not isinstance(probability, int | float) or not 0 < probability <= 1:
        raise FaultRuleInvalid("probability", "must be a number above 0 and at most 1")
    rule["probability"] = float(probability)
    seed = data.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise FaultRuleInvalid("seed", "must be a whole number")
    rule["seed"] = seed
    for name in ("from", "until"):
        value = data.get(name)
        rule[name] = None if value is None else _when(name, value, now)
    if rule["from"] is not None and rule["until"] is not None and rule["until"] <= rule["from"]:
        raise FaultRuleInvalid("until", "must come after from")
    enabled = data.get("enabled", True)
    if not isinstance(enabled, bool):
        raise FaultRuleInvalid("enabled", "must be true or false")
    rule["enabled"] = enabled
    if data.get("say") is not None:
        try:
            rule["say"] = _text(data["say"])
        except ValueError as exc:
            raise FaultRuleInvalid("say", str(exc)) from None
    return rule


def _when(name: str, value: Any, now: float) -> float:
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return now + float(value)
        text = str(value)
        if text.startswith("+"):
            return now + parse_duration(text[1:])
        return parse_time(text).timestamp()
    except (ValueError, TypeError):
        raise FaultRuleInvalid(name, f"{value!r} is not `+30s` (from now, on the virtual clock) or an ISO time") \
            from None


class Faults:
    """The world's fault rules. Every method takes the open transaction: a rule set, a firing counted and the
    exchange it changed are one commit."""

    def __init__(self, world: World) -> None:
        self.world = world
        # Not world state: a bound on what the HTTP doors hold at once in this process.
        self._held = threading.BoundedSemaphore(MAX_HELD)

    # The rules ----------------------------------------------------------------------------------
    def rules(self, tx: Tx) -> list[dict]:
        rules = tx.meta_get(RULES, [])
        state = tx.meta_get(STATE, {})
        return [{**r, **self._status(r, state.get(r["id"], {}))} for r in rules]

    def _status(self, rule: dict, state: dict) -> dict:
        now = self.world.clock.timestamp()
        fired = state.get("fired", 0)
        active = rule["enabled"] and (rule["times"] is None or fired < rule["times"]) \
            and (rule["from"] is None or now >= rule["from"]) and (rule["until"] is None or now < rule["until"])
        return {"seen": state.get("seen", 0), "fired": fired, "active": active}

    def rule(self, tx: Tx, rule_id: str) -> dict:
        for r in self.rules(tx):
            if r["id"] == rule_id:
                return r
        raise UnknownFaultRule(f"no fault rule {rule_id}")

    def set(self, tx: Tx, data: Any, *, cause: str = "control") -> dict:
        """Add a rule, or replace the one with the same id (its counters start again)."""
        rules = tx.meta_get(RULES, [])
        used = {r["id"] for r in rules}
        index = next(i for i in range(1, MAX_RULES + 2) if f"fault-{i}" not in used)
        rule = parse_rule(data, now=self.world.clock.timestamp(), index=index)
        kept = [r for r in rules if r["id"] != rule["id"]]
        if len(kept) >= MAX_RULES:
            raise TooManyFaultRules(f"at most {MAX_RULES} fault rules at once; delete one first")
        kept.append(rule)
        tx.meta_set(RULES, kept)
        state = tx.meta_get(STATE, {})
        state.pop(rule["id"], None)
        tx.meta_set(STATE, state)
        self.world.journal.append(tx, "control", "fault-set", actor=cause, ref=rule["id"],
                                  raw=f"{rule['id']}: {rule['door']} {rule['kind']}")
        return self.rule(tx, rule["id"])

    def switch(self, tx: Tx, rule_id: str, enabled: bool, *, cause: str = "control") -> dict:
        rules = tx.meta_get(RULES, [])
        for r in rules:
            if r["id"] == rule_id:
                r["enabled"] = enabled
                break
        else:
            raise UnknownFaultRule(f"no fault rule {rule_id}")
        tx.meta_set(RULES, rules)
        self.world.journal.append(tx, "control", "fault-on" if enabled else "fault-off", actor=cause, ref=rule_id,
                                  raw=rule_id)
        return self.rule(tx, rule_id)

    def delete(self, tx: Tx, rule_id: str | None = None) -> int:
        """Delete one rule, or all of them (rule_id None); returns how many went."""
        rules = tx.meta_get(RULES, [])
        if rule_id is not None and not any(r["id"] == rule_id for r in rules):
            raise UnknownFaultRule(f"no fault rule {rule_id}")
        kept = [r for r in rules if rule_id is not None and r["id"] != rule_id]
        tx.meta_set(RULES, kept)
        state = tx.meta_get(STATE, {})
        tx.meta_set(STATE, {k: v for k, v in state.items() if any(r["id"] == k for r in kept)})
        self.world.journal.append(tx, "control", "fault-delete", actor="control", ref=rule_id,
                                  raw=rule_id or "all")
        return len(rules) - len(kept)

    def fired(self, tx: Tx) -> list[dict]:
        """The firings kept (the last MAX_FIRED_LOG), oldest first: what the evidence report lists."""
        return tx.meta_get(FIRED, [])

    # At a door's entry point --------------------------------------------------------------------
    def armed(self, door: str) -> bool:
        """Whether any enabled rule names `door`: read beside the writer (World.read), so that a door that
        would open a transaction only to ask pays a read, not the write lock, while no rule is set."""
        with self.world.read() as tx:
            return any(r["door"] == door and r["enabled"] for r in tx.meta_get(RULES, []))

    def decide(self, tx: Tx, door: str, operation: str, *, patient: str | None = None,
               patient_ins: str | None = None, actor: str | None = None, document: str | None = None,
               kinds: tuple[str, ...] | None = None, where: dict | None = None) -> Fired | None:
        """The fault that applies to this exchange, if any (the first active rule that matches and draws),
        counted in `tx`. `kinds` limits the rules to those the door can render at this point (an SMTP stage,
        an IMAP command); `where` to rules whose parameters have these values (`{"stage": "RCPT"}`)."""
        rules = tx.meta_get(RULES, [])
        if not rules:
            return None
        candidates = [r for r in rules if r["door"] == door and r["enabled"]
                      and (kinds is None or r["kind"] in kinds)
                      and all(r.get(k) == v for k, v in (where or {}).items())]
        if not candidates:
            return None
        if patient is None and patient_ins:
            row = tx.conn.execute("SELECT id FROM patients WHERE ns = ? AND ins = ? LIMIT 1",
                                  (tx.ns, patient_ins)).fetchone()
            patient = row[0] if row else None
        state = tx.meta_get(STATE, {})
        now = self.world.clock.timestamp()
        facts = {"operation": operation, "patient": patient, "patient_ins": patient_ins, "actor": actor,
                 "document": document}
        for rule in candidates:
            record = state.setdefault(rule["id"], {"seen": 0, "fired": 0})
            if rule["times"] is not None and record["fired"] >= rule["times"]:
                continue
            if (rule["from"] is not None and now < rule["from"]) or (rule["until"] is not None and now >= rule["until"]):
                continue
            if not self._matches(tx, rule["match"], facts):
                continue
            draw = record["seen"]
            record["seen"] += 1
            if rule["probability"] < 1.0 and \
                    random.Random(f"{rule['seed']}/{rule['id']}/{draw}").random() >= rule["probability"]:
                tx.meta_set(STATE, state)
                continue
            record["fired"] += 1
            tx.meta_set(STATE, state)
            log = tx.meta_get(FIRED, [])
            log.append({"rule": rule["id"], "door": door, "kind": rule["kind"], "operation": operation,
                        "patient": patient, "actor": actor or "", "document": document,
                        "time": self.world.clock.now_iso(), "say": rule.get("say")})
            tx.meta_set(FIRED, log[-MAX_FIRED_LOG:])
            params = {k: v for k, v in rule.items() if k in PARAMS[rule["kind"]]}
            return Fired(rule["id"], door, rule["kind"], params)
        return None

    @contextmanager
    def hold(self) -> Iterator[bool]:
        """For an HTTP door about to hold a worker for a fault (delay, timeout, trickle): yields whether it
        may. At most MAX_HELD at once: beyond, the door answers at once (a timeout becomes a reset), so that a
        rule never stops the bench serving its other doors."""
        got = self._held.acquire(blocking=False)
        try:
            yield got
        finally:
            if got:
                self._held.release()

    def _matches(self, tx: Tx, match: dict, facts: dict) -> bool:
        for key, wanted in match.items():
            value = facts.get(key)
            if key == "patient":
                if not ({facts.get("patient"), facts.get("patient_ins")} & set(wanted)):
                    return False
            elif key == "actor":
                ids: builtins.set[str] = set()
                for w in wanted:
                    ids |= self._actor_ids(tx, w)
                if value not in ids:
                    return False
            elif key == "document":
                ids = set()
                for w in wanted:
                    ids |= self._document_ids(tx, w)
                if value is None or value not in ids:
                    return False
            elif value not in wanted:
                return False
        return True

    # `builtins.set`: in the class body `set` is the method Faults.set
    def _actor_ids(self, tx: Tx, key: str) -> builtins.set[str]:
        ids = {key}
        try:
            prof = self.world.directory.professional(tx, key)
            ids.add(prof.idnps)
        except errors.NotFound:
            pass
        return ids

    def _document_ids(self, tx: Tx, key: str) -> builtins.set[str]:
        ids = {key}
        try:
            ids.add(self.world.dmp.current(tx, key).unique_id)
        except errors.NotFound:
            pass
        return ids
