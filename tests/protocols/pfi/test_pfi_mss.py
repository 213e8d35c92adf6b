"""The PFI's MSSanté sending (DESTMSSANTEPS / DESTMSSANTEPAT): the mail as the ANS guide shapes it, delivered
through the world, and the ZAM^Z02 / Z03 made from the correspondents' DSN and MDN."""

import base64
import email
from email import policy

import pytest
from hl7.client import MLLPClient
from kit.fake_dpi import FakeDpi
from kit.pfi import cda_for, mdm, parse_ack
from kit.wait import wait_for
from test_door import msa, send

from mockbench.formats import xmss
from mockbench.formats.xdm import ans_subject, read_package
from mockbench.protocols.pfi.door import MAIL_KEY, PfiDoor, PfiSettings
from mockbench.protocols.pfi.hl7 import parse as parse_hl7
from mockbench.world.model import Mailbox

APP = "pfi@chu.mssante.fr"   # the CHU's applicative mailbox (conftest.py)


def world(bench):
    return bench.bench.world


def mails(bench, address: str) -> list[tuple[dict, bytes]]:
    w = world(bench)
    with w.transaction() as tx:
        return [(m.headers, w.mss.raw(tx, m.id)) for m in w.mss.messages(tx, address)]


def package_of(raw: bytes):
    parsed = email.message_from_bytes(raw, policy=policy.default)
    zips = [p for p in parsed.walk() if p.get_filename() == "IHE_XDM.ZIP"]
    assert len(zips) == 1
    return read_package(zips[0].get_content()), parsed


def mss_entries(bench) -> list[dict]:
    return [e for e in bench.client.journal(channel="mss") if e["operation"] == "DELIVER"]


@pytest.fixture
def people(pfi_world):
    pros = pfi_world["pros"]
    assert pros["dr_a"]["mssante"] and pros["dr_b"]["mssante"]
    return pfi_world["bench"], pfi_world["patient"], pros["dr_a"], pros["dr_b"]


def test_destmssanteps_sends_an_xdm_mail_to_the_correspondent(people):
    bench, patient, dr_a, dr_b = people
    v1 = "1.2.250.1.999.20.1"
    message = mdm("T02", patient, dr_a, dr_a["finess"], v1, control_id="M1", flags={"DESTMSSANTEPS": "Y"},
                  recipients=(dr_b["mssante"],))
    body = base64.b64encode("Bonjour, voici le compte rendu de la séance.".encode()).decode()
    message += (f"OBX|12|ED|CORPSMAIL_PS^CORPSMAIL_PS^MetaDMPMSS||^text^^Base64^{body}||||||F\r"
                f"PRT||UC||REPLY^^participation|||||||||||^NET^X.400^{dr_a['mssante']}\r"
                "NTE|1|||FIN\r").encode()
    assert msa(send(bench, message)[0]) == ("AA", "M1")
    [(headers, raw)] = mails(bench, dr_b["mssante"])
    # trans-cda-r2/mapping-mss.md: FROM is the applicative mailbox (BAL APP), not Dr Martin's own address
    assert headers["From"] == APP
    # the subject as trans-cda-mss/struct-msg-mdn.md's example: names upper-cased, birth date DD/MM/YYYY
    assert headers["Subject"] == "XDM/1.0/DDM+CR de consultation DURAND ALICE 04/05/1980"
    assert headers["Subject"] == ans_subject("CR de consultation", "DURAND", "Alice", "19800504")
    # Référentiel socle MSSanté #2 ECO.2.4.1-2.4.3: the CDA's code, a qualified INS, the product reference
    assert (headers["X-MSS-CODECDA"], headers["X-MSS-INS"]) == ("11488-4", "O")
    assert "X-MSS-MES" not in headers   # mapping-mss.md: X-MSS-MES FIN is for the mails to the patient
    assert headers["X-MSS-NIL"] == "MOCKBENCH-PFI"
    assert "Disposition-Notification-To" not in headers
    package, parsed = package_of(raw)
    assert parsed["Reply-To"] == dr_a["mssante"]
    assert parsed.get_body(("plain",)).get_content() == "Bonjour, voici le compte rendu de la séance."
    [doc] = package.documents
    assert doc.hash_ok and doc.size_ok and doc.entry.meta["unique_id"] == v1 and package.action is None
    # the PFI's own mail passes the rules the SMTP door applies to the DPI's mails
    assert xmss.check(headers, [doc.cda], [dr_b["mssante"]]) == []
    assert doc.content == cda_for(patient, v1, dr_a)
    [entry] = mss_entries(bench)
    assert (entry["direction"], entry["verdict"], entry["ref"]) == ("out", "accepted", headers["Message-ID"])
    with world(bench).transaction() as tx:
        assert tx.meta_get(MAIL_KEY + headers["Message-ID"])["control_id"] == "M1"
    assert bench.client.documents("alice")[0]["unique_id"] == v1        # the DMP was fed as well


