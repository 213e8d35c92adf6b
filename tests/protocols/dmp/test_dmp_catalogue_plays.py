"""The catalogue's DMP scenarios played end to end by a scripted DPI over real sockets (SOAP 1.2 to the DMP
door): once correctly, every step passing after POST /_bench/steps/finish, and once with a deliberate
mistake, the expected step failing with a reason that names it."""

import json
import uuid
from datetime import UTC, datetime

import pytest
import requests
from kit.dmp import (
    cda,
    existence_test,
    find_documents,
    provide_and_register,
    retrieve,
    update_metadata,
    update_status,
    vihf,
)
from lxml import etree

from mockbench.world.identity import nir_key

RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
UNIQUE_ID = "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab"
CONFIDENTIALITY = "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f"
APPROVED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
DEPRECATED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Deprecated"
DELETED = "urn:asip:ci-sis:2010:StatusType:Deleted"
ARCHIVED = "urn:asip:ci-sis:2010:StatusType:Archived"
HABILITATIONS = "urn:si-dmp-habilitations"
ACTIONS = {
    "habilitations": "urn:si-dmp-habilitations:HabilitationsEndPoint:setAuthorization",
    "patients": "urn:hl7-org:v3:PRPA_IN201307UV02",
    "find": "urn:ihe:iti:2007:RegistryStoredQuery",
    "feed": "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b",
    "read": "urn:ihe:iti:2007:RetrieveDocumentSet",
    "update": "urn:ihe:iti:2010:UpdateDocumentSet",
}


class Dpi:
    """A scripted DPI: each call is one SOAP request to the DMP door, in the name of the professional it is
    told to act for (its VIHF), as a hospital software would send it."""

    def __init__(self, bench) -> None:
        self.bench, self.c = bench, bench.client
        self.pros = {p["id"]: p for p in self.c.call("GET", "/professionals")}
        self.structures = {s["id"]: s for s in self.c.call("GET", "/structures")}

    def security(self, pro: str, patient: str, *, mode: str = "normal", secret: bool = False,
                 authentication: str = "INDIRECTE_RENFORCEE") -> etree._Element:
        p = self.pros[pro]
        return vihf(p, self.structures[p["structure"]]["idnst"], self.c.patient(patient), mode=mode, secret=secret,
                    authentication=authentication, signer=self.bench)

    def post(self, service: str, action: str, body: etree._Element, security: etree._Element) -> requests.Response:
        envelope = f"""<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope"
 xmlns:wsa="http://www.w3.org/2005/08/addressing"><soap:Header><wsa:Action>{ACTIONS[action]}</wsa:Action>
<wsa:MessageID>urn:uuid:{uuid.uuid4()}</wsa:MessageID>
{etree.tostring(security).decode()}</soap:Header><soap:Body>{etree.tostring(body).decode()}</soap:Body></soap:Envelope>"""
        return requests.post(f"{self.bench.url}/si-dmp-server/v2/services/{service}", data=envelope.encode(),
                             headers={"Content-Type": "application/soap+xml"}, timeout=10)

    def doc(self, patient: str, key: str) -> dict:
        return next(d for d in self.c.documents(patient) if key in (d["id"], d["unique_id"]))

    # The TDs ------------------------------------------------------------------------------------
    def existence(self, pro: str, patient: str, **kw) -> requests.Response:
        return self.post("patients", "patients", existence_test(self.c.patient(patient)),
                         self.security(pro, patient, **kw))

    def search(self, pro: str, patient: str, statuses=(APPROVED,), *, query_patient: str | None = None,
               **kw) -> tuple[requests.Response, dict[str, etree._Element]]:
        """TD3.1; the entries found, by the scenario's name of their document."""
        body = find_documents(self.c.patient(query_patient or patient), statuses=statuses)
        response = self.post("registry", "find", body, self.security(pro, patient, **kw))
        names = {d["unique_id"]: d["id"] for d in self.c.documents(patient, history=True)}
        found = {}
        for entry in etree.fromstring(response.content).iter(f"{{{RIM}}}ExtrinsicObject"):
            uid = next(e.get("value") for e in entry.iter(f"{{{RIM}}}ExternalIdentifier")
                       if e.get("identificationScheme") == UNIQUE_ID)
            found[names.get(uid, uid)] = entry
        return response, found

    def feed(self, pro: str, patient: str, unique_id: str, *, content: bytes | None = None, replaces: str = "",
             confidentiality=("N",), text: str = "Examen normal.", **kw) -> tuple[requests.Response, bytes]:
        """TD2.1; `replaces` names a document whose current entry the new one replaces (RPLC)."""
        p, who = self.c.patient(patient), self.pros[pro]
        content = content if content is not None else cda(p, who, unique_id, text=text)
        entry = self.doc(patient, replaces)["entry_uuid"] if replaces else ""
        body, _ = provide_and_register(p, who, unique_id, content, replaces_entry=entry,
                                       confidentiality=tuple(confidentiality))
        return self.post("repository", "feed", body, self.security(pro, patient, **kw)), content

    def read(self, pro: str, patient: str, key: str, **kw) -> requests.Response:
        return self.post("repository", "read", retrieve(self.doc(patient, key)["unique_id"]),
                         self.security(pro, patient, **kw))

    def delete(self, pro: str, patient: str, key: str, **kw) -> requests.Response:
        body = update_status(self.c.patient(patient), self.doc(patient, key)["entry_uuid"], APPROVED, DELETED)
        return self.post("registry", "update", body, self.security(pro, patient, **kw))

    def set_authorization(self, pro: str, patient: str, action: str, **kw) -> requests.Response:
        """TD0.3: the professional declares (AJOUT) or removes (SUPPRESSION) their own authorization; the
        patient is only in the VIHF's resource-id (DOMAIN.md section 1, corpus dmp-wire/TD0.3_request.xml)."""
        body = etree.fromstring(f'<setAuthorization xmlns="{HABILITATIONS}"><action>{action}</action></setAuthorization>')
        return self.post("habilitations", "habilitations", body, self.security(pro, patient, **kw))

    def set_status(self, pro: str, patient: str, key: str, original: str, new: str, **kw) -> requests.Response:
        """TD3.3c / TD3.3d: an UpdateAvailabilityStatus of the document's current entry."""
        body = update_status(self.c.patient(patient), self.doc(patient, key)["entry_uuid"], original, new)
        return self.post("registry", "update", body, self.security(pro, patient, **kw))

    def set_confidentiality(self, pro: str, patient: str, key: str, codes: tuple[str, ...], **kw) -> requests.Response:
        """TD3.3a / TD3.3b: the entry as the last search returned it, its confidentiality codes replaced."""
        doc = self.doc(patient, key)
        _, found = self.search(pro, patient, **kw)
        body = update_metadata(self.c.patient(patient), found[doc["id"]], str(doc["version"]), codes)
        return self.post("registry", "update", body, self.security(pro, patient, **kw))

    # The run ------------------------------------------------------------------------------------
    def finished(self) -> dict[str, dict]:
        self.c.finish()
        return {s["id"]: s for s in self.c.steps()}


