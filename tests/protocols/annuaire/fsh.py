"""A small reader of FHIR Shorthand *instances* (the subset the Annuaire IG's CapabilityStatement and its
PP16DP / PP19DP examples use), turning one into the FHIR JSON that SUSHI would make of it, so that the tests
compare what the door serves with the IG's own text (corpus specs/annuaire-v2/ig-fsh/).

Handled: `* path = value` rules with indented context rules, `[n]` / `[+]` / `[=]` indexes, named slices
(`identifier[idNatSt]`, `[+][finess]`), `#code`, `system#code`, `"strings"` (multi-line too), booleans,
integers, `Canonical(...)`, `Reference(...)`, an extension slice's url, a primitive's extensions (`_line`).
Not handled (not used there): RuleSets, insert, caret rules, soft indexes on nested slices of slices.
"""

from __future__ import annotations

import re
from pathlib import Path

IG = "https://interop.esante.gouv.fr/ig/fhir/annuaire"
# The url SUSHI fixes on each extension slice used by the examples (fr-core and the IG's profiles).
EXTENSION_SLICES = {
    "emailType": "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-contact-point-email-type",
    "usePeriod": "http://hl7.org/fhir/StructureDefinition/organization-period",
    "as-ext-organization-types": f"{IG}/StructureDefinition/as-ext-organization-types",
    "inseeCode": "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-address-insee-code",
}
CORE_SEARCH_PARAMETERS = ("HealthcareService-active",)
# Elements that are arrays, by (resource type or "*", element name); "*" anywhere below the root.
ARRAYS = {
    ("*", "rest"), ("*", "resource"), ("*", "interaction"), ("*", "searchInclude"), ("*", "searchRevInclude"),
    ("*", "searchParam"), ("*", "format"), ("*", "identifier"), ("*", "given"), ("*", "prefix"),
    ("*", "telecom"), ("*", "qualification"), ("*", "coding"), ("meta", "profile"), ("*", "extension"),
    ("*", "line"), ("*", "alias"), ("Organization", "type"), ("Organization", "address"),
    ("PractitionerRole", "code"), ("Practitioner", "name"),
}
CONTEXTUAL = {"type", "code", "name", "address"}    # arrays only at the root of some resource types
RULE = re.compile(r'^(?P<indent> *)\* (?P<path>\S+)(?: = (?P<value>.*))?$')
SEGMENT = re.compile(r"(?P<name>[A-Za-z_][\w-]*)(?P<brackets>(?:\[[^\]]+\])*)")


def _canonical(name: str) -> str:
    base, _, version = name.partition("|")
    if base in CORE_SEARCH_PARAMETERS:
        url = f"http://hl7.org/fhir/SearchParameter/{base}"
    elif base.startswith("as-sp-"):
        url = f"{IG}/SearchParameter/{base}"
    else:
        url = f"{IG}/StructureDefinition/{base}"
    return f"{url}|{version}" if version else url


def _value(text: str):
    text = text.strip()
    if text.startswith('"'):
        return text[1:-1]
    if text in ("true", "false"):
        return text == "true"
    if m := re.fullmatch(r"Canonical\((.+)\)", text):
        return _canonical(m.group(1))
    if m := re.fullmatch(r"Reference\((.+)\)", text):
        return {"reference": m.group(1)}
    if text.startswith("#"):
        return text[1:]
    if "#" in text:
        system, code = text.split("#", 1)
        return {"system": system, "code": code}
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    return text


def _rules(text: str) -> list[tuple[int, str, str | None]]:
    """(indent, path, raw value) per rule, joining the lines of a multi-line string."""
    out: list[tuple[int, str, str | None]] = []
    lines = iter(text.splitlines())
    for line in lines:
        if re.match(r"\s*//", line):
            continue
        line = re.sub(r'\s//[^"]*$', "", line)
        m = RULE.match(line)
        if not m:
            continue
        value = m.group("value")
        while value is not None and value.startswith('"') and (value.count('"') % 2 == 1):
            value += "\n" + next(lines)
        out.append((len(m.group("indent")), m.group("path").strip(), value))
    return out


