"""The DMP's rules (mockbench.world.dmp) and the directory they rely on. Every refusal checks its stable code."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest

from mockbench.world import errors, events
from mockbench.world.clock import iso
from mockbench.world.model import (
    INVISIBLE_PATIENT,
    INVISIBLE_REPRESENTANTS_LEGAUX,
    MASQUE_PS,
    Actor,
    Patient,
    Professional,
    Structure,
)

META_ = {"type_code": "11488-4", "class_code": "10", "creation_time": "2026-11-20T10:00:00Z"}

# --- Directory -----------------------------------------------------------------------------------


def test_add_structure_derives_idnst_and_lookups(world, ids):
    finess = ids.make_luhn("33000007")
    with world.transaction() as tx:
        s = world.directory.add_structure(tx, Structure(id="bdx", finess=finess, name="CHU Bordeaux"))
    assert s.idnst == "1" + finess
    with world.transaction() as tx:
        assert world.directory.structure(tx, "bdx").name == "CHU Bordeaux"
        assert world.directory.structure(tx, finess).id == "bdx"
        assert world.directory.structure(tx, "1" + finess).id == "bdx"
        assert [x.id for x in world.directory.structures(tx)] == ["bdx"]


def test_add_structure_refuses_bad_finess(world, ids, refused):
    finess = ids.bad_check_digit(ids.make_luhn("33000007"))
    with refused("IDENTIFIER_INVALID") as info, world.transaction() as tx:
        world.directory.add_structure(tx, Structure(id="bdx", finess=finess, name="x"))
    assert "structure bdx finess" in info.value.message
    assert "check digit should be" in info.value.message
    with world.transaction() as tx:
        assert world.directory.structures(tx) == []


def test_add_structure_refuses_bad_finess_ej(world, ids, refused):
    with refused("IDENTIFIER_INVALID") as info, world.transaction() as tx:
        world.directory.add_structure(tx, Structure(id="bdx", finess=ids.make_luhn("33000007"), name="x",
                                                    finess_ej="33000"))
    assert "finess_ej" in info.value.message


def test_duplicate_structure_refused(cast, ids, refused):
    with refused("IDENTIFIER_DUPLICATE"), cast.tx() as tx:
        cast.world.directory.add_structure(tx, Structure(id="chu", finess=ids.make_luhn("33000007"), name="x"))


def test_unknown_structure(cast, refused):
    with refused("STRUCTURE_UNKNOWN"), cast.tx() as tx:
        cast.world.directory.structure(tx, "nowhere")


def test_professional_lookups(cast, ids):
    rpps = ids.rpps["dr-a"]
    with cast.tx() as tx:
        d = cast.world.directory
        assert d.professional(tx, "dr-a").rpps == rpps
        assert d.professional(tx, "8" + rpps).id == "dr-a"
        assert d.professional(tx, rpps).id == "dr-a"  # a bare RPPS is read as 8+RPPS
        assert [p.id for p in d.professionals(tx)] == ["dr-a", "dr-b", "dr-c", "dr-d"]


def test_professional_bad_rpps_luhn(cast, ids, refused):
    bad = ids.bad_check_digit(ids.make_luhn("1000000099"))
    with refused("IDENTIFIER_INVALID") as info, cast.tx() as tx:
        cast.world.directory.add_professional(tx, Professional(id="dr-x", idnps="8" + bad, rpps=bad,
                                                               family_name="X", given_name="Y"))
    assert "professional dr-x rpps" in info.value.message
    assert "check digit should be" in info.value.message


def test_professional_bad_idnps_prefix(cast, refused):
    with refused("IDENTIFIER_INVALID") as info, cast.tx() as tx:
        cast.world.directory.add_professional(tx, Professional(id="dr-x", idnps="912345", family_name="X",
                                                               given_name="Y"))
    assert "unknown prefix '9'" in info.value.message


def test_professional_unknown_structure(cast, ids, refused):
    rpps = ids.make_luhn("1000000099")
    with refused("STRUCTURE_UNKNOWN"), cast.tx() as tx:
        cast.world.directory.add_professional(tx, Professional(id="dr-x", idnps="8" + rpps, rpps=rpps,
                                                               family_name="X", given_name="Y",
                                                               structure="nowhere"))


@pytest.mark.parametrize("same", ["id", "idnps"])
def test_duplicate_professional_refused(cast, ids, refused, same):
    rpps = ids.make_luhn("1000000099")
    pid = "dr-a" if same == "id" else "dr-x"
    idnps = "8" + (rpps if same == "id" else ids.rpps["dr-a"])
    with refused("IDENTIFIER_DUPLICATE"), cast.tx() as tx:
        cast.world.directory.add_professional(tx, Professional(id=pid, idnps=idnps, family_name="X",
                                                               given_name="Y"))


def test_unknown_professional(cast, refused):
    with refused("PROFESSIONAL_UNKNOWN"), cast.tx() as tx:
        cast.world.directory.professional(tx, "dr-zz")


def test_patient_lookup_by_id_and_ins(cast, ids, refused):
    with cast.tx() as tx:
        assert cast.world.directory.patient(tx, ids.ins["alice"]).id == "alice"
        assert cast.world.directory.patient(tx, "alice").ins == ids.ins["alice"]
        assert [p.id for p in cast.world.directory.patients(tx)] == ["alice", "bob"]
    with refused("PATIENT_UNKNOWN"), cast.tx() as tx:
        cast.world.directory.patient(tx, "carol")


def test_patient_bad_nir_key(cast, ids, refused):
    good = ids.make_nir("2991299123456")
    bad = good[:13] + f"{(int(good[13:]) % 97) + 1:02d}"
    with refused("IDENTIFIER_INVALID") as info, cast.tx() as tx:
        cast.world.directory.add_patient(tx, Patient(id="carol", ins=bad, family_name="X", given_name="Y",
                                                     birth_date="1999-12-01", sex="F"))
    assert f"its key should be {good[13:]}" in info.value.message
    assert "patient carol ins" in info.value.message


@pytest.mark.parametrize("same", ["id", "ins"])
def test_duplicate_patient_refused(cast, ids, refused, same):
    ins = ids.ins["alice"] if same == "ins" else ids.make_nir("2991299123456")
    pid = "alice" if same == "id" else "carol"
    with refused("IDENTIFIER_DUPLICATE"), cast.tx() as tx:
        cast.world.directory.add_patient(tx, Patient(id=pid, ins=ins, family_name="X", given_name="Y",
                                                     birth_date="1999-12-01", sex="F"))


def test_patient_bad_dmp_state(cast, ids, refused):
    with refused("INVALID_REQUEST"), cast.tx() as tx:
        cast.world.directory.add_patient(tx, Patient(id="carol", ins=ids.make_nir("2991299123456"),
                                                     family_name="X", given_name="Y", birth_date="1999-12-01",
                                                     sex="F", dmp="frozen"))


# --- Access ----------------------------------------------------------------------------------------


def _add_patient(cast, ids, pid, body13, **kwargs):
    with cast.tx() as tx:
        cast.world.directory.add_patient(tx, Patient(id=pid, ins=ids.make_nir(body13), family_name="X",
                                                     given_name="Y", birth_date="1999-12-01", sex="F", **kwargs))


def test_dmp_absent(cast, ids, refused):
    _add_patient(cast, ids, "carol", "2991299123456", dmp="absent")
    with refused("DMP_ABSENT"):
        cast.find(cast.author, "carol")
    with refused("DMP_ABSENT"):
        cast.submit(cast.author, patient="carol")
    with refused("DMP_ABSENT"):
        cast.authorize(structure="chu", patient="carol")


def test_dmp_closed_refuses_find_and_submit(cast, refused):
    with cast.tx() as tx:
        cast.world.dmp.close(tx, cast.system, "alice", reason="deces")
    with refused("DMP_CLOSED"):
        cast.find(cast.author)
    with refused("DMP_CLOSED"):
        cast.submit()
    with refused("DMP_CLOSED"):
        cast.find(cast.patient)


def test_no_authorization_refuses_consultation_only(cast, refused):
    """specs/pdsm4dmp/transaction_td02.md NB2: the access authorizations are used only to consult a DMP.
    TD3.1a (transaction_td3.1a.md) and TD3.2 (transaction_td3.2.md) need a VALIDE one; TD2.1 needs none."""
    with refused("AUTHORIZATION_MISSING"):
        cast.find(cast.stranger)
    with refused("AUTHORIZATION_MISSING"):
        cast.find(cast.author, "bob")
    fed = cast.submit(cast.stranger)
    bobs = cast.submit(cast.author, patient="bob")
    assert (fed.status, bobs.status, fed.author) == ("approved", "approved", "dr-d")
    with refused("AUTHORIZATION_MISSING"), cast.tx() as tx:
        cast.world.dmp.read(tx, cast.stranger, fed.unique_id)
    with cast.tx() as tx:
        assert [t.action for t in cast.world.dmp.traces(tx, "bob")] == ["alimentation"]


def test_feeder_without_authorization_replaces_deletes_and_archives(cast, refused):
    """transaction_td3.3c.md NB1 (and the same prerequisite in td3.3a, td3.3b, td3.3d): with the feeding
    profile no access authorization is needed to replace, delete, archive or change one's own documents."""
    masker = cast.pro("dr-d", authentication="DIRECTE")
    doc = cast.submit(cast.stranger)
    new = _replace(cast, cast.stranger, doc.unique_id)
    with cast.tx() as tx:
        cast.world.dmp.set_masked(tx, masker, new.unique_id, True)
        cast.world.dmp.set_masked(tx, masker, new.unique_id, False)
        cast.world.dmp.archive(tx, cast.stranger, new.unique_id)
        cast.world.dmp.unarchive(tx, cast.stranger, new.unique_id)
    deleted = _delete(cast, cast.stranger, new.unique_id)
    assert deleted.status == "deleted"
    assert cast.actions()[-6:] == ["remplacement", "masquage", "demasquage", "archivage", "desarchivage",
                                   "suppression"]
    with refused("AUTHORIZATION_MISSING"):     # consultation still needs one
        cast.find(cast.stranger)