def codes_of(entry: etree._Element) -> set[str]:
    return {c.get("nodeRepresentation") for c in entry.iter(f"{{{RIM}}}Classification")
            if c.get("classificationScheme") == CONFIDENTIALITY}


def load(mockbench, scenario: str) -> Dpi:
    mockbench.client.load(scenario)
    return Dpi(mockbench)


def all_passed(steps: dict[str, dict]) -> None:
    assert {k: (s["status"], s["reason"]) for k, s in steps.items()} == {k: ("passed", None) for k in steps}


# Existing scenarios: their correct plays are in test_dmp_scenarios.py -------------------------------
@pytest.mark.scenario_play("hidden-documents", "mistake")
def test_hidden_documents_searched_in_bris_de_glace_without_a_card(mockbench):
    dpi = load(mockbench, "hidden-documents")
    dpi.search("dr_petit", "alice")
    response, _ = dpi.search("dr_petit", "leo", mode="bris_de_glace")    # indirect authentication: refused
    assert b"DMPAccessModeRefused" in response.content
    steps = dpi.finished()
    assert steps["recherche_alice"]["status"] == "passed"
    assert steps["recherche_leo"]["status"] == "failed"
    assert steps["recherche_leo"]["reason"] == ("the entry's verdict is refused (ACCESS_MODE_REFUSED), accepted "
                                                "was expected")


@pytest.mark.scenario_play("dmp-authorization-withdrawn", "mistake")
def test_dmp_authorization_withdrawn_bypassed_with_the_centre_15_mode(mockbench):
    dpi = load(mockbench, "dmp-authorization-withdrawn")
    assert b"VALIDE" in dpi.existence("dr_martin", "bernard").content
    mockbench.client.fire("retrait_chu")
    response, found = dpi.search("dr_martin", "bernard", mode="centre_15")   # goes round the withdrawal
    assert response.ok and list(found) == ["cr_bernard"]
    steps = dpi.finished()
    assert steps["acces_valide"]["status"] == "passed"
    assert steps["acces_refuse"]["status"] == "failed"
    assert steps["acces_refuse"]["reason"] == "the entry's verdict is accepted, refused was expected"


