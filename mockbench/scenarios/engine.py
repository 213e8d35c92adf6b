"""The scenario engine: loads a scenario (reset + seed), fires its transitions, decides its steps.

Step rules: steps are ordered. A step is pending until a journal entry that matches its `expect` arrives
after the previous step was decided; that entry decides it: passed if the entry's verdict is the expected
one and its `then` holds on the world, else failed with the reason. An entry that does not match never
decides a step. Finishing turns pending steps into `failed: not observed`, naming the nearest miss.

Transitions fire inside the transaction of the request that triggers them (a journal entry for `after`,
the first transaction past the time for `at`), so their order is deterministic. A transition whose actions
fail is rolled back alone and journaled as an error: a script mistake never fails the request that
triggered it. All state lives in the store, so a restarted bench resumes its scenario where it was.
"""

from __future__ import annotations

import json
from typing import Any

from ..world import errors
from ..world.clock import parse_duration, parse_time
from ..world.model import Document
from ..world.store import Tx
from ..world.summary import world_summary
from ..world.world import World
from .loader import Catalogue, Scenario
from .seed import Seeder

META = "scenario"
STEPS = "scenario:steps"
TRANSITIONS = "scenario:transitions"
CURSOR = "scenario:cursor"
TRACE_MARK = "scenario:trace_mark"   # the last DMP trace of the seeding: `then: traces` looks past it
TRACE_SHOWN = 5                      # traces named in the reason of a missing one
BEFORE = "scenario:before"   # the world as seeded, summarized at load (the evidence report's "before")