def test_feeder_without_authorization_finds_its_own_documents_by_id(cast, refused):
    """transaction_td3.1b.md: TD3.1b (the technical id of a document from its unique id) needs a VALIDE
    authorization "sauf si le LPS implémente le profil Alimentation": without one, a professional is told
    about its own (or its structure's) documents only."""
    own = cast.submit(cast.stranger)
    other = cast.submit(cast.author)
    with cast.tx() as tx:
        got = cast.world.dmp.get(tx, cast.stranger, "alice", [own.unique_id, other.unique_id, other.entry_uuid])
    assert [d.unique_id for d in got] == [own.unique_id]
    with cast.tx() as tx:
        got = cast.world.dmp.get(tx, cast.author, "alice", [own.unique_id, other.unique_id])
    assert sorted(d.unique_id for d in got) == sorted([own.unique_id, other.unique_id])   # chu is authorized
    cast.authorize("INTERDIT", structure="lab")
    with refused("PROFESSIONAL_BLOCKED"), cast.tx() as tx:
        cast.world.dmp.get(tx, cast.stranger, "alice", [own.unique_id])


@pytest.mark.parametrize("with_authorization", [True, False])
def test_blocked_professional_refused_everything(cast, refused, with_authorization):
    """transaction_td02.md NB1: a professional whom the patient blocked cannot access the DMP, with or
    without the patient's authorization: feeding, replacing, deleting, masking and consulting alike."""
    doc = cast.submit(cast.stranger)
    if with_authorization:
        cast.authorize(structure="lab")
    cast.authorize("INTERDIT", professional="dr-d")
    with refused("PROFESSIONAL_BLOCKED"):
        cast.submit(cast.stranger)
    with refused("PROFESSIONAL_BLOCKED"):
        _replace(cast, cast.stranger, doc.unique_id)
    with refused("PROFESSIONAL_BLOCKED"):
        _delete(cast, cast.stranger, doc.unique_id)
    with refused("PROFESSIONAL_BLOCKED"), cast.tx() as tx:
        cast.world.dmp.set_masked(tx, cast.pro("dr-d", authentication="DIRECTE"), doc.unique_id, True)
    with refused("PROFESSIONAL_BLOCKED"), cast.tx() as tx:
        cast.world.dmp.archive(tx, cast.stranger, doc.unique_id)
    with refused("PROFESSIONAL_BLOCKED"):
        cast.find(cast.stranger)
    assert cast.doc(doc.unique_id).status == "approved"


def test_structure_authorization_covers_its_professionals(cast):
    doc = cast.submit(cast.colleague)  # dr-b has no row of its own: chu's VALIDE applies
    assert cast.find(cast.colleague) == [doc.unique_id]
    assert cast.find(cast.outsider) == [doc.unique_id]


def test_professional_authorization_then_withdrawn(cast, refused):
    cast.authorize(professional="dr-d")
    doc = cast.submit(cast.stranger)
    assert cast.find(cast.stranger) == [doc.unique_id]
    with cast.tx() as tx:
        auth = cast.world.dmp.withdraw_authorization(tx, cast.patient, "alice", professional="dr-d")
    assert (auth.status, auth.reason, auth.subject_kind, auth.subject) == ("NON_EXISTE", "withdrawn",
                                                                          "professional", "dr-d")
    assert cast.actions()[-1] == "retrait_autorisation"
    with refused("AUTHORIZATION_WITHDRAWN"):
        cast.find(cast.stranger)
    assert cast.submit(cast.stranger).status == "approved"   # feeding needs no authorization (td02 NB2)


def test_structure_authorization_withdrawn(cast, refused):
    with cast.tx() as tx:
        cast.world.dmp.withdraw_authorization(tx, cast.patient, "alice", structure="clinic")
    with refused("AUTHORIZATION_WITHDRAWN"):
        cast.find(cast.outsider)


def test_authorization_expires_on_virtual_clock(cast, refused):
    until = iso(cast.world.clock.later(3600))
    cast.authorize(professional="dr-d", until=until)
    assert cast.find(cast.stranger) == []
    with cast.tx() as tx:
        cast.world.advance_clock(tx, 3599)
    assert cast.find(cast.stranger) == []
    with cast.tx() as tx:
        cast.world.advance_clock(tx, 1)  # until <= now: expired
    with refused("AUTHORIZATION_EXPIRED"):
        cast.find(cast.stranger)
    assert cast.submit(cast.stranger).status == "approved"   # feeding needs no authorization (td02 NB2)
    with cast.tx() as tx:
        status = cast.world.dmp.authorization_status(tx, cast.patient_record(), cast.stranger)
    assert status.status == "EXPIRE"


def test_authorization_until_in_the_past(cast, refused):
    cast.authorize(professional="dr-d", until=iso(cast.world.clock.now() - timedelta(seconds=1)))
    with refused("AUTHORIZATION_EXPIRED"):
        cast.find(cast.stranger)


def test_expired_professional_row_does_not_hide_valid_structure_row(cast):
    cast.authorize(professional="dr-c", until=iso(cast.world.clock.now() - timedelta(seconds=1)))
    assert cast.find(cast.outsider) == []  # clinic is VALIDE


@pytest.mark.parametrize("mode,auth", [("normal", "INDIRECTE_RENFORCEE"), ("bris_de_glace", "DIRECTE"),
                                       ("centre_15", "INDIRECTE_RENFORCEE")])
def test_blocked_professional_refused_in_every_mode(cast, refused, mode, auth):
    cast.authorize("INTERDIT", professional="dr-a")  # chu is still VALIDE: the professional row wins
    with refused("PROFESSIONAL_BLOCKED"):
        cast.find(cast.pro("dr-a", mode, auth))
    with refused("PROFESSIONAL_BLOCKED"):
        cast.submit(cast.pro("dr-a", mode, auth))
    assert cast.find(cast.colleague) == []