@pytest.mark.scenario_play("deleted-versions", "mistake")
def test_deleted_versions_searched_with_another_patients_id(mockbench):
    dpi = load(mockbench, "deleted-versions")
    camille = dpi.c.patient("camille")              # the query names another INS than the VIHF's
    body13 = camille["ins"][:12] + str((int(camille["ins"][12]) + 1) % 10)
    body = find_documents(dict(camille, ins=body13 + f"{nir_key(body13):02d}"))
    response = dpi.post("registry", "find", body, dpi.security("dr_martin", "camille"))
    assert b"XDSPatientIdDoesNotMatch" in response.content
    steps = dpi.finished()
    assert steps["recherche"]["status"] == "failed"
    assert steps["recherche"]["reason"] == ("the entry's verdict is refused (XDSPatientIdDoesNotMatch), "
                                            "accepted was expected")


@pytest.mark.scenario_play("dmp-cda-dd-05", "mistake")
def test_dmp_cda_dd_05_reads_the_deleted_document_again(mockbench):
    dpi = load(mockbench, "dmp-cda-dd-05")
    dpi.search("dr_martin", "alice")
    dpi.search("dr_martin", "alice")
    response = dpi.read("dr_martin", "alice", "cr_radio")     # deleted by the third party: still read from cache
    assert b"DMPDocumentDeleted" in response.content
    steps = dpi.finished()
    assert steps["lecture_nouvelle_version"]["status"] == "failed"
    assert steps["lecture_nouvelle_version"]["reason"] == ("the entry's verdict is refused (DMPDocumentDeleted), "
                                                           "accepted was expected")


# DMP/UX.15 -------------------------------------------------------------------------------------------
@pytest.mark.scenario_play("dmp-ux-15", "correct")
def test_dmp_ux_15_played(mockbench):
    dpi = load(mockbench, "dmp-ux-15")
    _, first = dpi.search("dr_martin", "alice")
    assert sorted(first) == ["cr_bio", "cr_consult", "cr_invisible", "cr_radio"]
    assert "INVISIBLE_PATIENT" in codes_of(first["cr_invisible"])        # shown as invisible to the patient
    _, second = dpi.search("dr_martin", "alice", statuses=(APPROVED, DEPRECATED))
    # what changed since the last consultation: one new document, one new version, one gone (deleted)
    assert set(second) - set(first) == {"ll_nouvelle", "cr_bio_v2"}
    assert set(first) - set(second) == {"cr_radio"}
    assert "INVISIBLE_PATIENT" in codes_of(second["ll_nouvelle"])
    status = {name: e.get("status") for name, e in second.items()}
    assert status["cr_bio"] == DEPRECATED and status["cr_bio_v2"] == APPROVED
    assert dpi.read("dr_martin", "alice", "ll_nouvelle").ok
    all_passed(dpi.finished())


@pytest.mark.scenario_play("dmp-ux-15", "mistake")
def test_dmp_ux_15_opens_the_deleted_document_from_its_cache(mockbench):
    dpi = load(mockbench, "dmp-ux-15")
    dpi.search("dr_martin", "alice")
    dpi.search("dr_martin", "alice")
    radio = dpi.doc("alice", "cr_radio")["unique_id"]
    assert b"DMPDocumentDeleted" in dpi.read("dr_martin", "alice", "cr_radio").content
    steps = dpi.finished()
    assert steps["ouverture"]["status"] == steps["ouverture_suivante"]["status"] == "passed"
    reason = steps["lecture_nouveaute"]["reason"]
    assert steps["lecture_nouveaute"]["status"] == "failed"
    assert reason.startswith(f"not observed: expected TD3.2 for alice on ll_nouvelle; nearest: TD3.2 for alice on "
                             f"{radio} refused (DMPDocumentDeleted) at ")


# TD3.3c ----------------------------------------------------------------------------------------------
@pytest.mark.scenario_play("dmp-td3-3c", "correct")
def test_dmp_td3_3c_played(mockbench):
    dpi = load(mockbench, "dmp-td3-3c")
    _, first = dpi.search("dr_martin", "alice")
    assert sorted(first) == ["cr_bio_tiers", "cr_chu", "cr_radio_tiers"]
    assert dpi.delete("dr_martin", "alice", "cr_chu").ok
    _, second = dpi.search("dr_martin", "alice")
    assert second == {}                    # the DPI shows the three as no longer accessible, not as absent
    docs = {d["id"]: d for d in dpi.c.documents("alice")}
    assert docs["cr_bio_tiers"]["confidentiality"] == ["N", "MASQUE_PS"]
    assert docs["cr_radio_tiers"]["status"] == docs["cr_chu"]["status"] == "deleted"
    refused, _ = dpi.search("dr_martin", "alice")
    assert b"DMPAuthorizationWithdrawn" in refused.content
    all_passed(dpi.finished())


