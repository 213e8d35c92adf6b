"""Catalogue scenario pfi-zam played by a scripted DPI over real sockets: python-hl7's MLLP client sends the
MDMs, a DPI listener written with python-hl7's MLLP server (tests/kit/dpi_listener.py) receives the PFI's business
acknowledgements and answers them. trans-cda-r2/profils-messages.md, "Structure des messages accusés métier"
(ZAM^Z01 / Z02 / Z03) and "Message d'acquittement technique des accusés métiers" (ACK^Z0x^ACK)."""

import pytest
from kit.dpi_listener import DpiListener, ack, field, has
from kit.pfi import mdm, send
from kit.wait import wait_for

ROUX = "paul.roux@clinique-parc.mssante.fr"




def play(mockbench, listener: DpiListener) -> tuple[dict, dict]:
    """The DPI's side of pfi-zam: two MDM^T02 through the PFI, the correspondent reads after 10 minutes."""
    c = mockbench.client
    c.load("pfi-zam")
    patient = c.patient("alice")
    pro = next(p for p in c.call("GET", "/professionals") if p["id"] == "dr_martin")
    finess = next(s for s in c.call("GET", "/structures") if s["id"] == "chu")["finess"]
    flags = {"DESTMSSANTEPS": "Y", "ACK_RECEPTION": "Y", "ACK_LECTURE_MSS": "Y"}
    [first] = send(mockbench, mdm("T02", patient, pro, finess, "1.2.250.1.999.41.1", control_id="Z1",
                                  flags=flags, recipients=(ROUX,)))
    assert str(first.segment("MSA")[1]) == "AA"
    assert wait_for(lambda: len(listener.of_type("ZAM^Z02")) == 1)
    c.advance("10m")                  # Dr Roux reads the mail: its MDN, then the ZAM^Z03
    assert wait_for(lambda: len(listener.of_type("ZAM^Z03")) == 1)
    assert wait_for(lambda: c.patient("alice") and any(t["id"] == "interdiction" and t["fired"]
                                                       for t in c.call("GET", "/transitions")))
    [second] = send(mockbench, mdm("T02", patient, pro, finess, "1.2.250.1.999.41.2", control_id="Z2"))
    assert str(second.segment("MSA")[1]) == "AA"      # the message is fine; the DMP's refusal is a ZAM
    assert wait_for(lambda: len(listener.of_type("ZAM^Z01")) == 2)
    assert wait_for(lambda: not c.pfi_outbox("pending"))
    return {s["id"]: s for s in c.finish()}, {z: listener.of_type(z) for z in ("ZAM^Z01", "ZAM^Z02", "ZAM^Z03")}


@pytest.mark.scenario_play("pfi-zam", "correct")
def test_pfi_zam_the_dpi_acknowledges_each_business_ack(mockbench, dpi_listener):
    listener = dpi_listener()
    steps, zams = play(mockbench, listener)
    assert all(s["status"] == "passed" for s in steps.values()), steps
    # What the DPI received, as python-hl7 read it: OBX-4 of each ZAM names the original MSH-10.
    z01_ok, z01_refused = zams["ZAM^Z01"]
    assert [str(z.segment("OBX")[4]) for z in (z01_ok, z01_refused)] == ["Z1", "Z2"]
    assert str(z01_ok.segment("OBX")[5]).startswith("Y") and str(z01_refused.segment("OBX")[5]).startswith("N")
    err = str(z01_refused.segment("ERR")[5])
    assert err.startswith("DMPProfessionalBlocked^") and err.endswith("^DMP_ERROR_CODE")
    for kind in ("ZAM^Z02", "ZAM^Z03"):       # OBX 2 names the recipient (DESTINATAIRE_MSS / LECTEUR_MSS)
        [zam] = zams[kind]
        first, second = zam.segments("OBX")[:2]
        assert str(first[4]) == "Z1" and str(first[5]).startswith("Y") and ROUX in str(second[5])
    outs = [e for e in mockbench.client.journal(channel="pfi") if e["direction"] == "out"]
    assert [(e["operation"], e["verdict"]) for e in outs] == [
        ("ZAM^Z01", "accepted"), ("ZAM^Z02", "accepted"), ("ZAM^Z03", "accepted"), ("ZAM^Z01", "accepted")]
    assert all(not [f for f in e["findings"] if f["rule"] == "PFI/ZAM-ACK"] for e in outs)


