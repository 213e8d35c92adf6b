"""The scenario engine: seeding, transitions and step decisions, with no door (the world is driven
directly, and journal entries stand for what a door would write)."""

import pytest
from kit.feed import FEED

from mockbench.scenarios.docs import EXAMPLES
from mockbench.scenarios.engine import ScenarioEngine
from mockbench.scenarios.loader import Catalogue, parse
from mockbench.world import errors
from mockbench.world.clock import Clock
from mockbench.world.model import Actor
from mockbench.world.store import Store
from mockbench.world.world import World

STEPS = """\
id: t
title: Essai
world:
  structures: [{id: chu}]
  professionals: [{id: dr, structure: chu}, {id: dr2, structure: chu}]
  patients:
    - id: alice
      authorizations: [{structure: chu}]
      documents: [{id: cr, author: dr}]
transitions:
  - id: masquage
    when: {after: {channel: dmp, operation: TD3.1, patient: alice, count: 2}}
    do: [{mask_document: {document: cr, by: patient}}]
  - id: plus_tard
    when: {at: +30s}
    do: [{close_dmp: {patient: alice}}]
  - id: retrait
    when: {manual: true}
    do: [{withdraw_authorization: {patient: alice, structure: chu}}]
  - id: casse
    when: {manual: true}
    do: [{unmask_document: {document: cr}}, {delete_document: {document: nope}}]
steps:
  - id: recherche
    say: Le DPI recherche
    expect: {channel: dmp, operation: TD3.1, patient: alice}
  - id: suppression
    say: Le DPI supprime le document
    expect: {channel: dmp, operation: TD3.3c, patient: alice}
    then: {document: {id: cr, status: deleted}}
  - id: refus
    say: La recherche est refusée
    expect: {channel: dmp, operation: TD3.1, patient: alice}
    verdict: refused
"""

DR = Actor(kind="professional", id="dr", structure="chu")


def entry(world, operation, verdict="accepted", patient="alice", document=None, channel="dmp"):
    with world.transaction() as tx:
        return world.journal.append(tx, channel, operation, patient=patient, verdict=verdict, document=document)


def step(engine, world, step_id):
    with world.transaction() as tx:
        return next(s for s in engine.steps(tx) if s["id"] == step_id)


def test_catalogue_scenarios_seed_the_same_world_every_time(tmp_path):
    for scenario in Catalogue().all().values():
        seen = []
        for i in range(2):
            world = World(Store(tmp_path / f"{scenario.id}-{i}.db"))
            ScenarioEngine(world).load(scenario)
            with world.transaction() as tx:
                patients = [(p.id, p.ins, p.family_name) for p in world.directory.patients(tx)]
                docs = [(d.id, d.unique_id, d.status) for p in patients
                        for d in world.dmp.documents(tx, p[0], history=True)]
                pros = [(p.id, p.idnps) for p in world.directory.professionals(tx)]
            seen.append((patients, docs, pros))
        assert seen[0] == seen[1]
        assert seen[0][0], f"{scenario.id} seeds no patient"


@pytest.mark.parametrize("title,text", EXAMPLES, ids=[t for t, _ in EXAMPLES])
def test_documented_examples_load(engine, title, text):
    loaded = engine.load(parse(text, title))
    assert loaded["scenario"] == parse(text, title).id


def test_hidden_documents_world(engine, world):
    engine.load(Catalogue().get("hidden-documents"))
    with world.transaction() as tx:
        other = Actor(kind="professional", id="dr_petit", structure="chu")
        seen = {d.id for d in world.dmp.find(tx, other, "alice")}
        assert seen == {"cr_consult", "cr_invisible"}          # cr_masque is masked to him
        author = Actor(kind="professional", id="dr_martin", structure="chu")
        assert {d.id for d in world.dmp.find(tx, author, "alice")} == {"cr_consult", "cr_masque", "cr_invisible"}
        patient = Actor(kind="patient", id="alice")
        assert {d.id for d in world.dmp.find(tx, patient, "alice")} == {"cr_consult", "cr_masque"}
        parent = Actor(kind="legal_representative", id="leo")
        assert {d.id for d in world.dmp.find(tx, parent, "leo")} == {"cr_leo_visible"}
        assert world.directory.patient(tx, "leo").secret_connection is True


