"""The evidence report of a scenario played through real doors: GET /_bench/report as JSON (validated
against the OpenAPI description) and as one self-contained HTML file."""

from __future__ import annotations

import smtplib

import pytest
import requests
from jsonschema import Draft202012Validator
from lxml import html as lxml_html
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from report_messages import SCRIPT, external_references, mdm, play_conf_03_01, send

from mockbench.control.openapi import openapi_document
from mockbench.formats.cda import minimal_cda
from mockbench.formats.mime import xdm_mail
from mockbench.formats.xdm import read_package
from mockbench.report import ReportLimits, build_report, render_html
from mockbench.report.pretty import pretty_raw
from mockbench.testing.client import BenchHTTPError


def validate_report(body: dict) -> None:
    spec = openapi_document()
    registry = Registry().with_resource("urn:openapi", Resource.from_contents(spec, DRAFT202012))
    validator = Draft202012Validator({"$ref": "urn:openapi#/components/schemas/Report"}, registry=registry)
    errors = sorted(validator.iter_errors(body), key=str)
    assert not errors, errors[0]


def test_report_of_a_scenario_played_through_the_pfi_door(mockbench):
    c = mockbench.client
    c.load("dmp-conf-03-01")
    uid = play_conf_03_01(mockbench, obr_text=SCRIPT)
    report = c.report("json")
    validate_report(report)

    assert report["scenario"]["id"] == "dmp-conf-03-01"
    assert report["scenario"]["requirement"] == "DMP/CONF.03"
    assert report["scenario"]["title"].startswith("Supprimer un document du DMP")
    assert report["scenario"]["description"] and report["scenario"]["source"].endswith("dmp-conf-03-01.yaml")
    assert report["scenario"]["loaded_at"] <= report["generated_at"]
    assert report["outcome"] == "passed"
    assert [(s["id"], s["status"], s["not_observed"]) for s in report["steps"]] == [
        ("envoi", "passed", False), ("alimentation", "passed", False), ("suppression", "passed", False),
        ("suppression_dmp", "passed", False)]
    journal = {e["seq"]: e for e in c.journal()}
    entries = {e["seq"]: e for e in report["entries"]}
    for step in report["steps"]:
        (seq,) = step["entries"]
        assert seq in entries and step["decided_at"] == journal[seq]["time"]
    ops = [entries[s["entries"][0]]["operation"] for s in report["steps"]]
    assert ops == ["MDM^T02", "TD2.1", "MDM^T04", "TD3.3c"]

    # The T02, pretty-printed: one segment a line, the embedded CDA decoded and indented.
    t02 = entries[report["steps"][0]["entries"][0]]
    assert t02["raw"] == journal[t02["seq"]]["raw"]
    pretty = t02["pretty"]
    assert pretty["kind"] == "hl7"
    lines = pretty["text"].split("\n")
    assert [line[:3] for line in lines] == ["MSH", "EVN", "PID", "PV1", "ORC", "OBR", "TXA", "OBX", "PRT", "OBX"]
    assert SCRIPT in lines[5]
    assert "caractères base64]" in lines[7]          # the CDA's base64, abbreviated in the segment
    (cda,) = pretty["parts"]
    assert cda["kind"] == "xml" and cda["content_type"] == "text/xml"
    assert f'<id root="{uid}"/>' in cda["text"] and "\n  <title>Compte rendu de consultation</title>" in cda["text"]

    # The world before (as seeded) and after (now).
    before, after = report["world"]["before"], report["world"]["after"]
    assert [p["id"] for p in before["patients"]] == ["alice"]
    assert before["patients"][0]["documents"] == []
    assert [(a["subject"], a["status"]) for a in before["patients"][0]["authorizations"]] == [("chu", "VALIDE")]
    assert before["time"] <= after["time"]
    (doc,) = after["patients"][0]["documents"]
    assert (doc["unique_id"], doc["status"], doc["confidentiality"]) == (uid, "deleted", ["N"])
    assert [v["status"] for v in doc["versions"]] == [v["status"] for v in sorted(
        c.documents("alice", history=True), key=lambda d: d["version"])]

    # Findings: those the bench gives at GET /_bench/findings, entries and all.
    assert report["findings"] == c.call("GET", "/findings")
    assert report["timeline"][0]["operation"] == "load" and len(report["timeline"]) == len(journal)