@pytest.mark.scenario_play("dmp-td3-3c", "mistake")
def test_dmp_td3_3c_deletes_a_third_partys_document(mockbench):
    dpi = load(mockbench, "dmp-td3-3c")
    dpi.search("dr_martin", "alice")
    assert b"DMPNotAuthor" in dpi.delete("dr_martin", "alice", "cr_bio_tiers").content
    steps = dpi.finished()
    assert steps["suppression"]["status"] == "failed"
    assert steps["suppression"]["reason"] == "the entry's verdict is refused (NOT_AUTHOR), accepted was expected"
    assert dpi.doc("alice", "cr_bio_tiers")["status"] == "approved"


# A minor's secret connection -------------------------------------------------------------------------
def _secret_episode(dpi: Dpi, *, invisible: bool = True, keep_code: bool = False) -> None:
    answer = dpi.existence("dr_martin", "leo")
    leo = dpi.c.patient("leo")
    assert leo["birth_date"].replace("-", "").encode() in answer.content and leo["minor"]   # the DPI sees a minor
    _, found = dpi.search("dr_martin", "leo", secret=True)
    assert "INVISIBLE_REPRESENTANTS_LEGAUX" in codes_of(found["cr_leo_secret"])   # the EX_3.2-1025 warning
    codes = ("INVISIBLE_REPRESENTANTS_LEGAUX",) if invisible else ("N",)
    assert dpi.feed("dr_martin", "leo", "1.2.250.1.999.11.1", confidentiality=codes, secret=True)[0].ok
    dpi.search("dr_martin", "leo", secret=keep_code)           # the next episode


@pytest.mark.scenario_play("dmp-minor-secret-connection", "correct")
def test_dmp_minor_secret_connection_played(mockbench):
    dpi = load(mockbench, "dmp-minor-secret-connection")
    _secret_episode(dpi)
    all_passed(dpi.finished())
    assert dpi.c.patient("leo")["secret_connection"] is False
    fed = dpi.doc("leo", "1.2.250.1.999.11.1")
    assert fed["confidentiality"] == ["INVISIBLE_REPRESENTANTS_LEGAUX"]
    findings = [f["message"] for e in dpi.c.journal(channel="dmp") for f in e["findings"]
                if f["rule"] == "DMP/EX_0.1-1100"]
    assert any("opens a secret connection" in m for m in findings)
    assert any("secret connection is over" in m for m in findings)


@pytest.mark.scenario_play("dmp-minor-secret-connection", "mistake")
def test_dmp_minor_secret_connection_feeds_a_document_visible_to_the_parents(mockbench):
    dpi = load(mockbench, "dmp-minor-secret-connection")
    _secret_episode(dpi, invisible=False)
    steps = dpi.finished()
    assert steps["alimentation_secrete"]["status"] == "failed"
    reason = steps["alimentation_secrete"]["reason"]
    assert reason.startswith("finding DMP/EX_2.1-1050: document 1.2.250.1.999.11.1 is fed in leo's secret "
                             "connection without INVISIBLE_REPRESENTANTS_LEGAUX")
    assert reason.endswith("; document 1.2.250.1.999.11.1 lacks INVISIBLE_REPRESENTANTS_LEGAUX")
    assert steps["fin_episode"]["status"] == "passed"


@pytest.mark.scenario_play("dmp-minor-secret-connection", "mistake")
def test_dmp_minor_secret_connection_kept_after_the_episode(mockbench):
    dpi = load(mockbench, "dmp-minor-secret-connection")
    _secret_episode(dpi, keep_code=True)
    steps = dpi.finished()
    assert steps["alimentation_secrete"]["status"] == "passed"
    assert steps["fin_episode"]["status"] == "failed"
    assert steps["fin_episode"]["reason"] == "leo's secret connection is on"


