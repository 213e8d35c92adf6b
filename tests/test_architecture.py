"""The architecture as an executable contract: docs/architecture.md's contract block, checked against every
import in the package (lazy and TYPE_CHECKING imports included), with a list of today's exceptions that may
only shrink."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "mockbench"
DOC = ROOT / "docs" / "architecture.md"

# Imports that break the contract today, each with why it is still there (docs/architecture.md lists them
# too). An entry whose import is gone fails the test: remove it, the list only shrinks.
KNOWN: set[tuple[str, str]] = set()   # none today


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path, root: Path = ROOT) -> list[tuple[str, int]]:
    """Every mockbench module `path` imports, at any depth of its code, with the line."""
    name = module_name(path, root)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.extend((a.name, node.lineno) for a in node.names if a.name.split(".")[0] == "mockbench")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                assert base and base[0] == "mockbench", f"{path}:{node.lineno} climbs above the package"
                if node.module is None:   # from . import x: x may be a module
                    found.extend((f"{target}.{a.name}", node.lineno) for a in node.names)
                    continue
            else:
                target = node.module or ""
            if target.split(".")[0] == "mockbench":
                found.append((target, node.lineno))
    return found


def layer(module: str) -> str:
    """`protocols.<door>` for a door's modules, else the first package level under mockbench."""
    parts = module.split(".")[1:]
    if not parts:
        return ""
    if parts[0] == "protocols" and len(parts) > 1 and (PACKAGE / "protocols" / parts[1]).is_dir():
        return f"protocols.{parts[1]}"
    return parts[0]


def contract() -> dict[str, set[str]]:
    block = re.search(r"```contract\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert block, "docs/architecture.md has no contract block"
    rules: dict[str, set[str]] = {}
    for line in block.group(1).strip().splitlines():
        source, _, targets = line.partition("->")
        rules[source.strip()] = {t.strip() for t in targets.split(",") if t.strip()}
    return rules


def forbidden(source: str, target: str, rules: dict[str, set[str]]) -> bool:
    if source == target:
        return False
    key = "protocols.*" if source.startswith("protocols.") else source
    for banned in rules.get(key, set()):
        if banned == "protocols.*":
            if target.startswith("protocols.") and target != source:
                return True
        elif target == banned or target.startswith(banned + "."):
            return True
    return False


def violations() -> dict[tuple[str, str], list[str]]:
    rules = contract()
    found: dict[tuple[str, str], list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        source = module_name(path)
        for target, line in imports(path):
            if forbidden(layer(source), layer(target), rules):
                key = (source, _trim(target))
                found.setdefault(key, []).append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    return found


def _trim(target: str) -> str:
    """mockbench.bench.BenchError -> mockbench.bench: the module, not the name imported from it."""
    parts = target.split(".")
    while len(parts) > 1 and not ((PACKAGE.parent / Path(*parts)).with_suffix(".py").exists()
                                  or (PACKAGE.parent / Path(*parts)).is_dir()):
        parts.pop()
    return ".".join(parts)


def test_no_import_breaks_the_contract_beyond_the_known_ones():
    found = violations()
    new = {k: v for k, v in found.items() if k not in KNOWN}
    assert not new, "imports against docs/architecture.md's contract:\n" + "\n".join(
        line for lines in new.values() for line in lines)


def test_the_known_exceptions_only_shrink():
    gone = KNOWN - set(violations())
    assert not gone, f"these imports are gone: remove them from KNOWN (and from docs/architecture.md): {sorted(gone)}"


def test_every_layer_of_the_contract_exists():
    layers = {layer(module_name(p)) for p in PACKAGE.rglob("*.py")}
    for source, targets in contract().items():
        for name in ({source} | targets) - {"protocols.*"}:
            assert name in layers or name.startswith("protocols."), f"the contract names {name}, not a layer"


@pytest.mark.parametrize("source,target,expected", [
    ("world", "protocols.dmp", True), ("protocols.pfi", "protocols.dmp", True), ("protocols.pfi", "protocols.pfi", False),
    ("protocols.pfi", "world", False), ("formats", "world", True), ("control", "world", False),
    ("scenarios", "protocols.mss", True), ("control", "protocols.mss", True),
    ("checks", "world", False), ("world", "checks", False), ("formats", "checks", True), ("checks", "control", True),
    ("protocols.mss", "checks", False),
])
def test_the_checker_reads_the_rules(source, target, expected):
    assert forbidden(source, target, contract()) is expected


def test_the_checker_sees_lazy_and_type_checking_imports(tmp_path):
    code = ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..bench import Bench\n"
            "def f():\n    from ..protocols.dmp import door\n")
    path = tmp_path / "mockbench" / "world" / "probe.py"
    path.parent.mkdir(parents=True)
    path.write_text(code)
    found = [t for t, _ in imports(path, tmp_path)]
    assert found == ["mockbench.bench", "mockbench.protocols.dmp"]


# SQL ------------------------------------------------------------------------------------------------------
# Only the store and the world speak SQL (docs/architecture.md): a door, the report or the scenario engine
# asks a world operation. The checks are in the world's layer: their rules read the journal and the store in
# the world's transaction. The modules that break this today, each with its reason; the list only shrinks.
SQL_OWNERS = ("mockbench.world", "mockbench.checks")
KNOWN_SQL: set[str] = set()
SQL_METHODS = ("execute", "executemany", "executescript")
SQL_RECEIVER = re.compile(r"(^|[._])(conn|connection|cursor|cur|db|sqlite3?)$", re.I)
SQL_TEXT = re.compile(r"\s*(SELECT|INSERT|UPDATE|DELETE|REPLACE|CREATE|DROP|ALTER|PRAGMA|BEGIN|COMMIT|ROLLBACK|"
                      r"SAVEPOINT|RELEASE|WITH|VACUUM)\b", re.I)


def _leading_text(node: ast.expr) -> str:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str))
    if isinstance(node, ast.BinOp):
        return _leading_text(node.left)
    return ""


