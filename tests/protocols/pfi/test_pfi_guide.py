"""The PFI door read side by side with the ANS guide "Transmission de documents CDA en HL7v2" v2.1.3
(trans-cda-r2/): the technical ACK, both guide versions, several documents and their recipients, the MSSanté
combination table and the ZAM business acknowledgements. Real sockets: python-hl7's MLLP client in, a fake
DPI MLLP listener for the ZAMs; every ACK and ZAM is also read by hl7apy in strict mode (tests/kit/strict_hl7.py)."""

import base64
import sqlite3

import hl7
import pytest
from hl7.client import MLLPClient
from hl7apy.exceptions import HL7apyException
from kit.fake_dpi import FakeDpi
from kit.pfi import cda_for, mdm, parse_ack
from kit.strict_hl7 import check_ack, check_zam
from kit.wait import wait_for
from test_door import msa, send

from mockbench.protocols.pfi.door import PfiDoor, PfiSettings
from mockbench.protocols.pfi.hl7 import parse as parse_hl7


def err(ack) -> tuple[str, str, str, str]:
    """(ERR-2, ERR-3, ERR-4, ERR-8) of the ACK's ERR segment."""
    e = ack.segment("ERR")
    return str(e[2]), str(e[3]), str(e[4]), str(e[8])


def last_pfi(bench) -> dict:
    return [e for e in bench.client.journal(channel="pfi") if e["direction"] == "in"][-1]


def oru(patient: dict, author: dict, finess: str, documents: list[bytes], *, control_id: str = "ORU1",
        flags: dict | None = None, recipients: tuple[str, ...] = (), sender: str | None = None) -> bytes:
    """An ORU^R01 (HL7 2.5) as trans-cda-r2/profils-messages.md shapes it: one OBSERVATION group per document
    (the guide's examples carry a CDA N1 and a CDA N3), the PRT of the sender, the MetaDMPMSS OBX."""
    meta = {c: "N" for c in ("MASQUE_PS", "INVISIBLE_PATIENT", "INVISIBLE_REP_LEGAUX", "CONNEXION_SECRETE",
                             "MODIF_CONF_CODE", "DESTDMP", "DESTMSSANTEPS", "DESTMSSANTEPAT")} | {"DESTDMP": "Y"}
    meta |= flags or {}
    birth = patient["birth_date"].replace("-", "")
    prt_sb = sender or (f"PRT||UC||SB^^participation|{author['idnps']}^{author['family_name']}^{author['given_name']}"
                        f"^^^^^^ASIP-SANTE-PS&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS|||CHU^^^^^ASIP-SANTE-ST&1.2.250.1.71.4"
                        f".2.2&ISO^FINEG^^^{finess}")
    lines = [
        f"MSH|^~\\&|SIL|LABO|PFI|CHU|20261120100000||ORU^R01^ORU_R01|{control_id}|P|2.5|||||FRA|UNICODE UTF-8|||"
        "2.1^CISIS_CDA_HL7_V2",
        f"PID|||{patient['ins']}^^^ASIP-SANTE-INS-NIR&{patient['ins_oid']}&ISO^INS||{patient['family_name']}^"
        f"{patient['given_name']}^^^^^L||{birth}|{patient['sex']}",
        "PV1|1|I",
        "ORC|NW|",
        "OBR|1|||11502-2^CR d'examens biologiques^LN",
    ]
    for i, doc in enumerate(documents, start=1):
        lines.append(f"OBX|{i}|ED|11502-2^CR d'examens biologiques^LN||^TEXT^XML^Base64^"
                     f"{base64.b64encode(doc).decode()}||||||F")
        if i == 1:
            lines.append(prt_sb)
            lines += [f"PRT||UC||RCT^^participation|||||||||||^^X.400^{r}" for r in recipients]
    n = len(documents)
    lines += [f"OBX|{n + i}|CE|{code}^{code}^MetaDMPMSS||{value}^^expandedYes-NoIndicator||||||F"
              for i, (code, value) in enumerate(meta.items(), start=1)]
    return ("\r".join(lines) + "\r").encode("utf-8")


# -- Technical ACK (profils-messages.md, "Le message d'acquittement du message HL7v2") -----------------------