def test_the_html_report_is_self_contained_escaped_and_anchored(mockbench):
    c = mockbench.client
    c.load("dmp-conf-03-01")
    play_conf_03_01(mockbench, obr_text=SCRIPT)
    document = c.report("html").decode("utf-8")
    assert external_references(document) == []
    assert "<script>" not in document and SCRIPT not in document
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in document

    tree = lxml_html.document_fromstring(document)
    assert tree.xpath("//script") == []
    text = tree.text_content()
    assert SCRIPT in text                           # shown, as text
    for label in ("Scénario", "Exigence", "DMP/CONF.03", "Étapes", "Transitions", "État du monde", "Constats",
                  "Chronologie", "Avant (au chargement du scénario)", "Après (au moment du rapport)"):
        assert label in text, label
    assert tree.xpath("//h2/text()") == ["Scénario", "Étapes", "Transitions", "Échanges (entrées du journal)",
                                         "État du monde", "Constats", "Chronologie (journal)"]
    report = c.report("json")
    for step in report["steps"]:
        (row,) = tree.xpath(f"//tr[@id='step-{step['id']}']")
        assert row.xpath(".//span[contains(@class, 'badge')]/text()") == ["réussie"]
        (link,) = row.xpath(".//a/@href")
        assert link == f"#entry-{step['entries'][0]}"
        (target,) = tree.xpath(f"//*[@id='{link[1:]}']")
        assert target.tag == "article" and f"#step-{step['id']}" in target.xpath(".//a/@href")
    # Every in-page link leads somewhere.
    ids = set(tree.xpath("//@id"))
    assert all(href[1:] in ids for href in tree.xpath("//a/@href"))
    # The CDA is indented inside its pre block; the deleted document shows in French in the after state.
    assert any("\n  <title>Compte rendu de consultation</title>" in pre.text_content() for pre in tree.xpath("//pre"))
    assert "supprimé" in tree.xpath("//h3[@id='etat-after']/following::table[1]")[0].text_content()


def test_the_report_shows_pending_steps_as_failed_without_ending_the_run(mockbench):
    c = mockbench.client
    c.load("dmp-conf-03-01")
    play_conf_03_01(mockbench, delete=False)
    report = c.report("json")
    validate_report(report)
    steps = {s["id"]: s for s in report["steps"]}
    assert report["outcome"] == "failed"
    assert (steps["alimentation"]["status"], steps["alimentation"]["not_observed"]) == ("passed", False)
    assert steps["suppression"]["status"] == "failed" and steps["suppression"]["not_observed"]
    assert steps["suppression"]["reason"].startswith("not observed: expected MDM^T04 or ORU^R01 for alice")
    assert steps["suppression_dmp"]["reason"].startswith("not observed: the earlier step suppression was never")
    html = lxml_html.document_fromstring(c.report("html"))
    assert html.xpath("//tr[@id='step-suppression']//span[contains(@class, 'badge')]/text()") == ["échouée"]
    assert "non observée" in html.xpath("//tr[@id='step-suppression']")[0].text_content()
    # The bench still waits for them: the run goes on, and the deletion decides them.
    assert [s["status"] for s in c.steps()] == ["passed", "passed", "pending", "pending"]
    patient, pro = c.patient("alice"), c.call("GET", "/professionals")[0]
    send(mockbench, mdm("T04", patient, pro, c.call("GET", "/structures")[0]["finess"], "1.2.250.1.999.42.1"))
    assert [s["status"] for s in c.steps()] == ["passed"] * 4
    # Finishing stores what the report showed.
    c.load("dmp-conf-03-01")
    play_conf_03_01(mockbench, delete=False)
    shown = [(s["id"], s["status"], s["reason"]) for s in c.report("json")["steps"]]
    assert [(s["id"], s["status"], s["reason"]) for s in c.finish()] == shown


