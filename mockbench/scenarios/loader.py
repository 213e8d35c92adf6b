"""Reading scenario files and the shipped catalogue."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from ..world import errors, identity
from .schema import SCENARIO, Problem, ScenarioInvalid, Validator

MAX_SCENARIO_BYTES = 1024 * 1024

# libyaml's parser when PyYAML was built with it: a catalogue file composes in 0.2 ms instead of 3 (start-up,
# issue 21 point 5), into the same nodes and lines (tests/scenarios/test_loader_yaml.py). A document it refuses
# is read again by the pure-Python parser, so that an error says what it always said.
_FAST_LOADER = getattr(yaml, "CSafeLoader", None)


@dataclass
class Scenario:
    spec: dict
    source: str
    lines: dict[str, int]

    @property
    def id(self) -> str:
        return self.spec["id"]

    @property
    def title(self) -> str:
        return self.spec["title"]

    @property
    def requirement(self) -> str:
        return self.spec.get("requirement", "")


# YAML aliases are references: composing `a: &a [*b, *b, ...]` costs nothing, but every walk that follows
# (validation, conversion, error messages) expands them, so nine levels of ten aliases are a billion nodes.
# A scenario needs a few hundred nodes (the largest in the catalogue: ~1,500); its aliases, a handful.
MAX_YAML_ALIASES = 200
MAX_YAML_NODES = 200_000   # counted as the walk will see them, every alias expanded


def over_budget(root: yaml.Node, *, max_nodes: int = MAX_YAML_NODES, max_aliases: int = MAX_YAML_ALIASES
                ) -> str | None:
    """Why a composed YAML document is refused before it is walked, or None: too many aliases, too many
    nodes once they are expanded, or an alias that contains itself (a walk would never end)."""
    sizes: dict[int, int] = {}
    aliases = 0
    seen: set[int] = set()
    # Post-order walk with an explicit stack (a deep document must not exhaust Python's recursion).
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    on_path: set[int] = set()
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            children = _children(node)
            sizes[key] = 1 + sum(sizes[id(c)] for c in children)
            if sizes[key] > max_nodes:
                return (f"the YAML expands to more than {max_nodes} nodes (aliases counted where they are used); "
                        "a scenario needs far fewer")
            continue
        if key in sizes:
            continue
        if key in on_path:
            return "the YAML has an alias inside its own anchor (a structure without end)"
        if key in seen:
            aliases += 1   # the same node reached again: an alias
            if aliases > max_aliases:
                return f"the YAML uses more than {max_aliases} aliases (*name)"
        seen.add(key)
        on_path.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in on_path:
                return "the YAML has an alias inside its own anchor (a structure without end)"
            if id(child) in sizes:
                aliases += 1
                if aliases > max_aliases:
                    return f"the YAML uses more than {max_aliases} aliases (*name)"
            else:
                stack.append((child, False))
    return None


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


GENERATED_ID_WIDTH = {"structure": 5, "professional": 6, "patient": 6}


def generated_id(kind: str, n: int) -> str:
    """The id of the n-th (from 1) made-up structure, professional or patient of `world.generate`."""
    return f"{kind}-{n:0{GENERATED_ID_WIDTH[kind]}d}"


def generated_number(kind: str, value: str, count: int) -> int | None:
    prefix, width = f"{kind}-", GENERATED_ID_WIDTH[kind]
    digits = value[len(prefix):]
    if value.startswith(prefix) and len(digits) == width and digits.isdigit() and 1 <= int(digits) <= count:
        return int(digits)
    return None


class KnownIds(set):
    """Listed ids, plus the ones `world.generate` makes, which are recognised without being built."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind, self.generated = kind, 0

    def __contains__(self, value: object) -> bool:
        return set.__contains__(self, value) or (
            isinstance(value, str) and generated_number(self.kind, value, self.generated) is not None)

    def __bool__(self) -> bool:
        return bool(len(self) or self.generated)


def compose(text: str) -> yaml.Node | None:
    """The YAML document's node tree (None when empty); its errors are the pure-Python parser's."""
    if _FAST_LOADER is not None:
        try:
            return yaml.compose(text, Loader=_FAST_LOADER)
        except yaml.YAMLError:
            pass
    return yaml.compose(text, Loader=yaml.SafeLoader)