def test_destmssantepat_sends_to_the_patient_address_built_from_the_ins(people):
    bench, patient, dr_a, _ = people
    message = mdm("T02", patient, dr_a, dr_a["finess"], "1.2.250.1.999.21.1", control_id="P1",
                  flags={"DESTMSSANTEPAT": "Y", "ACK_LECTURE_MSS": "Y"}, recipients=())
    message += b"NTE|1|||FIN\r"       # NTE-4 of the DESTMSSANTEPAT OBX: the patient may not reply
    assert msa(send(bench, message)[0]) == ("AA", "P1")
    [(headers, _)] = mails(bench, f"{patient['ins']}@patient.mssante.fr")
    assert headers["X-MSS-MES"] == "FIN"
    assert headers["To"] == f"{patient['ins']}@patient.mssante.fr"
    assert headers["Disposition-Notification-To"] == APP   # the MDN comes back to the BAL APP that sent it


def test_replacement_and_deletion_carry_action_c_and_d(people):
    bench, patient, dr_a, dr_b = people
    v1, v2 = "1.2.250.1.999.22.1", "1.2.250.1.999.22.2"
    flags, to = {"DESTMSSANTEPS": "Y"}, (dr_b["mssante"],)
    acks = send(bench, mdm("T02", patient, dr_a, dr_a["finess"], v1, control_id="R1", flags=flags, recipients=to),
                mdm("T10", patient, dr_a, dr_a["finess"], v2, v1, control_id="R2", flags=flags, recipients=to),
                mdm("T04", patient, dr_a, dr_a["finess"], v2, v1, control_id="R3", flags=flags, recipients=to))
    assert [msa(a)[0] for a in acks] == ["AA"] * 3
    packages = [package_of(raw)[0] for _, raw in mails(bench, dr_b["mssante"])]
    assert [p.action for p in packages] == [None, "C", "D"]
    assert [p.documents[0].entry.meta["unique_id"] for p in packages] == [v1, v2, v2]


def test_an_unknown_recipient_keeps_aa_and_is_journaled(people):
    bench, patient, dr_a, _ = people
    message = mdm("T02", patient, dr_a, dr_a["finess"], "1.2.250.1.999.23.1", control_id="U1",
                  flags={"DESTMSSANTEPS": "Y"}, recipients=("nobody@chu.mssante.fr",))
    assert msa(send(bench, message)[0]) == ("AA", "U1")
    [entry] = mss_entries(bench)
    assert (entry["verdict"], entry["code"]) == ("refused", "SMTP_550")
    assert any("nobody@chu.mssante.fr" in f["message"] for f in entry["findings"])
    assert bench.client.documents("alice")                               # the DMP part went through


def test_from_is_the_structure_s_applicative_mailbox_else_the_pfi_s_else_a_finding(people, pfi_world):
    """trans-cda-r2/mapping-mss.md, FROM: "courriel de la BAL Applicative qui transmet le message". The sender's
    structure's APP mailbox; a structure without one: the PFI's (the CHU's APP mailbox); no APP mailbox at all:
    no mail and a finding, even with ORG mailboxes and personal addresses around."""
    bench, patient, dr_a, dr_b = people
    dr_c = pfi_world["pros"]["dr_c"]           # at the clinic, which has no APP mailbox yet
    flags = {"DESTDMP": "N", "DESTMSSANTEPS": "Y"}
    send(bench, mdm("T02", patient, dr_c, dr_c["finess"], "1.2.250.1.999.25.1", control_id="S1", flags=flags,
                    recipients=(dr_b["mssante"],)))
    assert [h["From"] for h, _ in mails(bench, dr_b["mssante"])] == [APP]
    w = world(bench)
    with w.transaction() as tx:
        w.directory.add_mailbox(tx, Mailbox(address="dpi@clinique.mssante.fr", type="APP", owner="clinique"))
    send(bench, mdm("T02", patient, dr_c, dr_c["finess"], "1.2.250.1.999.25.2", control_id="S2", flags=flags,
                    recipients=(dr_b["mssante"],)))
    assert [h["From"] for h, _ in mails(bench, dr_b["mssante"])] == [APP, "dpi@clinique.mssante.fr"]
    with w.transaction() as tx:   # no applicative mailbox left: ORG mailboxes do not stand in
        for box in w.directory.mailboxes(tx):
            if box.type == "APP":
                box.type = "ORG"
                w.directory.save_mailbox(tx, box)
    send(bench, mdm("T02", patient, dr_a, dr_a["finess"], "1.2.250.1.999.25.3", control_id="S3", flags=flags,
                    recipients=(dr_b["mssante"],)))
    entry = mss_entries(bench)[-1]
    assert (entry["verdict"], entry["code"]) == ("error", "MSS_NO_SENDER") and len(mails(bench, dr_b["mssante"])) == 2
    assert "BAL APP" in entry["findings"][0]["message"]


