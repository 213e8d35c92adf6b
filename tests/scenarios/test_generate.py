"""`world.generate` (issue 21, point 6): a scenario makes a large world up from counts instead of listing it
within the size limit; errors name file, line and field; generated identifiers never collide, at 100,000."""

import datetime
import time

import pytest

from mockbench.scenarios.loader import parse
from mockbench.scenarios.schema import ScenarioInvalid
from mockbench.scenarios.seed import Seeder
from mockbench.world import identity


def problems(text: str) -> list[str]:
    with pytest.raises(ScenarioInvalid) as info:
        parse(text, "big.yaml")
    return [str(p) for p in info.value.problems]


HEAD = "id: big\ntitle: Grand monde\nworld:\n"


def test_counts_are_checked_with_file_line_and_field():
    found = problems(HEAD + "  generate:\n    patients: 100001\n    professionals: -1\n    structures: many\n")
    assert found == [
        "big.yaml:5: world.generate.patients: 100001 is above the maximum 100000",
        "big.yaml:6: world.generate.professionals: -1 is below the minimum 0",
        "big.yaml:7: world.generate.structures: expected a whole number, found 'many'",
    ]
    (unknown,) = problems(HEAD + "  generate: {patient: 3}\n")
    assert unknown.startswith("big.yaml:4: world.generate.patient: unknown field (did you mean patients?)")


def test_generated_ids_can_be_referred_to_and_not_taken_by_listed_ones():
    text = HEAD + """\
  generate: {structures: 2, professionals: 3, patients: 5}
  patients:
    - id: patient-000002
transitions:
  - {id: t, when: {manual: true}, do: [{set_authorization: {patient: patient-000005, structure: structure-00002,
                                                          status: VALIDE}}]}
steps:
  - {id: s, say: lire, expect: {patient: patient-000004, operation: TD3.1}}
  - {id: s2, say: lire, expect: {patient: patient-000006, operation: TD3.1}}
"""
    found = problems(text)
    assert found == [
        "big.yaml:6: world.patients[0]: the patient id patient-000002 is one that world.generate.patients makes: "
        "choose another",
        "big.yaml:12: steps[1].expect: patient patient-000006 is not in world.patients"]


def test_a_scenario_generates_its_world(engine, world):
    scenario = parse(HEAD + """\
  structures: [{id: chu}]
  patients: [{id: alice}]
  generate: {structures: 3, professionals: 40, patients: 200}
""", "big.yaml")
    loaded = engine.load(scenario)
    assert loaded["structures"][:2] == ["chu", "structure-00001"] and len(loaded["professionals"]) == 40
    assert len(loaded["patients"]) == 201 and "patient-000200" in loaded["patients"]
    with world.read() as tx:
        pros = world.directory.professionals(tx)
        assert {p.structure for p in pros} == {"structure-00001", "structure-00002", "structure-00003"}
        for p in pros:
            identity.check_rpps(p.rpps)
            assert p.idnps == "8" + p.rpps and p.mssante.endswith(".mssante.fr")
        for p in world.directory.patients(tx):
            identity.check_nir(p.ins)
    # the same seed, the same people
    first = [(p.ins, p.family_name) for p in _patients(world)]
    engine.load(scenario)
    assert [(p.ins, p.family_name) for p in _patients(world)] == first


def _patients(world):
    with world.read() as tx:
        return world.directory.patients(tx)


def test_no_duplicate_identifiers_in_a_generated_world(engine, world):
    """Past the RPPS birthday bound (about 12,500 draws in 10^8 values) and with 15,000 patients."""
    t0 = time.perf_counter()
    engine.load(parse(HEAD + "  generate: {structures: 400, professionals: 13000, patients: 15000}\n", "big.yaml"))
    elapsed = time.perf_counter() - t0
    with world.read() as tx:
        for table, column in (("professionals", "idnps"), ("patients", "ins"), ("structures", "finess")):
            values = [r[0] for r in tx.conn.execute(f"SELECT {column} FROM {table} WHERE ns = ?", (tx.ns,))]
            assert len(values) == len(set(values)), table
        mss = [p.mssante for p in world.directory.professionals(tx)]
        assert len(mss) == 13000 == len(set(mss))
    assert elapsed < 120   # a bound on the test itself, not the figure (benchmarks/README.md has that)


def test_a_repeated_draw_is_drawn_again(world):
    with world.transaction() as tx:
        seeder = Seeder(world, tx, seed=1)
        draws = iter(["10000000016", "10000000016", "10000000024"])
        assert seeder._fresh("rpps", lambda: next(draws), lambda v: False) == "10000000016"
        assert seeder._fresh("rpps", lambda: next(draws), lambda v: False) == "10000000024"
        with pytest.raises(Exception, match="no free rpps left after 1000 draws"):
            seeder._fresh("rpps", lambda: "10000000016", lambda v: False)


def test_100000_identifiers_of_each_kind_without_a_duplicate(world):
    """At 100,000, directly through the seeder's draws: RPPS, and INS all with the same birth date and sex (the
    case where the raw generator repeats itself)."""
    birth = datetime.date(1980, 5, 17)
    with world.transaction() as tx:
        seeder = Seeder(world, tx, seed=7)
        rpps = [seeder.new_rpps() for _ in range(100_000)]
        ins = [seeder.new_ins("F", birth) for _ in range(100_000)]
    assert len(set(rpps)) == 100_000 and len(set(ins)) == 100_000
    assert all(i.startswith("28005") for i in ins)
