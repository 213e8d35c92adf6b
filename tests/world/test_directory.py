"""The directory's identification of a patient by INS and traits (world/directory.py `identify`): the rule the
PFI door applied itself, moved unchanged into the world (issue 20 point 2). The refusals are the world's
errors, which the PFI reports with the DMP's codes (world/dmp_codes.py); the refusals on the traits are
codes 904 and 905 of specs/trans-cda-r2/error-codes.md, "Codes erreurs de l'accusé métier de
lecture/traitement de la demande"."""

from __future__ import annotations

import pytest

from mockbench.world import errors


def traits(patient) -> dict:
    return {"ins_oid": patient.ins_oid, "family_name": patient.family_name,
            "birth_date": patient.birth_date.replace("-", ""), "sex": patient.sex}


def test_the_ins_and_its_traits_designate_the_patient(cast):
    alice = cast.patient_record("alice")
    with cast.tx() as tx:
        found = cast.world.directory.identify(tx, alice.ins, **(traits(alice) | {
            "family_name": alice.family_name.lower()}))   # the birth name compared without case
    assert found.id == alice.id


def test_no_ins_is_an_unknown_patient(cast):
    alice = cast.patient_record("alice")
    with cast.tx() as tx, pytest.raises(errors.UnknownPatient, match="identifies a patient by INS only"):
        cast.world.directory.identify(tx, "", **traits(alice))


@pytest.mark.parametrize("missing", ["ins_oid", "family_name", "birth_date", "sex"])
def test_an_ins_without_all_its_traits_is_refused(cast, missing):
    alice = cast.patient_record("alice")
    with cast.tx() as tx, pytest.raises(errors.MetadataError, match="without all its traits"):
        cast.world.directory.identify(tx, alice.ins, **(traits(alice) | {missing: None}))


def test_an_unknown_ins_is_an_unknown_patient(cast):
    alice = cast.patient_record("alice")
    with cast.tx() as tx, pytest.raises(errors.UnknownPatient):
        cast.world.directory.identify(tx, "1" * 15, **traits(alice))


def test_every_differing_trait_is_named(cast):
    alice = cast.patient_record("alice")
    wrong = traits(alice) | {"birth_date": "19000101", "sex": "M" if alice.sex != "M" else "F"}
    with cast.tx() as tx, pytest.raises(errors.PatientMismatch) as refused:
        cast.world.directory.identify(tx, alice.ins, **wrong)
    assert "birth date 19000101" in str(refused.value) and "sex " in str(refused.value)
    assert "birth name" not in str(refused.value)