class Instance:
    def __init__(self, resource_type: str) -> None:
        self.root: dict = {"resourceType": resource_type}
        self.kind = resource_type
        self.current: dict[tuple, int] = {}        # (id of the owning list) -> current index
        self.slices: dict[tuple, int] = {}         # (id of the owning list, slice name) -> index

    def _is_array(self, depth: int, parent: str, name: str) -> bool:
        if name in CONTEXTUAL:
            return depth == 0 and (self.kind, name) in ARRAYS
        return ("*", name) in ARRAYS or (parent, name) in ARRAYS

    def set(self, path: str, value) -> None:
        segments = [SEGMENT.fullmatch(s) for s in _split(path)]
        node: dict = self.root
        for depth, seg in enumerate(segments):
            name, brackets = seg.group("name"), re.findall(r"\[([^\]]+)\]", seg.group("brackets"))
            last = depth == len(segments) - 1
            nxt = segments[depth + 1].group("name") if not last else None
            if name == "line" and nxt == "extension":        # a primitive's extensions go to `_line`
                node.setdefault("line", [None])
                name = "_line"
            parent = segments[depth - 1].group("name") if depth else ""
            is_array = bool(brackets) or self._is_array(depth, parent, name) or name == "_line"
            if not is_array:
                if last:
                    node[name] = self._wrap(depth, name, value)
                    return
                node = node.setdefault(name, {})
                continue
            items = node.setdefault(name, [])
            key = id(items)
            index = self.current.get(key, 0 if items else -1)
            slice_name = None
            for b in brackets:
                if b == "+":
                    index = len(items)
                elif b == "=":
                    pass
                elif b.isdigit():
                    index = int(b)
                else:
                    slice_name = b
            if slice_name is not None:     # each named slice is one element, made on first use
                if (key, slice_name) not in self.slices:
                    self.slices[(key, slice_name)] = len(items)
                index = self.slices[(key, slice_name)]
            if not brackets and index < 0:
                index = 0
            while len(items) <= index:
                items.append({} if not (last and not isinstance(value, dict)) else None)
            self.current[key] = index
            if slice_name in EXTENSION_SLICES and name == "extension":
                items[index] = items[index] or {}
                items[index].setdefault("url", EXTENSION_SLICES[slice_name])
            if last:
                wrapped = self._wrap(depth, name, value)
                if isinstance(items[index], dict) and isinstance(wrapped, dict):
                    items[index].update(wrapped)
                else:
                    items[index] = wrapped
                return
            if items[index] is None:
                items[index] = {}
            node = items[index]

    def _wrap(self, depth: int, name: str, value):
        # a Coding given to a CodeableConcept element (PractitionerRole.code[slice] = system#code)
        if depth == 0 and self.kind == "PractitionerRole" and name == "code" and isinstance(value, dict):
            return {"coding": [value]}
        return value


def _split(path: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for ch in path:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        if ch == "." and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return out


def read_instance(path: Path) -> dict:
    """The JSON of the FSH instance in `path`."""
    text = path.read_text(encoding="utf-8")
    kind = re.search(r"^InstanceOf:\s*(\S+)", text, re.M).group(1)
    kind = {"AsDpPractitionerProfile": "Practitioner", "AsDpPractitionerRoleProfile": "PractitionerRole",
            "AsDpOrganizationProfile": "Organization"}.get(kind, kind)
    inst = Instance(kind)
    context: list[tuple[int, str]] = []
    for indent, path_text, value in _rules(text):
        context = [(i, p) for i, p in context if i < indent]
        full = ".".join([p for _, p in context] + [path_text])
        if value is None:
            inst.set(full, {})
            # the rules indented below address the element just made, not a new one
            context.append((indent, path_text.replace("[+]", "[=]")))
            continue
        inst.set(full, _value(value))
    _primitive_extensions(inst.root)
    return inst.root


def _primitive_extensions(node) -> None:
    """A primitive given only extensions (`* line` then `* extension[...]`) is null beside its `_line`."""
    if isinstance(node, dict):
        for key in [k for k in node if k.startswith("_") and k[1:] in node]:
            node[key[1:]] = [None] * len(node[key])
        for value in node.values():
            _primitive_extensions(value)
    elif isinstance(node, list):
        for value in node:
            _primitive_extensions(value)
