"""Catalogue scenarios of the PFI's MSSanté side, played by a scripted DPI over real sockets: python-hl7's
MLLP client sends the MDMs, a DPI listener written with python-hl7's MLLP server (tests/kit/dpi_listener.py) receives
what the PFI hands it; what reached a third party's mailbox is read through the control API."""

import base64
import uuid

import pytest
from kit.dpi_listener import DpiListener, ack, field
from kit.pfi import mdm, send
from kit.wait import wait_for

from mockbench.formats.cda import minimal_cda
from mockbench.formats.xdm import write_package

LAB = "biolo@labo.mssante.fr"
HOSPITAL = "pfi@chu-test.mssante.fr"




# --- mss-ux-12-pfi: a document received by MSSanté, handed to the DPI, integrated or refused --------------

def lab_package(patient: dict, unique_id: str) -> str:
    """The lab's IHE_XDM.ZIP (base64) for one CDA report about `patient`."""
    cda = minimal_cda(unique_id=unique_id, ins=patient["ins"], ins_oid=patient["ins_oid"], type_code="11502-2",
                      title="CR d'examens biologiques", author_idnps="810001234567", author_family="BIOLO",
                      author_given="Marc", patient_family=patient["family_name"], patient_given=patient["given_name"],
                      birth_date=patient["birth_date"], sex=patient["sex"], effective_time="2026-12-01T08:00:00Z",
                      text="Hémoglobine normale.")
    cx = f"{patient['ins']}^^^&{patient['ins_oid']}&ISO^NH"
    package = write_package([("DOC0001.XML", cda, {
        "unique_id": unique_id, "mime_type": "text/xml", "title": "CR d'examens biologiques", "type_code": "11502-2",
        "format_code": "urn:asip:ci-sis:2010", "source_patient_id": cx})],
        submission_set={"unique_id": f"2.25.{uuid.uuid4().int}", "source_id": "1.2.250.1.999", "content_type": "04"},
        patient_id=cx)
    return base64.b64encode(package).decode()


def play_inbound(mockbench, listener: DpiListener) -> dict:
    c = mockbench.client
    c.load("mss-ux-12-pfi")
    for key, uid in (("dominique", "1.2.250.1.999.51.1"), ("eric", "1.2.250.1.999.51.2")):
        patient = c.patient(key)
        c.call("POST", "/mss/send", {"from": LAB, "to": [HOSPITAL], "mdn": True, "package": lab_package(patient, uid),
                                     "subject": f"XDM/1.0/DDM+CR de biologie {patient['family_name']}"})
        assert wait_for(lambda uid=uid: any(uid in field(m, "TXA", 12) for m in listener.of_type("MDM^T02")))
    assert wait_for(lambda: not c.pfi_outbox("pending"))
    return {s["id"]: s for s in c.finish()}


def dpi_answer(unknown_code: str):
    """The DPI: AA to a document about a patient it knows, AE with ERR 207 / `unknown_code` otherwise."""
    def answer(message):
        if "DOMINIQUE" in field(message, "PID", 5):
            return ack(message)
        return ack(message, "AE", f"ERR||PID^1^3|207^Application error^messageErrorCondition|E|"
                                  f"{unknown_code}^Identifiant patient inconnu^applicationErrorCode")
    return answer


@pytest.mark.scenario_play("mss-ux-12-pfi", "correct")
def test_mss_ux_12_pfi_the_dpi_refuses_an_unknown_patient_and_the_sender_gets_an_error_mdn(mockbench, dpi_listener):
    listener = dpi_listener(dpi_answer("902"))
    steps = play_inbound(mockbench, listener)
    assert all(s["status"] == "passed" for s in steps.values()), steps
    mdm_t02 = listener.of_type("MDM^T02")[0]
    assert field(mdm_t02, "MSH", 21) == "1.1^CISIS_CDA_HL7_LPS"
    # The lab is a third party: its mailbox is read through the control API.
    back = mockbench.client.call("GET", f"/mss/mailboxes/{LAB}/messages")
    [mdn] = [m for m in back if m["subject"].startswith("[KO Intégration système !][902]")]
    assert mdn["sender"] == HOSPITAL and mdn["headers"]["Content-Type"].startswith("multipart/report")


@pytest.mark.scenario_play("mss-ux-12-pfi", "mistake")
def test_mss_ux_12_pfi_an_error_code_outside_the_table(mockbench, dpi_listener):
    """The mistake: the DPI names its refusal with an error code of its own (42), not one of the guide's
    applicationErrorCode table (900-906): a CDA-MSS/ACK finding, and the MDN carries no 902."""
    listener = dpi_listener(dpi_answer("42"))
    steps = play_inbound(mockbench, listener)
    assert steps["remise_dominique"]["status"] == "passed"
    assert steps["refus_eric"]["status"] == "failed" and steps["refus_eric"]["reason_code"] == "FINDING"
    assert "ERR-5 42 is not an applicationErrorCode" in steps["refus_eric"]["reason"]
    assert steps["mdn_erreur"]["status"] == "failed" and steps["mdn_erreur"]["reason_code"] == "NOT_OBSERVED"


# --- mss-patient: to the patient's MSSanté address, replies blocked (X-MSS-MES: FIN) ---------------------

def people(c) -> tuple[dict, dict, str]:
    patient = c.patients()[0]
    pro = next(p for p in c.call("GET", "/professionals") if p["id"] == "dr_martin")
    finess = next(s for s in c.call("GET", "/structures") if s["id"] == "chu")["finess"]
    return patient, pro, finess