def test_deleted_versions_world(engine, world):
    engine.load(Catalogue().get("deleted-versions"))
    with world.transaction() as tx:
        docs = {d.id: d for d in world.dmp.documents(tx, "camille")}
        assert docs["bio_v1"].status == docs["bio_v2"].status == "deprecated"
        assert docs["bio_v2"].replaced_by == docs["bio_v3"].unique_id
        assert docs["bio_v3"].replaces == docs["bio_v2"].unique_id and docs["bio_v3"].status == "approved"
        assert docs["cr_supprime"].status == "deleted" and docs["cr_archive"].status == "archived"
        dr = Actor(kind="professional", id="dr_martin", structure="chu")
        assert {d.id for d in world.dmp.find(tx, dr, "camille")} == {"bio_v3"}
        assert {d.id for d in world.dmp.find(tx, dr, "camille", statuses=["approved", "archived", "deleted"])} \
            == {"bio_v3", "cr_archive"}


def test_steps_pass_in_order_and_then_is_checked(engine, world):
    engine.load(parse(STEPS))
    entry(world, "TD3.3c")                      # before step 1 is decided: decides nothing
    assert step(engine, world, "suppression")["status"] == "pending"
    e1 = entry(world, "TD3.1")
    assert step(engine, world, "recherche") == {"id": "recherche", "say": "Le DPI recherche",
                                                "status": "passed", "reason": None, "reason_fr": None,
                                                "reason_code": None, "problems": [], "nearest_seq": None,
                                                "entries": [e1["seq"]]}
    entry(world, "TD3.3c")                      # the document is not deleted yet: then fails
    s = step(engine, world, "suppression")
    assert s["status"] == "failed" and s["reason"] == "document cr is approved, deleted was expected"


def test_a_step_passes_when_the_world_holds(engine, world):
    engine.load(parse(STEPS))
    entry(world, "TD3.1")
    with world.transaction() as tx:
        world.dmp.delete(tx, DR, "cr")
        world.journal.append(tx, "dmp", "TD3.3c", patient="alice")
    assert step(engine, world, "suppression")["status"] == "passed"


def test_wrong_verdict_fails_with_the_code(engine, world):
    engine.load(parse(STEPS))
    entry(world, "TD3.1", verdict="refused")
    s = step(engine, world, "recherche")
    assert s["status"] == "failed" and s["reason"] == "the entry's verdict is refused, accepted was expected"


def test_unmatched_entries_never_decide(engine, world):
    engine.load(parse(STEPS))
    entry(world, "TD3.1", patient=None)
    entry(world, "TD3.1", channel="pfi")
    entry(world, "TD2.1")
    assert step(engine, world, "recherche")["status"] == "pending"


def test_finish_names_the_nearest_miss(engine, world, fake_time):
    engine.load(parse(STEPS))
    entry(world, "TD3.1")
    entry(world, "TD2.1")
    steps = engine.finish()
    assert [s["status"] for s in steps] == ["passed", "failed", "failed"]
    import time
    clock = time.strftime("%H:%M:%S", time.gmtime(fake_time.now))
    assert steps[1]["reason"] == f"not observed: expected TD3.3c for alice; nearest: TD2.1 for alice at {clock}"
    assert steps[2]["reason"].startswith("not observed: the earlier step suppression was never decided;")


def test_finish_with_nothing_received(engine, world):
    engine.load(parse(STEPS))
    assert engine.finish()[0]["reason"] == "not observed: expected TD3.1 for alice; nothing close was received"


def test_after_transition_fires_in_the_triggering_transaction(engine, world):
    engine.load(parse(STEPS))
    entry(world, "TD3.1")
    with world.transaction() as tx:
        assert "MASQUE_PS" not in world.dmp.current(tx, "cr").confidentiality
    with world.transaction() as tx:
        world.journal.append(tx, "dmp", "TD3.1", patient="alice")
        # inside the same transaction, the third party already acted
        assert "MASQUE_PS" in world.dmp.current(tx, "cr").confidentiality
        assert [t["fired"] for t in engine.transitions(tx) if t["id"] == "masquage"] == [True]


def test_a_rolled_back_request_rolls_back_its_transition(engine, world):
    engine.load(parse(STEPS))
    entry(world, "TD3.1")
    with pytest.raises(RuntimeError), world.transaction() as tx:
        world.journal.append(tx, "dmp", "TD3.1", patient="alice")
        raise RuntimeError("the door failed after journaling")
    with world.transaction() as tx:
        assert "MASQUE_PS" not in world.dmp.current(tx, "cr").confidentiality
        assert [t["count"] for t in engine.transitions(tx) if t["id"] == "masquage"] == [1]