def test_the_guides_example_an_unsupported_version_is_ae_203_with_its_err(pfi_world):
    """The guide's example: `MSA|AE|12345` and `ERR||MSH^1^12|203^ Unsupported version^messageErrorCondition| E`,
    with MSH-3/4 and 5/6 swapped, MSH-9 ACK^<event>^ACK; MSH-12 the version the guide fixes for MDM (2.6), the
    message's own (2.3) not being one the ACK can be written in."""
    bench, patient, dr_a = pfi_world["bench"], pfi_world["patient"], pfi_world["pros"]["dr_a"]
    message = mdm("T02", patient, dr_a, dr_a["finess"], "1.2.250.1.999.30.1", control_id="12345")
    [ack] = send(bench, message.replace(b"|P|2.6|", b"|P|2.3|", 1))
    assert msa(ack) == ("AE", "12345")
    assert err(ack)[:3] == ("MSH^1^12", "203^Unsupported version^messageErrorCondition", "E")
    head = str(ack.segment("MSH")).split("|")
    assert head[2:6] == ["PFI", "CHU", "DPI", "CHU"] and head[8] == "ACK^T02^ACK" and head[11] == "2.6"
    entry = last_pfi(bench)
    assert (entry["verdict"], entry["code"], entry["ref"]) == ("refused", "HL7_203", "12345")


@pytest.mark.parametrize("mutate,code", [
    (lambda m: m.replace(b"MDM^T02^MDM_T02", b"ORM^O01^ORM_O01", 1), "200"),
    (lambda m: m.replace(b"MDM^T02^MDM_T02", b"MDM^T01^MDM_T01", 1), "201"),
    (lambda m: m.replace(b"ORC|NW|", b"ORC|CA|", 1), "207"),
])
def test_what_is_wrong_in_the_message_is_ae_never_ar(pfi_world, mutate, code):
    """MSA-1 AE: "le message contient des erreurs"; AR is "une raison circonstancielle, il peut être réémis plus
    tard": a DPI that resends on AR would resend these forever."""
    bench, patient, dr_a = pfi_world["bench"], pfi_world["patient"], pfi_world["pros"]["dr_a"]
    [ack] = send(bench, mutate(mdm("T02", patient, dr_a, dr_a["finess"], "1.2.250.1.999.31.1", control_id="W1")))
    assert msa(ack) == ("AE", "W1") and err(ack)[1].split("^")[::2] == [code, "messageErrorCondition"]


def test_a_store_unavailable_is_ar_and_the_message_sent_again_is_taken(pfi_world, monkeypatch):
    """AR only for the circumstantial refusal: the store cannot take the message now. Nothing was committed;
    the same message sent again once the store is back is fed."""
    bench, patient, dr_a = pfi_world["bench"], pfi_world["patient"], pfi_world["pros"]["dr_a"]
    world = bench.bench.world
    message = mdm("T02", patient, dr_a, dr_a["finess"], "1.2.250.1.999.32.1", control_id="BUSY")

    def locked(*args, **kwargs):
        raise sqlite3.OperationalError("database is locked")

    with monkeypatch.context() as m:
        m.setattr(world, "transaction", locked)
        [ack] = send(bench, message)
    assert msa(ack) == ("AR", "BUSY") and err(ack)[1].startswith("207^")
    assert "send it again later" in err(ack)[3]
    assert [e for e in bench.client.journal(channel="dmp")] == []
    [ack] = send(bench, message)
    assert msa(ack) == ("AA", "BUSY")
    assert [(e["operation"], e["verdict"]) for e in bench.client.journal(channel="dmp")] == [("TD2.1", "accepted")]


