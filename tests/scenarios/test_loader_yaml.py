"""scenarios/loader.py composes with libyaml's parser when PyYAML has it (start-up, issue 21 point 5): the same
node trees and lines as the pure-Python parser on every catalogue file, and the pure parser's own errors."""

from __future__ import annotations

from importlib import resources

import pytest
import yaml

from mockbench.scenarios import loader
from mockbench.scenarios.schema import ScenarioInvalid

CATALOGUE = sorted(p for p in resources.files("mockbench.catalogue").iterdir() if p.name.endswith(".yaml"))


def tree(node: yaml.Node | None) -> object:
    if node is None:
        return None
    where = (node.tag, node.start_mark.line, node.start_mark.column, node.end_mark.line)
    if isinstance(node, yaml.MappingNode):
        return where, [(tree(k), tree(v)) for k, v in node.value]
    if isinstance(node, yaml.SequenceNode):
        return where, [tree(item) for item in node.value]
    return where, node.value, node.style or None   # libyaml says "" for a plain scalar, PyYAML None


@pytest.mark.skipif(loader._FAST_LOADER is None, reason="PyYAML without libyaml: only the pure parser runs")
@pytest.mark.parametrize("path", CATALOGUE, ids=lambda p: p.name)
def test_libyaml_composes_what_the_pure_parser_composes(path) -> None:
    text = path.read_text(encoding="utf-8")
    assert tree(yaml.compose(text, Loader=loader._FAST_LOADER)) == tree(yaml.compose(text, Loader=yaml.SafeLoader))


def test_the_catalogue_is_read_whole() -> None:
    assert len(CATALOGUE) > 20
    assert loader.compose("") is None


@pytest.mark.parametrize("text", ["id: a\n  title: b\n", "a: [1, 2\n", "a: 'x\n", "\tid: a\n", "- a\n b: c\n"])
def test_an_error_is_the_pure_parsers(text: str) -> None:
    with pytest.raises(yaml.MarkedYAMLError) as pure:
        yaml.compose(text, Loader=yaml.SafeLoader)
    with pytest.raises(ScenarioInvalid) as refused:
        loader.parse(text, "x.yaml")
    problem = refused.value.problems[0]
    assert problem.line == pure.value.problem_mark.line + 1
    assert problem.message == f"not valid YAML: {pure.value.problem}"