# Versioning ------------------------------------------------------------------------------------------
@pytest.mark.scenario_play("dmp-versioning", "correct")
def test_dmp_versioning_played(mockbench):
    dpi = load(mockbench, "dmp-versioning")
    v1, v2 = "1.2.250.1.999.12.1", "1.2.250.1.999.12.2"
    assert dpi.feed("dr_martin", "bernard", v1)[0].ok
    assert dpi.set_confidentiality("dr_martin", "bernard", v1, ("N", "MASQUE_PS")).ok          # TD3.3a
    assert dpi.feed("dr_martin", "bernard", v2, replaces=v1, text="Examen normal, corrigé.")[0].ok
    all_passed(dpi.finished())
    assert [f for e in dpi.c.journal(channel="dmp") for f in e["findings"] if f["rule"] == "DMP/VERSIONING"] == []
    history = [(d["unique_id"], d["version"], d["status"]) for d in dpi.c.documents("bernard", history=True)]
    assert history == [(v1, 1, "deprecated"), (v1, 2, "deprecated"), (v2, 1, "approved")]


@pytest.mark.scenario_play("dmp-versioning", "mistake")
def test_dmp_versioning_a_new_version_only_to_mask(mockbench):
    dpi = load(mockbench, "dmp-versioning")
    v1, v2 = "1.2.250.1.999.13.1", "1.2.250.1.999.13.2"
    _, content = dpi.feed("dr_martin", "bernard", v1)
    response, _ = dpi.feed("dr_martin", "bernard", v2, replaces=v1, content=content, confidentiality=("MASQUE_PS",))
    assert response.ok                              # the DMP takes it; mockbench reports it
    steps = dpi.finished()
    assert steps["masquage"]["status"] == "failed"
    reason = steps["masquage"]["reason"]
    assert reason.startswith(f"finding DMP/VERSIONING: document {v2} replaces {v1} with the same content")
    assert "TD3.3a" in reason and reason.endswith("send a new version only when the content changes")


# DMP/CONF.14 -----------------------------------------------------------------------------------------
class TracingDpi:
    """The scripted DPI's own access traces (DMP/CONF.14), kept as it acts: who, on whom, on what, when,
    which action; `extract` renders them as the CSV or JSON a user exports."""

    def __init__(self, dpi: Dpi) -> None:
        self.dpi, self.rows = dpi, []

    def note(self, pro: str, patient: str, action: str, document: str = "") -> None:
        self.rows.append({"time": datetime.now(UTC).isoformat(timespec="seconds"),
                          "user": self.dpi.pros[pro]["idnps"], "patient": self.dpi.c.patient(patient)["ins"],
                          "document": document, "action": action})

    def extract_csv(self) -> bytes:
        labels = {"remise_en_visibilite": "Remise en visibilité", "telechargement": "Téléchargement"}
        lines = ["Date;Utilisateur;Patient;Document;Action"] + [
            f"{r['time']};{r['user']};{r['patient']};{r['document']};{labels.get(r['action'], r['action'])}"
            for r in self.rows]
        return ("\r\n".join(lines) + "\r\n").encode("utf-8")

    def upload(self, body: bytes, content_type: str = "text/csv") -> dict:
        answer = requests.post(f"{self.dpi.bench.url}/_bench/traces/check", data=body, timeout=10,
                               headers={"Content-Type": content_type})
        assert answer.status_code == 200, answer.text
        return answer.json()


def _traced_actions(dpi: Dpi, *, reader: str, sign_as: str | None = None) -> tuple[str, TracingDpi]:
    """The actions of dmp-conf-14, each traced by the DPI for the user who makes it (`reader`); `sign_as`
    the identity the VIHF carries for the reader's actions (a mistake when it is not the reader)."""
    uid, log = "1.2.250.1.999.14.1", TracingDpi(dpi)
    signer = sign_as or reader
    assert dpi.feed("dr_martin", "claire", uid, confidentiality=("INVISIBLE_PATIENT",))[0].ok
    log.note("dr_martin", "claire", "alimentation", uid)
    log.note("dr_martin", "claire", "invisibilisation", uid)
    dpi.search(signer, "claire")
    log.note(reader, "claire", "consultation")
    assert dpi.read(signer, "claire", uid).ok
    log.note(reader, "claire", "telechargement", uid)
    assert dpi.set_confidentiality("dr_martin", "claire", uid, ("N",)).ok                       # TD3.3b
    log.note("dr_martin", "claire", "consultation")          # the search that finds the entry to update
    log.note("dr_martin", "claire", "remise_en_visibilite", uid)
    assert dpi.set_confidentiality("dr_martin", "claire", uid, ("N", "MASQUE_PS")).ok           # TD3.3a
    log.note("dr_martin", "claire", "consultation")
    log.note("dr_martin", "claire", "masquage", uid)
    assert dpi.delete("dr_martin", "claire", uid).ok
    log.note("dr_martin", "claire", "suppression", uid)
    return uid, log