def test_blocked_structure_blocks_its_professionals(cast, refused):
    cast.authorize("INTERDIT", structure="chu")
    cast.authorize("VALIDE", professional="dr-b")
    with refused("PROFESSIONAL_BLOCKED"):
        cast.find(cast.colleague)


def test_centre_15_skips_authorization(cast, refused):
    doc = cast.submit(cast.pro("dr-d", "centre_15"))
    assert cast.find(cast.pro("dr-d", "centre_15")) == [doc.unique_id]
    with refused("AUTHORIZATION_MISSING"):
        cast.find(cast.stranger)
    cast.update_patient(oppositions=["OPPOSITION_BRIS_DE_GLACE"])
    assert cast.find(cast.pro("dr-d", "centre_15")) == [doc.unique_id]
    cast.update_patient(oppositions=["OPPOSITION_ACCES_URGENCE"])
    with refused("PATIENT_OPPOSITION"):
        cast.find(cast.pro("dr-d", "centre_15"))


def test_bris_de_glace_needs_direct_authentication(cast, refused):
    with refused("ACCESS_MODE_REFUSED"):
        cast.find(cast.pro("dr-d", "bris_de_glace", "INDIRECTE_RENFORCEE"))
    with refused("ACCESS_MODE_REFUSED"):
        cast.find(cast.pro("dr-a", "bris_de_glace", "INDIRECTE"))
    assert cast.find(cast.pro("dr-d", "bris_de_glace", "DIRECTE")) == []


def test_bris_de_glace_honours_opposition(cast, refused):
    cast.update_patient(oppositions=["OPPOSITION_ACCES_URGENCE"])
    assert cast.find(cast.pro("dr-d", "bris_de_glace", "DIRECTE")) == []
    cast.update_patient(oppositions=["OPPOSITION_BRIS_DE_GLACE"])
    with refused("PATIENT_OPPOSITION"):
        cast.find(cast.pro("dr-d", "bris_de_glace", "DIRECTE"))
    assert cast.find(cast.author) == []  # normal mode is not concerned


def test_unknown_access_mode(cast, refused):
    with refused("ACCESS_MODE_REFUSED"):
        cast.find(cast.pro("dr-a", "urgence"))


def test_unknown_professional_actor(cast, refused):
    with refused("PROFESSIONAL_UNKNOWN"):
        cast.find(Actor(kind="professional", id="dr-zz", structure="chu"))


def test_patient_only_on_own_dmp(cast, ids, refused):
    assert cast.find(cast.patient) == []
    assert cast.find(Actor(kind="patient", id=ids.ins["alice"])) == []
    with refused("AUTHORIZATION_MISSING"):
        cast.find(Actor(kind="patient", id="bob"))
    with refused("AUTHORIZATION_MISSING"):
        cast.find(Actor(kind="legal_representative", id="bob"))
    with refused("AUTHORIZATION_MISSING"):
        cast.submit(Actor(kind="patient", id="bob"))


@pytest.mark.parametrize("mode", ["bris_de_glace", "centre_15"])
def test_only_normal_mode_may_set_authorization(cast, refused, mode):
    with refused("ACCESS_MODE_REFUSED"):
        cast.authorize(professional="dr-d", actor=cast.pro("dr-d", mode, "DIRECTE"))
    with cast.tx() as tx:
        assert [a.subject for a in cast.world.dmp.authorizations(tx, "alice")] == ["chu", "clinic"]
    cast.authorize(professional="dr-d", actor=cast.stranger)  # TD0.3: the PS declares itself
    assert cast.find(cast.stranger) == []


def test_set_authorization_validates_its_arguments(cast, refused):
    with refused("INVALID_REQUEST"):
        cast.authorize("MAYBE", structure="lab")
    with refused("INVALID_REQUEST"):
        cast.authorize(structure="lab", professional="dr-d")
    with refused("INVALID_REQUEST"):
        cast.authorize()
    with refused("STRUCTURE_UNKNOWN"):
        cast.authorize(structure="nowhere")
    with refused("PROFESSIONAL_UNKNOWN"):
        cast.authorize(professional="dr-zz")
    with refused("INVALID_REQUEST"):
        cast.authorize(professional="dr-d", until="next tuesday")


def test_set_authorization_records_trace_and_event(cast):
    seen = []
    cast.world.events.subscribe(events.AUTHORIZATION_CHANGED, seen.append)
    cast.authorize(structure="lab")
    cast.authorize("INTERDIT", professional="dr-c")
    assert cast.actions()[-2:] == ["autorisation", "retrait_autorisation"]
    assert [(e.patient, e.data["subject"], e.data["status"]) for e in seen] == [
        ("alice", "lab", "VALIDE"), ("alice", "dr-c", "INTERDIT")]
    with cast.tx() as tx:
        rows = {(a.subject_kind, a.subject): a for a in cast.world.dmp.authorizations(tx, "alice")}
    assert rows[("structure", "lab")].since == cast.world.clock.now_iso()


def test_blocked_professional_cannot_lift_its_own_block(cast, refused):
    cast.authorize("INTERDIT", professional="dr-c", actor=cast.patient)
    with refused("PROFESSIONAL_BLOCKED"):
        cast.authorize(professional="dr-c", actor=cast.outsider)
    with refused("PROFESSIONAL_BLOCKED"):
        with cast.tx() as tx:
            cast.world.dmp.withdraw_authorization(tx, cast.outsider, "alice", professional="dr-c")
    with refused("PROFESSIONAL_BLOCKED"):
        cast.find(cast.outsider)
    cast.authorize(professional="dr-c", actor=cast.patient)  # the patient may lift it
    assert cast.find(cast.outsider) == []


def test_patient_sets_authorizations_only_on_own_dmp(cast, refused):
    with refused("AUTHORIZATION_MISSING"):
        cast.authorize("INTERDIT", professional="dr-a", actor=Actor(kind="patient", id="bob"))
    assert cast.find(cast.author) == []


# --- Submit ----------------------------------------------------------------------------------------


def test_submit_fills_metadata(cast, ids):
    doc = cast.submit()
    assert doc.author == "dr-a"
    assert doc.author_structure == "chu"
    assert doc.submitted_by == "dr-a"
    assert (doc.status, doc.version, doc.current) == ("approved", 1, True)
    assert doc.entry_uuid.startswith("urn:uuid:")
    assert doc.lid == doc.entry_uuid
    assert doc.unique_id.startswith("2.25.")
    assert doc.id == doc.unique_id
    assert doc.hash == hashlib.sha1(ids.content).hexdigest().upper()
    assert doc.size == len(ids.content)
    assert doc.confidentiality == ["N"]
    assert doc.submission_time == cast.world.clock.now_iso() == "2025-06-15T15:06:40.000Z"
    assert doc.creation_time == "2026-11-20T10:00:00Z"    # the feeder's, never the submission time
    assert doc.replaces is None and doc.replaced_by is None
    assert cast.doc(doc.unique_id) == doc


def test_submit_keeps_given_ids_and_ignores_reserved_fields(cast):
    doc = cast.submit(unique_id="1.2.3.4", id="cr-1", status="deleted", version=9, current=False,
                      confidentiality=["MASQUE_PS", "MASQUE_PS"], replaces="9.9.9")
    assert (doc.unique_id, doc.id, doc.status, doc.version) == ("1.2.3.4", "cr-1", "approved", 1)
    assert doc.confidentiality == [MASQUE_PS]
    assert doc.replaces is None
    assert cast.doc("cr-1").unique_id == "1.2.3.4"  # the scenario id finds it too


def test_submit_requires_type_code(cast, refused):
    with refused("METADATA_INVALID") as info:
        cast.submit(type_code="")
    assert "typeCode" in info.value.message