def test_an_unreadable_msh_2_still_gets_a_well_formed_ack_naming_msh_10(pfi_world):
    """MSH-2 cannot be read: the ACK is still well formed (hl7apy strict), MSA-2 names MSH-10, MSH-3/4 and 5/6
    swapped, MSH-9 ACK^T02^ACK, MSH-18 the message's charset, and ERR-8 quotes MSH-2 decoded in that charset."""
    bench, patient, dr_a = pfi_world["bench"], pfi_world["patient"], pfi_world["pros"]["dr_a"]
    message = mdm("T02", patient, dr_a, dr_a["finess"], "1.2.250.1.999.33.1", control_id="CS15")
    message = message.replace(b"UNICODE UTF-8", b"8859/15", 1).decode("utf-8").encode("iso-8859-15")
    message = message.replace(b"MSH|^~\\&|", b"MSH|^~\\&\xa4|", 1)   # a fifth character, the euro sign in 8859-15
    with MLLPClient("127.0.0.1", bench.ports["mllp"]) as client:
        client.socket.settimeout(10)
        raw = client.send_message(message)
    check_ack(raw)
    text = raw.decode("iso-8859-15")
    ack = hl7.parse(text.strip("\x0b\x1c\r"))
    assert msa(ack) == ("AE", "CS15")
    head = str(ack.segment("MSH")).split("|")
    assert head[2:6] == ["PFI", "CHU", "DPI", "CHU"] and head[8] == "ACK^T02^ACK" and head[17] == "8859/15"
    assert err(ack)[:3] == ("MSH^1^2", "101^Required field missing^messageErrorCondition", "E")
    assert "€" in err(ack)[3]


def test_the_strict_reader_is_not_fooled():
    """tests/kit/strict_hl7.py catches what the guide forbids: without this, its passes would prove nothing."""
    good_zam = ("MSH|^~\\&|PFI|X|DPI|Y|20261120||ZAM^Z02^ZAM_Z01|1|P|2.6|||||FRA|UNICODE UTF-8|||2.1^CISIS_CDA_HL7_V2\r"
                "OBX|1|CWE|ACK_RECEPTION_MSS^Accusé de réception MSSanté^AckMetierZAM|M1|Y^^expandedYes-NoIndicator"
                "||||||F\rOBX|2|XTN|DESTINATAIRE_MSS^Destinataire MSSanté^AckMetierZAM||^^X.400^a@b.mssante.fr"
                "||||||F\r")
    check_zam(good_zam.encode())
    for bad in (good_zam.replace("OBX|2|XTN|", "OBX|2|ST|").replace("^^X.400^a@", "a@"),   # the old second OBX
                good_zam.replace("|Y^^expanded", "|N^^expanded"),                         # N without ERR
                good_zam.replace("|||||F\rOBX|2", "|||||\rOBX|2")):                     # OBX-11 missing
        with pytest.raises((AssertionError, HL7apyException)):
            check_zam(bad.encode())
    good_ack = "MSH|^~\\&|PFI|X|DPI|Y|20261120||ACK^T02^ACK|1|P|2.6|||||FRA|UNICODE UTF-8\rMSA|AE|M1\r"
    check_ack((good_ack + "ERR||MSH^1^12|203^Unsupported version^messageErrorCondition|E\r").encode())
    for bad in (good_ack.replace("MSA|AE|M1", "MSA|AE|"),
                good_ack + "ERR||MSH^1^12|203^Unsupported version^HL70357|E\r",
                good_ack + "ERR||MSH|203^Unsupported version^messageErrorCondition|E\r"):
        with pytest.raises((AssertionError, HL7apyException)):
            check_ack(bad.encode())


# -- Both guide versions (MSH-21; change-log.md) --------------------------------------------------------------

def guide(message: bytes, version: str, orc1: str) -> bytes:
    return message.replace(b"|||2.1^CISIS_CDA_HL7_V2", f"|||{version}^CISIS_CDA_HL7_V2".encode(), 1).replace(
        b"\rORC|NW|", f"\rORC|{orc1}|".encode(), 1).replace(b"\rORC|RO|", f"\rORC|{orc1}|".encode(), 1).replace(
        b"\rORC|CA|", f"\rORC|{orc1}|".encode(), 1)


def test_guide_2_0_reads_orc_1_sc_for_every_action_and_the_journal_says_so(pfi_world):
    bench, patient, dr_a = pfi_world["bench"], pfi_world["patient"], pfi_world["pros"]["dr_a"]
    v1, v2 = "1.2.250.1.999.34.1", "1.2.250.1.999.34.2"
    acks = send(bench, guide(mdm("T02", patient, dr_a, dr_a["finess"], v1, control_id="G1"), "2.0", "SC"),
                guide(mdm("T10", patient, dr_a, dr_a["finess"], v2, v1, control_id="G2"), "2.0", "SC"),
                guide(mdm("T04", patient, dr_a, dr_a["finess"], v2, v1, control_id="G3"), "2.0", "SC"))
    assert [msa(a) for a in acks] == [("AA", "G1"), ("AA", "G2"), ("AA", "G3")]
    dmp = [(e["operation"], e["verdict"]) for e in bench.client.journal(channel="dmp")]
    assert dmp == [("TD2.1", "accepted"), ("TD2.1", "accepted"), ("TD3.3c", "accepted")]
    said = [f["message"] for f in last_pfi(bench)["findings"] if f["rule"] == "CDA-HL7/MSH-21"]
    assert said == ["read by the rules of guide 2.0 (MSH-21 2.0^CISIS_CDA_HL7_V2)"]


