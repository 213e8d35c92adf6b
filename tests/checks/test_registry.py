"""The rules' registry: one function per rule id, each with its text in English and French, each documented in
the README."""

from __future__ import annotations

from pathlib import Path

import pytest

from mockbench.checks import RULES
from mockbench.checks.registry import Registry

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_rule_has_its_texts_and_is_documented():
    readme = README.read_text(encoding="utf-8")
    rules = list(RULES)
    assert {r.id for r in rules} >= {"EX_3.1-2030", "DMP/TD3.3c", "MSS/UX.12", "DMP/CONF.14", "SSI/IE.31",
                                    "MSS/XDM", "STAT/ES.01"}
    for r in rules:
        assert r.text.strip() and r.fr.strip() and r.text != r.fr, r.id
        assert f"`{r.id}`" in readme, f"the README does not name {r.id}"
        assert r.check.__module__.startswith("mockbench.checks."), r.id


def test_the_run_rules_come_in_their_order():
    # GET /_bench/findings lists the run rules' findings in this order (after the grouped ones)
    assert [r.id for r in RULES.on("run")] == ["MSS/UX.12", "DMP/CONF.14"]
    assert {r.id for r in RULES.on("entry")} == {"EX_3.1-2030", "DMP/TD3.3c"}


def test_a_rule_id_is_registered_once():
    registry = Registry()
    registry.rule("X/1", "upload", "one", fr="un")(lambda: None)
    with pytest.raises(ValueError, match="registered twice"):
        registry.rule("X/1", "upload", "two", fr="deux")(lambda: None)


def test_an_entry_or_run_rule_names_what_it_reads():
    with pytest.raises(ValueError, match="names the channel"):
        Registry().rule("X/2", "entry", "one", fr="un")
    with pytest.raises(ValueError, match="names the channel"):
        Registry().rule("X/3", "run", "one", fr="un", channel="dmp")