@pytest.mark.scenario_play("pfi-zam", "mistake")
def test_pfi_zam_a_dpi_that_refuses_the_negative_z01(mockbench, dpi_listener):
    """The mistake: the DPI answers a ZAM that reports a refusal with AE (it takes the business refusal for an
    error in the message), and acknowledges the Z02 with the ACK of an MDM (ACK^T02^ACK)."""
    def answer(message):
        if field(message, "MSH", 9).startswith("ZAM^Z02"):
            return ack(message, message_type="ACK^T02^ACK")
        if has(message, "ERR"):
            return ack(message, "AE", "ERR||MSH^1^9|207^Application error^HL70357|E")
        return ack(message)

    listener = dpi_listener(answer)
    steps, _ = play(mockbench, listener)
    assert [k for k, s in steps.items() if s["status"] == "failed"] == ["z02_recu", "z01_refus"]
    assert steps["z02_recu"]["reason_code"] == "FINDING"
    assert "MSH-9 of the DPI's ACK is ACK^T02^ACK, not ACK^Z02^ACK" in steps["z02_recu"]["reason"]
    assert steps["z01_refus"]["reason_code"] == "VERDICT"
    assert steps["z01_refus"]["reason"].startswith("the entry's verdict is refused (DPI_AE)")
    assert "refusé (DPI_AE)" in steps["z01_refus"]["reason_fr"]
    [dead] = mockbench.client.pfi_outbox("dead")
    assert dead["operation"] == "ZAM^Z01" and dead["reason"].startswith("DPI_AE")


def test_the_dpi_listener_from_a_scenario_and_at_run_time(mockbench, dpi_listener):
    """`dpi: {mllp: HOST:PORT}` in a scenario sets the listener when it is loaded (and a reset keeps it);
    PUT /_bench/pfi/dpi changes it at run time, refuses what is not HOST:PORT, DELETE goes back to --dpi-mllp."""
    c = mockbench.client
    listener = DpiListener()
    try:
        text = (f"id: exemple-dpi\ntitle: Écouteur du DPI\ndpi: {{mllp: '{listener.endpoint}'}}\n"
                "world:\n  structures: [{id: chu}]\n  professionals: [{id: dr, structure: chu}]\n"
                "  patients: [{id: p, authorizations: [{structure: chu}]}]\n")
        c.load_yaml(text)
        assert c.call("GET", "/pfi/dpi") == {"mllp": listener.endpoint, "source": "scenario"}
        patient = c.patient("p")
        pro = c.call("GET", "/professionals")[0]
        finess = c.call("GET", "/structures")[0]["finess"]
        send(mockbench, mdm("T02", patient, pro, finess, "1.2.250.1.999.42.1", control_id="S1"))
        assert wait_for(lambda: len(listener.of_type("ZAM^Z01")) == 1)
        c.reset()
        assert c.call("GET", "/pfi/dpi")["mllp"] == listener.endpoint
        with pytest.raises(Exception, match="HOST:PORT"):
            c.call("PUT", "/pfi/dpi", {"mllp": "nowhere"})
        assert c.call("PUT", "/pfi/dpi", {"mllp": None}) == {"mllp": None, "source": "control"}
        assert c.call("DELETE", "/pfi/dpi") == {"mllp": None, "source": None}
        bad = "id: x\ntitle: x\ndpi: {mllp: 'pas-un-port'}\n"
        with pytest.raises(Exception, match="dpi.mllp"):
            c.load_yaml(bad)
    finally:
        listener.close()
