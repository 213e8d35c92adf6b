"""The DMP's access rules as a PFI meets them, through python-hl7's MLLP client over real sockets: the PFI
feeds without an access authorization (specs/pdsm4dmp/transaction_td02.md NB2), and a deletion by a colleague
of the author's organisation, which the PFI guide's error 901 would let through on the consumer side
(specs/trans-cda-r2/error-codes.md), is refused by the DMP, where only the author deletes
(specs/pdsm4dmp/transaction_td3.3c.md NB2): the DPI gets a ZAM^Z01 carrying the DMP's own error
(trans-cda-r2/ack-metier-zam.md: ERR-5 `code^libellé^DMP_ERROR_CODE`; 900-906 are the consumer's codes)."""

from __future__ import annotations

from kit.pfi import mdm
from kit.pfi import send_codes as send


def test_the_pfi_feeds_replaces_and_deletes_after_the_authorization_is_withdrawn(pfi_world):
    bench, patient, dr_c = pfi_world["bench"], pfi_world["patient"], pfi_world["pros"]["dr_c"]
    bench.client.actions({"withdraw_authorization": {"patient": "alice", "structure": "clinique"}})
    v1, v2 = "1.2.250.1.999.41.1", "1.2.250.1.999.41.2"
    assert send(bench, mdm("T02", patient, dr_c, dr_c["finess"], v1, control_id="W1"),
                mdm("T10", patient, dr_c, dr_c["finess"], v2, v1, control_id="W2"),
                mdm("T04", patient, dr_c, dr_c["finess"], v2, v1, control_id="W3")) == ["AA", "AA", "AA"]
    dmp = [(e["operation"], e["verdict"], e["code"]) for e in bench.client.journal(channel="dmp")]
    assert dmp == [("TD2.1", "accepted", None), ("TD2.1", "accepted", None), ("TD3.3c", "accepted", None)]
    statuses = {d["unique_id"]: d["status"] for d in bench.client.documents("alice", history=True)}
    assert (statuses[v1], statuses[v2]) == ("deprecated", "deleted")


def test_a_colleague_of_the_authors_structure_cannot_delete(pfi_world):
    bench, patient, pros = pfi_world["bench"], pfi_world["patient"], pfi_world["pros"]
    dr_a, dr_b = pros["dr_a"], pros["dr_b"]          # both of the CHU
    v1 = "1.2.250.1.999.41.3"
    assert send(bench, mdm("T02", patient, dr_a, dr_a["finess"], v1),
                mdm("T04", patient, dr_b, dr_b["finess"], v1)) == ["AA", "AA"]
    last = bench.client.journal(channel="dmp")[-1]
    assert (last["operation"], last["verdict"], last["code"]) == ("TD3.3c", "refused", "NOT_AUTHOR")
    assert last["findings"][0]["message"].startswith("ZAM^Z01 error DMPNotAuthor:")
    assert "only the document's author deletes it" in last["findings"][0]["message"]
    assert {d["unique_id"]: d["status"] for d in bench.client.documents("alice")}[v1] == "approved"
    # the author's own deletion goes through
    assert send(bench, mdm("T04", patient, dr_a, dr_a["finess"], v1)) == ["AA"]
    assert bench.client.journal(channel="dmp")[-1]["verdict"] == "accepted"