@pytest.mark.parametrize("creation_time", [None, "", "not a time", "2026-13-45T00:00:00Z"])
def test_submit_and_replace_require_a_creation_time(cast, refused, creation_time):
    """trans-cda-r2/mapping.md, "Mapping XDS", Fiche: creationTime "requis" (the DMP door's reader refuses an entry
    without the slot: formats/ebrim/reader.py). The world makes none up: absent or unreadable, the feed is refused
    as metadata in error (XDSRegistryMetadataError on the wire, world/dmp_codes.py), whoever feeds."""
    meta = {} if creation_time is None else {"creation_time": creation_time}
    with cast.tx() as tx:
        cast.world.dmp.submit(tx, cast.author, "alice", {**META_, "unique_id": "1.2.250.1.999.70"}, b"v1")
    for feed in (lambda tx: cast.world.dmp.submit(tx, cast.author, "alice", {"type_code": "11488-4", **meta}, b"x"),
                 lambda tx: cast.world.dmp.replace(tx, cast.author, "alice", "1.2.250.1.999.70",
                                                   {"type_code": "11488-4", **meta}, b"v2")):
        with refused("METADATA_INVALID") as info, cast.tx() as tx:
            feed(tx)
        assert "creationTime" in info.value.message
    assert [d.unique_id for d in cast.history("1.2.250.1.999.70")] == ["1.2.250.1.999.70"]


def test_submit_refuses_unknown_field(cast, refused):
    with refused("METADATA_INVALID") as info:
        cast.submit(colour="blue")
    assert "colour" in info.value.message


def test_submit_refuses_unknown_confidentiality(cast, refused):
    with refused("METADATA_INVALID") as info:
        cast.submit(confidentiality=["N", "SECRET"])
    assert "SECRET" in info.value.message


def test_masque_ps_with_invisible_patient(cast, refused):
    with refused("CONFIDENTIALITY_CONFLICT"):
        cast.submit(confidentiality=[MASQUE_PS, INVISIBLE_PATIENT])
    doc = cast.submit(confidentiality=[MASQUE_PS, INVISIBLE_REPRESENTANTS_LEGAUX])
    assert doc.confidentiality == [MASQUE_PS, INVISIBLE_REPRESENTANTS_LEGAUX]
    cast.update_patient(allow_masked_and_invisible=True)
    doc = cast.submit(confidentiality=[MASQUE_PS, INVISIBLE_PATIENT])
    assert doc.confidentiality == [MASQUE_PS, INVISIBLE_PATIENT]


def test_hash_and_size_checked(cast, ids, refused):
    digest = hashlib.sha1(ids.content).hexdigest()
    with refused("HASH_MISMATCH"):
        cast.submit(hash=hashlib.sha1(b"other").hexdigest())
    with refused("SIZE_MISMATCH"):
        cast.submit(size=len(ids.content) + 1)
    doc = cast.submit(hash=digest.lower(), size=len(ids.content))
    assert doc.hash == digest.upper()
    with cast.tx() as tx:
        assert cast.world.dmp.documents(tx, "alice") == [doc]


def test_duplicate_unique_id(cast, refused):
    cast.submit(unique_id="1.2.3.4")
    with refused("IDENTIFIER_DUPLICATE"):
        cast.submit(unique_id="1.2.3.4")
    cast.authorize(structure="chu", patient="bob")
    with refused("IDENTIFIER_DUPLICATE"):
        cast.submit(patient="bob", unique_id="1.2.3.4")


def test_failed_submit_leaves_nothing(cast, refused):
    before = cast.actions()
    with refused("HASH_MISMATCH"):
        cast.submit(unique_id="1.2.3.4", hash="00")
    with cast.tx() as tx:
        assert cast.world.dmp.documents(tx, "alice", history=True) == []
        assert tx.get_blob("contents", unique_id="1.2.3.4") is None
    assert cast.actions() == before


def test_submit_traces(cast):
    start = len(cast.actions())
    plain = cast.submit()
    invisible = cast.submit(confidentiality=[INVISIBLE_PATIENT])
    legal = cast.submit(confidentiality=[INVISIBLE_REPRESENTANTS_LEGAUX])
    with cast.tx() as tx:
        traces = cast.world.dmp.traces(tx, "alice")[start:]
    assert [(t.action, t.document) for t in traces] == [
        ("alimentation", plain.unique_id),
        ("alimentation", invisible.unique_id), ("invisibilisation", invisible.unique_id),
        ("alimentation", legal.unique_id), ("invisibilisation", legal.unique_id),
    ]
    assert {(t.actor, t.actor_kind, t.structure, t.mode, t.patient) for t in traces} == {
        ("dr-a", "professional", "chu", "normal", "alice")}
    seqs = [t.seq for t in traces]
    assert seqs == list(range(seqs[0], seqs[0] + 5))


def test_feeding_against_opposition_is_a_finding(cast):
    cast.update_patient(consent={"consultation": "NA", "feeding_opposition": "IO"})
    with cast.tx() as tx:
        findings: list[dict] = []
        doc = cast.world.dmp.submit(tx, cast.author, "alice", dict(META_), b"x", findings=findings)
    assert doc.status == "approved"
    assert len(findings) == 1
    assert findings[0]["rule"] == "DMP/CONSENT"
    assert findings[0]["severity"] == "warning"
    assert "ZFA-9 IO" in findings[0]["message"]


def test_no_finding_without_opposition(cast):
    with cast.tx() as tx:
        findings: list[dict] = []
        cast.world.dmp.submit(tx, cast.author, "alice", dict(META_), b"x", findings=findings)
        assert findings == []


def test_consulting_without_consent_is_a_finding(cast):
    cast.update_patient(consent={"consultation": "INC", "feeding_opposition": "NA"})
    with cast.tx() as tx:
        findings: list[dict] = []
        assert cast.world.dmp.find(tx, cast.author, "alice", findings=findings) == []
        assert [f["rule"] for f in findings] == ["DMP/CONSENT"]
        assert "ZFA-11 INC" in findings[0]["message"]


def test_document_fed_event_after_commit_only(cast):
    seen = []
    cast.world.events.subscribe(events.DOCUMENT_FED, seen.append)
    with cast.tx() as tx:
        doc = cast.world.dmp.submit(tx, cast.author, "alice", dict(META_), b"x", cause="MSG-1")
        assert seen == []
    assert len(seen) == 1
    ev = seen[0]
    assert (ev.kind, ev.cause, ev.patient, ev.document) == ("document.fed", "MSG-1", "alice", doc.unique_id)
    assert ev.data == {"entry_uuid": doc.entry_uuid}
    assert ev.time == cast.world.clock.now_iso()


def test_document_fed_event_not_published_on_rollback(cast):
    seen = []
    cast.world.events.subscribe("document.", seen.append)
    with pytest.raises(RuntimeError), cast.tx() as tx:
        cast.world.dmp.submit(tx, cast.author, "alice", dict(META_), b"x")
        raise RuntimeError("the door failed after feeding")
    assert seen == []
    with cast.tx() as tx:
        assert cast.world.dmp.documents(tx, "alice") == []


# --- Replace -------------------------------------------------------------------------------------


def _replace(cast, actor, target, patient="alice", content=b"v2", **meta):
    with cast.tx() as tx:
        return cast.world.dmp.replace(tx, actor, patient, target, {**META_, **meta}, content)


def test_replace_deprecates_old(cast):
    seen = []
    cast.world.events.subscribe(events.DOCUMENT_REPLACED, seen.append)
    old = cast.submit()
    new = _replace(cast, cast.author, old.unique_id)
    old_now = cast.history(old.unique_id)
    assert len(old_now) == 1
    assert (old_now[0].status, old_now[0].replaced_by, old_now[0].current) == ("deprecated", new.unique_id, True)
    assert (new.status, new.replaces, new.replaced_by) == ("approved", old.unique_id, None)
    assert cast.actions()[-1] == "remplacement"
    assert [(e.document, e.data["replaces"]) for e in seen] == [(new.unique_id, old.unique_id)]
    assert cast.find(cast.author) == [new.unique_id]
    assert cast.find(cast.author, statuses=("approved", "deprecated")) == [old.unique_id, new.unique_id]


