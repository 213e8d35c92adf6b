"""Every HL7 message of the ANS corpus, sent with python-hl7's MLLP client, gets the answer stated here,
file by file (CORPUS.md lists the examples' quirks), and the MDM series leaves the DMP in the right state."""

import re

import pytest
from hl7.client import MLLPClient
from kit.pfi import parse_ack

MDM = "hl7v2/Trans_Doc-CDA-HL7V2/MDM"
ORU = "hl7v2/Trans_Doc-CDA-HL7V2/ORU"
PAM = "hl7v2/Consentement_DMP_PAMFR"

# file -> (MSA-1, ERR-3 or None, a phrase of ERR-8 or of a finding)
# The three MDM files ask for an MSSanté exchange to a professional only (DESTMSSANTEPS=Y, DESTMSSANTEPAT=N)
# with INVISIBLE_PATIENT=N (RPLC, DEL) or INVISIBLE_REP_LEGAUX=Y (INIT): trans-cda-r2/regles-gestion-mssante.md
# allows that exchange only with MASQUE_PS N, INVISIBLE_PATIENT Y, INVISIBLE_REP_LEGAUX N, and "les cas non
# représentés génèrent un message d'erreur": AE 207, as a PFI applying the table answers. The series test below
# sends them without the MSSanté exchange.
MSS_TABLE = "regles-gestion-mssante.md"
EXPECTED = {
    f"{MDM}/Transmission_initiale_MDM/message_MDM_CR_Radio_INIT_N1_Base64.er7": ("AE", "207", MSS_TABLE),
    # its document OBX carries the base64 of a sentence, not a CDA
    f"{MDM}/Transmission_initiale_MDM/message_MDM_CR_Radio_INIT_N1.er7": ("AE", "207", "not a CDA"),
    f"{MDM}/Remplacement_MDM/message_MDM_CR_Radio_RPLC_N1.er7": ("AE", "207", MSS_TABLE),
    f"{MDM}/Suppression_MDM/message_MDM_CR_Radio_DEL_N1.er7": ("AE", "207", MSS_TABLE),
    # its patient recipient 27707279035121518989@patient.mssante.fr is not PID-3's 279035121518989: another
    # patient's mailbox (profils-messages.md, "Echange MSSanté Patient")
    f"{ORU}/Transmission_initiale_ORU/message_ORU_CR_Bio_INIT_N3_SEGUR.hl7": ("AE", "207", "another patient"),
    # a truncated mail body; a 10-digit PRT-8.10 (DMP/CONF.12)
    f"{ORU}/Remplacement_ORU/message_ORU_CR_Bio_RPLC_N3_SEGUR.hl7": ("AA", None, "not a valid FINESS"),
    # its CDA's patient (277076322082910, OID .4.8) is not PID-3's
    f"{ORU}/Suppression_ORU/message_ORU_CR_Bio_DEL_N3_SEGUR.hl7": ("AE", "207", "is not PID-3's"),
    f"{PAM}/ConsentementConsultation_NonOppositionAlimentation.er7": ("AA", None, "separated by LF"),
    f"{PAM}/NonConsentementConsultation_NonOppositionAlimentation.er7": ("AA", None, "separated by LF"),
    f"{PAM}/NonConsentementConsultation_OppositionAlimentation.er7": ("AA", None, "separated by LF"),
    f"{PAM}/NonRecueillieConsentementConsultation_NonOppositionAlimentation.er7": ("AA", None, "separated by LF"),
    f"{PAM}/NonRecueillieConsentementConsultation_NonRecueillieOppositionAlimentation.er7":
        ("AA", None, "separated by LF"),
}
CONSENT = {
    "ConsentementConsultation_NonOppositionAlimentation.er7": ("IC", "INO"),
    "NonConsentementConsultation_NonOppositionAlimentation.er7": ("INC", "INO"),
    "NonConsentementConsultation_OppositionAlimentation.er7": ("INC", "IO"),
    "NonRecueillieConsentementConsultation_NonOppositionAlimentation.er7": ("NA", "INO"),
    "NonRecueillieConsentementConsultation_NonRecueillieOppositionAlimentation.er7": ("NA", "NA"),
}
# The people the ANS examples name; their IDNPS fail the RPPS check digit (CORPUS.md), hence check_digits.
CORPUS_WORLD = """\
id: corpus-ans
title: Les personnes des exemples ANS
world:
  structures: [{id: org_y, finess: "300017985", name: Organisation-Y}]
  professionals:
    - {id: thomas, idnps: "801234564895", check_digits: false, family_name: Eric, given_name: Thomas, structure: org_y}
    - {id: diaz, idnps: "801234567866", check_digits: false, family_name: DIAZ, given_name: Thierry, structure: org_y}
  patients:
    - {id: dominique, ins: "279035121518989", family_name: PAT-TROIS, given_name: DOMINIQUE, birth_date: "1979-03-28",
       sex: F, authorizations: [{structure: org_y}]}
"""


