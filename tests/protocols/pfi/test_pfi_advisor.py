"""The conformance advisor through the PFI door: the DMP operations the PFI performs for a DPI (MDM over MLLP
with python-hl7) are judged by DMP/CONSENT and DMP/CONF.14 as the DMP door's are."""

from kit.pfi import mdm, send


def findings(bench, rule: str) -> list[dict]:
    return [f for f in bench.client.call("GET", "/findings") if f["rule"] == rule]


def test_feeding_through_the_pfi_against_the_zfa_opposition(pfi_world):
    bench, patient, dr_a = pfi_world["bench"], pfi_world["patient"], pfi_world["pros"]["dr_a"]
    bench.client.actions({"set_consent": {"patient": "alice", "feeding_opposition": "IO"}})
    v1, v2 = "1.2.250.1.999.30.1", "1.2.250.1.999.30.2"
    send(bench, mdm("T02", patient, dr_a, dr_a["finess"], v1, control_id="B1", flags={"INVISIBLE_PATIENT": "Y"}),
         mdm("T10", patient, dr_a, dr_a["finess"], v2, v1, control_id="B2"),
         mdm("T04", patient, dr_a, dr_a["finess"], v2, v1, control_id="B3"))
    fed, replaced, deleted = [e["seq"] for e in bench.client.journal(channel="dmp")]
    (consent,) = findings(bench, "DMP/CONSENT")
    assert consent["entries"] == [fed, replaced] and "ZFA-9 IO" in consent["message"]   # a deletion is no feed
    (traces,) = findings(bench, "DMP/CONF.14")
    assert traces["severity"] == "info" and traces["entries"] == [fed, replaced, deleted]
    assert traces["message"].endswith("1 alimentation, 1 invisibilisation, 1 remplacement, 1 suppression")


def test_no_consent_finding_without_opposition(pfi_world):
    bench, patient, dr_a = pfi_world["bench"], pfi_world["patient"], pfi_world["pros"]["dr_a"]
    send(bench, mdm("T02", patient, dr_a, dr_a["finess"], "1.2.250.1.999.30.3"))
    assert findings(bench, "DMP/CONSENT") == []
    assert [f["severity"] for f in findings(bench, "DMP/CONF.14")] == ["info"]