def test_replace_by_entry_uuid(cast):
    old = cast.submit()
    new = _replace(cast, cast.author, old.entry_uuid)
    assert new.replaces == old.unique_id


def test_replace_deprecated_refused(cast, refused):
    old = cast.submit()
    _replace(cast, cast.author, old.unique_id)
    with refused("NOT_CURRENT_VERSION"):
        _replace(cast, cast.author, old.unique_id)


def test_replace_needs_author_or_structure(cast, refused):
    old = cast.submit()
    with refused("NOT_AUTHOR"):
        _replace(cast, cast.outsider, old.unique_id)
    with refused("NOT_AUTHOR"):
        _replace(cast, cast.patient, old.unique_id)
    assert cast.doc(old.unique_id).status == "approved"
    new = _replace(cast, cast.colleague, old.unique_id)
    assert (new.author, new.author_structure, new.replaces) == ("dr-b", "chu", old.unique_id)


def test_replace_deleted_archived_unknown(cast, refused):
    a, b = cast.submit(), cast.submit()
    with cast.tx() as tx:
        cast.world.dmp.delete(tx, cast.author, a.unique_id)
        cast.world.dmp.archive(tx, cast.author, b.unique_id)
    with refused("DOCUMENT_DELETED"):
        _replace(cast, cast.author, a.unique_id)
    with refused("STATUS_CHANGE_INVALID"):
        _replace(cast, cast.author, b.unique_id)
    with refused("DOCUMENT_UNKNOWN"):
        _replace(cast, cast.author, "9.9.9")
    cast.authorize(structure="chu", patient="bob")
    with refused("DOCUMENT_UNKNOWN"):
        _replace(cast, cast.author, b.unique_id, patient="bob")


def test_replace_fed_invisible_traces_invisibilisation(cast):
    old = cast.submit()
    new = _replace(cast, cast.author, old.unique_id, confidentiality=[INVISIBLE_PATIENT])
    with cast.tx() as tx:
        last = cast.world.dmp.traces(tx, "alice")[-2:]
    assert [(t.action, t.document) for t in last] == [("remplacement", new.unique_id),
                                                      ("invisibilisation", new.unique_id)]


def test_replacing_with_the_same_content_is_a_versioning_finding(cast):
    old = cast.submit(content=b"<same/>")
    with cast.tx() as tx:
        findings: list[dict] = []
        new = cast.world.dmp.replace(tx, cast.author, "alice", old.unique_id,
                                     {**META_, "confidentiality": [MASQUE_PS]}, b"<same/>", findings=findings)
    assert new.status == "approved" and cast.doc(old.unique_id).status == "deprecated"   # a warning, not a refusal
    assert [(f["rule"], f["severity"]) for f in findings] == [("DMP/VERSIONING", "warning")]
    message = findings[0]["message"]
    assert old.unique_id in message and new.hash in message and "confidentiality" in message
    assert "TD3.3a" in message and "TD3.3b" in message


def test_replacing_with_new_content_is_no_versioning_finding(cast):
    old = cast.submit()
    with cast.tx() as tx:
        findings: list[dict] = []
        cast.world.dmp.replace(tx, cast.author, "alice", old.unique_id, dict(META_), b"<corrected/>",
                               findings=findings)
        assert findings == []


def test_a_refused_replacement_leaves_no_versioning_finding(cast, refused):
    old = cast.submit(content=b"<same/>")
    findings: list[dict] = []
    with refused("NOT_AUTHOR"), cast.tx() as tx:
        try:
            cast.world.dmp.replace(tx, cast.outsider, "alice", old.unique_id, dict(META_), b"<same/>",
                                   findings=findings)
        finally:
            assert findings == []


# --- Delete --------------------------------------------------------------------------------------


def _delete(cast, actor, target, **kw):
    with cast.tx() as tx:
        return cast.world.dmp.delete(tx, actor, target, **kw)


@pytest.mark.parametrize("who", ["author", "patient"])
def test_delete_allowed(cast, who):
    doc = cast.submit()
    deleted = _delete(cast, getattr(cast, who), doc.unique_id)
    assert deleted.status == "deleted"
    assert cast.actions()[-1] == "suppression"


@pytest.mark.parametrize("who", ["colleague", "outsider", "representative"])
def test_delete_refused_to_others(cast, refused, who):
    """specs/pdsm4dmp/transaction_td3.3c.md NB2: only the document's author deletes it; a colleague of the
    author's structure is refused too ("author or organisation" is the PFI's error 901, not the DMP's)."""
    doc = cast.submit()
    with refused("NOT_AUTHOR") as info:
        _delete(cast, getattr(cast, who), doc.unique_id)
    assert "only the document's author deletes it (TD3.3c NB2)" in info.value.message
    assert cast.doc(doc.unique_id).status == "approved"


def test_delete_twice_and_deprecated(cast, refused):
    doc = cast.submit()
    _delete(cast, cast.author, doc.unique_id)
    with refused("DOCUMENT_DELETED"):
        _delete(cast, cast.author, doc.unique_id)
    old = cast.submit()
    _replace(cast, cast.author, old.unique_id)
    with refused("NOT_CURRENT_VERSION"):
        _delete(cast, cast.author, old.unique_id)


def test_delete_removes_nothing(cast, ids):
    seen = []
    cast.world.events.subscribe(events.DOCUMENT_DELETED, seen.append)
    doc = cast.submit(content=ids.content)
    _delete(cast, cast.author, doc.unique_id, patient_key="alice")
    with cast.tx() as tx:
        history = cast.world.dmp.documents(tx, "alice", history=True)
        assert [(d.unique_id, d.status) for d in history] == [(doc.unique_id, "deleted")]
        assert cast.world.dmp.content(tx, doc.unique_id) == ids.content
    assert [e.data for e in seen] == [{"from": "approved", "to": "deleted"}]


def test_delete_archived_document(cast):
    doc = cast.submit()
    with cast.tx() as tx:
        cast.world.dmp.archive(tx, cast.author, doc.unique_id)
    assert _delete(cast, cast.author, doc.unique_id).status == "deleted"


def test_delete_with_wrong_patient_key(cast, refused):
    doc = cast.submit()
    cast.authorize(structure="chu", patient="bob")
    with refused("DOCUMENT_UNKNOWN"):
        _delete(cast, cast.author, doc.unique_id, patient_key="bob")


# --- Archive ------------------------------------------------------------------------------------


def test_archive_and_unarchive(cast, refused):
    doc = cast.submit()
    with cast.tx() as tx:
        assert cast.world.dmp.archive(tx, cast.colleague, doc.unique_id).status == "archived"
    assert cast.find(cast.author) == []
    assert cast.find(cast.author, statuses=("approved", "archived")) == [doc.unique_id]
    with refused("STATUS_CHANGE_INVALID"), cast.tx() as tx:
        cast.world.dmp.archive(tx, cast.author, doc.unique_id)
    with refused("NOT_AUTHOR"), cast.tx() as tx:
        cast.world.dmp.unarchive(tx, cast.outsider, doc.unique_id)
    with cast.tx() as tx:
        assert cast.world.dmp.unarchive(tx, cast.patient, doc.unique_id).status == "approved"
    with refused("STATUS_CHANGE_INVALID"), cast.tx() as tx:
        cast.world.dmp.unarchive(tx, cast.author, doc.unique_id)
    assert cast.actions()[-2:] == ["archivage", "desarchivage"]
    assert cast.find(cast.author) == [doc.unique_id]