def with_fin(message: bytes) -> bytes:
    """NTE-4 FIN on the NTE of the DESTMSSANTEPAT OBX (trans-cda-r2/profils-messages.md, "Echange MSSanté
    Patient"): the patient may not reply."""
    head, sep, tail = message.partition(b"DESTMSSANTEPAT^DESTMSSANTEPAT^MetaDMPMSS")
    line_end = tail.index(b"\r") + 1
    return head + sep + tail[:line_end] + b"NTE|1|||FIN\r" + tail[line_end:]


def play_patient(mockbench, fin: bool) -> tuple[dict, list[dict]]:
    c = mockbench.client
    c.load("mss-patient")
    patient, pro, finess = people(c)
    address = f"{patient['ins']}@patient.mssante.fr"
    message = mdm("T02", patient, pro, finess, "1.2.250.1.999.52.1", control_id="P1", recipients=(address,),
                  flags={"DESTMSSANTEPAT": "Y", "DESTDMP": "N"})
    [answer] = send(mockbench, with_fin(message) if fin else message)
    assert str(answer.segment("MSA")[1]) == "AA"
    return {s["id"]: s for s in c.finish()}, c.call("GET", f"/mss/mailboxes/{address}/messages")


@pytest.mark.scenario_play("mss-patient", "correct")
def test_mss_patient_the_mail_blocks_replies(mockbench):
    steps, mails = play_patient(mockbench, fin=True)
    assert all(s["status"] == "passed" for s in steps.values()), steps
    [mail] = mails
    assert mail["headers"]["X-MSS-MES"] == "FIN" and mail["sender"] == "pfi@chu-test.mssante.fr"


@pytest.mark.scenario_play("mss-patient", "mistake")
def test_mss_patient_without_nte_fin_the_patient_may_reply(mockbench):
    """The mistake: the DPI leaves out NTE-4 FIN, so the mail lets the patient reply."""
    steps, mails = play_patient(mockbench, fin=False)
    assert steps["envoi_patient"]["status"] == "passed"
    step = steps["courriel_patient"]
    assert step["status"] == "failed" and step["reason_code"] == "MAIL_HEADER"
    assert step["reason"] == "the mail has no X-MSS-MES header, X-MSS-MES: FIN was expected"
    assert step["reason_fr"] == "le courriel n'a pas d'en-tête X-MSS-MES, X-MSS-MES: FIN était attendu"
    assert "X-MSS-MES" not in mails[0]["headers"]


def test_a_mail_to_another_patient_is_refused(mockbench):
    """profils-messages.md, "Echange MSSanté Patient": the patient address is PID-3's patient's."""
    c = mockbench.client
    c.load("mss-patient")
    patient, pro, finess = people(c)
    message = mdm("T02", patient, pro, finess, "1.2.250.1.999.52.2", recipients=("279035121518990@patient.mssante.fr",),
                  flags={"DESTMSSANTEPAT": "Y", "DESTDMP": "N"})
    [answer] = send(mockbench, with_fin(message))
    assert str(answer.segment("MSA")[1]) == "AE" and "not PID-3's patient" in str(answer.segment("ERR")[8])


# --- mss-regles-gestion: one allowed combination, one the table refuses --------------------------------

def play_rules(mockbench, invisible_patient: str) -> tuple[dict, list]:
    c = mockbench.client
    c.load("mss-regles-gestion")
    patient, pro, finess = people(c)
    roux, pat = "paul.roux@clinique-parc.mssante.fr", f"{patient['ins']}@patient.mssante.fr"
    both = mdm("T02", patient, pro, finess, "1.2.250.1.999.53.1", control_id="R1", recipients=(roux, pat),
               flags={"DESTMSSANTEPS": "Y", "DESTMSSANTEPAT": "Y"})
    ps_only = mdm("T02", patient, pro, finess, "1.2.250.1.999.53.2", control_id="R2", recipients=(roux,),
                  flags={"DESTMSSANTEPS": "Y", "INVISIBLE_PATIENT": invisible_patient})
    acks = send(mockbench, both, ps_only)
    return {s["id"]: s for s in c.finish()}, acks


@pytest.mark.scenario_play("mss-regles-gestion", "correct")
def test_mss_regles_gestion_allowed_combinations(mockbench):
    steps, acks = play_rules(mockbench, "Y")
    assert all(s["status"] == "passed" for s in steps.values()), steps
    assert [str(a.segment("MSA")[1]) for a in acks] == ["AA", "AA"]


@pytest.mark.scenario_play("mss-regles-gestion", "mistake")
def test_mss_regles_gestion_to_professionals_only_left_visible_to_the_patient(mockbench):
    """The mistake: to professionals only with INVISIBLE_PATIENT N, a combination the table does not list."""
    steps, acks = play_rules(mockbench, "N")
    assert [str(a.segment("MSA")[1]) for a in acks] == ["AA", "AE"]
    err = acks[1].segment("ERR")
    assert str(err[3]).startswith("207") and "INVISIBLE_PATIENT=N (allowed: Y)" in str(err[8])
    assert [k for k, s in steps.items() if s["status"] == "failed"] == ["ps_seul", "versement_invisible"]
    assert steps["ps_seul"]["reason_code"] == "VERDICT"
    assert steps["ps_seul"]["reason"].startswith("the entry's verdict is refused (HL7_207)")
    assert steps["versement_invisible"]["reason_code"] == "NOT_OBSERVED"
