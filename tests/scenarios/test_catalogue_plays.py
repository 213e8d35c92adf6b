"""Every scenario of the catalogue is played end to end in this suite, once correctly and once with a
deliberate mistake (issue 9): the play tests carry `@pytest.mark.scenario_play(id, kind)`."""

import ast
from pathlib import Path

from mockbench.scenarios.loader import Catalogue

TESTS = Path(__file__).parents[1]
KINDS = ("correct", "mistake")


def _marks(tree: ast.AST):
    """Each `...scenario_play(id, kind)` call in a test function's decorators, `pytest.param(marks=...)`
    included, with the function it marks."""
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for deco in node.decorator_list:
            for call in ast.walk(deco):
                if (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                        and call.func.attr == "scenario_play"):
                    args = [a.value for a in call.args if isinstance(a, ast.Constant)]
                    assert len(args) == 2, f"{node.name}: scenario_play takes (id, kind)"
                    yield node.name, args[0], args[1]


def plays() -> dict[tuple[str, str], list[str]]:
    found: dict[tuple[str, str], list[str]] = {}
    for path in sorted(TESTS.rglob("test_*.py")):
        for name, scenario, kind in _marks(ast.parse(path.read_text(encoding="utf-8"))):
            found.setdefault((scenario, kind), []).append(f"{path.relative_to(TESTS)}::{name}")
    return found


def test_every_catalogue_scenario_is_played_correctly_and_with_a_mistake():
    found = plays()
    catalogue = set(Catalogue().all())
    missing = [f"{sid} ({kind})" for sid in sorted(catalogue) for kind in KINDS if (sid, kind) not in found]
    assert not missing, "catalogue scenarios without a play test: " + ", ".join(missing)


def test_play_marks_name_real_scenarios_and_kinds():
    catalogue = set(Catalogue().all())
    for (scenario, kind), where in plays().items():
        assert scenario in catalogue, f"{where}: no catalogue scenario {scenario}"
        assert kind in KINDS, f"{where}: kind {kind} is neither correct nor mistake"