def test_archive_refusals(cast, refused):
    doc = cast.submit()
    with refused("NOT_AUTHOR"), cast.tx() as tx:
        cast.world.dmp.archive(tx, cast.outsider, doc.unique_id)
    _delete(cast, cast.author, doc.unique_id)
    with refused("STATUS_CHANGE_INVALID"), cast.tx() as tx:
        cast.world.dmp.archive(tx, cast.author, doc.unique_id)
    old = cast.submit()
    _replace(cast, cast.author, old.unique_id)
    with refused("STATUS_CHANGE_INVALID"), cast.tx() as tx:
        cast.world.dmp.archive(tx, cast.author, old.unique_id)


def test_find_never_returns_deleted(cast):
    kept, gone = cast.submit(), cast.submit()
    _delete(cast, cast.author, gone.unique_id)
    everything = ("approved", "archived", "deprecated", "deleted")
    for actor in (cast.author, cast.patient, cast.system, cast.pro("dr-d", "centre_15")):
        assert cast.find(actor, statuses=everything) == [kept.unique_id]
    assert cast.find(cast.author, statuses=("deleted",)) == []


# --- Mask / unmask -------------------------------------------------------------------------------


def _mask(cast, actor, target, masked=True):
    with cast.tx() as tx:
        return cast.world.dmp.set_masked(tx, actor, target, masked)


def test_mask_makes_a_new_metadata_version(cast):
    doc = cast.submit()
    masked = _mask(cast, cast.author, doc.unique_id)
    assert (masked.version, masked.lid, masked.unique_id) == (2, doc.lid, doc.unique_id)
    assert masked.entry_uuid != doc.entry_uuid
    assert masked.confidentiality == ["N", MASQUE_PS]
    versions = cast.history(doc.unique_id)
    assert [(v.version, v.entry_uuid, v.current, v.status) for v in versions] == [
        (1, doc.entry_uuid, False, "deprecated"), (2, masked.entry_uuid, True, "approved")]
    assert cast.doc(doc.entry_uuid).entry_uuid == masked.entry_uuid  # an old entryUUID names the current one
    assert cast.actions()[-1] == "masquage"
    unmasked = _mask(cast, cast.author, doc.unique_id, False)
    assert (unmasked.version, unmasked.confidentiality, unmasked.lid) == (3, ["N"], doc.lid)
    assert len({v.entry_uuid for v in cast.history(doc.unique_id)}) == 3
    assert [v.current for v in cast.history(doc.unique_id)] == [False, False, True]
    assert cast.actions()[-1] == "demasquage"


def test_mask_no_change(cast, refused):
    doc = cast.submit()
    with refused("NO_CHANGE"):
        _mask(cast, cast.author, doc.unique_id, False)
    _mask(cast, cast.author, doc.unique_id)
    with refused("NO_CHANGE"):
        _mask(cast, cast.author, doc.unique_id)
    assert len(cast.history(doc.unique_id)) == 2


def test_mask_rights(cast, refused):
    doc = cast.submit()
    with refused("NOT_AUTHOR"):
        _mask(cast, cast.outsider, doc.unique_id)
    with refused("NOT_AUTHOR"):
        _mask(cast, cast.representative, doc.unique_id)
    assert _mask(cast, cast.patient, doc.unique_id).version == 2
    assert _mask(cast, cast.colleague, doc.unique_id, False).version == 3


def test_mask_refusals_by_status(cast, refused):
    gone, old, stored = cast.submit(), cast.submit(), cast.submit()
    _delete(cast, cast.author, gone.unique_id)
    _replace(cast, cast.author, old.unique_id)
    with cast.tx() as tx:
        cast.world.dmp.archive(tx, cast.author, stored.unique_id)
    with refused("DOCUMENT_DELETED"):
        _mask(cast, cast.author, gone.unique_id)
    with refused("NOT_CURRENT_VERSION"):
        _mask(cast, cast.author, old.unique_id)
    with refused("STATUS_CHANGE_INVALID"):
        _mask(cast, cast.author, stored.unique_id)


def test_mask_invisible_patient_conflict(cast, refused):
    doc = cast.submit(confidentiality=[INVISIBLE_PATIENT])
    with refused("CONFIDENTIALITY_CONFLICT"):
        _mask(cast, cast.author, doc.unique_id)
    assert len(cast.history(doc.unique_id)) == 1


def test_masked_hidden_from_other_professionals(cast, refused):
    plain = cast.submit()
    masked = cast.submit(confidentiality=[MASQUE_PS])
    assert cast.find(cast.author) == [plain.unique_id, masked.unique_id]
    assert cast.find(cast.colleague) == [plain.unique_id]
    assert cast.find(cast.outsider) == [plain.unique_id]
    assert cast.find(cast.patient) == [plain.unique_id, masked.unique_id]
    assert cast.find(cast.representative) == [plain.unique_id, masked.unique_id]
    for mode in ("bris_de_glace", "centre_15"):
        assert cast.find(cast.pro("dr-c", mode, "DIRECTE")) == [plain.unique_id]
    with refused("DOCUMENT_MASKED"), cast.tx() as tx:
        cast.world.dmp.read(tx, cast.outsider, masked.unique_id)
    cast.update_patient(masked_readable_in_emergency=True)
    assert cast.find(cast.outsider) == [plain.unique_id]  # normal mode: still masked
    for mode in ("bris_de_glace", "centre_15"):
        assert cast.find(cast.pro("dr-c", mode, "DIRECTE")) == [plain.unique_id, masked.unique_id]


# --- Visibility (TD3.3b) ------------------------------------------------------------------------


def _visible(cast, actor, target, to):
    with cast.tx() as tx:
        return cast.world.dmp.make_visible(tx, actor, target, to)


def test_invisible_patient_document(cast, refused):
    doc = cast.submit(confidentiality=[INVISIBLE_PATIENT])
    assert cast.find(cast.patient) == []
    assert cast.find(cast.representative) == [doc.unique_id]
    assert cast.find(cast.author) == [doc.unique_id]
    assert cast.find(cast.outsider) == [doc.unique_id]
    with refused("DOCUMENT_INVISIBLE"), cast.tx() as tx:
        cast.world.dmp.read(tx, cast.patient, doc.unique_id)
    shown = _visible(cast, cast.colleague, doc.unique_id, "patient")
    assert (shown.version, shown.confidentiality, shown.lid) == (2, ["N"], doc.lid)
    assert shown.entry_uuid != doc.entry_uuid
    assert cast.actions()[-1] == "remise_en_visibilite"
    assert cast.find(cast.patient) == [doc.unique_id]
    with refused("NO_CHANGE"):
        _visible(cast, cast.author, doc.unique_id, "patient")


def test_invisible_to_legal_representatives(cast, refused):
    plain = cast.submit(confidentiality=[INVISIBLE_REPRESENTANTS_LEGAUX])
    assert cast.find(cast.representative) == []
    assert cast.find(cast.patient) == [plain.unique_id]
    assert cast.find(cast.outsider) == [plain.unique_id]
    assert cast.find(cast.author) == [plain.unique_id]
    _delete(cast, cast.author, plain.unique_id)
    doc = cast.submit(confidentiality=[INVISIBLE_REPRESENTANTS_LEGAUX, MASQUE_PS])
    assert cast.find(cast.representative) == []
    assert cast.find(cast.patient) == [doc.unique_id]
    with refused("DOCUMENT_INVISIBLE"), cast.tx() as tx:
        cast.world.dmp.read(tx, cast.representative, doc.unique_id)
    with refused("NO_CHANGE"):
        _visible(cast, cast.author, doc.unique_id, "patient")
    shown = _visible(cast, cast.author, doc.unique_id, "legal_representatives")
    assert shown.confidentiality == [MASQUE_PS]
    assert cast.find(cast.representative) == [doc.unique_id]


