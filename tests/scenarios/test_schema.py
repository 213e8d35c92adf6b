"""Scenario validation: plain-words errors with file, line and field."""

from pathlib import Path

import pytest

from mockbench.scenarios import docs
from mockbench.scenarios.loader import Catalogue, load_file, parse
from mockbench.scenarios.schema import ScenarioInvalid

BASE = """\
id: t
title: Essai
world:
  structures: [{id: chu}]
  professionals: [{id: dr, structure: chu}]
  patients:
    - id: alice
      ins: {ins}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ScenarioInvalid) as info:
        parse(text, "s.yaml")
    return [str(p) for p in info.value.problems]


def test_wrong_nir_key_names_file_line_field_and_the_right_key():
    # 2770763220829 mod 97 = 87, so the key is 10: 45 is wrong.
    assert problems(BASE.replace("{ins}", "277076322082945")) == [
        "s.yaml:8: world.patients[0].ins: 277076322082945 is not a valid NIR, its key should be 10"]


def test_short_nir_says_how_long_it_should_be():
    (p,) = problems(BASE.replace("{ins}", "123"))
    assert p == "s.yaml:8: world.patients[0].ins: 123 is not a valid NIR: it has 3 characters, 15 expected"


def test_unknown_field_suggests_the_close_one():
    (p,) = problems("id: t\ntitle: x\nworld:\n  patients:\n    - id: a\n      birthdate: 2000-01-01\n")
    assert p.startswith("s.yaml:6: world.patients[0].birthdate: unknown field (did you mean birth_date?)")


def test_missing_required_fields():
    found = problems("world: {}\n")
    assert "s.yaml:1: (top): the field id is required" in found
    assert "s.yaml:1: (top): the field title is required" in found


def test_wrong_choice_and_wrong_type():
    found = problems("id: t\ntitle: x\nworld:\n  patients:\n    - {id: a, dmp: open, minor: maybe}\n")
    assert "s.yaml:5: world.patients[0].dmp: 'open' is not one of active, closed, absent" in found
    assert "s.yaml:5: world.patients[0].minor: expected true or false, found 'maybe'" in found


def test_cross_references_are_checked():
    text = """\
id: t
title: x
world:
  professionals: [{id: dr, structure: nowhere}]
  patients:
    - id: a
      documents: [{id: d2, replaces: d1}]
transitions:
  - {id: x, when: {manual: true}, do: [{mask_document: {document: d2, by: dr_who}}]}
steps:
  - {id: s1, say: a, expect: {patient: bob, operation: TD3.1}}
  - {id: s2, say: b, expect: {operation: TD3.1}, then: {document: {submitted_in: s3}}}
"""
    found = "\n".join(problems(text))
    assert "world.professionals[0]: structure nowhere is not in world.structures" in found
    assert "replaces d1, which is not an earlier document of this patient" in found
    assert "by dr_who: not a professional id nor patient" in found
    assert "steps[0].expect: patient bob is not in world.patients" in found
    assert "submitted_in s3 is neither this step nor an earlier one" in found


def test_exactly_one_trigger():
    text = "id: t\ntitle: x\ntransitions:\n  - {id: a, when: {manual: true, at: +1s}, do: []}\n"
    assert any("give exactly one of after, at, manual (found at, manual)" in p for p in problems(text))


def test_unknown_action_suggests():
    text = "id: t\ntitle: x\ntransitions:\n  - id: a\n    when: {manual: true}\n    do: [{mask_doc: {document: x}}]\n"
    (p,) = problems(text)
    assert p.startswith("s.yaml:6: transitions[0].do[0]: unknown action 'mask_doc' (did you mean mask_document?)")


def test_yaml_syntax_error_has_a_line():
    (p,) = problems("id: t\ntitle: [unclosed\nworld: {}\n")
    assert p.startswith("s.yaml:") and "not valid YAML" in p


def test_empty_and_unreadable_files(tmp_path: Path):
    with pytest.raises(ScenarioInvalid, match="the file is empty"):
        parse("", "e.yaml")
    with pytest.raises(ScenarioInvalid, match="cannot read the file"):
        load_file(tmp_path / "missing.yaml")
    bad = tmp_path / "bin.yaml"
    bad.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ScenarioInvalid, match="not UTF-8"):
        load_file(bad)


def test_every_catalogue_scenario_is_valid():
    catalogue = Catalogue().all()
    assert {"hidden-documents", "consent-withdrawal", "deleted-versions"} <= set(catalogue)
    for scenario in catalogue.values():
        assert scenario.title and scenario.spec["world"]


def test_docs_are_generated_from_the_schema():
    committed = (Path(__file__).parents[2] / "docs" / "scenarios.md").read_text(encoding="utf-8")
    assert committed == docs.render(), "docs/scenarios.md is stale: run `make docs`"


@pytest.mark.parametrize("title,text", docs.EXAMPLES, ids=[t for t, _ in docs.EXAMPLES])
def test_every_documented_example_validates(title, text):
    assert parse(text, title).id.startswith("exemple-")


def test_expect_names_a_known_channel():
    text = "id: t\ntitle: x\nsteps:\n  - {id: a, say: b, expect: {channel: fax, operation: TD3.1}}\n"
    (p,) = problems(text)
    assert p == "s.yaml:4: steps[0].expect.channel: 'fax' is not one of dmp, pfi, mss, oidc, annuaire, control"
