"""A Hypothesis state machine over one patient's DMP.

Random actors (the author, a colleague of the author's structure, a professional of another structure, a
professional with no authorization at all, the author in indirect authentication, the patient, a legal
representative; modes normal, bris de glace, centre 15) submit, replace, delete, archive, unarchive, mask,
unmask, make visible and change authorizations. A small model predicts each outcome: the stable error code, or
success. After every step the invariants compare the world with the model.

The model's rules, with their sources (/work/shared/corpus/specs/): authorizations are for consultation only
(pdsm4dmp/transaction_td02.md NB2; transaction_td3.3c.md NB1): writes need none; a blocked professional is
refused everything (td02 NB1); only the author deletes (td3.3c NB2); masking and visibility changes need direct
authentication, INDIRECTE is refused (trans-cda-r2/def-proc-collab.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from mockbench.world import errors
from mockbench.world.model import INVISIBLE_PATIENT, INVISIBLE_REPRESENTANTS_LEGAUX, MASQUE_PS, Actor

SETTINGS = settings(max_examples=40, stateful_step_count=25, deadline=None)
INVISIBLE = {INVISIBLE_PATIENT, INVISIBLE_REPRESENTANTS_LEGAUX}
AUDIENCE = {"patient": INVISIBLE_PATIENT, "legal_representatives": INVISIBLE_REPRESENTANTS_LEGAUX}
ALL_STATUSES = ("approved", "deprecated", "archived", "deleted")
PATIENT = "alice"
STRUCTURE = {"dr-a": "chu", "dr-b": "chu", "dr-c": "clinic", "dr-d": "lab"}


def _pro(pid: str, mode: str = "normal", authentication: str = "INDIRECTE_RENFORCEE") -> Actor:
    return Actor(kind="professional", id=pid, structure=STRUCTURE[pid], mode=mode, authentication=authentication)


ACTORS = {
    "author": _pro("dr-a"),
    "colleague": _pro("dr-b"),
    "other": _pro("dr-c"),
    "author_bdg": _pro("dr-a", "bris_de_glace", "DIRECTE"),
    "other_bdg": _pro("dr-c", "bris_de_glace", "DIRECTE"),
    "other_bdg_indirect": _pro("dr-c", "bris_de_glace"),
    "colleague_c15": _pro("dr-b", "centre_15"),
    "other_c15": _pro("dr-c", "centre_15"),
    "stranger": _pro("dr-d"),                                   # lab: never authorized on alice's DMP
    "author_indirect": _pro("dr-a", authentication="INDIRECTE"),
    "patient": Actor(kind="patient", id=PATIENT),
    "representative": Actor(kind="legal_representative", id=PATIENT),
}
OBSERVERS = ("author", "colleague", "other", "stranger", "other_bdg", "other_c15", "patient", "representative")
CONFIDENTIALITY = st.sampled_from([
    [], ["N"], [MASQUE_PS], [INVISIBLE_PATIENT], [INVISIBLE_REPRESENTANTS_LEGAUX], [MASQUE_PS, INVISIBLE_PATIENT],
    [MASQUE_PS, INVISIBLE_REPRESENTANTS_LEGAUX],
])
SUBJECTS = st.sampled_from([("structure", "chu"), ("structure", "clinic"), ("professional", "dr-a"),
                            ("professional", "dr-c")])
# Weighted towards the actors that may change documents, so that long histories get built.
actors = st.sampled_from(["author"] * 4 + ["colleague"] * 2 + ["patient"] * 2 + ["author_bdg"] + sorted(ACTORS))
doc_index = st.integers(min_value=0, max_value=10_000)


@dataclass
class ModelDoc:
    uid: str
    author: str
    structure: str
    conf: list[str]
    status: str = "approved"
    versions: int = 1
    replaces: str | None = None
    replaced_by: str | None = None


@dataclass
class Model:
    allow_cumul: bool = False
    masked_in_emergency: bool = False
    oppositions: list[str] = field(default_factory=list)
    auth: dict = field(default_factory=lambda: {("structure", "chu"): ("VALIDE", None),
                                                ("structure", "clinic"): ("VALIDE", None)})
    docs: dict[str, ModelDoc] = field(default_factory=dict)
    traces: int = 2  # the cast's two structure authorizations

    def access_error(self, actor: Actor, consultation: bool = True) -> str | None:
        """Consultation needs a VALIDE authorization or an emergency mode; writes need none (td02 NB2)."""
        if actor.kind != "professional":
            return None
        found = [self.auth[k] for k in (("professional", actor.id), ("structure", actor.structure)) if k in self.auth]
        if any(status == "INTERDIT" for status, _ in found):
            return "PROFESSIONAL_BLOCKED"
        if not consultation:
            return "ACCESS_MODE_REFUSED" if actor.mode == "bris_de_glace" and actor.authentication != "DIRECTE" \
                else None
        if actor.mode == "centre_15":
            return "PATIENT_OPPOSITION" if "OPPOSITION_ACCES_URGENCE" in self.oppositions else None
        if actor.mode == "bris_de_glace":
            if actor.authentication != "DIRECTE":
                return "ACCESS_MODE_REFUSED"
            return "PATIENT_OPPOSITION" if "OPPOSITION_BRIS_DE_GLACE" in self.oppositions else None
        if any(status == "VALIDE" for status, _ in found):
            return None
        if found and found[0] == ("NON_EXISTE", "withdrawn"):
            return "AUTHORIZATION_WITHDRAWN"
        return "AUTHORIZATION_MISSING"

    def conflict(self, codes) -> bool:
        return MASQUE_PS in codes and INVISIBLE_PATIENT in codes and not self.allow_cumul

    @staticmethod
    def may_modify(actor: Actor, doc: ModelDoc, patient_may: bool, author_only: bool = False) -> bool:
        if actor.kind == "patient":
            return patient_may
        if author_only:
            return actor.kind == "professional" and actor.id == doc.author
        return actor.kind == "professional" and (actor.id == doc.author or actor.structure == doc.structure)

    @staticmethod
    def direct_error(actor: Actor) -> str | None:
        return "ACCESS_MODE_REFUSED" if actor.kind == "professional" and actor.authentication == "INDIRECTE" else None

    @staticmethod
    def current_approved_error(doc: ModelDoc) -> str | None:
        return {"deleted": "DOCUMENT_DELETED", "deprecated": "NOT_CURRENT_VERSION",
                "archived": "STATUS_CHANGE_INVALID"}.get(doc.status)

    def visible(self, actor: Actor) -> set[str]:
        seen = set()
        for d in self.docs.values():
            if d.status == "deleted":
                continue
            if actor.kind == "professional" and MASQUE_PS in d.conf and actor.id != d.author:
                if actor.mode == "normal" or not self.masked_in_emergency:
                    continue
            if actor.kind == "patient" and INVISIBLE_PATIENT in d.conf:
                continue
            if actor.kind == "legal_representative" and INVISIBLE_REPRESENTANTS_LEGAUX in d.conf:
                continue
            seen.add(d.uid)
        return seen


class DmpMachine(RuleBasedStateMachine):
    new_cast = None  # set by the test: builds a fresh world and its cast

    def __init__(self) -> None:
        super().__init__()
        self.cast = type(self).new_cast()
        self.world = self.cast.world
        self.model = Model()
        self.counter = 0

    def teardown(self) -> None:
        self.world.store.close()

    # Helpers ----------------------------------------------------------------------------------------
    def attempt(self, expected: str | None, fn):
        """Run fn in its own transaction; the outcome must be the expected error code, or success."""
        try:
            with self.world.transaction() as tx:
                result = fn(tx)
        except errors.WorldError as exc:
            assert exc.code == expected, f"expected {expected or 'success'}, got {exc.code}: {exc.message}"
            return None
        assert expected is None, f"expected {expected}, the operation succeeded"
        return result

    def pick(self, index: int, prefer=lambda d: d.status != "deleted") -> ModelDoc:
        """Usually a document the rule can act on (by default: not deleted), sometimes any document."""
        uids = sorted(self.model.docs)
        live = [u for u in uids if prefer(self.model.docs[u])]
        pool = live if live and index % 4 else uids
        return self.model.docs[pool[(index // 4) % len(pool)]]

    def has_docs(self) -> bool:
        return bool(self.model.docs)

    # Rules ----------------------------------------------------------------------------------------
    @initialize(allow_cumul=st.booleans(), masked_in_emergency=st.booleans(),
                oppositions=st.lists(st.sampled_from(["OPPOSITION_BRIS_DE_GLACE", "OPPOSITION_ACCES_URGENCE"]),
                                     unique=True))
    def patient_settings(self, allow_cumul, masked_in_emergency, oppositions):
        self.cast.update_patient(allow_masked_and_invisible=allow_cumul,
                                 masked_readable_in_emergency=masked_in_emergency, oppositions=oppositions)
        self.model.allow_cumul, self.model.masked_in_emergency = allow_cumul, masked_in_emergency
        self.model.oppositions = oppositions
        # Documents to start with, so that every rule applies from the first step.
        for conf in (["N"], [MASQUE_PS], [INVISIBLE_PATIENT, INVISIBLE_REPRESENTANTS_LEGAUX]):
            self.submit("author", conf)

    @rule(who=actors, conf=CONFIDENTIALITY)
    def submit(self, who, conf):
        actor = ACTORS[who]
        self.counter += 1
        uid = f"1.2.250.1.{self.counter}"
        codes = list(dict.fromkeys(conf or ["N"]))
        expected = self.model.access_error(actor, False) or ("CONFIDENTIALITY_CONFLICT" if self.model.conflict(codes)
                                                             else None)
        doc = self.attempt(expected, lambda tx: self.world.dmp.submit(
            tx, actor, PATIENT, {"type_code": "11488-4", "unique_id": uid, "confidentiality": conf,
                                  "creation_time": "2026-11-20T10:00:00Z"}, b"v1"))
        if doc is not None:
            pro = actor.kind == "professional"
            assert (doc.author, doc.author_structure) == ((actor.id, actor.structure) if pro else ("", ""))
            self.model.docs[uid] = ModelDoc(uid, doc.author, doc.author_structure, codes)
            self.model.traces += 2 if INVISIBLE & set(codes) else 1

    @precondition(has_docs)
    @rule(who=actors, index=doc_index, conf=CONFIDENTIALITY)
    def replace(self, who, index, conf):
        actor, old = ACTORS[who], self.pick(index)
        self.counter += 1
        uid = f"1.2.250.1.{self.counter}"
        codes = list(dict.fromkeys(conf or ["N"]))
        expected = (self.model.access_error(actor, False) or self.model.current_approved_error(old)
                    or (None if self.model.may_modify(actor, old, False) else "NOT_AUTHOR")
                    or ("CONFIDENTIALITY_CONFLICT" if self.model.conflict(codes) else None))
        doc = self.attempt(expected, lambda tx: self.world.dmp.replace(
            tx, actor, PATIENT, old.uid, {"type_code": "11488-4", "unique_id": uid, "confidentiality": conf,
                                  "creation_time": "2026-11-20T10:00:00Z"}, b"v2"))
        if doc is not None:
            self.model.docs[uid] = ModelDoc(uid, doc.author, doc.author_structure, codes, replaces=old.uid)
            old.status, old.replaced_by = "deprecated", uid
            self.model.traces += 2 if INVISIBLE & set(codes) else 1

    @precondition(has_docs)
    @rule(who=actors, index=doc_index)
    def delete(self, who, index):
        actor, doc = ACTORS[who], self.pick(index)
        status_error = {"deleted": "DOCUMENT_DELETED", "deprecated": "NOT_CURRENT_VERSION"}.get(doc.status)
        expected = (self.model.access_error(actor, False) or status_error
                    or (None if self.model.may_modify(actor, doc, True, author_only=True) else "NOT_AUTHOR"))
        if self.attempt(expected, lambda tx: self.world.dmp.delete(tx, actor, doc.uid)) is not None:
            doc.status = "deleted"
            self.model.traces += 1

    @precondition(has_docs)
    @rule(who=actors, index=doc_index, archive=st.booleans())
    def archive_or_unarchive(self, who, index, archive):
        actor, doc = ACTORS[who], self.pick(index)
        wanted = "approved" if archive else "archived"
        expected = (self.model.access_error(actor, False) or (None if doc.status == wanted else "STATUS_CHANGE_INVALID")
                    or (None if self.model.may_modify(actor, doc, True) else "NOT_AUTHOR"))
        op = self.world.dmp.archive if archive else self.world.dmp.unarchive
        if self.attempt(expected, lambda tx: op(tx, actor, doc.uid)) is not None:
            doc.status = "archived" if archive else "approved"
            self.model.traces += 1

    @precondition(has_docs)
    @rule(who=actors, index=doc_index, masked=st.booleans())
    def mask_or_unmask(self, who, index, masked):
        actor, doc = ACTORS[who], self.pick(index)
        codes = [c for c in doc.conf if c != MASQUE_PS] + ([MASQUE_PS] if masked else [])
        expected = (self.model.access_error(actor, False) or self.model.direct_error(actor)
                    or self.model.current_approved_error(doc)
                    or (None if self.model.may_modify(actor, doc, True) else "NOT_AUTHOR")
                    or ("NO_CHANGE" if masked == (MASQUE_PS in doc.conf) else None)
                    or ("CONFIDENTIALITY_CONFLICT" if self.model.conflict(codes) else None))
        result = self.attempt(expected, lambda tx: self.world.dmp.set_masked(tx, actor, doc.uid, masked))
        if result is not None:
            doc.conf, doc.versions = codes or ["N"], doc.versions + 1
            assert result.confidentiality == doc.conf
            self.model.traces += 1

    @precondition(has_docs)
    @rule(who=actors, index=doc_index, to=st.sampled_from(sorted(AUDIENCE)))
    def make_visible(self, who, index, to):
        actor, doc = ACTORS[who], self.pick(index, lambda d: d.status == "approved" and INVISIBLE & set(d.conf))
        expected = (self.model.access_error(actor, False) or self.model.direct_error(actor)
                    or self.model.current_approved_error(doc)
                    or (None if self.model.may_modify(actor, doc, False) else "NOT_AUTHOR")
                    or (None if AUDIENCE[to] in doc.conf else "NO_CHANGE"))
        result = self.attempt(expected, lambda tx: self.world.dmp.make_visible(tx, actor, doc.uid, to))
        if result is not None:
            doc.conf = [c for c in doc.conf if c != AUDIENCE[to]] or ["N"]
            doc.versions += 1
            assert result.confidentiality == doc.conf
            self.model.traces += 1

    @rule(who=st.sampled_from(["patient"] * 3 + ["author", "other", "other_c15"]), subject=SUBJECTS,
          status=st.sampled_from(["VALIDE", "VALIDE", "INTERDIT", "withdraw"]))
    def authorization(self, who, subject, status):
        actor = ACTORS[who]
        kind, target = subject
        expected = None
        if actor.kind == "professional" and actor.mode != "normal":
            expected = "ACCESS_MODE_REFUSED"
        elif actor.kind == "professional" and target not in (actor.id, actor.structure):
            expected = "INVALID_REQUEST"   # TD0.3 is a self-declaration
        elif actor.kind == "professional" and self.model.auth.get(subject, (None,))[0] == "INTERDIT":
            expected = "PROFESSIONAL_BLOCKED"
        dmp, named = self.world.dmp, {kind: target}
        if status == "withdraw":
            result = self.attempt(expected, lambda tx: dmp.withdraw_authorization(tx, actor, PATIENT, **named))
        else:
            result = self.attempt(expected, lambda tx: dmp.set_authorization(tx, actor, PATIENT, status=status,
                                                                             **named))
        if result is not None:
            self.model.auth[subject] = ("NON_EXISTE", "withdrawn") if status == "withdraw" else (status, None)
            self.model.traces += 1

    # Invariants -----------------------------------------------------------------------------------
    @invariant()
    def find_honours_the_rules(self):
        with self.world.transaction() as tx:
            current = {d.unique_id: d for d in self.world.dmp.documents(tx, PATIENT)}
        for name in OBSERVERS:
            actor = ACTORS[name]
            expected_error = self.model.access_error(actor)
            try:
                with self.world.transaction() as tx:
                    found = self.world.dmp.find(tx, actor, PATIENT, statuses=ALL_STATUSES, trace=False)
            except errors.WorldError as exc:
                assert exc.code == expected_error, f"{name}: {exc.code} but the model says {expected_error}"
                continue
            assert expected_error is None, f"{name} could search although the model says {expected_error}"
            uids = [d.unique_id for d in found]
            assert len(uids) == len(set(uids))
            assert all(d.status != "deleted" for d in found), f"{name} found a deleted document"
            if actor.kind == "professional" and actor.mode == "normal":
                assert all(MASQUE_PS not in d.confidentiality or d.author == actor.id for d in found), \
                    f"{name} found a document masked to it"
            if actor.kind == "patient":
                assert all(INVISIBLE_PATIENT not in d.confidentiality for d in found)
            if actor.kind == "legal_representative":
                assert all(INVISIBLE_REPRESENTANTS_LEGAUX not in d.confidentiality for d in found)
            assert set(uids) == self.model.visible(actor), name
            assert set(uids) <= set(current)

    @invariant()
    def documents_match_the_model(self):
        with self.world.transaction() as tx:
            current = {d.unique_id: d for d in self.world.dmp.documents(tx, PATIENT)}
            history = self.world.dmp.documents(tx, PATIENT, history=True)
        assert set(current) == set(self.model.docs)
        for uid, m in self.model.docs.items():
            d = current[uid]
            assert (d.status, d.confidentiality, d.replaces, d.replaced_by, d.version) == (
                m.status, m.conf, m.replaces, m.replaced_by, m.versions), uid
            versions = [v for v in history if v.unique_id == uid]
            assert len(versions) == m.versions
            assert len({v.lid for v in versions}) == 1, f"{uid}: versions do not share their lid"
            assert [v.current for v in versions].count(True) == 1, f"{uid}: not exactly one current version"
            assert sorted(v.version for v in versions) == list(range(1, m.versions + 1))
            assert len({v.entry_uuid for v in versions}) == m.versions
            assert all(v.status == "deprecated" for v in versions if not v.current)

    @invariant()
    def replacements_point_both_ways(self):
        with self.world.transaction() as tx:
            current = {d.unique_id: d for d in self.world.dmp.documents(tx, PATIENT)}
        for uid, d in current.items():
            if d.replaced_by is not None:
                assert d.status == "deprecated", uid
                assert current[d.replaced_by].replaces == uid
            if d.replaces is not None:
                assert current[d.replaces].replaced_by == uid

    @invariant()
    def one_trace_per_change(self):
        with self.world.transaction() as tx:
            traces = self.world.dmp.traces(tx, PATIENT)
        assert len(traces) == self.model.traces
        assert [t.seq for t in traces] == list(range(1, len(traces) + 1))


@pytest.mark.slow
def test_dmp_state_machine(new_cast):
    machine = type("Machine", (DmpMachine,), {"new_cast": staticmethod(new_cast)})
    run_state_machine_as_test(machine, settings=SETTINGS)


@pytest.mark.parametrize("actor", sorted(ACTORS))
def test_actor_table_is_known_to_the_cast(cast, actor):
    """The machine's actors exist in the cast (guards the machine against testing an empty world)."""
    a = ACTORS[actor]
    if a.kind == "professional":
        with cast.tx() as tx:
            assert cast.world.directory.professional(tx, a.id).structure == a.structure