def test_make_visible_refusals(cast, refused):
    doc = cast.submit(confidentiality=[INVISIBLE_PATIENT])
    with refused("INVALID_REQUEST"):
        _visible(cast, cast.author, doc.unique_id, "everybody")
    with refused("NOT_AUTHOR"):
        _visible(cast, cast.outsider, doc.unique_id, "patient")
    with refused("NOT_AUTHOR"):
        _visible(cast, cast.patient, doc.unique_id, "patient")
    assert len(cast.history(doc.unique_id)) == 1


@pytest.mark.parametrize("to", ["patient", "legal_representatives"])
def test_hide_always_refused(cast, refused, to):
    doc = cast.submit()
    with refused("STATUS_CHANGE_INVALID"), cast.tx() as tx:
        cast.world.dmp.hide(tx, cast.author, doc.unique_id, to)
    assert cast.doc(doc.unique_id).confidentiality == ["N"]


# --- Find filters and read -----------------------------------------------------------------------


def test_find_filters(cast, refused):
    a = cast.submit(type_code="11488-4", class_code="10", creation_time="2025-01-01T10:00:00Z")
    b = cast.submit(type_code="34133-9", class_code="11", creation_time="2025-02-01T10:00:00Z")
    c = cast.submit(cast.colleague, type_code="34133-9", class_code="10", confidentiality=[INVISIBLE_PATIENT],
                    creation_time="2025-03-01T10:00:00Z")
    f = cast.find
    assert f(cast.author, type_code="34133-9") == [b.unique_id, c.unique_id]
    assert f(cast.author, type_code=["11488-4", "34133-9"]) == [a.unique_id, b.unique_id, c.unique_id]
    assert f(cast.author, class_code="10") == [a.unique_id, c.unique_id]
    assert f(cast.author, author="dr-b") == [c.unique_id]
    assert f(cast.author, confidentiality=INVISIBLE_PATIENT) == [c.unique_id]
    assert f(cast.author, confidentiality="N") == [a.unique_id, b.unique_id]
    assert f(cast.author, creation_time_from="2025-02-01T10:00:00Z") == [b.unique_id, c.unique_id]
    assert f(cast.author, creation_time_to="2025-02-01T10:00:00Z") == [a.unique_id]  # upper bound excluded
    assert f(cast.author, creation_time_from="2025-01-15T00:00:00Z",
             creation_time_to="2025-02-15T00:00:00Z") == [b.unique_id]
    assert f(cast.author, service_start_from="2025-01-01T00:00:00Z") == []  # no service start: no match
    assert f(cast.author, type_code="34133-9", class_code="11") == [b.unique_id]
    with refused("INVALID_REQUEST") as info:
        f(cast.author, colour="blue")
    assert "colour" in info.value.message
    with refused("INVALID_REQUEST"):
        f(cast.author, creation_time_from="yesterday")


def test_find_traces_consultation(cast):
    before = len(cast.actions())
    with cast.tx() as tx:
        cast.world.dmp.find(tx, cast.author, "alice")
        cast.world.dmp.find(tx, cast.author, "alice", trace=False)
    assert cast.actions()[before:] == ["consultation"]


def test_read(cast, refused):
    content = bytes(range(256)) * 3
    doc = cast.submit(content=content, mime_type="application/pdf")
    with cast.tx() as tx:
        got, data = cast.world.dmp.read(tx, cast.outsider, doc.unique_id, patient_key="alice")
    assert data == content
    assert got.unique_id == doc.unique_id
    with cast.tx() as tx:
        last = cast.world.dmp.traces(tx, "alice")[-1]
    assert (last.action, last.document, last.actor) == ("telechargement", doc.unique_id, "dr-c")
    with refused("DOCUMENT_UNKNOWN"), cast.tx() as tx:
        cast.world.dmp.read(tx, cast.author, "9.9.9")
    cast.authorize(structure="chu", patient="bob")
    with refused("DOCUMENT_UNKNOWN"), cast.tx() as tx:
        cast.world.dmp.read(tx, cast.author, doc.unique_id, patient_key="bob")
    with refused("AUTHORIZATION_MISSING"), cast.tx() as tx:
        cast.world.dmp.read(tx, cast.stranger, doc.unique_id)


def test_read_deleted_and_masked(cast, refused):
    gone = cast.submit()
    masked = cast.submit(confidentiality=[MASQUE_PS])
    _delete(cast, cast.author, gone.unique_id)
    with refused("DOCUMENT_DELETED"), cast.tx() as tx:
        cast.world.dmp.read(tx, cast.author, gone.unique_id)
    with refused("DOCUMENT_MASKED"), cast.tx() as tx:
        cast.world.dmp.read(tx, cast.colleague, masked.unique_id)
    with cast.tx() as tx:
        assert cast.world.dmp.read(tx, cast.author, masked.unique_id)[1] == b"<ClinicalDocument " \
            b"xmlns='urn:hl7-org:v3'>compte rendu</ClinicalDocument>"
    before = cast.actions()
    with refused("DOCUMENT_MASKED"), cast.tx() as tx:
        cast.world.dmp.read(tx, cast.outsider, masked.unique_id)
    assert cast.actions() == before  # a refused read leaves no trace


def test_read_replaced_version(cast):
    old = cast.submit(content=b"v1")
    _replace(cast, cast.author, old.unique_id, content=b"v2")
    with cast.tx() as tx:
        doc, data = cast.world.dmp.read(tx, cast.author, old.unique_id)
    assert (doc.status, data) == ("deprecated", b"v1")


# --- DMP lifecycle -------------------------------------------------------------------------------


def test_close_and_reopen(cast, refused):
    seen = []
    cast.world.events.subscribe(events.DMP_STATE_CHANGED, seen.append)
    with cast.tx() as tx:
        cast.world.dmp.close(tx, cast.system, "alice", reason="demande du patient")
    p = cast.patient_record()
    assert (p.dmp, p.dmp_closed_at, p.dmp_close_reason) == ("closed", cast.world.clock.now_iso(),
                                                            "demande du patient")
    with refused("DMP_CLOSED"), cast.tx() as tx:
        cast.world.dmp.close(tx, cast.system, "alice")
    with refused("DMP_CLOSED"):
        cast.authorize(structure="lab")
    with cast.tx() as tx:
        cast.world.dmp.reopen(tx, cast.system, "alice")
    p = cast.patient_record()
    assert (p.dmp, p.dmp_closed_at, p.dmp_close_reason) == ("active", None, None)
    with refused("DMP_ALREADY_ACTIVE"), cast.tx() as tx:
        cast.world.dmp.reopen(tx, cast.system, "alice")
    assert cast.actions()[-2:] == ["fermeture", "reouverture"]
    assert [e.data for e in seen] == [{"dmp": "closed"}, {"dmp": "active"}]
    assert cast.find(cast.author) == []


def test_close_absent_dmp(cast, ids, refused):
    _add_patient(cast, ids, "carol", "2991299123456", dmp="absent")
    with refused("DMP_ABSENT"), cast.tx() as tx:
        cast.world.dmp.close(tx, cast.system, "carol")


def test_end_secret_connection(cast, ids, refused):
    _add_patient(cast, ids, "carol", "2991299123456", minor=True, secret_connection=True)
    with cast.tx() as tx:
        cast.world.dmp.end_secret_connection(tx, cast.system, "carol")
    assert cast.patient_record("carol").secret_connection is False
    with refused("NO_CHANGE"), cast.tx() as tx:
        cast.world.dmp.end_secret_connection(tx, cast.system, "carol")


def _connect(cast, actor, patient, secret):
    with cast.tx() as tx:
        return cast.world.dmp.note_connection(tx, actor, patient, secret=secret)


