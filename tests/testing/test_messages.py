"""mockbench.testing.messages, as a vendor's tests use them: each builder's message sent by a real client
(a socket speaking MLLP read back by python-hl7, smtplib, requests) to a running bench, which accepts it;
and the journal keeps the bench's answer beside each request (issue 18 points 8 and 12).

Shapes: trans-cda-r2/profils-messages.md (MDM, ORU, ACK), regles-gestion-mssante.md (MetaDMPMSS),
PAM.fr ZFA, Référentiel socle MSSanté #2 ECO.2.4.1-2.4.3 (X-MSS-*), trans-cda-r2/mapping.md (VIHF)."""

from __future__ import annotations

import smtplib

import hl7
import pytest
import requests
from lxml import etree

from mockbench.testing import messages as m

JEANNE = "jeanne.martin@chu.mssante.fr"
PAUL = "paul.petit@clinique.mssante.fr"
WORLD = f"""\
id: builders
title: Essai des constructeurs de messages
seed: 3
world:
  structures: [{{id: chu, name: CHU de Test}}, {{id: clinique, name: Clinique}}]
  professionals:
    - {{id: dr_a, family_name: MARTIN, given_name: Jeanne, structure: chu, mssante: {JEANNE}}}
    - {{id: dr_b, family_name: PETIT, given_name: Paul, structure: clinique, mssante: {PAUL}}}
  patients:
    - {{id: alice, sex: F, family_name: DURAND, given_name: Alice, birth_date: "1980-05-04",
       authorizations: [{{structure: chu}}]}}
  mailboxes:
    - {{address: pfi@chu.mssante.fr, type: APP, owner: chu, role: hospital}}
"""


@pytest.fixture
def world(mockbench):
    mockbench.client.load_yaml(WORLD)
    pros = {p["id"]: p for p in mockbench.client.call("GET", "/professionals")}
    structures = {s["id"]: s for s in mockbench.client.call("GET", "/structures")}
    return {"bench": mockbench, "patient": mockbench.client.patient("alice"), "dr_a": pros["dr_a"],
            "chu": structures["chu"]}


def ack_of(raw: bytes) -> hl7.Message:
    return hl7.parse(raw.decode("utf-8").replace("\n", "\r").strip("\r"))


def last(bench, **query) -> dict:
    return bench.client.journal(**query)[-1]


def test_mdm_t02_t10_t04_are_accepted_and_each_ack_is_journaled_with_its_message(world):
    bench, patient, dr_a = world["bench"], world["patient"], world["dr_a"]
    mllp = ("127.0.0.1", bench.ports["mllp"])
    for event, uid, parent, cid in (("T02", "1.2.250.1.999.81.1", "", "M1"),
                                    ("T10", "1.2.250.1.999.81.2", "1.2.250.1.999.81.1", "M2"),
                                    ("T04", "1.2.250.1.999.81.2", "", "M3")):
        raw_ack = m.send_mllp(mllp, m.mdm(event, patient, dr_a, uid, finess=world["chu"]["finess"],
                                          parent_id=parent, control_id=cid))
        ack = ack_of(raw_ack)
        assert (str(ack.segment("MSA")[1]), str(ack.segment("MSA")[2])) == ("AA", cid), raw_ack
        entry = [e for e in bench.client.journal(channel="pfi") if e["ref"] == cid][-1]
        assert entry["operation"] == f"MDM^{event}" and entry["verdict"] == "accepted"
        # point 12: the ACK the DPI received is the one the journal keeps, beside the request
        assert entry["response"].encode() == raw_ack and not entry["response_truncated"]
        assert entry["response_size"] == len(raw_ack)
    docs = {d["unique_id"]: d["status"] for d in bench.client.documents("alice")}
    assert docs == {"1.2.250.1.999.81.1": "deprecated", "1.2.250.1.999.81.2": "deleted"}


def test_an_oru_with_two_documents_feeds_both(world):
    bench, patient, dr_a = world["bench"], world["patient"], world["dr_a"]
    docs = [m.cda(patient, dr_a, uid, type_code="11502-2", title="CR de biologie")
            for uid in ("1.2.250.1.999.82.1", "1.2.250.1.999.82.2")]
    raw_ack = m.send_mllp(("127.0.0.1", bench.ports["mllp"]),
                          m.oru(patient, dr_a, docs, finess=world["chu"]["finess"], control_id="O1"))
    assert str(ack_of(raw_ack).segment("MSA")[1]) == "AA", raw_ack
    fed = [e["document"] for e in bench.client.journal(channel="dmp", operation="TD2.1") if e["verdict"] == "accepted"]
    assert fed == ["1.2.250.1.999.82.1", "1.2.250.1.999.82.2"]


