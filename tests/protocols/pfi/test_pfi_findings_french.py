"""A forbidden finding turns a step red with the finding's French text in its French reason (issue 19,
"Verdicts in French"), played through the PFI door with python-hl7's MLLP client."""

from hl7.client import MLLPClient
from kit.pfi import cda_for, mdm, parse_ack


def test_a_forbidden_finding_makes_the_step_red_in_french(mockbench):
    """dmp-versioning's mistake through the PFI (the same CDA resent as MDM^T10 only to mask it): the step's
    French reason quotes the finding's French text, the English reason its English one."""
    c = mockbench.client
    c.load("dmp-versioning")
    patient = c.patient("bernard")
    pro = next(p for p in c.call("GET", "/professionals") if p["id"] == "dr_martin")
    finess = next(s for s in c.call("GET", "/structures") if s["id"] == "chu")["finess"]
    v1, v2 = "1.2.250.1.999.19.1", "1.2.250.1.999.19.2"
    same = cda_for(patient, v1, pro)
    with MLLPClient("127.0.0.1", mockbench.ports["mllp"]) as client:
        client.socket.settimeout(10)
        acks = [parse_ack(client.send_message(m)) for m in (
            mdm("T02", patient, pro, finess, v1, control_id="V1", cda=same),
            mdm("T10", patient, pro, finess, v2, v1, control_id="V2", cda=same, flags={"MASQUE_PS": "Y"}))]
    assert [str(a.segment("MSA")[1]) for a in acks] == ["AA", "AA"]
    (versioning,) = [f for e in c.journal(channel="dmp") for f in e["findings"] if f["rule"] == "DMP/VERSIONING"]
    assert versioning["message_fr"].startswith(f"le document {v2} remplace {v1} avec le même contenu (SHA-1 ")
    step = next(s for s in c.finish() if s["status"] == "failed" and s["reason_code"] == "FINDING")
    # Each forbidden finding is one problem of the step (this mistake also draws PFI/MODIF_CONF_CODE: the T10
    # changes the confidentiality without MODIF_CONF_CODE at Y), then the step's other problems.
    (problem,) = [p for p in step["problems"] if p["code"] == "FINDING" and p["rule"] == "DMP/VERSIONING"]
    assert problem["message_fr"] == versioning["message_fr"]
    assert f"finding DMP/VERSIONING: {versioning['message']}" in step["reason"]
    assert f"constat DMP/VERSIONING : {versioning['message_fr']}" in step["reason_fr"]
    assert all(p.get("message_fr") for p in step["problems"] if p["code"] == "FINDING")