MAILER = "jeanne.martin@chu.mssante.fr"
DPI = "dpi@chu.mssante.fr"
MSS_WORLD = f"""\
id: report-mss
title: Rapport sur un envoi MSSanté
requirement: MSS/UX.05.BIS.01
seed: 11
world:
  structures: [{{id: chu, name: CHU de Test}}]
  professionals:
    - {{id: dr_a, family_name: MARTIN, given_name: Jeanne, structure: chu, mssante: {MAILER}}}
  mailboxes:
    - {{address: {DPI}, type: APP, owner: chu, role: hospital}}
steps:
  - id: envoi
    say: Un professionnel envoie un paquet XDM à la boîte du DPI
    expect: {{channel: mss, operation: SUBMIT}}
"""


def test_a_mail_is_shown_with_its_parts_and_its_xdm_package(mockbench, corpus):
    c = mockbench.client
    c.load_yaml(MSS_WORLD)
    path = sorted((corpus / "xdm").glob("*.zip"))[0]
    package = path.read_bytes()
    raw = xdm_mail(sender=MAILER, to=[DPI], subject="XDM/1.0/DDM", package=package, text="Bonjour")
    with smtplib.SMTP("127.0.0.1", mockbench.ports["smtp"], timeout=10) as smtp:
        smtp.login(MAILER, "mockbench")
        assert smtp.sendmail(MAILER, [DPI], raw) == {}
    report = c.report("json")
    validate_report(report)
    assert report["steps"][0]["status"] == "passed"
    (entry,) = [e for e in report["entries"] if e["seq"] == report["steps"][0]["entries"][0]]
    assert entry["operation"] == "SUBMIT"
    # The journal kept the start of the mail only; the report read the whole of it from the mailbox.
    assert entry["raw_truncated"] and entry["pretty_source"] == "mailbox"
    pretty = entry["pretty"]
    assert pretty["kind"] == "mime" and pretty["headers"]["From"] == MAILER
    text, zipped = pretty["parts"]
    assert (text["content_type"], text["text"]) == ("text/plain", "Bonjour")
    assert zipped["filename"] == "IHE_XDM.ZIP" and zipped["size"] == len(package)
    assert zipped["headers"]["Content-Transfer-Encoding"] == "base64"
    members = {m["name"] for m in zipped["members"]}
    assert {"README.TXT", "INDEX.HTM", "IHE_XDM/SUBSET01/METADATA.XML"} <= members
    expected = read_package(package)
    assert [d["unique_id"] for d in zipped["entries"]] == [d.entry.unique_id for d in expected.documents]
    assert all(d["hash_ok"] and d["size_ok"] for d in zipped["entries"])
    counts = {m["address"]: (m["role"], m["messages"]) for m in report["world"]["after"]["mailboxes"]}
    assert counts == {DPI: ("hospital", 1), MAILER: ("correspondent", 0)}
    # the sender's own mailbox appeared with the mail: it was not seeded
    assert {m["address"]: m["messages"] for m in report["world"]["before"]["mailboxes"]} == {DPI: 0}
    tree = lxml_html.document_fromstring(c.report("html"))
    assert "IHE_XDM/SUBSET01/METADATA.XML" in tree.text_content()
    assert expected.documents[0].entry.unique_id in tree.text_content()


OIDC_WORLD = """\
id: report-oidc
title: Rapport sur une demande d'autorisation
seed: 12
world:
  structures: [{id: chu, name: CHU de Test}]
  professionals: [{id: dr_a, family_name: MARTIN, given_name: Jeanne, structure: chu}]
steps:
  - id: autorisation
    say: Le DPI demande une autorisation avec un objet de requête signé
    expect: {channel: oidc, operation: authorize}
"""