def test_an_adt_records_the_consent_its_zfa_carries(world):
    bench, patient = world["bench"], world["patient"]
    raw_ack = m.send_mllp(("127.0.0.1", bench.ports["mllp"]),
                          m.adt_consent(patient, feeding="IO", consultation="IC", control_id="A1"))
    assert str(ack_of(raw_ack).segment("MSA")[1]) == "AA", raw_ack
    entry = last(bench, channel="pfi")
    assert entry["operation"] == "ADT^A01" and entry["response"].encode() == raw_ack
    assert not [f for f in entry["findings"] if f["rule"] == "PAM.fr/ZFA"], entry["findings"]
    # feeding against the opposition the ADT recorded is a finding (the bench read the ZFA-9 the builder wrote)
    m.send_mllp(("127.0.0.1", bench.ports["mllp"]), m.mdm("T02", patient, world["dr_a"], "1.2.250.1.999.83.1",
                                                          finess=world["chu"]["finess"], control_id="A2"))
    feed = last(bench, channel="dmp", operation="TD2.1")
    assert "DMP/CONSENT" in [f["rule"] for f in feed["findings"]], feed["findings"]


def test_the_xdm_mail_is_accepted_with_no_error_finding_and_the_smtp_reply_is_journaled(world):
    bench, patient, dr_a = world["bench"], world["patient"], world["dr_a"]
    package = m.xdm_package(patient, dr_a, "1.2.250.1.999.84.1")
    raw = m.xdm_mail(patient, package, sender=JEANNE, to=[PAUL], label="CR de consultation")
    with smtplib.SMTP("127.0.0.1", bench.ports["smtp"], timeout=10) as smtp:
        smtp.login(JEANNE, "mockbench")
        smtp.sendmail(JEANNE, [PAUL], raw)
        code, reply = smtp.noop()   # the DATA reply itself is what smtplib swallowed; the journal has it
    assert code == 250
    submit = last(bench, channel="mss", operation="SUBMIT")
    assert submit["verdict"] == "accepted" and submit["document"] == "1.2.250.1.999.84.1"
    errors = [f for f in submit["findings"] if f["severity"] == "error" or f["rule"].startswith("REF2/")]
    assert not errors, errors
    assert submit["response"].startswith("250 ") and "Message accepted" in submit["response"]
    auth = last(bench, channel="mss", operation="SMTP_AUTH")
    assert auth["response"].startswith("235 ")


def test_a_refused_smtp_password_journals_the_reply_the_client_got(world):
    bench = world["bench"]
    with smtplib.SMTP("127.0.0.1", bench.ports["smtp"], timeout=10) as smtp:
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            smtp.login(JEANNE, "wrong")
    entry = last(bench, channel="mss", operation="SMTP_AUTH")
    assert entry["verdict"] == "refused"
    assert entry["response"].startswith(f"{refused.value.smtp_code} ")
    assert refused.value.smtp_error.decode() in entry["response"]


def test_a_soap_envelope_with_a_vihf_signed_by_the_bench_feeds_then_finds(world):
    bench, patient, dr_a = world["bench"], world["patient"], world["dr_a"]
    security = m.vihf(dr_a, world["chu"]["idnst"], patient, signer=bench.bench)
    uid = "1.2.250.1.999.85.1"
    body, _ = m.provide_and_register(patient, dr_a, uid, m.cda(patient, dr_a, uid))
    headers = {"Content-Type": "application/soap+xml; charset=utf-8"}
    fed = requests.post(bench.url + m.DMP_SERVICES + "/repository", headers=headers, timeout=10,
                        data=m.soap_envelope(body, security, m.ACTIONS["TD2.1"]))
    assert fed.status_code == 200 and b"ResponseStatusType:Success" in fed.content, fed.text
    found = requests.post(bench.url + m.DMP_SERVICES + "/registry", headers=headers, timeout=10,
                          data=m.soap_envelope(m.find_documents(patient), security, m.ACTIONS["TD3.1"]))
    assert found.status_code == 200 and uid.encode() in found.content
    entry = last(bench, channel="dmp")
    assert entry["operation"] == "TD3.1" and entry["response"].encode() == found.content
    etree.fromstring(entry["response"].encode())   # the kept answer is the whole envelope