@pytest.mark.scenario_play("dmp-conf-14", "correct")
def test_dmp_conf_14_played(mockbench):
    dpi = load(mockbench, "dmp-conf-14")
    uid, log = _traced_actions(dpi, reader="dr_petit")
    result = log.upload(log.extract_csv())
    assert (result["verdict"], result["matched"], result["traces"], result["findings"]) == ("accepted", 9, 9, [])
    all_passed(dpi.finished())
    traces = [(t["actor"], t["action"]) for t in dpi.c.traces("claire") if t["document"] == uid]
    assert traces == [("dr_martin", "alimentation"), ("dr_martin", "invisibilisation"),
                      ("dr_petit", "telechargement"), ("dr_martin", "remise_en_visibilite"),
                      ("dr_martin", "masquage"), ("dr_martin", "suppression")]
    # the same extract as JSON, with the scenario's ids, passes too
    as_json = log.upload(json.dumps({"traces": log.rows}).encode(), "application/json")
    assert as_json["verdict"] == "accepted" and as_json["matched"] == 9


@pytest.mark.scenario_play("dmp-conf-14", "mistake")
def test_dmp_conf_14_reads_under_a_shared_identity(mockbench):
    dpi = load(mockbench, "dmp-conf-14")
    _, log = _traced_actions(dpi, reader="dr_petit", sign_as="dr_martin")   # every VIHF signed as dr_martin
    result = log.upload(log.extract_csv())
    assert result["verdict"] == "refused"
    # the DMP saw dr_martin read; the DPI's own traces say dr_petit did: both named
    assert sorted((m["user"], m["action"]) for m in result["missing"]) == [("dr_martin", "consultation"),
                                                                           ("dr_martin", "telechargement")]
    assert [(e["where"], e["user"], e["action"]) for e in result["extra"]] == [("line 4", "dr_petit", "consultation"),
                                                                               ("line 5", "dr_petit", "telechargement")]
    steps = dpi.finished()
    assert steps["alimentation"]["status"] == "passed"
    assert steps["consultation"]["status"] == steps["telechargement"]["status"] == "failed"
    assert steps["consultation"]["reason"].startswith(
        "no consultation trace by dr_petit in claire's DMP since step alimentation; traces recorded: consultation "
        "by dr_martin at ")
    assert steps["telechargement"]["reason"].startswith(
        "no telechargement trace of 1.2.250.1.999.14.1 by dr_petit in claire's DMP since step consultation; "
        "traces recorded: telechargement by dr_martin of 1.2.250.1.999.14.1 at ")
    assert [steps[s]["status"] for s in ("remise_en_visibilite", "masquage", "suppression")] == ["passed"] * 3
    assert steps["extraction"]["status"] == "failed"


@pytest.mark.scenario_play("dmp-conf-14", "mistake")
def test_dmp_conf_14_the_extract_forgets_the_visibility_changes(mockbench):
    """The seed's wording: the traces include invisibilisation and remise en visibilité; a DPI that traces only
    the feeds and reads is named, trace by trace."""
    dpi = load(mockbench, "dmp-conf-14")
    uid, log = _traced_actions(dpi, reader="dr_petit")
    log.rows = [r for r in log.rows if r["action"] not in ("invisibilisation", "remise_en_visibilite")]
    result = log.upload(log.extract_csv())
    assert result["verdict"] == "refused" and result["extra"] == []
    messages = [f["message"] for f in result["findings"]]
    assert len(messages) == 2
    assert messages[0].startswith(f"the extract lacks the invisibilisation of {uid} by dr_martin on claire's DMP at ")
    assert messages[1].startswith(f"the extract lacks the remise_en_visibilite of {uid} by dr_martin on claire's DMP")
    steps = dpi.finished()
    assert [s for s, v in steps.items() if v["status"] != "passed"] == ["extraction"]
    assert steps["extraction"]["reason"].startswith("the entry's verdict is refused (TRACE_MISMATCH), accepted was "
                                                    "expected; finding DMP/CONF.14: the extract lacks the "
                                                    "invisibilisation of ")