def sql_calls(path: Path) -> list[tuple[int, str]]:
    """`<connection or cursor>.execute(...)` / `executemany` / `executescript`, or any `.execute("SELECT ...")`:
    the SQL statements a module runs, with their line."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in SQL_METHODS):
            continue
        receiver = ast.unparse(node.func.value)
        text = _leading_text(node.args[0]) if node.args else ""
        if SQL_RECEIVER.search(receiver) or SQL_TEXT.match(text):
            found.append((node.lineno, f"{receiver}.{node.func.attr}"))
    return found


def sql_outside_the_world() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = module_name(path)
        if any(module == owner or module.startswith(owner + ".") for owner in SQL_OWNERS):
            continue
        for line, call in sql_calls(path):
            found.setdefault(module, []).append(f"{path.relative_to(ROOT)}:{line} {call}(...)")
    return found


def test_no_sql_outside_the_store_and_the_world():
    new = {k: v for k, v in sql_outside_the_world().items() if k not in KNOWN_SQL}
    assert not new, "SQL outside mockbench/world (ask a world operation instead):\n" + "\n".join(
        line for lines in new.values() for line in lines)


def test_the_known_sql_only_shrinks():
    gone = KNOWN_SQL - set(sql_outside_the_world())
    assert not gone, f"these modules no longer run SQL: remove them from KNOWN_SQL: {sorted(gone)}"


def test_the_sql_checker_sees_statements_and_not_other_execute_methods(tmp_path):
    path = tmp_path / "probe.py"
    path.write_text("def f(tx, conn, session, db):\n"
                    "    tx.conn.execute('SELECT 1')\n"
                    "    conn.executemany('INSERT INTO t VALUES (?)', [])\n"
                    "    db.cursor().execute(f'DELETE FROM {t}')\n"
                    "    session.execute(*got)\n"
                    "    self._conn.executescript(sql)\n"
                    "    runner.execute('UPDATE t SET a = 1')\n")
    assert [line for line, _ in sql_calls(path)] == [2, 3, 4, 6, 7]