def test_an_unsigned_vihf_is_refused_and_the_fault_is_journaled(world):
    bench, patient, dr_a = world["bench"], world["patient"], world["dr_a"]
    refused = requests.post(bench.url + m.DMP_SERVICES + "/registry", timeout=10,
                            headers={"Content-Type": "application/soap+xml"},
                            data=m.soap_envelope(m.find_documents(patient),
                                                 m.vihf(dr_a, world["chu"]["idnst"], patient, signer=None),
                                                 m.ACTIONS["TD3.1"]))
    assert refused.status_code >= 400 and b"DMPInvalidCertificate" in refused.content
    entry = last(bench, channel="dmp")
    assert entry["verdict"] == "refused" and entry["response"].encode() == refused.content


def test_an_answer_longer_than_journal_raw_bytes_is_cut_and_says_so(mockbench_factory):
    bench = mockbench_factory(journal_raw_bytes=300)
    answer = requests.get(bench.url + "/fhir/v2/metadata", headers={"ESANTE-API-KEY": "mockbench"}, timeout=10)
    assert answer.status_code == 200 and len(answer.content) > 300
    entry = bench.client.journal(channel="annuaire")[-1]
    assert entry["response_truncated"] is True and entry["response_size"] == len(answer.content)
    assert entry["response"].encode() == answer.content[:300]


def test_annuaire_and_oidc_answers_are_journaled(mockbench):
    refused = requests.get(mockbench.url + "/fhir/v2/Practitioner", timeout=10)
    assert refused.status_code == 401
    entry = mockbench.client.journal(channel="annuaire")[-1]
    assert entry["code"] == "UNAUTHORIZED" and entry["response"].encode() == refused.content
    token = requests.post(mockbench.url + "/oidc/etab/token", timeout=10,
                          data={"grant_type": "authorization_code", "code": "nope", "client_id": "mockbench",
                                "client_secret": "wrong", "redirect_uri": "http://localhost/cb"})
    assert token.status_code in (400, 401)
    entry = mockbench.client.journal(channel="oidc")[-1]
    assert entry["response"].startswith(f"HTTP {token.status_code}\n")
    assert token.json()["error"] in entry["response"]


def test_entries_without_an_answer_of_their_own_have_no_response(mockbench):
    mockbench.client.load("hidden-documents")
    control = mockbench.client.journal(channel="control")[-1]
    assert "response" not in control


def test_the_evidence_report_shows_the_answer_beside_the_request(world):
    bench, patient, dr_a = world["bench"], world["patient"], world["dr_a"]
    refused = requests.post(bench.url + m.DMP_SERVICES + "/registry", timeout=10,
                            headers={"Content-Type": "application/soap+xml"},
                            data=m.soap_envelope(m.find_documents(patient),
                                                 m.vihf(dr_a, world["chu"]["idnst"], patient, signer=None),
                                                 m.ACTIONS["TD3.1"]))
    seq = last(bench, channel="dmp")["seq"]
    report = bench.client.report("json")
    entry = next(e for e in report["entries"] if e["seq"] == seq)   # detailed: it carries an error finding
    assert entry["response"].encode() == refused.content
    assert entry["response_pretty"]["kind"] == "xml" and "DMPInvalidCertificate" in entry["response_pretty"]["text"]
    html = requests.get(bench.url + "/_bench/report?format=html", timeout=30).text
    article = html[html.index(f'id="entry-{seq}"'):]
    article = article[:article.index("</article>")]
    assert "Réponse du banc" in article and "DMPInvalidCertificate" in article


def test_the_readme_example_runs_as_written(mockbench):
    """The README's "Building the messages a test sends" example, run as a vendor would paste it."""
    from pathlib import Path

    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Building the messages a test sends"):]
    start = section.index("```python\n") + len("```python\n")
    code = section[start:section.index("\n```\n", start)]
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)   # noqa: S102 - the project's own README
    namespace["test_a_report_reaches_the_dmp_the_mailbox_and_the_pfi"](mockbench)
    ops = [(e["channel"], e["operation"], e["verdict"]) for e in mockbench.client.journal()
           if e["channel"] in ("pfi", "mss", "dmp") and e["direction"] == "in"]
    assert ("pfi", "MDM^T02", "accepted") in ops and ("mss", "SUBMIT", "accepted") in ops
    assert ops.count(("dmp", "TD2.1", "accepted")) == 2   # through the PFI, then through SOAP