def test_guide_2_1_reads_nw_ro_ca_and_refuses_sc(pfi_world):
    bench, patient, dr_a = pfi_world["bench"], pfi_world["patient"], pfi_world["pros"]["dr_a"]
    [ok, sc] = send(bench, mdm("T02", patient, dr_a, dr_a["finess"], "1.2.250.1.999.35.1", control_id="H1"),
                    guide(mdm("T02", patient, dr_a, dr_a["finess"], "1.2.250.1.999.35.2", control_id="H2"), "2.1",
                          "SC"))
    assert msa(ok) == ("AA", "H1") and msa(sc) == ("AE", "H2")
    assert err(sc)[0] == "ORC^1^1" and "SC is guide 2.0's" in err(sc)[3]
    said = [f["message"] for e in bench.client.journal(channel="pfi") if e["ref"] == "H1" for f in e["findings"]
            if f["rule"] == "CDA-HL7/MSH-21"]
    assert said == ["read by the rules of guide 2.1 (MSH-21 2.1^CISIS_CDA_HL7_V2)"]


def test_another_profile_in_msh_21_is_ae_103(pfi_world):
    bench, patient, dr_a = pfi_world["bench"], pfi_world["patient"], pfi_world["pros"]["dr_a"]
    message = mdm("T02", patient, dr_a, dr_a["finess"], "1.2.250.1.999.36.1", control_id="P1")
    [ack] = send(bench, message.replace(b"2.1^CISIS_CDA_HL7_V2", b"1.1^CISIS_CDA_HL7_LPS", 1))
    assert msa(ack) == ("AE", "P1") and err(ack)[:2] == ("MSH^1^21", "103^Table value not found^messageErrorCondition")


# -- Documents and recipients (profils-messages.md, "Les données concernant la demande de traitement...") ---

def test_an_oru_with_two_documents_feeds_each_and_sends_a_z01_for_each(pfi_world):
    """"Description fonctionnelle du message ORU": a second OBSERVATION group may carry the same document in
    another format (the guide's examples: N1 and N3 in one message). Each is fed; each gets its ZAM^Z01."""
    bench, patient, dr_a = pfi_world["bench"], pfi_world["patient"], pfi_world["pros"]["dr_a"]
    d1, d2 = "1.2.250.1.999.37.1", "1.2.250.1.999.37.2"
    dpi = FakeDpi()
    door = PfiDoor(bench.bench.context, PfiSettings(port=0, dpi=("127.0.0.1", dpi.port), outbound_backoff=0.05))
    port = door.start()["mllp"]
    try:
        with MLLPClient("127.0.0.1", port) as client:
            client.socket.settimeout(10)
            ack = parse_ack(client.send_message(oru(patient, dr_a, dr_a["finess"], [
                cda_for(patient, d1, dr_a), cda_for(patient, d2, dr_a)], control_id="TWO")))
        assert msa(ack) == ("AA", "TWO")
        fed = [(e["operation"], e["verdict"], e["document"]) for e in bench.client.journal(channel="dmp")]
        assert fed == [("TD2.1", "accepted", d1), ("TD2.1", "accepted", d2)]
        assert any("carries 2 documents" in f["message"] for f in last_pfi(bench)["findings"])
        assert wait_for(lambda: len(dpi.received) == 2)
        zams = [parse_hl7(p) for p in dpi.received]
        assert [(z.operation, z.get("OBX", 4), z.get("OBX", 5)) for z in zams] == [("ZAM^Z01", "TWO", "Y")] * 2
    finally:
        door.stop()
        dpi.close()