# Consent withdrawn hospital-side: the DPI removes its authorization (TD0.3 SUPPRESSION) -------------------
# specs/pdsm4dmp/transaction_td02.md: the LPS holds the consultation consent "en local (= hors SI DMP)";
# DOMAIN.md section 1: TD0.3 setAuthorization AJOUT | SUPPRESSION, the patient only in the VIHF.
@pytest.mark.scenario_play("consent-withdrawal", "correct")
def test_consent_withdrawal_played(mockbench):
    dpi = load(mockbench, "consent-withdrawal")
    response, found = dpi.search("dr_petit", "bernard")
    assert response.ok and list(found) == ["cr_bernard"]
    assert dpi.c.patient("bernard")["consent"]["consultation"] == "INC"      # withdrawn at the hospital
    # each user's next connection: the DPI removes that user's authorization instead of consulting
    log = TracingDpi(dpi)
    log.note("dr_petit", "bernard", "consultation")
    for pro in ("dr_martin", "dr_petit"):
        answer = dpi.set_authorization(pro, "bernard", "SUPPRESSION")
        assert answer.ok and b"DMPOk" in answer.content
        log.note(pro, "bernard", "retrait_autorisation")
    assert b'code="NON_EXISTE"' in dpi.existence("dr_martin", "bernard").content
    assert log.upload(log.extract_csv())["verdict"] == "accepted"     # the list of who accessed, kept
    all_passed(dpi.finished())
    # the list of who accessed stays readable (the DMP's own traces; the DPI keeps its own)
    assert [(t["actor"], t["action"]) for t in dpi.c.traces("bernard")
            if t["action"] in ("consultation", "retrait_autorisation")] == [
        ("dr_petit", "consultation"), ("dr_martin", "retrait_autorisation"), ("dr_petit", "retrait_autorisation")]


@pytest.mark.scenario_play("consent-withdrawal", "mistake")
def test_consent_withdrawal_ignored_the_dpi_keeps_consulting(mockbench):
    dpi = load(mockbench, "consent-withdrawal")
    dpi.search("dr_petit", "bernard")
    response, found = dpi.search("dr_martin", "bernard")      # the DMP answers: the consent is the DPI's to hold
    assert response.ok and list(found) == ["cr_bernard"]
    consent = [f["message"] for e in dpi.c.journal(channel="dmp") for f in e["findings"] if f["rule"] == "DMP/CONSENT"]
    assert consent == ["bernard did not consent to consultation (ZFA-11 INC); the DMP does not check it"]
    steps = dpi.finished()
    assert steps["consultation"]["status"] == "passed"
    assert steps["retrait_martin"]["status"] == steps["retrait_petit"]["status"] == "failed"
    assert steps["retrait_martin"]["reason"].startswith("not observed: expected TD0.3 for bernard with actor dr_martin; "
                                                      "nearest: TD3.1 for bernard at ")


@pytest.mark.scenario_play("consent-withdrawal", "mistake")
def test_consent_withdrawal_forgets_who_accessed(mockbench):
    dpi = load(mockbench, "consent-withdrawal")
    dpi.search("dr_petit", "bernard")
    log = TracingDpi(dpi)
    for pro in ("dr_martin", "dr_petit"):
        assert dpi.set_authorization(pro, "bernard", "SUPPRESSION").ok
        log.note(pro, "bernard", "retrait_autorisation")
    result = log.upload(log.extract_csv())                     # the consultation was dropped with the consent
    assert [(m["user"], m["action"]) for m in result["missing"]] == [("dr_petit", "consultation")]
    steps = dpi.finished()
    assert [k for k, v in steps.items() if v["status"] != "passed"] == ["liste_acces"]
    assert steps["liste_acces"]["reason"].startswith(
        "the entry's verdict is refused (TRACE_MISMATCH), accepted was expected; finding DMP/CONF.14: the extract "
        "lacks the consultation by dr_petit on bernard's DMP at ")


@pytest.mark.scenario_play("consent-withdrawal", "mistake")
def test_consent_withdrawal_declares_instead_of_removing(mockbench):
    dpi = load(mockbench, "consent-withdrawal")
    dpi.search("dr_petit", "bernard")
    assert dpi.set_authorization("dr_martin", "bernard", "AJOUT").ok        # the wrong action
    steps = dpi.finished()
    assert steps["retrait_martin"]["status"] == "failed"
    reason = steps["retrait_martin"]["reason"]
    assert "NON_EXISTE was expected" in reason and "retrait_autorisation" in reason, reason


# Emergency access: bris de glace and the centre 15 ---------------------------------------------------------
# DOMAIN.md section 1 (rights matrix PDT-INF-526): bris de glace needs DIRECTE authentication, masked documents
# only if the patient allowed it; specs/pdsm4dmp/transaction_td02.md: in centre 15 the authorization is not
# checked.
def _emergency(dpi: Dpi, *, authentication: str = "DIRECTE") -> None:
    assert b'code="NON_EXISTE"' in dpi.existence("dr_urgence", "paul").content
    response, found = dpi.search("dr_urgence", "paul", mode="bris_de_glace", authentication=authentication)
    if not response.ok or b"Failure" in response.content:
        return
    assert sorted(found) == ["cr_paul"]                       # cr_masque stays masked in bris de glace
    assert dpi.read("dr_urgence", "paul", "cr_paul", mode="bris_de_glace", authentication=authentication).ok
    refused, _ = dpi.search("dr_urgence", "jeanne", mode="bris_de_glace", authentication=authentication)
    assert b"DMPPatientOpposition" in refused.content
    response, found = dpi.search("dr_regulateur", "paul", mode="centre_15")
    assert response.ok and sorted(found) == ["cr_paul"]