def test_every_corpus_message_is_stated(corpus):
    found = {str(p.relative_to(corpus)) for p in (corpus / "hl7v2").rglob("*") if p.suffix in (".er7", ".hl7")
             and p.name != "ack.er7"}
    assert found == set(EXPECTED)


def send_file(mockbench, path, edit=lambda raw: raw):
    with MLLPClient("127.0.0.1", mockbench.ports["mllp"]) as client:
        client.socket.settimeout(10)
        return parse_ack(client.send_message(edit(path.read_bytes())))


def without_mssante(raw: bytes) -> bytes:
    """The file with DESTMSSANTEPS at N: no MSSanté exchange, so the table of regles-gestion-mssante.md does not
    apply, and the DMP series can be played as published otherwise."""
    return re.sub(rb"(DESTMSSANTEPS\^[^|]*\|\|)Y\^", rb"\1N^", raw)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_message_answer(mockbench, corpus, name):
    mockbench.client.load_yaml(CORPUS_WORLD)
    ack = send_file(mockbench, corpus / name)
    code, error, phrase = EXPECTED[name]
    assert str(ack.segment("MSA")[1]) == code
    assert str(ack.segment("MSA")[2]) == ack_target(corpus / name)
    entry = [e for e in mockbench.client.journal(channel="pfi")][-1]
    said = " ".join([f["message"] for f in entry["findings"]])
    if error:
        err = ack.segment("ERR")
        assert str(err[3]).split("^")[0] == error and phrase in str(err[8])
        assert entry["verdict"] == "refused" and entry["code"] == f"HL7_{error}"
    else:
        assert not [s for s in ack if str(s[0]) == "ERR"]
        assert entry["verdict"] == "accepted" and phrase in said, said
    if name.startswith(PAM):
        assert tuple(mockbench.client.patient("dominique")["consent"].values()) == CONSENT[name.split("/")[-1]]


def ack_target(path) -> str:
    first = path.read_bytes().split(b"\n")[0].split(b"\r")[0]
    return first.split(b"|")[9].decode()


def test_mdm_series_leaves_the_dmp_in_the_right_state(mockbench, corpus):
    mockbench.client.load_yaml(CORPUS_WORLD)
    acks = [send_file(mockbench, corpus / f"{MDM}/{name}", without_mssante) for name in (
        "Transmission_initiale_MDM/message_MDM_CR_Radio_INIT_N1_Base64.er7",
        "Remplacement_MDM/message_MDM_CR_Radio_RPLC_N1.er7",
        "Suppression_MDM/message_MDM_CR_Radio_DEL_N1.er7")]
    # the answers have the shape of the guide's expected ACKs (ack.er7): MSH-3/4 and 5/6 swapped, MSA-2 = 015
    expected = (corpus / f"{MDM}/Remplacement_MDM/ack.er7").read_text().split("\n")[0].split("|")
    got = str(acks[1].segment("MSH")).split("|")
    assert got[2:6] == expected[2:6] and got[8] == expected[8] == "ACK^T10^ACK"
    assert [str(a.segment("MSA")) for a in acks] == ["MSA|AA|015"] * 3
    base = "1.2.250.1.71.4.2.2.120456789.710240000"
    docs = {d["unique_id"]: d for d in mockbench.client.documents("dominique", history=True)}
    assert docs[base + "81"]["status"] == "deprecated" and docs[base + "81"]["replaced_by"] == base + "82"
    assert docs[base + "82"]["status"] == "deleted" and docs[base + "82"]["replaces"] == base + "81"
    # INIT asked for INVISIBLE_PATIENT and INVISIBLE_REP_LEGAUX; the replacement keeps the secret connection only
    assert docs[base + "81"]["confidentiality"] == ["INVISIBLE_PATIENT", "INVISIBLE_REPRESENTANTS_LEGAUX"]
    assert docs[base + "82"]["confidentiality"] == ["INVISIBLE_REPRESENTANTS_LEGAUX"]
    dmp = [(e["operation"], e["verdict"]) for e in mockbench.client.journal(channel="dmp")]
    assert dmp == [("TD2.1", "accepted"), ("TD2.1", "accepted"), ("TD3.3c", "accepted")]


def test_oru_initial_then_replacement(mockbench, corpus):
    """The ORU files do not form one series (CORPUS.md): the replacement names a parent never fed. The initial
    file is sent with its patient recipient corrected to PID-3's mailbox."""
    mockbench.client.load_yaml(CORPUS_WORLD)
    send_file(mockbench, corpus / f"{ORU}/Transmission_initiale_ORU/message_ORU_CR_Bio_INIT_N3_SEGUR.hl7",
              lambda raw: raw.replace(b"^27707279035121518989@", b"^279035121518989@"))
    send_file(mockbench, corpus / f"{ORU}/Remplacement_ORU/message_ORU_CR_Bio_RPLC_N3_SEGUR.hl7")
    dmp = [(e["operation"], e["verdict"], e["code"]) for e in mockbench.client.journal(channel="dmp")]
    assert dmp == [("TD2.1", "accepted", None), ("TD2.1", "refused", "DOCUMENT_UNKNOWN")]