def test_an_oru_with_two_documents_sent_by_mssante_says_which_one_the_mail_carries(pfi_world):
    bench, patient, pros = pfi_world["bench"], pfi_world["patient"], pfi_world["pros"]
    dr_a = pros["dr_a"]
    d1, d2 = "1.2.250.1.999.45.1", "1.2.250.1.999.45.2"
    [ack] = send(bench, oru(patient, dr_a, dr_a["finess"], [cda_for(patient, d1, dr_a), cda_for(patient, d2, dr_a)],
                            control_id="TWO-MSS", flags={"DESTMSSANTEPS": "Y", "INVISIBLE_PATIENT": "Y"},
                            recipients=(pros["dr_b"]["mssante"],)))
    assert msa(ack) == ("AA", "TWO-MSS")
    said = [f["message"] for f in last_pfi(bench)["findings"] if f["rule"] == "PFI/MSS"]
    assert said == [f"the MSSanté mail carries the first document ({d1}) only, not {d2}"]


def test_an_oru_whose_second_document_cannot_be_taken_is_refused_naming_it(pfi_world):
    bench, patient, dr_a = pfi_world["bench"], pfi_world["patient"], pfi_world["pros"]["dr_a"]
    [ack] = send(bench, oru(patient, dr_a, dr_a["finess"], [
        cda_for(patient, "1.2.250.1.999.38.1", dr_a), b"Compte rendu en texte libre"], control_id="HALF"))
    assert msa(ack) == ("AE", "HALF")
    location, code, _, text = err(ack)
    assert (location, code.split("^")[0]) == ("OBX^2^5", "207") and "document 2 of 2 (OBX 2)" in text
    assert bench.client.journal(channel="dmp") == []      # nothing fed, nothing dropped silently
    assert last_pfi(bench)["code"] == "HL7_207"


def test_an_mdm_carries_one_document_only(pfi_world):
    """change-log.md, version 2.0: "Le message HL7v2 MDM ne peut transmettre qu'un seul document"."""
    bench, patient, dr_a = pfi_world["bench"], pfi_world["patient"], pfi_world["pros"]["dr_a"]
    message = mdm("T02", patient, dr_a, dr_a["finess"], "1.2.250.1.999.39.1", control_id="MD2")
    first_obx = [line for line in message.split(b"\r") if line.startswith(b"OBX|1|ED|")][0]
    message = message.replace(first_obx, first_obx + b"\r" + first_obx.replace(b"OBX|1|", b"OBX|2|"), 1)
    [ack] = send(bench, message)
    assert msa(ack) == ("AE", "MD2") and err(ack)[:2] == ("OBX^2", "100^Segment sequence error^messageErrorCondition")
    assert "one document only" in err(ack)[3]


def test_a_device_sender_without_prt_5_is_accepted(pfi_world):
    """PRT expéditeur: PRT-5 "requis si l'expéditeur est un professionnel", PRT-10 "requis si l'auteur est un
    dispositif". A device of the CHU (PRT-10, FINEG in PRT-8) feeds the DMP for its structure."""
    bench, patient, dr_a = pfi_world["bench"], pfi_world["patient"], pfi_world["pros"]["dr_a"]
    device = (f"PRT||UC||SB^^participation||||CHU^^^^^ASIP-SANTE-ST&1.2.250.1.71.4.2.2&ISO^FINEG^^^{dr_a['finess']}"
              "||AUTOMATE-42")
    [ack] = send(bench, oru(patient, dr_a, dr_a["finess"], [cda_for(patient, "1.2.250.1.999.40.1", dr_a)],
                            control_id="DEV", sender=device))
    assert msa(ack) == ("AA", "DEV")
    fed = bench.client.journal(channel="dmp")[-1]
    assert (fed["operation"], fed["verdict"], fed["actor"]) == ("TD2.1", "accepted", "device:AUTOMATE-42"), (fed["code"], fed["findings"])
    [ack] = send(bench, oru(patient, dr_a, dr_a["finess"], [cda_for(patient, "1.2.250.1.999.40.2", dr_a)],
                            control_id="NOBODY", sender=device.replace("||AUTOMATE-42", "")))
    assert msa(ack) == ("AE", "NOBODY") and "neither a professional (PRT-5) nor a device (PRT-10)" in err(ack)[3]