def test_x_mss_ins_is_o_only_for_a_qualified_identity(people):
    """Référentiel socle MSSanté #2 ECO.2.4.2: X-MSS-INS O only when the INS is qualified; PID-32 (PAM FR
    identity reliability) PROV says it is not, whatever PID-3 carries."""
    bench, patient, dr_a, dr_b = people
    flags = {"DESTDMP": "N", "DESTMSSANTEPS": "Y"}
    text = mdm("T02", patient, dr_a, dr_a["finess"], "1.2.250.1.999.26.1", control_id="Q1", flags=flags,
               recipients=(dr_b["mssante"],)).decode()
    lines = text.split("\r")
    pid = next(i for i, line in enumerate(lines) if line.startswith("PID|"))
    fields = lines[pid].split("|") + [""] * 40
    fields[32] = "PROV"
    lines[pid] = "|".join(fields[:33])
    assert msa(send(bench, "\r".join(lines).encode())[0]) == ("AA", "Q1")
    [(headers, _)] = mails(bench, dr_b["mssante"])
    assert (headers["X-MSS-INS"], headers["X-MSS-CODECDA"]) == ("N", "11488-4")


@pytest.mark.parametrize("behaviour,flags,expected", [
    ("fail_integration", {"ACK_LECTURE_MSS": "Y"}, ("ZAM^Z03", "N", "I01", "LECTEUR_MSS")),
    ("bounce", {}, ("ZAM^Z02", "N", "550", "DESTINATAIRE_MSS")),
    ("bounce:552^5.2.2 mailbox full", {}, ("ZAM^Z02", "N", "552", "DESTINATAIRE_MSS")),  # the DSN's own reply
    ("integrate", {"ACK_LECTURE_MSS": "Y"}, ("ZAM^Z03", "Y", "", "LECTEUR_MSS")),
    ("integrate", {"ACK_RECEPTION": "Y"}, ("ZAM^Z02", "Y", "", "DESTINATAIRE_MSS")),
    ("unknown", {}, ("ZAM^Z02", "N", "550", "DESTINATAIRE_MSS")),
])
def test_dsn_and_mdn_become_zam_z02_and_z03(people, behaviour, flags, expected):
    bench, patient, dr_a, dr_b = people
    to = "nobody@chu.mssante.fr" if behaviour == "unknown" else dr_b["mssante"]
    if behaviour != "unknown":
        w = world(bench)
        on_receive, _, error = behaviour.partition(":")
        with w.transaction() as tx:
            w.mss.set_behaviour(tx, to, {"on_receive": on_receive, **({"error": error} if error else {})})
    dpi = FakeDpi()
    door = PfiDoor(bench.bench.context, PfiSettings(port=0, dpi=("127.0.0.1", dpi.port), outbound_backoff=0.05))
    port = door.start()["mllp"]
    try:
        message = mdm("T02", patient, dr_a, dr_a["finess"], "1.2.250.1.999.24.1", control_id="Z-MSS",
                      flags={"DESTMSSANTEPS": "Y", **flags}, recipients=(to,))
        with MLLPClient("127.0.0.1", port) as client:
            client.socket.settimeout(10)
            assert msa(parse_ack(client.send_message(message))) == ("AA", "Z-MSS")
        assert wait_for(lambda: len(dpi.received) >= 2)
        zams = [parse_hl7(p) for p in dpi.received]
        assert sorted(z.operation for z in zams) == sorted(["ZAM^Z01", expected[0]])
        [zam] = [z for z in zams if z.operation == expected[0]]
        assert (zam.get("OBX", 4), zam.get("OBX", 5)) == ("Z-MSS", expected[1])
        assert zam.segments("OBX")[1][3].split("^")[0] == expected[3]
        # profils-messages.md, ZAM^Z02 / Z03 second OBX: XTN, the address in OBX-5.4 (^^X.400^address)
        second = zam.segments("OBX")[1]
        assert (second[2], zam.value(second, 5, 1, 3), zam.value(second, 5, 1, 4)) == ("XTN", "X.400", to.lower())
        assert (zam.get("ERR", 5) if zam.segments("ERR") else "") == expected[2]
    finally:
        door.stop()
        dpi.close()