def test_at_transition_fires_when_the_clock_passes(engine, world):
    engine.load(parse(STEPS))
    with world.transaction() as tx:
        world.advance_clock(tx, 29)
        assert world.directory.patient(tx, "alice").dmp == "active"
    with world.transaction() as tx:
        world.advance_clock(tx, 1)
        assert world.directory.patient(tx, "alice").dmp == "closed"


def test_at_transition_fires_with_real_time_too(engine, world, fake_time):
    engine.load(parse(STEPS))
    fake_time.now += 31
    assert engine.tick_due()
    with world.transaction() as tx:
        assert world.directory.patient(tx, "alice").dmp == "closed"
    assert not engine.tick_due()


def test_manual_transition(engine, world):
    engine.load(parse(STEPS))
    result = engine.fire_manual("retrait")
    assert result["fired"] is True and result["error"] is None
    with world.transaction() as tx, pytest.raises(errors.AuthorizationWithdrawn):
        world.dmp.find(tx, DR, "alice")
    with pytest.raises(errors.TransitionNotManual):
        engine.fire_manual("masquage")
    with pytest.raises(errors.UnknownTransition):
        engine.fire_manual("nope")
    with world.transaction() as tx:
        entry = world.journal.query(tx, channel="control")[-1]
    assert (entry["operation"], entry["ref"]) == ("transition", "retrait")   # the dashboard names it


def test_a_manual_transition_fires_once_and_says_why_again(engine, world):
    engine.load(parse(STEPS))
    first = engine.fire_manual("retrait")
    with pytest.raises(errors.TransitionAlreadyFired, match=f"already fired at {first['fired_at']}"):
        engine.fire_manual("retrait")
    with world.transaction() as tx:
        assert len([e for e in world.journal.query(tx, channel="control") if e["operation"] == "transition"]) == 1
    engine.load(parse(STEPS))   # a new run replays it
    assert engine.fire_manual("retrait")["fired"] is True


def test_a_failed_manual_transition_may_be_tried_again(engine, world):
    engine.load(parse(STEPS))
    assert engine.fire_manual("casse")["error"]["code"] == "NO_CHANGE"
    assert engine.fire_manual("casse")["error"]["code"] == "NO_CHANGE"   # tried again, not refused


def test_a_failing_transition_is_rolled_back_alone_and_journaled(engine, world):
    engine.load(parse(STEPS))
    engine.fire_manual("retrait")           # works
    result = engine.fire_manual("casse")   # unmask (nothing to unmask: NO_CHANGE) fails
    assert result["error"]["code"] == "NO_CHANGE"
    with world.transaction() as tx:
        last = world.journal.query(tx, channel="control")[-1]
        assert (last["operation"], last["verdict"], last["code"]) == ("transition", "error", "NO_CHANGE")
        assert world.dmp.current(tx, "cr").status == "approved"


def test_scenario_state_survives_a_restart(tmp_path, fake_time):
    world = World(Store(tmp_path / "w.db"), Clock(real=fake_time))
    engine = ScenarioEngine(world)
    engine.load(parse(STEPS))
    entry(world, "TD3.1")
    world.store.close()
    world2 = World(Store(tmp_path / "w.db"), Clock(real=fake_time))
    engine2 = ScenarioEngine(world2)
    with world2.transaction() as tx:
        assert [s["status"] for s in engine2.steps(tx)] == ["passed", "pending", "pending"]
    fake_time.now += 40
    assert engine2.tick_due()           # the `at` transition is still scheduled after the restart
    with world2.transaction() as tx:
        assert world2.directory.patient(tx, "alice").dmp == "closed"


def test_loading_resets_everything(engine, world):
    engine.load(parse(STEPS))
    entry(world, "TD3.1")
    with world.transaction() as tx:
        world.advance_clock(tx, 5)
    engine.load(Catalogue().get("deleted-versions"))
    with world.transaction() as tx:
        assert [p.id for p in world.directory.patients(tx)] == ["camille"]
        assert [e["operation"] for e in world.journal.query(tx)] == ["load"]
        assert world.clock.offset == 0