def test_a_token_in_an_oidc_request_is_decoded_not_verified(mockbench):
    # A signed request object (RFC 9101) sent to the authorization endpoint: the report decodes it and
    # says its signature was not verified.
    from joserfc import jwt
    from joserfc.jwk import OctKey

    c = mockbench.client
    c.load_yaml(OIDC_WORLD)
    token = jwt.encode({"alg": "HS256"}, {"iss": "mockbench", "aud": "psc", "login_hint": SCRIPT},
                       OctKey.generate_key(256))
    requests.get(f"{mockbench.url}/oidc/etab/authorize", timeout=10, allow_redirects=False,
                 params={"client_id": "mockbench", "response_type": "code", "request": token,
                         "redirect_uri": "http://127.0.0.1/callback", "scope": "openid"})
    report = c.report("json")
    validate_report(report)
    (step,) = report["steps"]
    assert step["status"] in ("passed", "failed") and not step["not_observed"]
    (entry,) = [e for e in report["entries"] if e["seq"] == step["entries"][0]]
    pretty = entry["pretty"]
    assert pretty["kind"] == "form" and "  request = eyJ" in pretty["text"]
    (decoded,) = pretty["tokens"]
    assert decoded["header"] == {"alg": "HS256", "typ": "JWT"}
    assert decoded["claims"] == {"iss": "mockbench", "aud": "psc", "login_hint": SCRIPT}
    assert decoded["signature"] == {"present": True, "verified": False, "algorithm": "HS256"}
    document = c.report("html").decode()
    assert external_references(document) == [] and "<script>" not in document
    tree = lxml_html.document_fromstring(document)
    assert "non vérifiée" in tree.text_content() and SCRIPT in tree.text_content()


def test_a_report_without_a_scenario(mockbench):
    report = mockbench.client.report("json")
    validate_report(report)
    assert report["scenario"] is None and report["steps"] == [] and report["outcome"] is None
    assert report["world"]["before"] is None and report["world"]["after"]["patients"] == []
    document = mockbench.client.report("html").decode()
    assert "Aucun scénario chargé" in document and external_references(document) == []


def test_the_report_is_bounded_and_says_so(mockbench):
    c = mockbench.client
    c.load("dmp-conf-03-01")
    play_conf_03_01(mockbench)
    report = build_report(mockbench.bench.world, mockbench.bench.scenarios,
                          limits=ReportLimits(timeline=2, detailed=1))
    validate_report(report)
    assert len(report["timeline"]) == 2 and report["timeline_capped"]
    assert [e["seq"] for e in report["entries"]] == report["steps"][0]["entries"] and report["entries_capped"]
    tree = lxml_html.document_fromstring(render_html(report))
    caps = " ".join(p.text_content() for p in tree.xpath("//p[@class='cap']"))
    assert "Liste plafonnée : 1 entrées détaillées" in caps and "Chronologie plafonnée aux 2 premières" in caps
    # A step whose entry is not printed links to its timeline line; beyond the listed timeline, to nothing.
    (row,) = tree.xpath("//tr[@id='step-alimentation']")
    assert row.xpath(".//a/@href") == [] and "hors de la chronologie listée" in row.text_content()
    wider = build_report(mockbench.bench.world, mockbench.bench.scenarios, limits=ReportLimits(detailed=1))
    second = wider["steps"][1]["entries"][0]
    tree = lxml_html.document_fromstring(render_html(wider))
    assert tree.xpath("//tr[@id='step-alimentation']//a/@href") == [f"#seq-{second}"]
    assert tree.xpath(f"//tr[@id='seq-{second}']")


@pytest.mark.parametrize("fmt", ["xml", "pdf"])
def test_an_unknown_format_is_refused(mockbench, fmt):
    with pytest.raises(BenchHTTPError) as err:
        mockbench.client.call("GET", "/report", format=fmt)
    assert err.value.status == 400 and err.value.code == "INVALID_PARAMETER"


def test_a_cda_in_a_report_is_not_markup(mockbench):
    # An XML payload carrying markup in its text: it stays text through the pretty-printer and the HTML.
    cda = minimal_cda(unique_id="1.2.3", ins="123", ins_oid="1.2", type_code="11488-4", title=SCRIPT,
                      author_idnps="8", author_family="A", author_given="B", patient_family="C", patient_given="D",
                      birth_date="2000-01-01", sex="F", effective_time="2026-11-20T10:00:00Z", text=SCRIPT)
    pretty = pretty_raw(cda.decode())
    assert pretty["kind"] == "xml" and "&lt;script&gt;" in pretty["text"]
    report = {"scenario": None, "steps": [], "transitions": [], "timeline": [], "findings": [], "bench": {},
              "journal": {"count": 1, "dropped": 0}, "world": {"before": None, "after": None},
              "generated_at": "2026-11-26T00:00:00.000Z", "outcome": None,
              "entries": [{"seq": 1, "time": "2026-11-26T00:00:00.000Z", "channel": "dmp", "operation": "TD2.1",
                           "direction": "in", "actor": SCRIPT, "verdict": "accepted", "findings": [], "size": 1,
                           "raw": cda.decode(), "pretty": pretty, "pretty_source": "journal"}]}
    document = render_html(report)
    assert "<script>" not in document and external_references(document) == []
    assert lxml_html.document_fromstring(document).xpath("//script") == []


