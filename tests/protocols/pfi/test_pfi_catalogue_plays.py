"""Catalogue scenarios played through the PFI door with python-hl7's MLLP client, where the DMP scenario's
requirement also covers the HL7 route (the correct plays of dmp-conf-03-01 and dmp-conf-12 are in
test_door.py)."""

import pytest
from kit.pfi import cda_for, mdm, send


@pytest.mark.scenario_play("dmp-versioning", "mistake")
def test_dmp_versioning_an_mdm_t10_only_to_mask(mockbench):
    """The same CDA resent as MDM^T10 with MASQUE_PS at Y: a new version only to change an attribute (a new
    version through the PFI has a new id and hash, def-proc-collab.md); MODIF_CONF_CODE does not excuse it."""
    c = mockbench.client
    c.load("dmp-versioning")
    patient = c.patient("bernard")
    pro = next(p for p in c.call("GET", "/professionals") if p["id"] == "dr_martin")
    finess = next(s for s in c.call("GET", "/structures") if s["id"] == "chu")["finess"]
    v1, v2 = "1.2.250.1.999.15.1", "1.2.250.1.999.15.2"
    same = cda_for(patient, v1, pro)
    acks = send(mockbench, mdm("T02", patient, pro, finess, v1, control_id="V1", cda=same),
                mdm("T10", patient, pro, finess, v2, v1, control_id="V2", cda=same,
                    flags={"MASQUE_PS": "Y", "MODIF_CONF_CODE": "Y"}))     # flagged, but the same bytes
    assert [str(a.segment("MSA")[1]) for a in acks] == ["AA", "AA"]
    fed = [e for e in c.journal(channel="dmp") if e["operation"] == "TD2.1"]
    assert [f["rule"] for f in fed[1]["findings"]] == ["DMP/VERSIONING"] and fed[0]["findings"] == []
    steps = {s["id"]: s for s in c.finish()}
    assert steps["alimentation"]["status"] == "passed"
    assert steps["masquage"]["status"] == "failed"
    assert steps["masquage"]["reason"].startswith(f"finding DMP/VERSIONING: document {v2} replaces {v1} with the "
                                                  "same content")
    assert "TD3.3a" in steps["masquage"]["reason"]


@pytest.mark.scenario_play("dmp-versioning", "correct")
def test_dmp_versioning_masked_by_a_new_version_through_the_pfi(mockbench):
    """trans-cda-r2/def-proc-collab.md ("Demande de remplacement de document(s)"): the PFI, indirectly
    authenticated, cannot use TD3.3; a masking is a new version (MDM^T10, MODIF_CONF_CODE and MASQUE_PS at Y,
    a new document id and so a new hash, as exemples.md example 4), which the scenario accepts as well as
    TD3.3a."""
    c = mockbench.client
    c.load("dmp-versioning")
    patient = c.patient("bernard")
    pro = next(p for p in c.call("GET", "/professionals") if p["id"] == "dr_martin")
    finess = next(s for s in c.call("GET", "/structures") if s["id"] == "chu")["finess"]
    v1, v2, v3 = "1.2.250.1.999.16.1", "1.2.250.1.999.16.2", "1.2.250.1.999.16.3"
    acks = send(mockbench, mdm("T02", patient, pro, finess, v1, control_id="V1"),
                mdm("T10", patient, pro, finess, v2, v1, control_id="V2",
                    flags={"MASQUE_PS": "Y", "MODIF_CONF_CODE": "Y"}),
                mdm("T10", patient, pro, finess, v3, v2, control_id="V3", flags={"MASQUE_PS": "Y"}))
    assert [str(a.segment("MSA")[1]) for a in acks] == ["AA", "AA", "AA"]
    steps = c.finish()
    assert [(s["id"], s["status"], s["reason"]) for s in steps] == [
        ("alimentation", "passed", None), ("masquage", "passed", None), ("correction", "passed", None)]
    history = {d["unique_id"]: (d["status"], d["confidentiality"]) for d in c.documents("bernard", history=True)}
    assert history[v1][0] == history[v2][0] == "deprecated" and history[v3][0] == "approved"
    assert "MASQUE_PS" in history[v2][1]
    assert [f for e in c.journal(channel="dmp") for f in e["findings"] if f["rule"] == "DMP/VERSIONING"] == []


@pytest.mark.scenario_play("dmp-versioning", "mistake")
def test_dmp_versioning_a_new_version_that_masks_without_modif_conf_code(mockbench):
    """A new version (new id, new content) that masks the document, but MODIF_CONF_CODE left at N: the
    PFI takes it, with a PFI/MODIF_CONF_CODE warning that the masking step forbids (exemples.md example 4)."""
    c = mockbench.client
    c.load("dmp-versioning")
    patient = c.patient("bernard")
    pro = next(p for p in c.call("GET", "/professionals") if p["id"] == "dr_martin")
    finess = next(s for s in c.call("GET", "/structures") if s["id"] == "chu")["finess"]
    v1, v2 = "1.2.250.1.999.17.1", "1.2.250.1.999.17.2"
    acks = send(mockbench, mdm("T02", patient, pro, finess, v1, control_id="V1"),
                mdm("T10", patient, pro, finess, v2, v1, control_id="V2", flags={"MASQUE_PS": "Y"}))
    assert [str(a.segment("MSA")[1]) for a in acks] == ["AA", "AA"]
    steps = {s["id"]: s for s in c.finish()}
    assert steps["alimentation"]["status"] == "passed"
    assert steps["masquage"]["status"] == "failed"
    assert steps["masquage"]["reason"] == (
        f"finding PFI/MODIF_CONF_CODE: document {v2} replaces {v1} and changes its confidentiality (N -> "
        "MASQUE_PS) without MODIF_CONF_CODE at Y (trans-cda-r2/exemples.md example 4)")