TRACES = """\
id: traces
title: Traces
world:
  structures: [{id: chu}]
  professionals: [{id: dr, structure: chu}, {id: dr2, structure: chu}]
  patients:
    - id: alice
      authorizations: [{structure: chu}]
      documents: [{id: cr, author: dr}, {id: autre, author: dr}]
steps:
  - id: masquage
    say: Le DPI masque le document
    expect: {channel: dmp, operation: TD3.3a, patient: alice}
    then:
      traces:
        - {patient: alice, action: masquage, submitted_in: masquage, actor: dr}
  - id: lecture
    say: Le second médecin lit le document
    expect: {channel: dmp, operation: TD3.2, patient: alice}
    then:
      traces:
        - {patient: alice, action: telechargement, document: cr, actor: dr2, mode: normal}
"""

DR2 = Actor(kind="professional", id="dr2", structure="chu")


def test_then_traces_holds_when_the_dmp_traced_the_action(engine, world):
    engine.load(parse(TRACES))
    with world.transaction() as tx:
        doc = world.dmp.set_masked(tx, DR, "cr", True)
        world.journal.append(tx, "dmp", "TD3.3a", patient="alice", document=doc.unique_id)
    assert step(engine, world, "masquage")["status"] == "passed"
    with world.transaction() as tx:
        world.dmp.read(tx, DR, doc.unique_id)
        world.journal.append(tx, "dmp", "TD3.2", patient="alice", document=doc.unique_id)
    s = step(engine, world, "lecture")
    assert s["status"] == "failed"                        # dr read it, not dr2: the reason names both
    assert s["reason"].startswith("no telechargement trace of cr by dr2 in mode normal in alice's DMP since "
                                  "step masquage; traces recorded: telechargement by dr of cr at ")


def test_then_traces_looks_only_past_the_previous_step(engine, world):
    engine.load(parse(TRACES))
    with world.transaction() as tx:
        world.dmp.set_masked(tx, DR, "autre", True)      # seeding traces and this one are not the step's
        doc = world.dmp.current(tx, "cr")
        world.journal.append(tx, "dmp", "TD3.3a", patient="alice", document=doc.unique_id)
    s = step(engine, world, "masquage")
    assert s["status"] == "failed"
    assert s["reason"].startswith("no masquage trace of cr by dr in alice's DMP since the scenario was loaded; "
                                  "traces recorded: masquage by dr of autre at ")


def test_then_traces_names_an_empty_window(engine, world):
    engine.load(parse(TRACES))
    with world.transaction() as tx:
        world.journal.append(tx, "dmp", "TD3.3a", patient="alice")
    s = step(engine, world, "masquage")
    assert s["reason"] == "step masquage recorded no document"
    engine.load(parse(TRACES.replace("submitted_in: masquage", "document: cr")))
    entry(world, "TD3.3a")
    assert step(engine, world, "masquage")["reason"] == ("no masquage trace of cr by dr in alice's DMP since the "
                                                         "scenario was loaded; no trace was recorded")


@pytest.mark.parametrize("then,message", [
    ("{patient: alice, action: vue}", "'vue' is not one of"),
    ("{patient: bob, action: masquage}", "patient bob is not in world.patients"),
    ("{patient: alice, action: masquage, submitted_in: later}", "submitted_in later is neither this step"),
    ("{patient: alice, action: masquage, document: cr, submitted_in: s}", "give document or submitted_in, not both"),
])
def test_then_traces_is_validated(then, message):
    text = TRACES.replace("{patient: alice, action: masquage, submitted_in: masquage, actor: dr}",
                          then.replace("submitted_in: s", "submitted_in: masquage"))
    with pytest.raises(Exception) as info:
        parse(text)
    assert message in str(info.value)


def test_the_nearest_miss_says_when_it_was_refused(engine, world, fake_time):
    engine.load(parse(STEPS))
    entry(world, "TD3.1")
    with world.transaction() as tx:
        world.journal.append(tx, "dmp", "TD3.2", patient="alice", verdict="refused", code="DOCUMENT_DELETED")
    import time
    clock = time.strftime("%H:%M:%S", time.gmtime(fake_time.now))
    assert engine.finish()[1]["reason"] == (f"not observed: expected TD3.3c for alice; nearest: TD3.2 for alice "
                                            f"refused (DOCUMENT_DELETED) at {clock}")


MAIL_STEPS = """\
id: t-mail
title: Courriel
world:
  structures: [{id: chu}]
  professionals: [{id: dr, structure: chu, mssante: dr@chu.mssante.fr}]
  patients: [{id: alice, ins: "279035121518989"}]
steps:
  - id: refus
    say: Le point token refuse
    expect: {channel: oidc, operation: token, code: access_denied}
    verdict: refused
  - id: courriel
    say: Le courriel part, sans réponse possible
    expect: {channel: mss, operation: DELIVER}
    then: {mail: {headers: {X-MSS-MES: FIN}}}
  - id: autre
    say: Un autre courriel
    expect: {channel: mss, operation: DELIVER}
    then: {mail: {headers: {X-MSS-MES: FIN}}}
"""