class ScenarioEngine:
    def __init__(self, world: World, catalogue: Catalogue | None = None) -> None:
        self.world = world
        self.catalogue = catalogue or Catalogue()
        self._next_at: float | None = None
        self._entry_cache: tuple[str, Any, dict] | None = None   # (namespace, stored text, decoded) of META
        world.journal.hooks.append(self._on_entry)
        world.tick_hooks.append(self._on_tick)
        with world.transaction() as tx:
            self._next_at = self._compute_next_at(tx)

    # Loading ------------------------------------------------------------------------------------
    def load(self, scenario: Scenario) -> dict:
        spec = scenario.spec
        with self.world.transaction() as tx:
            self.world.reset(tx)
            loaded_at = self.world.clock.timestamp()
            tx.meta_set(META, {"id": scenario.id, "title": scenario.title, "requirement": scenario.requirement,
                               "source": scenario.source, "loaded_at": loaded_at,
                               # without its world: the seed is applied once, and this record is read on every
                               # journal entry (a 10,000-professional world made each read cost 30 ms)
                               "spec": {k: v for k, v in spec.items() if k != "world"}})
            Seeder(self.world, tx, spec.get("seed", 0)).seed_world(spec.get("world", {}))
            tx.meta_set(STEPS, [{"id": s["id"], "say": s["say"], "status": "pending", "reason": None,
                                 "entries": []} for s in spec.get("steps", [])])
            tx.meta_set(CURSOR, 0)
            tx.meta_set(TRACE_MARK, tx.meta_get("seq:trace", 0))
            tx.meta_set(TRANSITIONS, {t["id"]: {"fired": False, "count": 0, "fired_at": None, "error": None}
                                      for t in spec.get("transitions", [])})
            tx.scratch.pop("rng", None)
            tx.meta_set(BEFORE, world_summary(self.world, tx))
            self.world.journal.append(tx, "control", "load", actor="mockbench", raw=scenario.id)
            summary = self.summary(tx)
            next_at = self._compute_next_at(tx)
            tx.after_commit(lambda: setattr(self, "_next_at", next_at))
        return summary

    def reset(self) -> None:
        with self.world.transaction() as tx:
            self.world.reset(tx)
            self.world.journal.append(tx, "control", "reset", actor="mockbench")
            tx.after_commit(lambda: setattr(self, "_next_at", None))

    def reload(self, tx: Tx) -> None:
        self._next_at = self._compute_next_at(tx)

    def loaded(self, tx: Tx) -> dict | None:
        return tx.meta_get(META)

    def summary(self, tx: Tx) -> dict:
        state = self.loaded(tx) or {}
        d = self.world.directory
        return {
            "scenario": state.get("id"),
            "structures": [s.id for s in d.structures(tx)],
            "professionals": [p.id for p in d.professionals(tx)],
            "patients": [p.id for p in d.patients(tx)],
            "documents": [row["id"] for row in tx.select("documents", current=1, order="rowid")],
            "mailboxes": [m.address for m in d.mailboxes(tx)],
            "transitions": [t["id"] for t in (state.get("spec") or {}).get("transitions", [])],
            "steps": [s["id"] for s in (state.get("spec") or {}).get("steps", [])],
        }

    # Transitions --------------------------------------------------------------------------------
    def transitions(self, tx: Tx) -> list[dict]:
        state = self.loaded(tx)
        if not state:
            return []
        status = tx.meta_get(TRANSITIONS, {})
        return [{"id": t["id"], "say": t.get("say", ""), "when": t["when"], **status.get(t["id"], {})}
                for t in state["spec"].get("transitions", [])]

    def fire_manual(self, transition_id: str) -> dict:
        with self.world.transaction() as tx:
            state = self.loaded(tx)
            spec = next((t for t in (state or {}).get("spec", {}).get("transitions", [])
                         if t["id"] == transition_id), None)
            if spec is None:
                raise errors.UnknownTransition(f"the loaded scenario has no transition {transition_id}")
            if not spec["when"].get("manual"):
                raise errors.TransitionNotManual(f"transition {transition_id} fires by itself ({spec['when']})")
            # A scripted change happens once, as the third party's act it stands for; a firing that failed
            # may be tried again.
            record = tx.meta_get(TRANSITIONS, {}).get(transition_id) or {}
            if record.get("fired") and not record.get("error"):
                raise errors.TransitionAlreadyFired(
                    f"transition {transition_id} already fired at {record.get('fired_at')}; load the scenario "
                    f"again to replay it")
            return self._fire(tx, spec, "manual")

    def _fire(self, tx: Tx, spec: dict, why: str) -> dict:
        status = tx.meta_get(TRANSITIONS, {})
        record = status.setdefault(spec["id"], {"fired": False, "count": 0, "fired_at": None, "error": None})
        done, error = [], None
        try:
            with tx.savepoint():
                seeder = Seeder(self.world, tx)
                for action in spec.get("do", []):
                    done.append(seeder.run(action, cause=f"transition:{spec['id']}"))
        except errors.WorldError as exc:
            error = exc
        record.update(fired=True, fired_at=self.world.clock.now_iso(),
                      error=None if error is None else {"code": error.code, "message": error.message})
        tx.meta_set(TRANSITIONS, status)
        self.world.journal.append(
            tx, "control", "transition", actor="mockbench", verdict="accepted" if error is None else "error",
            code=None if error is None else error.code, ref=spec["id"],
            raw=f"{spec['id']} ({why}): " + ("; ".join(done) if error is None else f"failed: {error.message}"))
        next_at = self._compute_next_at(tx)
        tx.after_commit(lambda: setattr(self, "_next_at", next_at))
        return {"id": spec["id"], **record, "actions": done}

    def _on_tick(self, tx: Tx) -> None:
        if self._next_at is None or self.world.clock.timestamp() < self._next_at:
            return
        state = self.loaded(tx)
        if not state:
            return
        status = tx.meta_get(TRANSITIONS, {})
        now = self.world.clock.timestamp()
        for spec in state["spec"].get("transitions", []):
            at = spec["when"].get("at")
            if at and not status.get(spec["id"], {}).get("fired") and self._at(state, at) <= now:
                self._fire(tx, spec, f"at {at}")

    def tick_due(self) -> bool:
        return self._next_at is not None and self.world.clock.timestamp() >= self._next_at

    @staticmethod
    def _at(state: dict, at: str) -> float:
        """The timestamp of an `at:` trigger: relative to the moment the scenario was loaded, or absolute."""
        if at == "now":
            return state["loaded_at"]
        if at[0] in "+-":
            seconds = parse_duration(at[1:])
            return state["loaded_at"] + (seconds if at[0] == "+" else -seconds)
        return parse_time(at).timestamp()

    def _compute_next_at(self, tx: Tx) -> float | None:
        state = self.loaded(tx)
        if not state:
            return None
        status = tx.meta_get(TRANSITIONS, {})
        times = [self._at(state, t["when"]["at"]) for t in state["spec"].get("transitions", [])
                 if t["when"].get("at") and not status.get(t["id"], {}).get("fired")]
        return min(times) if times else None

    # Journal entries: transitions `after` and steps ---------------------------------------------
    def _on_entry(self, tx: Tx, entry: dict) -> None:
        state = self._loaded_readonly(tx)
        if not state:
            return
        if state["spec"].get("steps"):
            self._decide_steps(tx, state, entry)
        if entry["channel"] == "control" and entry["operation"] in ("transition", "load", "reset"):
            return
        if not any(t["when"].get("after") for t in state["spec"].get("transitions", [])):
            return   # no transition waits for an entry: no need to read their state
        status = tx.meta_get(TRANSITIONS, {})
        for spec in state["spec"].get("transitions", []):
            after = spec["when"].get("after")
            record = status.get(spec["id"])
            if not after or record is None or record["fired"] or not self._matches_after(tx, after, entry):
                continue
            record["count"] += 1
            tx.meta_set(TRANSITIONS, status)
            if record["count"] >= after.get("count", 1):
                self._fire(tx, spec, f"after {record['count']} {after.get('operation') or after.get('channel')}")
                status = tx.meta_get(TRANSITIONS, {})

    def _loaded_readonly(self, tx: Tx) -> dict | None:
        """`loaded(tx)` for the journal hook, which runs on every entry: the record is decoded again only when
        its stored text changed (another scenario, a reset, a restored snapshot). Callers must not modify it."""
        row = tx.conn.execute("SELECT data FROM meta WHERE ns = ? AND key = ?", (tx.ns, META)).fetchone()
        if row is None:
            return None
        cached = self._entry_cache
        if cached is not None and cached[0] == tx.ns and cached[1] == row[0]:
            return cached[2]
        state = json.loads(row[0])
        self._entry_cache = (tx.ns, row[0], state)
        return state

    def _matches_after(self, tx: Tx, after: dict, entry: dict) -> bool:
        if after.get("verdict") and entry["verdict"] != after["verdict"]:
            return False
        return self._score(tx, {k: v for k, v in after.items() if k not in ("count", "verdict")}, entry)[0]

    def _score(self, tx: Tx, expect: dict, entry: dict) -> tuple[bool, int]:
        """(every field matches, how many fields match)."""
        hits = 0
        for key, wanted in expect.items():
            if isinstance(wanted, list):
                ok = entry.get(key) in wanted
            elif key == "patient":
                ok = wanted in (entry.get("patient"), entry.get("patient_ins"))
            elif key == "actor":
                ok = entry.get("actor") in self._actor_ids(tx, wanted)
            elif key == "document":
                ok = entry.get("document") is not None and entry["document"] in self._document_ids(tx, wanted)
            else:
                ok = entry.get(key) == wanted
            hits += ok
        return hits == len(expect), hits

    def _actor_ids(self, tx: Tx, key: str) -> set[str]:
        try:
            return {key, self.world.directory.professional(tx, key).idnps}
        except errors.UnknownProfessional:
            return {key}

    def _document_ids(self, tx: Tx, key: str) -> set[str]:
        try:
            return {key, self.world.dmp.current(tx, key).unique_id}
        except errors.UnknownDocument:
            return {key}

    def _decide_steps(self, tx: Tx, state: dict, entry: dict) -> None:
        steps = tx.meta_get(STEPS, [])
        index = next((i for i, s in enumerate(steps) if s["status"] == "pending"), None)
        if index is None or entry["seq"] <= tx.meta_get(CURSOR, 0):
            return
        spec = state["spec"]["steps"][index]
        if not self._score(tx, spec["expect"], entry)[0]:
            return
        step = steps[index]
        step["entries"] = [entry["seq"]]
        step["document"] = entry.get("document")
        wanted = spec.get("verdict", "accepted")
        problems = []
        if entry["verdict"] != wanted:
            problems.append(f"the entry's verdict is {entry['verdict']}"
                            + (f" ({entry['code']})" if entry.get("code") else "") + f", {wanted} was expected")
        # Forbidden findings name what went wrong, whatever the verdict (a refusal's own finding says why).
        forbidden = set(spec.get("forbid_findings") or [])
        problems.extend(f"finding {f['rule']}: {f['message']}" for f in entry.get("findings") or []
                        if f["rule"] in forbidden)
        if entry["verdict"] == wanted:
            problems.extend(self._check_then(tx, spec.get("then") or {}, steps, state))
        step["status"] = "failed" if problems else "passed"
        step["reason"] = "; ".join(problems) or None
        step["decided_at"] = entry["time"]
        step["trace_seq"] = tx.meta_get("seq:trace", 0)
        tx.meta_set(STEPS, steps)
        tx.meta_set(CURSOR, entry["seq"])

    def _check_then(self, tx: Tx, then: dict, steps: list[dict], state: dict) -> list[str]:
        problems: list[str] = []
        if "document" in then:
            want = then["document"]
            key = want.get("id")
            if want.get("submitted_in"):
                earlier = next((s for s in steps if s["id"] == want["submitted_in"]), {})
                key = earlier.get("document")
                if not key:
                    return [f"step {want['submitted_in']} recorded no document"]
            try:
                doc: Document = self.world.dmp.current(tx, key)
            except errors.UnknownDocument:
                return [f"document {key} is not in the DMP"]
            if want.get("status") and doc.status != want["status"]:
                problems.append(f"document {doc.id} is {doc.status}, {want['status']} was expected")
            for code in want.get("confidentiality_has") or []:
                if code not in doc.confidentiality:
                    problems.append(f"document {doc.id} lacks {code}")
            for code in want.get("confidentiality_lacks") or []:
                if code in doc.confidentiality:
                    problems.append(f"document {doc.id} still carries {code}")
            if want.get("version") and doc.version != want["version"]:
                problems.append(f"document {doc.id} is at version {doc.version}, {want['version']} was expected")
        if "patient" in then:
            want = then["patient"]
            patient = self.world.directory.patient(tx, want["id"])
            if want.get("dmp") and patient.dmp != want["dmp"]:
                problems.append(f"{patient.id}'s DMP is {patient.dmp}, {want['dmp']} was expected")
            if "secret_connection" in want and patient.secret_connection != want["secret_connection"]:
                problems.append(f"{patient.id}'s secret connection is "
                                f"{'on' if patient.secret_connection else 'off'}")
        if "authorization" in then:
            want = then["authorization"]
            kind = "structure" if want.get("structure") else "professional"
            row = tx.get("authorizations", patient=want["patient"], subject_kind=kind, subject=want[kind])
            status = row["status"] if row else "NON_EXISTE"
            if status != want["status"]:
                problems.append(f"the authorization of {want[kind]} on {want['patient']} is {status}, "
                                f"{want['status']} was expected")
        if "traces" in then:
            problems.extend(self._check_traces(tx, then["traces"], steps))
        return problems

    def _check_traces(self, tx: Tx, wants: list[dict], steps: list[dict]) -> list[str]:
        """DMP/CONF.14: each wanted access trace was recorded since the previous step was decided."""
        index = next((i for i, s in enumerate(steps) if s["status"] == "pending"), len(steps))
        since = steps[index - 1].get("trace_seq") if index > 0 else None
        window = f"since step {steps[index - 1]['id']}" if since is not None else "since the scenario was loaded"
        if since is None:
            since = tx.meta_get(TRACE_MARK, 0)
        problems: list[str] = []
        for want in wants:
            try:
                patient = self.world.directory.patient(tx, want["patient"])
            except errors.UnknownPatient:
                problems.append(f"no patient {want['patient']}")
                continue
            documents: set[str] | None = None
            if want.get("submitted_in"):
                earlier = next((s for s in steps if s["id"] == want["submitted_in"]), {})
                if not earlier.get("document"):
                    problems.append(f"step {want['submitted_in']} recorded no document")
                    continue
                documents = {earlier["document"]}
            elif want.get("document"):
                documents = self._document_ids(tx, want["document"])
            actors = self._actor_ids(tx, want["actor"]) if want.get("actor") else None
            traces = [t for t in self.world.dmp.traces(tx, patient.id) if t.seq > since]
            if any(t.action == want["action"] and (documents is None or t.document in documents)
                   and (actors is None or t.actor in actors) and (not want.get("mode") or t.mode == want["mode"])
                   for t in traces):
                continue
            missing = f"no {want['action']} trace"
            if documents is not None:
                missing += f" of {self._document_name(tx, sorted(documents)[-1])}"
            if want.get("actor"):
                missing += f" by {want['actor']}"
            if want.get("mode"):
                missing += f" in mode {want['mode']}"
            seen = "; ".join(self._describe_trace(tx, t) for t in traces[-TRACE_SHOWN:])
            problems.append(f"{missing} in {patient.id}'s DMP {window}; "
                            + (f"traces recorded: {seen}" if traces else "no trace was recorded"))
        return problems

    def _document_name(self, tx: Tx, key: str) -> str:
        row = tx.get("documents", unique_id=key, current=1)
        return row["id"] if row and row.get("id") else key

    def _describe_trace(self, tx: Tx, trace) -> str:
        text = f"{trace.action} by {trace.actor}"
        if trace.document:
            text += f" of {self._document_name(tx, trace.document)}"
        if trace.mode != "normal":
            text += f" ({trace.mode})"
        return text + f" at {parse_time(trace.time).strftime('%H:%M:%S')}"

    # Reading and finishing ----------------------------------------------------------------------
    def steps(self, tx: Tx) -> list[dict]:
        return [{k: s.get(k) for k in ("id", "say", "status", "reason", "entries")} for s in tx.meta_get(STEPS, [])]

    def finish(self) -> list[dict]:
        with self.world.transaction() as tx:
            state = self.loaded(tx)
            if not state:
                return []
            tx.meta_set(STEPS, self.finished_steps(tx))
            return self.steps(tx)

    def finished_steps(self, tx: Tx) -> list[dict]:
        """The steps as finishing would leave them, without storing anything: pending ones are failed, not
        observed, with the nearest miss. Each step's record in full (with `decided_at` and, for those this
        view failed, `not_observed: True`). The evidence report shows this view and leaves the run open."""
        state = self.loaded(tx)
        steps = tx.meta_get(STEPS, [])
        if not state:
            return []
        cursor = tx.meta_get(CURSOR, 0)
        first_pending = None
        for i, step in enumerate(steps):
            if step["status"] != "pending":
                continue
            expect = state["spec"]["steps"][i]["expect"]
            reason = self._nearest(tx, expect, cursor)
            if first_pending is not None:
                reason = f"the earlier step {first_pending} was never decided; {reason}"
            first_pending = first_pending or step["id"]
            step["status"] = "failed"
            step["reason"] = "not observed: " + reason
            step["not_observed"] = True
        return steps

    def before(self, tx: Tx) -> dict | None:
        """The world as the loaded scenario seeded it (world/summary.py), recorded at load."""
        return tx.meta_get(BEFORE)

    def _nearest(self, tx: Tx, expect: dict, cursor: int) -> str:
        wanted = _describe(expect)
        if isinstance(expect.get("actor"), str):
            wanted += f" with actor {expect['actor']}"
        best: tuple[int, dict] | None = None
        for entry in self.world.journal.query(tx, since=cursor, limit=100_000):
            if entry["channel"] == "control" and expect.get("channel") != "control":
                continue
            _, hits = self._score(tx, expect, entry)
            if hits and (best is None or hits >= best[0]):
                best = (hits, entry)
        if best is None:
            return f"expected {wanted}; nothing close was received"
        entry = best[1]
        clock = parse_time(entry["time"]).strftime("%H:%M:%S")
        outcome = "" if entry["verdict"] == "accepted" else \
            f" {entry['verdict']}" + (f" ({entry['code']})" if entry.get("code") else "")
        return f"expected {wanted}; nearest: {_describe(entry)}{outcome} at {clock}"


def _describe(d: dict[str, Any]) -> str:
    operation = d.get("operation")
    if isinstance(operation, list):
        operation = " or ".join(operation)
    text = operation or d.get("channel") or "an exchange"
    if d.get("patient"):
        text += f" for {d['patient']}"
    if d.get("document"):
        text += f" on {d['document']}"
    return text



__all__ = ["ScenarioEngine"]
