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
from email import policy
from email.parser import HeaderParser
from typing import Any

from ..world import errors
from ..world.clock import parse_duration, parse_time
from ..world.dpi import set_dpi
from ..world.message_lookup import by_message_id
from ..world.model import Document
from ..world.store import Tx
from ..world.summary import first_ids, world_summary
from ..world.world import World
from .loader import Catalogue, Scenario
from .seed import Seeder
from .verdicts import annotate, problem

META = "scenario"
STEPS = "scenario:steps"
TRANSITIONS = "scenario:transitions"
CURSOR = "scenario:cursor"
TRACE_MARK = "scenario:trace_mark"   # the last DMP trace of the seeding: `then: traces` looks past it
TRACE_SHOWN = 5                      # traces named in the reason of a missing one
# What GET /_bench/steps gives of each step: `reason` in English (stable for scripts), `reason_fr` in French
# (what people read), `reason_code` and `problems` as data (scenarios/verdicts.py), `nearest_seq` the journal
# entry closest to what a step never observed.
STEP_FIELDS = ("id", "say", "status", "reason", "reason_fr", "reason_code", "problems", "nearest_seq", "entries")
BEFORE = "scenario:before"   # the world as seeded, summarized at load (the evidence report's "before")


SUMMARY_IDS = 10_000   # ids per kind in a load's answer (every listed world fits)