def test_an_answer_after_a_restart_still_maps_to_the_hl7_message(people):
    """The Message-ID -> MSH-10 mapping is in the world store: a door started after the mail was sent (as
    after a restart) turns a late MDN (read_after on the virtual clock) into its ZAM^Z03."""
    bench, patient, dr_a, dr_b = people
    w = world(bench)
    with w.transaction() as tx:
        w.mss.set_behaviour(tx, dr_b["mssante"], {"on_receive": "integrate", "read_after": "10m"})
    message = mdm("T02", patient, dr_a, dr_a["finess"], "1.2.250.1.999.26.1", control_id="LATE",
                  flags={"DESTDMP": "N", "DESTMSSANTEPS": "Y", "ACK_LECTURE_MSS": "Y"}, recipients=(dr_b["mssante"],))
    assert msa(send(bench, message)[0]) == ("AA", "LATE")     # the bench's own door, without a DPI
    dpi = FakeDpi()
    door = PfiDoor(bench.bench.context, PfiSettings(port=0, dpi=("127.0.0.1", dpi.port), outbound_backoff=0.05))
    door.start()
    try:
        bench.client.advance("15m")
        assert wait_for(lambda: len(dpi.received) >= 1)
        [zam] = [parse_hl7(p) for p in dpi.received]
        assert (zam.operation, zam.get("OBX", 4), zam.get("OBX", 5)) == ("ZAM^Z03", "LATE", "Y")
    finally:
        door.stop()
        dpi.close()


def test_the_loop_a_dpi_refusal_comes_back_as_an_error_mdn_then_a_zam_z03(people):
    """Both guides end to end: the PFI mails a document (ACK_LECTURE_MSS=Y) to another establishment's
    applicative mailbox; that establishment's PFI (the same bench) gives it to its DPI as an MDM^T02
    (trans-cda-mss); the DPI refuses it (ERR-3 207, ERR-5 902); the error MDN (struct-msg-mdn.md) comes back
    to the sender's BAL APP and becomes a ZAM^Z03 N for the sending DPI (trans-cda-r2/ack-metier-zam.md)."""
    from test_pfi_inbound import ScriptedDpi

    bench, patient, dr_a, _ = people
    w = world(bench)
    with w.transaction() as tx:
        w.directory.add_mailbox(tx, Mailbox(address="dpi@clinique.mssante.fr", type="APP", owner="clinique"))
    dpi = ScriptedDpi("AE", "ERR||PID^1^3|207^Application error^messageErrorCondition|E|"
                            "902^Identifiant de patient inconnu^applicationErrorCode")
    door = PfiDoor(bench.bench.context, PfiSettings(port=0, dpi=("127.0.0.1", dpi.port), outbound_backoff=0.05))
    port = door.start()["mllp"]
    try:
        message = mdm("T02", patient, dr_a, dr_a["finess"], "1.2.250.1.999.27.1", control_id="LOOP",
                      flags={"DESTDMP": "N", "DESTMSSANTEPS": "Y", "ACK_LECTURE_MSS": "Y"},
                      recipients=("dpi@clinique.mssante.fr",))
        with MLLPClient("127.0.0.1", port) as client:
            client.socket.settimeout(10)
            assert msa(parse_ack(client.send_message(message))) == ("AA", "LOOP")
        assert wait_for(lambda: any(parse_hl7(p).operation == "ZAM^Z03" for p in dpi.received))
        received = [parse_hl7(p) for p in dpi.received]
        assert received[0].operation == "MDM^T02"          # the clinic's DPI got the document first
        [zam] = [z for z in received if z.operation == "ZAM^Z03"]
        assert (zam.get("OBX", 4), zam.get("OBX", 5)) == ("LOOP", "N")
        assert "902" in zam.get("ERR", 5)
        [(headers, _)] = [m for m in mails(bench, APP) if m[0]["Subject"].startswith("[KO")]
        assert headers["Subject"].startswith("[KO Intégration système !][902] XDM/1.0/DDM+")
        assert headers["From"] == "dpi@clinique.mssante.fr"
    finally:
        door.stop()
        dpi.close()