def test_a_secret_connection_is_read_from_each_request(cast, ids):
    _add_patient(cast, ids, "carol", "2991299123456", minor=True)
    cast.authorize(structure="chu", patient="carol")
    assert _connect(cast, cast.author, "carol", False) == []              # an ordinary connection
    opened = _connect(cast, cast.author, "carol", True)
    assert [(f["rule"], f["severity"]) for f in opened] == [("DMP/EX_0.1-1100", "info")]
    assert "opens a secret connection" in opened[0]["message"]
    assert cast.patient_record("carol").secret_connection is True
    assert "in carol's secret connection" in _connect(cast, cast.author, "carol", True)[0]["message"]
    assert cast.patient_record("carol").secret_connection is True
    ended = _connect(cast, cast.author, "carol", False)                  # the episode is over
    assert "secret connection is over" in ended[0]["message"]
    assert cast.patient_record("carol").secret_connection is False


def test_a_secret_connection_is_for_minors_and_professionals(cast):
    adult = _connect(cast, cast.author, "alice", True)
    assert [(f["rule"], f["severity"]) for f in adult] == [("DMP/EX_0.1-1100", "warning")]
    assert "alice is not a minor" in adult[0]["message"]
    assert cast.patient_record("alice").secret_connection is False
    assert _connect(cast, cast.system, "alice", True) == []
    assert _connect(cast, cast.author, "nobody", True) == []


def test_feeding_in_a_secret_connection_needs_invisible_to_legal_representatives(cast, ids):
    _add_patient(cast, ids, "carol", "2991299123456", minor=True)
    cast.authorize(structure="chu", patient="carol")
    _connect(cast, cast.author, "carol", True)
    with cast.tx() as tx:
        findings: list[dict] = []
        hidden = cast.world.dmp.submit(tx, cast.author, "carol", {**META_, "confidentiality":
                                                                  [INVISIBLE_REPRESENTANTS_LEGAUX]}, b"a",
                                       findings=findings)
        assert [f["rule"] for f in findings] == []
    with cast.tx() as tx:
        shown = cast.world.dmp.submit(tx, cast.author, "carol", dict(META_), b"b", findings=findings)
    assert [(f["rule"], f["severity"]) for f in findings] == [("DMP/EX_2.1-1050", "error")]
    assert shown.unique_id in findings[0]["message"] and INVISIBLE_REPRESENTANTS_LEGAUX in findings[0]["message"]
    with cast.tx() as tx:
        findings = []
        cast.world.dmp.replace(tx, cast.author, "carol", hidden.unique_id, dict(META_), b"c", findings=findings)
        assert [f["rule"] for f in findings] == ["DMP/EX_2.1-1050"]
    _connect(cast, cast.author, "carol", False)
    with cast.tx() as tx:
        findings = []
        cast.world.dmp.submit(tx, cast.author, "carol", dict(META_), b"d", findings=findings)
        assert findings == []


def test_a_professional_declares_only_its_own_authorization(cast):
    with cast.tx() as tx, pytest.raises(errors.InvalidRequest, match="self-declaration"):
        cast.world.dmp.set_authorization(tx, cast.author, "bob", status="VALIDE", structure="clinic")
    with cast.tx() as tx:
        auth = cast.world.dmp.set_authorization(tx, cast.author, "bob", status="VALIDE", structure="chu")
    assert (auth.subject, auth.status) == ("chu", "VALIDE")


def test_find_refuses_an_unknown_status(cast):
    with cast.tx() as tx, pytest.raises(errors.InvalidRequest, match="unknown document status lost"):
        cast.world.dmp.find(tx, cast.author, "alice", statuses=["approved", "lost"])


def test_a_patient_actor_needs_an_identity(cast):
    from mockbench.world.model import Actor
    with cast.tx() as tx, pytest.raises(errors.AuthorizationMissing):
        cast.world.dmp.find(tx, Actor(kind="legal_representative", id=""), "alice")


def test_get_documents_by_unique_id_or_entry_uuid_honours_visibility(cast):
    kept = cast.submit(unique_id="1.2.3.1")
    masked = cast.submit(unique_id="1.2.3.2", confidentiality=["MASQUE_PS"])
    with cast.tx() as tx:
        old_entry = kept.entry_uuid
        cast.world.dmp.set_masked(tx, cast.author, kept.unique_id, True)
        cast.world.dmp.set_masked(tx, cast.author, kept.unique_id, False)
    with cast.tx() as tx:
        by_author = cast.world.dmp.get(tx, cast.author, "alice", ["1.2.3.1", "1.2.3.2", old_entry])
        by_colleague = cast.world.dmp.get(tx, cast.colleague, "alice", ["1.2.3.1", masked.unique_id])
    assert sorted((d.unique_id, d.version) for d in by_author) == [("1.2.3.1", 1), ("1.2.3.1", 3), ("1.2.3.2", 1)]
    assert [d.unique_id for d in by_colleague] == ["1.2.3.1"]


# --- Direct authentication for attribute changes (TD3.3a/b) ---------------------------------------


@pytest.mark.parametrize("authentication", ["INDIRECTE", "INDIRECTE_RENFORCEE", "DIRECTE"])
def test_masking_and_visibility_need_direct_authentication(cast, refused, authentication):
    """specs/trans-cda-r2/def-proc-collab.md (« Demande de remplacement de document(s) »): in indirect
    authentication TD3.3 (masking, visibility) cannot be used, "car celle-ci nécessite une authentification
    directe"; the reinforced indirect mode (AIR) is not held to it (pdsm4dmp/transaction_td3.1b.md, "hors mode
    AIR"). Deleting and archiving (TD3.3c/d) stay open to indirect authentication (the PFI deletes, same page)."""
    actor = cast.pro("dr-a", authentication=authentication)
    doc = cast.submit(confidentiality=["N", "INVISIBLE_PATIENT"])
    if authentication == "INDIRECTE":
        for change in (lambda tx: cast.world.dmp.set_masked(tx, actor, doc.unique_id, True),
                       lambda tx: cast.world.dmp.make_visible(tx, actor, doc.unique_id, "patient"),
                       lambda tx: cast.world.dmp.hide(tx, actor, doc.unique_id, "patient")):
            with refused("ACCESS_MODE_REFUSED") as info, cast.tx() as tx:
                change(tx)
            assert "needs direct authentication" in info.value.message and "RPLC" in info.value.message
        assert cast.doc(doc.unique_id).version == 1 and cast.doc(doc.unique_id).confidentiality == [
            "N", "INVISIBLE_PATIENT"]
        with cast.tx() as tx:
            cast.world.dmp.archive(tx, actor, doc.unique_id)
        assert _delete(cast, actor, doc.unique_id).status == "deleted"
        return
    with cast.tx() as tx:
        cast.world.dmp.make_visible(tx, actor, doc.unique_id, "patient")
        cast.world.dmp.set_masked(tx, actor, doc.unique_id, True)
    assert cast.doc(doc.unique_id).confidentiality == ["N", "MASQUE_PS"]


@pytest.mark.parametrize("mode,authentication", [("bris_de_glace", "DIRECTE"), ("centre_15", "INDIRECTE_RENFORCEE")])
def test_emergency_modes_consult_without_authorization_and_are_traced(cast, ids, refused, mode, authentication):
    """specs/pdsm4dmp/transaction_td02.md: the authorization is checked for consultation, except in the access
    modes that go without it (centre de régulation; bris de glace in direct authentication); the trace says
    which mode was used."""
    doc = cast.submit(cast.author)
    with refused("AUTHORIZATION_MISSING"):
        cast.find(cast.stranger)
    actor = cast.pro("dr-d", mode, authentication)
    with cast.tx() as tx:
        assert [d.unique_id for d in cast.world.dmp.find(tx, actor, "alice")] == [doc.unique_id]
        read, content = cast.world.dmp.read(tx, actor, doc.unique_id)
        traces = cast.world.dmp.traces(tx, "alice")
    assert read.unique_id == doc.unique_id and content == ids.content
    assert [(t.action, t.actor, t.mode) for t in traces[-2:]] == [("consultation", "dr-d", mode),
                                                                   ("telechargement", "dr-d", mode)]