class ScenarioEngine:
    def __init__(self, world: World, catalogue: Catalogue | None = None) -> None:
        self.world = world
        self.catalogue = catalogue or Catalogue()
        self._next_at: float | None = None
        self._entry_cache: tuple[str, Any, dict] | None = None   # (namespace, stored text, decoded) of META
        world.journal.hooks.append(self._on_entry)
        world.tick_hooks.append(self._on_tick)
        world.follow_hooks.append(self.reload)   # another process changed the world: the next `at:` from the store
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
            if spec.get("dpi"):
                set_dpi(tx, spec["dpi"]["mllp"], "scenario")
            tx.meta_set(STEPS, [{"id": s["id"], "say": s["say"], "status": "pending", "reason": None,
                                 "entries": []} for s in spec.get("steps", [])])
            tx.meta_set(CURSOR, 0)
            tx.meta_set(TRACE_MARK, tx.meta_get("seq:trace", 0))
            tx.meta_set(TRANSITIONS, {t["id"]: {"fired": False, "count": 0, "fired_at": None, "error": None}
                                      for t in spec.get("transitions", [])})
            for rule in spec.get("faults", []):   # from/until count from the load, on the virtual clock
                self.world.faults.set(tx, rule, cause="scenario")
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
        """The loaded ids, each list cut at SUMMARY_IDS (a generated world: the control API pages them)."""
        state = self.loaded(tx) or {}
        return {
            "scenario": state.get("id"),
            **first_ids(tx, SUMMARY_IDS),
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
        text = tx.meta_text(META)
        if text is None:
            return None
        cached = self._entry_cache
        if cached is not None and cached[0] == tx.ns and cached[1] == text:
            return cached[2]
        state = json.loads(text)
        self._entry_cache = (tx.ns, text, state)
        return state

    def _matches_after(self, tx: Tx, after: dict, entry: dict) -> bool:
        if after.get("verdict") and entry["verdict"] != after["verdict"]:
            return False
        if entry.get("fault") and not after.get("fault"):
            return False   # an injected outcome counts only where the scenario names its rule
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
        if entry.get("fault") and not spec["expect"].get("fault"):
            return   # an exchange that met an injected fault decides only a step that names the rule
        if not self._score(tx, spec["expect"], entry)[0]:
            return
        step = steps[index]
        step["entries"] = [entry["seq"]]
        step["document"] = entry.get("document")
        wanted = spec.get("verdict", "accepted")
        problems: list[dict] = []
        if entry["verdict"] != wanted:
            problems.append(problem("VERDICT", verdict=entry["verdict"], entry_code=entry.get("code"),
                                    wanted=wanted))
        # Forbidden findings name what went wrong, whatever the verdict (a refusal's own finding says why).
        forbidden = set(spec.get("forbid_findings") or [])
        problems.extend(problem("FINDING", rule=f["rule"], message=f["message"],
                                **({"message_fr": f["message_fr"]} if f.get("message_fr") else {}))
                        for f in entry.get("findings") or [] if f["rule"] in forbidden)
        if entry["verdict"] == wanted:
            problems.extend(self._check_then(tx, spec.get("then") or {}, steps, state, entry))
        step["status"] = "failed" if problems else "passed"
        annotate(step, problems)
        step["decided_at"] = entry["time"]
        step["trace_seq"] = tx.meta_get("seq:trace", 0)
        tx.meta_set(STEPS, steps)
        tx.meta_set(CURSOR, entry["seq"])

    def _check_then(self, tx: Tx, then: dict, steps: list[dict], state: dict, entry: dict | None = None) \
            -> list[dict]:
        problems: list[dict] = []
        if "mail" in then:
            problems.extend(self._check_mail(tx, then["mail"], entry or {}))
        if "document" in then:
            want = then["document"]
            key = want.get("id")
            if want.get("submitted_in"):
                earlier = next((s for s in steps if s["id"] == want["submitted_in"]), {})
                key = earlier.get("document")
                if not key:
                    return [problem("NO_DOCUMENT_FROM_STEP", step=want["submitted_in"])]
            try:
                doc: Document = self.world.dmp.current(tx, key)
            except errors.UnknownDocument:
                return [problem("DOCUMENT_ABSENT", document=key)]
            if want.get("status") and doc.status != want["status"]:
                problems.append(problem("DOCUMENT_STATUS", document=doc.id, status=doc.status,
                                        wanted=want["status"]))
            for code in want.get("confidentiality_has") or []:
                if code not in doc.confidentiality:
                    problems.append(problem("DOCUMENT_LACKS_CODE", document=doc.id, confidentiality=code))
            for code in want.get("confidentiality_lacks") or []:
                if code in doc.confidentiality:
                    problems.append(problem("DOCUMENT_KEEPS_CODE", document=doc.id, confidentiality=code))
            if want.get("version") and doc.version != want["version"]:
                problems.append(problem("DOCUMENT_VERSION", document=doc.id, version=doc.version,
                                        wanted=want["version"]))
        if "patient" in then:
            want = then["patient"]
            patient = self.world.directory.patient(tx, want["id"])
            if want.get("dmp") and patient.dmp != want["dmp"]:
                problems.append(problem("PATIENT_DMP", patient=patient.id, dmp=patient.dmp, wanted=want["dmp"]))
            if "secret_connection" in want and patient.secret_connection != want["secret_connection"]:
                problems.append(problem("SECRET_CONNECTION", patient=patient.id, on=patient.secret_connection))
        if "authorization" in then:
            want = then["authorization"]
            kind = "structure" if want.get("structure") else "professional"
            row = tx.get("authorizations", patient=want["patient"], subject_kind=kind, subject=want[kind])
            status = row["status"] if row else "NON_EXISTE"
            if status != want["status"]:
                problems.append(problem("AUTHORIZATION", subject=want[kind], patient=want["patient"],
                                        status=status, wanted=want["status"]))
        if "traces" in then:
            problems.extend(self._check_traces(tx, then["traces"], steps))
        return problems

    def _check_mail(self, tx: Tx, want: dict, entry: dict) -> list[dict]:
        """The mail of the deciding entry, each header's value: the entry's own bytes (a door journals a mail
        before the world delivers it), else the delivered message its ref (a Message-ID) names."""
        raw = entry.get("raw") or ""
        head = raw.replace("\r\n", "\n").split("\n\n", 1)[0] if raw else ""
        if head and ":" in head.split("\n", 1)[0]:
            parsed = HeaderParser(policy=policy.default).parsestr(head + "\n\n", headersonly=True)
            headers = {k.lower(): str(v) for k, v in parsed.items()}
        else:
            message_id = entry.get("ref") or ""
            stored = by_message_id(tx, message_id, limit=1)
            if not stored:
                return [problem("MAIL_ABSENT", message_id=message_id or None)]
            headers = {k.lower(): v for k, v in (stored[0].get("headers") or {}).items()}
        return [problem("MAIL_HEADER", header=name, value=headers.get(name.lower()), wanted=value)
                for name, value in want.get("headers", {}).items()
                if (headers.get(name.lower()) or "").strip() != value]

    def _check_traces(self, tx: Tx, wants: list[dict], steps: list[dict]) -> list[dict]:
        """DMP/CONF.14: each wanted access trace was recorded since the previous step was decided."""
        index = next((i for i, s in enumerate(steps) if s["status"] == "pending"), len(steps))
        since = steps[index - 1].get("trace_seq") if index > 0 else None
        since_step = steps[index - 1]["id"] if since is not None else None
        if since is None:
            since = tx.meta_get(TRACE_MARK, 0)
        problems: list[dict] = []
        for want in wants:
            try:
                patient = self.world.directory.patient(tx, want["patient"])
            except errors.UnknownPatient:
                problems.append(problem("NO_PATIENT", patient=want["patient"]))
                continue
            documents: set[str] | None = None
            if want.get("submitted_in"):
                earlier = next((s for s in steps if s["id"] == want["submitted_in"]), {})
                if not earlier.get("document"):
                    problems.append(problem("NO_DOCUMENT_FROM_STEP", step=want["submitted_in"]))
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
            seen = [{"action": t.action, "actor": t.actor, "mode": t.mode, "time": t.time,
                     "document": self._document_name(tx, t.document) if t.document else None}
                    for t in traces[-TRACE_SHOWN:]]
            problems.append(problem(
                "TRACE_MISSING", action=want["action"], patient=patient.id, since_step=since_step,
                document=self._document_name(tx, sorted(documents)[-1]) if documents is not None else None,
                actor=want.get("actor"), mode=want.get("mode"), seen=seen))
        return problems

    def _document_name(self, tx: Tx, key: str) -> str:
        row = tx.get("documents", unique_id=key, current=1)
        return row["id"] if row and row.get("id") else key

    # Reading and finishing ----------------------------------------------------------------------
    def steps(self, tx: Tx) -> list[dict]:
        return [{k: s.get(k) for k in STEP_FIELDS} for s in tx.meta_get(STEPS, [])]

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
            missed = self._nearest(tx, expect, cursor)
            if first_pending is not None:
                missed["earlier"] = first_pending
            first_pending = first_pending or step["id"]
            step["status"] = "failed"
            annotate(step, [missed])
            step["not_observed"] = True
        return steps

    def before(self, tx: Tx) -> dict | None:
        """The world as the loaded scenario seeded it (world/summary.py), recorded at load."""
        return tx.meta_get(BEFORE)

    def _nearest(self, tx: Tx, expect: dict, cursor: int) -> dict:
        """The NOT_OBSERVED problem of a step that expects `expect`: the entry closest to it since `cursor`."""
        best: tuple[int, dict] | None = None
        for entry in self.world.journal.query(tx, since=cursor, limit=100_000):
            if entry["channel"] == "control" and expect.get("channel") != "control":
                continue
            _, hits = self._score(tx, expect, entry)
            if hits and (best is None or hits >= best[0]):
                best = (hits, entry)
        expected = {k: expect.get(k) for k in ("operation", "channel", "patient", "document") if expect.get(k)}
        actor = expect.get("actor") if isinstance(expect.get("actor"), str) else None
        nearest = None
        if best is not None:
            nearest = {k: best[1].get(k) for k in ("seq", "time", "operation", "channel", "patient", "document",
                                                    "verdict", "code")}
        return problem("NOT_OBSERVED", expected=expected, actor=actor, nearest=nearest)



__all__ = ["ScenarioEngine"]