@pytest.mark.mockbench_scenario("dmp-authorization-withdrawn")
def test_transitions_and_the_world_before_and_after_them(mockbench):
    c = mockbench.client
    c.fire("retrait_chu")
    report = c.report("json")
    validate_report(report)
    transitions = {t["id"]: t for t in report["transitions"]}
    fired, waiting = transitions["retrait_chu"], transitions["retrait_clinique"]
    assert fired["fired"] and fired["fired_at"] and fired["error"] is None
    assert fired["what"].startswith("retrait_chu (manual): ")
    assert fired["do"] == [{"withdraw_authorization": {"patient": "bernard", "structure": "chu"}}]
    line = next(e for e in report["timeline"] if e["seq"] == fired["entry"])
    assert (line["channel"], line["operation"]) == ("control", "transition")
    assert not waiting["fired"] and waiting["fired_at"] is None and waiting["what"] is None
    assert waiting["when"]["after"]["operation"] == "TD3.1"

    def authorizations(state):
        (bernard,) = state["patients"]
        return {a["subject"]: a["status"] for a in bernard["authorizations"]}
    before, after = report["world"]["before"], report["world"]["after"]
    assert authorizations(before) == {"chu": "VALIDE", "clinique": "VALIDE", "dr_roux": "INTERDIT"}
    assert authorizations(after).get("chu") != "VALIDE"
    assert authorizations(after)["clinique"] == "VALIDE"
    assert [d["id"] for d in before["patients"][0]["documents"]] == ["cr_bernard"]

    tree = lxml_html.document_fromstring(c.report("html"))
    (row,) = tree.xpath("//tr[@id='transition-retrait_chu']")
    assert "oui" in row.text_content() and row.xpath(".//a/@href") == [f"#seq-{fired['entry']}"]
    (row,) = tree.xpath("//tr[@id='transition-retrait_clinique']")
    assert "non" in row.xpath(".//span[contains(@class, 'badge')]/text()")
    assert "après 1 × (channel = dmp, operation = TD3.1" in row.text_content()
    assert "manuelle" in tree.xpath("//tr[@id='transition-retrait_chu']")[0].text_content()


@pytest.mark.mockbench_scenario("hidden-documents")
def test_the_world_summary_is_bounded(mockbench):
    from mockbench.world.summary import SummaryLimits, world_summary

    world = mockbench.bench.world
    with world.transaction() as tx:
        whole = world_summary(world, tx)
        small = world_summary(world, tx, SummaryLimits(patients=1, documents=1, mailboxes=0))
    assert [p["id"] for p in whole["patients"]] == ["alice", "leo"]
    assert whole["patients"][0]["documents_total"] == len(whole["patients"][0]["documents"]) == 3
    assert [p["id"] for p in small["patients"]] == ["alice"] and small["patients_total"] == 2
    assert len(small["patients"][0]["documents"]) == 1 and small["patients"][0]["documents_total"] == 3
    # What the engine recorded at load is the same summary, taken then.
    with world.transaction() as tx:
        before = mockbench.bench.scenarios.before(tx)
    assert {k: v for k, v in before.items() if k != "time"} == {k: v for k, v in whole.items() if k != "time"}
    report = build_report(world, mockbench.bench.scenarios)
    report["world"]["after"] = small
    tree = lxml_html.document_fromstring(render_html(report))
    caps = [p.text_content() for p in tree.xpath("//p[@class='cap']")]
    assert "1 autres patients non listés." in caps and "2 autres documents non listés." in caps
    response = requests.get(f"{mockbench.url}/_bench/report", params={"format": "html"}, timeout=30)
    assert response.headers["Content-Type"].startswith("text/html")
    assert "script-src" not in response.headers["Content-Security-Policy"]
    assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert response.headers["Content-Disposition"].startswith('inline; filename="mockbench-report-hidden-documents-')