def test_the_patient_recipient_must_be_pid_3s_patient(pfi_world):
    """"Echange MSSanté Patient": the patient's address <INS>@patient.mssante.fr in a PRT RCT. Another
    patient's mailbox would disclose the document: refused, the reason in ERR-8 and in the journal."""
    bench, patient, dr_a = pfi_world["bench"], pfi_world["patient"], pfi_world["pros"]["dr_a"]
    other = "279035121518989@patient.mssante.fr"
    [ack] = send(bench, mdm("T02", patient, dr_a, dr_a["finess"], "1.2.250.1.999.41.1", control_id="PAT-X",
                            flags={"DESTMSSANTEPAT": "Y"}, recipients=(other,)))
    assert msa(ack) == ("AE", "PAT-X") and "another patient's mailbox" in err(ack)[3]
    entry = last_pfi(bench)
    assert entry["verdict"] == "refused" and any(other in f["message"] for f in entry["findings"])
    own = f"{patient['ins']}@patient.mssante.fr"
    [ack] = send(bench, mdm("T02", patient, dr_a, dr_a["finess"], "1.2.250.1.999.41.2", control_id="PAT-OK",
                            flags={"DESTMSSANTEPAT": "Y"}, recipients=(own,)))
    assert msa(ack) == ("AA", "PAT-OK")


# regles-gestion-mssante.md, as of 21 April 2026: (flags, MSA-1)
Y = "Y"
MSS_CASES = {
    "ps-and-patient": ({"DESTMSSANTEPS": Y, "DESTMSSANTEPAT": Y}, "AA"),
    "ps-and-patient-secret-connection": ({"DESTMSSANTEPS": Y, "DESTMSSANTEPAT": Y, "CONNEXION_SECRETE": Y}, "AA"),
    "ps-and-patient-hidden-from-ps": ({"DESTMSSANTEPS": Y, "DESTMSSANTEPAT": Y, "MASQUE_PS": Y}, "AE"),
    "ps-only-invisible-patient": ({"DESTMSSANTEPS": Y, "INVISIBLE_PATIENT": Y}, "AA"),
    # the April 2026 change: CONNEXION_SECRETE N or Y when a professional receives it ...
    "ps-only-secret-connection": ({"DESTMSSANTEPS": Y, "INVISIBLE_PATIENT": Y, "CONNEXION_SECRETE": Y}, "AA"),
    # ... and MASQUE_PS N only (it was "Y ou N")
    "ps-only-hidden-from-ps": ({"DESTMSSANTEPS": Y, "INVISIBLE_PATIENT": Y, "MASQUE_PS": Y}, "AE"),
    "ps-only-visible-to-the-patient": ({"DESTMSSANTEPS": Y, "INVISIBLE_PATIENT": "N"}, "AE"),
    "ps-only-hidden-from-representatives": ({"DESTMSSANTEPS": Y, "INVISIBLE_PATIENT": Y,
                                             "INVISIBLE_REP_LEGAUX": Y}, "AE"),
    "patient-only": ({"DESTMSSANTEPAT": Y, "DESTDMP": "N", "MASQUE_PS": Y, "INVISIBLE_REP_LEGAUX": Y}, "AA"),
    "patient-only-and-dmp": ({"DESTMSSANTEPAT": Y, "DESTDMP": Y}, "AE"),
    "patient-only-secret-connection": ({"DESTMSSANTEPAT": Y, "DESTDMP": "N", "CONNEXION_SECRETE": Y}, "AE"),
    "patient-only-invisible-patient": ({"DESTMSSANTEPAT": Y, "DESTDMP": "N", "INVISIBLE_PATIENT": Y}, "AE"),
    "no-mssante-exchange": ({"MASQUE_PS": Y, "CONNEXION_SECRETE": Y}, "AA"),
}