def parse(text: str, source: str = "<scenario>") -> Scenario:
    if len(text.encode("utf-8", "replace")) > MAX_SCENARIO_BYTES:
        raise ScenarioInvalid([Problem(1, "", f"the file is larger than {MAX_SCENARIO_BYTES} bytes", source)])
    try:
        node = compose(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise ScenarioInvalid([Problem(line, "", f"not valid YAML: {exc.problem}", source)]) from None
    except yaml.YAMLError as exc:
        raise ScenarioInvalid([Problem(1, "", f"not valid YAML: {exc}", source)]) from None
    if node is None:
        raise ScenarioInvalid([Problem(1, "", "the file is empty", source)])
    over = over_budget(node)
    if over:
        raise ScenarioInvalid([Problem(1, "", over, source)])
    v = Validator(source)
    spec = SCENARIO.convert(node, "", v)
    if not v.problems:
        _cross_check(spec, v, node)
    if v.problems:
        raise ScenarioInvalid(sorted(v.problems, key=lambda p: p.line))
    return Scenario(spec=spec, source=source, lines=v.lines)


def _cross_check(spec: dict, v: Validator, root: yaml.Node) -> None:
    """References between sections: ids that must exist, ids that must be unique."""
    check = _CrossCheck(v)
    world = spec.get("world", {})
    check.world_ids(world)
    check.professionals(world.get("professionals", []))
    check.patients(world.get("patients", []))
    check.mailboxes(world.get("mailboxes", []))
    check.transitions(spec.get("transitions", []))
    check.steps(spec.get("steps", []))


_WORLD_SECTIONS = (("structures", "structure"), ("professionals", "professional"), ("patients", "patient"))


class _CrossCheck:
    """One scenario's cross-checks, section by section; the ids met so far and the problems live here."""

    def __init__(self, v: Validator) -> None:
        self.v = v
        self.ids = {kind: KnownIds(kind) for kind in ("structure", "professional", "patient")}
        self.documents: set[str] = set()

    def problem(self, path: str, message: str) -> None:
        """A problem at `path`, on the line of its nearest ancestor that has one."""
        line = self.v.lines.get(path)
        while line is None and path:
            path_parent = path.rsplit(".", 1)[0] if "." in path else ""
            line, path = self.v.lines.get(path_parent), path_parent
        self.v.problems.append(Problem(line or 1, path, message, self.v.file))

    def unknown(self, kind: str, value: str | None) -> bool:
        return bool(value) and value not in self.ids[kind]

    def world_ids(self, world: dict) -> None:
        """Listed ids are unique; world.generate's ids (structure-00001, professional-000001,
        patient-000001...) can be referred to, and a listed id must not take one of them."""
        for section, kind in _WORLD_SECTIONS:
            for i, item in enumerate(world.get(section, [])):
                if item["id"] in self.ids[kind]:
                    self.problem(f"world.{section}[{i}]", f"the {kind} id {item['id']} is used twice")
                self.ids[kind].add(item["id"])
        for section, kind in _WORLD_SECTIONS:
            count = (world.get("generate") or {}).get(section) or 0
            for i, item in enumerate(world.get(section, [])):
                if generated_number(kind, item["id"], count):
                    self.problem(f"world.{section}[{i}]", f"the {kind} id {item['id']} is one that "
                                 f"world.generate.{section} makes: choose another")
            self.ids[kind].generated = count

    def professionals(self, professionals: list[dict]) -> None:
        for i, p in enumerate(professionals):
            if p.get("check_digits", True):
                for key, check in (("rpps", identity.check_rpps), ("idnps", identity.check_idnps)):
                    if p.get(key) and p[key] != "generate":
                        try:
                            check(p[key])
                        except identity.IdentifierError as exc:
                            self.problem(f"world.professionals[{i}].{key}", f"{exc} (check_digits: false admits it)")
            if p.get("rpps") not in (None, "generate") and p.get("idnps") and p["idnps"] != "8" + p["rpps"]:
                self.problem(f"world.professionals[{i}]", f"idnps {p['idnps']} is not 8 + rpps {p['rpps']}")
            if self.unknown("structure", p.get("structure")):
                self.problem(f"world.professionals[{i}]", f"structure {p['structure']} is not in world.structures")

    def patients(self, patients: list[dict]) -> None:
        for i, p in enumerate(patients):
            base = f"world.patients[{i}]"
            for j, a in enumerate(p.get("authorizations", [])):
                for kind in ("structure", "professional"):
                    if self.unknown(kind, a.get(kind)):
                        self.problem(f"{base}.authorizations[{j}]", f"{kind} {a[kind]} is not in world.{kind}s")
            self.patient_documents(base, p.get("documents", []))
            if p.get("minor") is False and p.get("secret_connection"):
                self.problem(base, "a secret connection is for a minor: set minor: true")

    def patient_documents(self, base: str, documents: list[dict]) -> None:
        seen: set[str] = set()
        for j, d in enumerate(documents):
            path = f"{base}.documents[{j}]"
            if d["id"] in self.documents:
                self.problem(path, f"the document id {d['id']} is used twice")
            if self.unknown("professional", d.get("author")):
                self.problem(path, f"author {d['author']} is not in world.professionals")
            if not d.get("author") and not self.ids["professional"]:
                self.problem(path, "a document needs an author: add a professional to world.professionals")
            if d.get("replaces") and d["replaces"] not in seen:
                self.problem(path, f"replaces {d['replaces']}, which is not an earlier document of this patient")
            seen.add(d["id"])
            self.documents.add(d["id"])

    def mailboxes(self, mailboxes: list[dict]) -> None:
        for i, m in enumerate(mailboxes):
            if self.unknown("professional", m.get("owner")) and m["owner"] not in self.ids["structure"]:
                self.problem(f"world.mailboxes[{i}]", f"owner {m['owner']} is neither a professional nor a structure")

    def transitions(self, transitions: list[dict]) -> None:
        transition_ids: set[str] = set()
        for i, t in enumerate(transitions):
            path = f"transitions[{i}]"
            if t["id"] in transition_ids:
                self.problem(path, f"the transition id {t['id']} is used twice")
            transition_ids.add(t["id"])
            after = (t.get("when") or {}).get("after") or {}
            if self.unknown("patient", after.get("patient")):
                self.problem(f"{path}.when.after", f"patient {after['patient']} is not in world.patients")
            if t.get("when", {}).get("manual") is False:
                self.problem(f"{path}.when", "manual: false never fires; remove the transition or use after / at")
            for j, action in enumerate(t.get("do", [])):
                if action:
                    self.action(f"{path}.do[{j}]", action)

    def action(self, path: str, action: dict) -> None:
        (name, args), = action.items()
        for kind in ("patient", "structure", "professional"):
            if self.unknown(kind, args.get(kind)):
                self.problem(f"{path}.{name}", f"{kind} {args[kind]} is not in world.{kind}s")
        by = args.get("by")
        if by and by != "patient" and by not in self.ids["professional"]:
            self.problem(f"{path}.{name}", f"by {by}: not a professional id nor patient")

    def steps(self, steps: list[dict]) -> None:
        step_ids: list[str] = []
        for i, s in enumerate(steps):
            path = f"steps[{i}]"
            if s["id"] in step_ids:
                self.problem(path, f"the step id {s['id']} is used twice")
            expect = s.get("expect") or {}
            if not (expect.get("operation") or expect.get("channel")):
                self.problem(f"{path}.expect", "name at least the channel or the operation")
            if self.unknown("patient", expect.get("patient")):
                self.problem(f"{path}.expect", f"patient {expect['patient']} is not in world.patients")
            self.step_then(path, s.get("then") or {}, [*step_ids, s["id"]])
            step_ids.append(s["id"])

    def step_then(self, path: str, then: dict, known_steps: list[str]) -> None:
        """`then`'s references: patients, and `submitted_in` naming this step or an earlier one."""
        doc = then.get("document") or {}
        if doc.get("submitted_in") and doc["submitted_in"] not in known_steps:
            self.problem(f"{path}.then.document", f"submitted_in {doc['submitted_in']} is neither this step nor "
                         "an earlier one")
        for j, trace in enumerate(then.get("traces") or []):
            if self.unknown("patient", trace.get("patient")):
                self.problem(f"{path}.then.traces[{j}]", f"patient {trace['patient']} is not in world.patients")
            if trace.get("submitted_in") and trace["submitted_in"] not in known_steps:
                self.problem(f"{path}.then.traces[{j}]", f"submitted_in {trace['submitted_in']} is neither this "
                             "step nor an earlier one")


def load_file(path: str | Path) -> Scenario:
    p = Path(path)
    try:
        if p.stat().st_size > MAX_SCENARIO_BYTES:
            raise ScenarioInvalid([Problem(1, "", f"the file is larger than {MAX_SCENARIO_BYTES} bytes", str(p))])
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioInvalid([Problem(1, "", f"cannot read the file: {exc.strerror}", str(p))]) from None
    except UnicodeDecodeError:
        raise ScenarioInvalid([Problem(1, "", "the file is not UTF-8 text", str(p))]) from None
    return parse(text, str(p))


class Catalogue:
    """The shipped scenarios: the top-level scenarios/*.yaml, installed as the package mockbench.catalogue."""

    def __init__(self) -> None:
        self._root = resources.files("mockbench.catalogue")
        self._cache: dict[str, Scenario] | None = None

    def all(self) -> dict[str, Scenario]:
        if self._cache is None:
            found: dict[str, Scenario] = {}
            for entry in sorted(self._root.iterdir(), key=lambda e: e.name):
                if entry.name.endswith(".yaml"):
                    scenario = parse(entry.read_text(encoding="utf-8"), f"catalogue/{entry.name}")
                    found[scenario.id] = scenario
            self._cache = found
        return self._cache

    def get(self, scenario_id: str) -> Scenario:
        # A catalogue file is named after its id: read that one alone (start-up with --scenario parsed all
        # nineteen, a sixth of the time to ready), the whole catalogue only when the name does not match.
        if self._cache is None and re.fullmatch(r"[a-z0-9][a-z0-9-]*", scenario_id):
            entry = self._root / f"{scenario_id}.yaml"
            if entry.is_file():
                scenario = parse(entry.read_text(encoding="utf-8"), f"catalogue/{entry.name}")
                if scenario.id == scenario_id:
                    return scenario
        found = self.all().get(scenario_id)
        if found is None:
            raise errors.UnknownScenario(f"no scenario {scenario_id}; the catalogue has: {', '.join(self.all())}")
        return found


def resolve(catalogue: Catalogue, id_or_file: str) -> Scenario:
    """A catalogue id, or a path to a YAML file."""
    if id_or_file.endswith((".yaml", ".yml")) or "/" in id_or_file or Path(id_or_file).is_file():
        return load_file(id_or_file)
    return catalogue.get(id_or_file)