def test_expect_code_and_then_mail_from_the_store(world, engine):
    """`expect.code` matches the entry's code only; `then.mail` reads the delivered message the entry's ref
    names when the entry carries no mail of its own, and says which header differs."""
    engine.load(parse(MAIL_STEPS, "t-mail.yaml"))
    with world.transaction() as tx:
        world.journal.append(tx, "oidc", "token", verdict="refused", code="invalid_grant")
        denied = world.journal.append(tx, "oidc", "token", verdict="refused", code="access_denied")
        raw = (b"From: dr@chu.mssante.fr\r\nTo: 279035121518989@patient.mssante.fr\r\nSubject: CR\r\n"
               b"Message-ID: <m1@chu>\r\nX-MSS-MES: FIN\r\n\r\nBonjour\r\n")
        world.mss.deliver(tx, "dr@chu.mssante.fr", ["279035121518989@patient.mssante.fr"], raw)
        world.journal.append(tx, "mss", "DELIVER", direction="out", ref="<m1@chu>")
        world.journal.append(tx, "mss", "DELIVER", direction="out", ref="<absent@chu>")
        steps = {s["id"]: s for s in engine.steps(tx)}
    assert steps["refus"]["status"] == "passed" and steps["refus"]["entries"] == [denied["seq"]]
    assert steps["courriel"]["status"] == "passed"
    assert steps["autre"]["reason_code"] == "MAIL_ABSENT"
    assert steps["autre"]["reason_fr"] == "l'échange ne désigne aucun courriel remis (<absent@chu>)"


def test_a_seeded_world_has_the_same_ids_on_every_load_and_later_documents_fresh_ones(engine, world):
    """The scenario's seed draws its documents' unique ids and entryUUIDs (the Seeder hands its rng to the DMP
    operations it calls), so every load makes the same ones; a document fed afterwards, outside the seeding,
    gets random ones."""
    scenario = parse(STEPS, "t.yaml")

    def seeded() -> tuple[str, str]:
        engine.load(scenario)
        with world.read() as tx:
            doc = world.dmp.current(tx, "cr")
        return doc.unique_id, doc.entry_uuid

    first = seeded()
    assert seeded() == first and first[0].startswith("2.25.") and first[1].startswith("urn:uuid:")
    with world.transaction() as tx:
        later = [world.dmp.submit(tx, DR, "alice", {"type_code": "11488-4", "title": "CR", **FEED}, b"x")
                 for _ in range(2)]
    assert len({first[0], *(d.unique_id for d in later)}) == 3
    assert len({first[1], *(d.entry_uuid for d in later)}) == 3


CLASSES = """\
id: classes
title: Classes des documents
world:
  structures: [{id: chu}]
  professionals: [{id: dr, structure: chu}]
  patients:
    - id: alice
      authorizations: [{structure: chu}]
      documents:
        - {id: cr, author: dr}
        - {id: imagerie, author: dr, type: 18748-4}
        - {id: choisie, author: dr, type: 18748-4, class: "10"}
"""


def test_seeded_documents_take_their_class_from_ass_x04_and_their_format_from_ass_a12(engine, world):
    # trans-cda-r2/mapping.md, Mapping XDS, Fiche: classCode from the type through ASS_X04, formatCode of a CDA
    # N1 from its mediaType through ASS_A12 (the seed's minimal_cda is an N1 in text/plain).
    engine.load(parse(CLASSES))
    with world.transaction() as tx:
        docs = {d.id: d for d in world.dmp.find(tx, DR, "alice")}
    assert docs["cr"].class_code == "10"              # 11488-4, compte rendu
    assert docs["imagerie"].class_code == "31"        # 18748-4, compte rendu d'imagerie
    assert docs["choisie"].class_code == "10"         # the scenario's own class is kept
    assert {d.format_code for d in docs.values()} == {"urn:ihe:iti:xds-sd:text:2008"}


def test_a_type_ass_x04_does_not_know_needs_its_class(engine):
    text = CLASSES.replace("type: 18748-4, class: \"10\"", "type: 99999-9")
    with pytest.raises(errors.ScenarioError, match="ASS_X04"):
        engine.load(parse(text))