@pytest.mark.scenario_play("dmp-emergency-access", "correct")
def test_dmp_emergency_access_played(mockbench):
    dpi = load(mockbench, "dmp-emergency-access")
    _emergency(dpi)
    all_passed(dpi.finished())
    traces = [(t["actor"], t["action"], t["mode"]) for t in dpi.c.traces("paul")
              if t["action"] in ("consultation", "telechargement")]
    assert traces == [("dr_urgence", "consultation", "bris_de_glace"), ("dr_urgence", "telechargement", "bris_de_glace"),
                      ("dr_regulateur", "consultation", "centre_15")]


@pytest.mark.scenario_play("dmp-emergency-access", "mistake")
def test_dmp_emergency_access_bris_de_glace_without_a_card(mockbench):
    dpi = load(mockbench, "dmp-emergency-access")
    _emergency(dpi, authentication="INDIRECTE_RENFORCEE")
    steps = dpi.finished()
    assert steps["verification"]["status"] == "passed"
    assert steps["recherche_bris_de_glace"]["status"] == "failed"
    assert steps["recherche_bris_de_glace"]["reason"] == ("the entry's verdict is refused (ACCESS_MODE_REFUSED), "
                                                          "accepted was expected")


@pytest.mark.scenario_play("dmp-emergency-access", "mistake")
def test_dmp_emergency_access_traced_as_a_normal_access(mockbench):
    dpi = load(mockbench, "dmp-emergency-access")
    dpi.existence("dr_urgence", "paul")
    assert dpi.set_authorization("dr_urgence", "paul", "AJOUT").ok   # the DPI declares itself authorized (TD0.3)
    assert dpi.search("dr_urgence", "paul")[0].ok                     # and consults in normal mode
    steps = dpi.finished()
    assert steps["recherche_bris_de_glace"]["status"] == "failed"
    assert steps["recherche_bris_de_glace"]["reason"].startswith(
        "no consultation trace by dr_urgence in mode bris_de_glace in paul's DMP since step verification; traces "
        "recorded: autorisation by dr_urgence at ")


# TD3.3d: archive and unarchive -------------------------------------------------------------------------------
# specs/pdsm4dmp/transaction_td3.3d.md; DOMAIN.md section 1: ITI-57 UpdateAvailabilityStatus, unarchive =
# NewStatus Approved.
@pytest.mark.scenario_play("dmp-td3-3d", "correct")
def test_dmp_td3_3d_played(mockbench):
    dpi = load(mockbench, "dmp-td3-3d")
    _, found = dpi.search("dr_martin", "alice")
    assert sorted(found) == ["cr_ancien", "cr_recent"]
    assert dpi.set_status("dr_martin", "alice", "cr_ancien", APPROVED, ARCHIVED).ok
    _, active = dpi.search("dr_martin", "alice")
    assert sorted(active) == ["cr_recent"]                       # no longer among the active documents
    _, archived = dpi.search("dr_martin", "alice", statuses=(ARCHIVED,))
    assert list(archived) == ["cr_ancien"] and archived["cr_ancien"].get("status") == ARCHIVED
    assert dpi.set_status("dr_martin", "alice", "cr_ancien", ARCHIVED, APPROVED).ok
    all_passed(dpi.finished())
    assert dpi.doc("alice", "cr_ancien")["status"] == "approved"


@pytest.mark.scenario_play("dmp-td3-3d", "mistake")
def test_dmp_td3_3d_deletes_instead_of_archiving(mockbench):
    dpi = load(mockbench, "dmp-td3-3d")
    dpi.search("dr_martin", "alice")
    assert dpi.delete("dr_martin", "alice", "cr_ancien").ok       # TD3.3c: gone for good, not archived
    dpi.search("dr_martin", "alice", statuses=(ARCHIVED,))
    steps = dpi.finished()
    assert steps["recherche"]["status"] == "passed"
    assert steps["archivage"]["status"] == "failed"
    assert steps["archivage"]["reason"].startswith("not observed: expected TD3.3d for alice on "), steps["archivage"]
    assert dpi.doc("alice", "cr_ancien")["status"] == "deleted"