@pytest.mark.parametrize("case", MSS_CASES)
def test_the_mssante_combination_table(pfi_world, case):
    """regles-gestion-mssante.md: "une liste exhaustive des combinaisons possibles des OBX pour l'échange
    MSSANTE. Les cas non représentés génèrent un message d'erreur": AE 207, the table named in ERR-8."""
    bench, patient, pros = pfi_world["bench"], pfi_world["patient"], pfi_world["pros"]
    flags, expected = MSS_CASES[case]
    recipients = (pros["dr_b"]["mssante"], f"{patient['ins']}@patient.mssante.fr")
    [ack] = send(bench, mdm("T02", patient, pros["dr_a"], pros["dr_a"]["finess"], "1.2.250.1.999.42.1",
                            control_id="MSS", flags=flags, recipients=recipients))
    assert msa(ack) == (expected, "MSS")
    if expected == "AE":
        assert err(ack)[1].startswith("207^") and "regles-gestion-mssante.md" in err(ack)[3]
        assert last_pfi(bench)["code"] == "HL7_207"


# -- ZAM business acknowledgements (profils-messages.md, "Description des messages HL7 d'accusés métier") ----

def test_for_one_mail_z02_reaches_the_dpi_before_z03_and_the_delivery_is_journaled_before_its_mdn(pfi_world):
    bench, patient, pros = pfi_world["bench"], pfi_world["patient"], pfi_world["pros"]
    to = pros["dr_b"]["mssante"]
    world = bench.bench.world
    with world.transaction() as tx:
        world.mss.set_behaviour(tx, to, {"on_receive": "integrate"})
    dpi = FakeDpi()
    door = PfiDoor(bench.bench.context, PfiSettings(port=0, dpi=("127.0.0.1", dpi.port), outbound_backoff=0.05))
    port = door.start()["mllp"]
    try:
        message = mdm("T02", patient, pros["dr_a"], pros["dr_a"]["finess"], "1.2.250.1.999.43.1", control_id="ORD",
                      flags={"DESTDMP": "N", "DESTMSSANTEPS": Y, "ACK_RECEPTION": Y, "ACK_LECTURE_MSS": Y},
                      recipients=(to,))
        with MLLPClient("127.0.0.1", port) as client:
            client.socket.settimeout(10)
            assert msa(parse_ack(client.send_message(message))) == ("AA", "ORD")
        assert wait_for(lambda: len(dpi.received) >= 2)
        zams = [parse_hl7(p) for p in dpi.received]
        assert [z.operation for z in zams] == ["ZAM^Z02", "ZAM^Z03"]
        assert [z.value(z.segments("OBX")[1], 5, 1, 4) for z in zams] == [to.lower()] * 2
        mss = [(e["operation"], e["ref"]) for e in bench.client.journal(channel="mss")]
        assert [op for op, _ in mss] == ["DELIVER", "MDN"] and mss[0][1] == mss[1][1]
    finally:
        door.stop()
        dpi.close()


def test_z03_err_5_is_the_application_error_condition_of_the_mdn(pfi_world):
    """ZAM^Z03 ERR-5 `code^libellé^applicationErrorCondition`, the label from error-codes.md's table."""
    bench, patient, pros = pfi_world["bench"], pfi_world["patient"], pfi_world["pros"]
    to = pros["dr_b"]["mssante"]
    world = bench.bench.world
    with world.transaction() as tx:
        world.mss.set_behaviour(tx, to, {"on_receive": "fail_integration", "error": "902^patient inconnu"})
    dpi = FakeDpi()
    door = PfiDoor(bench.bench.context, PfiSettings(port=0, dpi=("127.0.0.1", dpi.port), outbound_backoff=0.05))
    port = door.start()["mllp"]
    try:
        message = mdm("T02", patient, pros["dr_a"], pros["dr_a"]["finess"], "1.2.250.1.999.44.1", control_id="Z3N",
                      flags={"DESTDMP": "N", "DESTMSSANTEPS": Y, "ACK_LECTURE_MSS": Y}, recipients=(to,))
        with MLLPClient("127.0.0.1", port) as client:
            client.socket.settimeout(10)
            assert msa(parse_ack(client.send_message(message))) == ("AA", "Z3N")
        assert wait_for(lambda: len(dpi.received) >= 1)
        [zam] = [parse_hl7(p) for p in dpi.received]
        assert (zam.operation, zam.get("OBX", 5)) == ("ZAM^Z03", "N")
        errs = zam.segments("ERR")[0]
        assert errs[3] == "207^Application error^messageErrorCondition"
        assert errs[5] == "902^Identifiant patient inconnu^applicationErrorCondition"
    finally:
        door.stop()
        dpi.close()
