"""Findings in French (issue 19, "Verdicts in French"): every finding the bench raises carries its French
text as `message_fr` beside the English `message` (CI scripts read the English; the rule id is the stable
code), GET /_bench/findings keeps it per group, and the evidence report shows it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import requests
from lxml import html as lxml_html

import mockbench
from mockbench.world.journal import finding

PACKAGE = Path(mockbench.__file__).parent
QUERY = (b'<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope">'
         b'<soap:Header/><soap:Body><query:AdhocQueryRequest xmlns:query="urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0">'
         b'<query:ResponseOption returnType="LeafClass"/></query:AdhocQueryRequest></soap:Body></soap:Envelope>')


def _finding_calls_without_french(tree: ast.AST) -> list[int]:
    """Lines of calls to `finding(...)` (and to ebRIM's `note(...)`, which wraps it) with no `fr=`."""
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.id if isinstance(node.func, ast.Name) else \
            node.func.attr if isinstance(node.func, ast.Attribute) else None
        if name in ("finding", "note") and not any(k.arg == "fr" for k in node.keywords):
            out.append(node.lineno)
    return out


@pytest.mark.slow
def test_every_finding_of_the_package_is_given_in_french():
    calls, missing = 0, []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        calls += sum(1 for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
                     and n.func.id == "finding")
        missing += [f"{path.relative_to(PACKAGE.parent)}:{line}" for line in _finding_calls_without_french(tree)]
    assert calls > 100          # the walk does see the package's findings
    assert missing == [], f"finding() without fr= (its French text): {missing}"


def test_the_guard_catches_a_call_that_forgets_french():
    tree = ast.parse('f = finding("X/Y", "an English message", "info")\n'
                     'g = finding("X/Y", "an English message", fr="un message en français")\n'
                     'self.note("X/Z", "ebRIM note")\n')
    assert _finding_calls_without_french(tree) == [1, 3]


def test_a_finding_keeps_english_and_carries_its_french():
    f = finding("DMP/TLS", "called over plain HTTP", "warning", fr="appelé en HTTP simple")
    assert f == {"rule": "DMP/TLS", "severity": "warning", "message": "called over plain HTTP",
                 "message_fr": "appelé en HTTP simple"}
    assert "message_fr" not in finding("DMP/TLS", "called over plain HTTP")
    with pytest.raises(ValueError):
        finding("DMP/TLS", "x", "fatal", fr="x")


def _refused_query(bench) -> None:
    response = requests.post(bench.url + "/si-dmp-server/v2/services/registry", data=QUERY, timeout=10,
                             headers={"Content-Type": "application/soap+xml; charset=utf-8"})
    assert response.status_code == 400


def test_the_api_and_the_report_show_the_french_text(mockbench):
    c = mockbench.client
    _refused_query(mockbench)
    _refused_query(mockbench)
    entries = [e for e in c.journal() if e["channel"] == "dmp"]
    assert len(entries) == 2
    for entry in entries:
        assert entry["findings"]
        for f in entry["findings"]:
            assert f["message"] and f["message_fr"] and f["message_fr"] != f["message"]
    groups = c.call("GET", "/findings")
    french = {(g["rule"], g["message"]): g["message_fr"] for g in groups}
    for f in entries[0]["findings"]:
        assert french[(f["rule"], f["message"])] == f["message_fr"]
        group = next(g for g in groups if (g["rule"], g["message"]) == (f["rule"], f["message"]))
        assert group["entries"] == [e["seq"] for e in entries]      # grouped by the English, French kept

    report = c.report("json")
    assert [g["message_fr"] for g in report["findings"]] == [g["message_fr"] for g in groups]
    tree = lxml_html.document_fromstring(c.report("html").decode("utf-8"))
    rows = tree.xpath('//section[@id="constats"]//tbody/tr')
    shown = {(r.xpath("string(td[2])").strip(), r.xpath("string(td[3])").strip()) for r in rows}
    assert shown == {(g["rule"], g["message_fr"]) for g in groups}
    assert all(g["message_fr"] != g["message"] for g in groups)
