"""The PFI door against hostile and broken senders, through real sockets.

For each case: (1) the answer, an ACK AE/AR whose ERR names the table-0357 code, or a closed connection
where no answer is possible; (2) a journal entry on channel pfi that says why; (3) the bench keeps serving:
a valid ADT still gets AA on a new connection, and on the same one while the stream is in sync.

Byte-level abuse goes through raw sockets; framed messages through `send_and_receive`. Limits that the
Config does not expose (frame timeout, size) are set on a second door started on the same bench."""

from __future__ import annotations

import base64
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator

import hl7
import pytest
from kit.strict_hl7 import check_ack

from mockbench.formats.cda import minimal_cda
from mockbench.protocols.pfi.door import PfiDoor, PfiSettings
from mockbench.protocols.pfi.mllp import CR, FS, VT, MllpLimits, frame, send_and_receive

IO = 5.0  # bound of any single exchange, in seconds

INS, INS_OID = "279035121518989", "1.2.250.1.213.1.4.10"
RPPS = "10000000009"
IDNPS = "8" + RPPS
FINESS = "300017985"
DOMINIQUE = {"id": "dominique", "ins": INS, "family": "PAT-TROIS", "given": "DOMINIQUE", "birth": "19790328",
             "sex": "F"}
# Œ exists in ISO 8859-15 (0xBC) and not in 8859-1, where 0xBC is ¼: only a right decoding finds this patient.
NOEL = {"id": "noel", "ins": "285127505612353", "family": "CŒUR-LÉGER", "given": "NOËL", "birth": "19851205",
        "sex": "F"}

SCENARIO = f"""
id: pfi-hostile
title: PFI face à des émetteurs hostiles
world:
  structures:
    - id: chu
      finess: "{FINESS}"
  professionals:
    - id: dr
      rpps: "{RPPS}"
      family_name: MARTIN
      given_name: Jeanne
      structure: chu
  patients:
""" + "".join(f"""
    - id: {p['id']}
      ins: "{p['ins']}"
      family_name: "{p['family']}"
      given_name: "{p['given']}"
      birth_date: "{p['birth'][:4]}-{p['birth'][4:6]}-{p['birth'][6:]}"
      sex: {p['sex']}
      authorizations:
        - structure: chu
""" for p in (DOMINIQUE, NOEL))

EVENTS = {"T02": ("NW", "F"), "T10": ("RO", "C"), "T04": ("CA", "D")}


# -- messages, built from scratch ------------------------------------------------------------------------

def msh(cid: str, msg_type: str, version: str, charset: str = "UNICODE UTF-8", app: str = "DPI") -> str:
    return (f"MSH|^~\\&|{app}|HOP|PFI|ANS|20250615120000||{msg_type}|{cid}|P|{version}|||||FRA|{charset}|||"
            "2.1^CISIS_CDA_HL7_V2")


def pid(patient: dict, ins: str | None = None) -> str:
    return (f"PID|||{ins or patient['ins']}^^^ASIP-SANTE-INS-NIR&{INS_OID}&ISO^INS||{patient['family']}^"
            f"{patient['given']}^^^^^L||{patient['birth']}|{patient['sex']}")


def adt(cid: str, patient: dict = DOMINIQUE, charset: str = "UNICODE UTF-8", app: str = "GAM") -> str:
    """A PAM.fr ADT^A01 whose ZFA records consultation consent (IC) and no feeding opposition (INO)."""
    return "\r".join([
        msh(cid, "ADT^A01^ADT_A01", "2.5", charset, app),
        "EVN||20250615120000",
        pid(patient),
        "PV1|1|I",
        "ZFA|ACTIF|20250615120000|||||||INO|20250615120000|IC|20250615120000",
    ]) + "\r"


def cda(unique_id: str, patient: dict = DOMINIQUE, ins: str | None = None) -> bytes:
    birth = patient["birth"]
    return minimal_cda(unique_id=unique_id, ins=ins or patient["ins"], ins_oid=INS_OID, type_code="11488-4",
                       title="Compte rendu", author_idnps=IDNPS, author_family="MARTIN", author_given="Jeanne",
                       patient_family=patient["family"], patient_given=patient["given"],
                       birth_date=f"{birth[:4]}-{birth[4:6]}-{birth[6:]}", sex=patient["sex"],
                       effective_time="2025-06-15T12:00:00", text="Examen normal, sans particularité.")


def mdm(cid: str, *, event: str = "T02", msg_type: str | None = None, version: str = "2.6", orc1: str | None = None,
        obx11: str | None = None, document: str | None = None, patient: dict = DOMINIQUE,
        charset: str = "UNICODE UTF-8", drop: tuple[str, ...] = ()) -> str:
    """An MDM as the ANS guide shapes it; `document` replaces the base64 of a valid CDA in the document OBX."""
    unique_id = f"2.25.{abs(hash(cid)) % 10**12}"
    orc, status = EVENTS.get(event, ("NW", "F"))
    b64 = document if document is not None else base64.b64encode(cda(unique_id, patient)).decode()
    segments = [
        msh(cid, msg_type or f"MDM^{event}^MDM_T02", version, charset),
        "EVN||20250615120000",
        pid(patient),
        "PV1|1|I",
        f"ORC|{orc1 if orc1 is not None else orc}|",
        "OBR|1|||11488-4^Compte rendu^LN|",
        f"TXA|1|11488-4|TEXT|20250615120000||||||||{unique_id}",
        f"OBX|1|ED|11488-4^CR^LN||^text^XML^Base64^{b64}||||||{obx11 if obx11 is not None else status}",
        f"PRT||UC||SB^^participation|{IDNPS}^MARTIN^Jeanne^^^^^^ASIP-SANTE-PS&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS"
        f"|||Org^^^^^ASIP-SANTE-ST&1.2.250.1.71.4.2.2&ISO^FINEG^^^{FINESS}",
        "OBX|2|CWE|DESTDMP^Destinataire DMP^MetaDMPMSS||Y^^expandedYes-NoIndicator||||||F",
    ]
    return "\r".join(s for s in segments if s[:3] not in drop) + "\r"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


ENTITY_BOMB = (b'<?xml version="1.0"?>\n<!DOCTYPE ClinicalDocument [\n<!ENTITY a "aaaaaaaaaaaaaaaaaaaa">\n'
               + b"".join(b'<!ENTITY %c "%s">\n' % (ord("b") + i, b"".join([b"&%c;" % (ord("a") + i)] * 10))
                          for i in range(9))
               + b']>\n<ClinicalDocument xmlns="urn:hl7-org:v3"><title>&j;</title></ClinicalDocument>\n')
EXTERNAL_ENTITY = (b'<?xml version="1.0"?>\n<!DOCTYPE ClinicalDocument [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
                   b'<ClinicalDocument xmlns="urn:hl7-org:v3"><title>&x;</title></ClinicalDocument>\n')


# -- sockets, ACKs, journal ------------------------------------------------------------------------------

class Conn:
    """A raw client socket: frames in and out by hand, every wait bounded."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=IO)
        self.buffer = b""

    def __enter__(self) -> Conn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_frame(self, bound: float = IO) -> bytes | None:
        """The next answer's payload, or None when the peer closed (or reset) first."""
        deadline = time.monotonic() + bound
        while True:
            start = self.buffer.find(VT)
            end = self.buffer.find(FS + CR, start + 1)
            if start >= 0 and end >= 0:
                payload, self.buffer = self.buffer[start + 1:end], self.buffer[end + 2:]
                return payload
            chunk = self._recv(deadline)
            if not chunk:
                return None
            self.buffer += chunk

    def exchange(self, payload: bytes) -> bytes:
        self.send(frame(payload))
        answer = self.read_frame()
        assert answer is not None, "the door closed the connection instead of answering"
        return answer

    def wait_closed(self, bound: float) -> float:
        """Seconds until the peer closed (anything it sends meanwhile is dropped); fails past `bound`."""
        started = time.monotonic()
        deadline = started + bound
        while self._recv(deadline):
            pass
        return time.monotonic() - started

    def _recv(self, deadline: float) -> bytes:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError("no answer and no close within the bound")
        self.sock.settimeout(remaining)
        try:
            return self.sock.recv(65536)
        except TimeoutError:
            raise AssertionError("no answer and no close within the bound") from None
        except ConnectionError:
            return b""  # reset: closed as well

    def reset(self) -> None:
        """Close with an RST rather than a FIN."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


def parse_ack(raw: bytes, encoding: str = "utf-8") -> hl7.Message:
    check_ack(raw)   # hl7apy, strict mode (tests/kit/strict_hl7.py)
    return hl7.parse(raw.decode(encoding).replace("\n", "\r"))


def assert_ack(raw: bytes, code: str, error: str | None = None, *, control_id: str | None = None,
               says: str | None = None, encoding: str = "utf-8") -> hl7.Message:
    ack = parse_ack(raw, encoding)
    text = raw.decode(encoding, "replace").replace("\r", "\n")
    assert str(ack.segment("MSH")[9]).startswith("ACK"), text
    msa = ack.segment("MSA")
    assert str(msa[1]) == code, text
    if control_id is not None:
        assert str(msa[2]) == control_id, text
    if error is None:
        assert not [s for s in ack if str(s[0]) == "ERR"], text
    else:
        err = ack.segment("ERR")
        code_, label, table = (str(err[3]).split("^") + ["", ""])[:3]
        assert (code_, table) == (error, "messageErrorCondition") and label, text
        if says is not None:
            assert says in str(err[8]), text
    return ack


def journal(bench, channel: str = "pfi") -> list[dict]:
    with bench.world.transaction() as tx:
        return bench.world.journal.query(tx, channel=channel)


def wait_entry(bench, bound: float = 3.0, **match: object) -> dict:
    """The first journal entry on pfi with these fields, waiting for it at most `bound` seconds."""
    deadline = time.monotonic() + bound
    while True:
        entries = [e for e in journal(bench) if all(e.get(k) == v for k, v in match.items())]
        if entries:
            return entries[0]
        if time.monotonic() > deadline:
            seen = [(e["operation"], e["verdict"], e["code"], e["ref"]) for e in journal(bench)]
            raise AssertionError(f"no pfi journal entry with {match}; entries: {seen}")
        time.sleep(0.02)


def assert_serving(port: int, conn: Conn | None = None, cid: str = "OK") -> None:
    """A valid ADT gets AA on a new connection and, when given, on the same one."""
    if conn is not None:
        assert_ack(conn.exchange(adt(f"{cid}-SAME").encode()), "AA", control_id=f"{cid}-SAME")
    ack = send_and_receive("127.0.0.1", port, adt(f"{cid}-NEW").encode(), timeout=IO)
    assert_ack(ack, "AA", control_id=f"{cid}-NEW")


@pytest.fixture
def bench(mockbench):
    mockbench.client.load_yaml(SCENARIO)
    return mockbench


@pytest.fixture
def port(bench) -> int:
    return bench.ports["mllp"]


@pytest.fixture
def limited_door(bench) -> Iterator[Callable[..., int]]:
    """Start a second PFI door on the same bench with the given MllpLimits; returns its port."""
    doors: list[PfiDoor] = []

    def start(**limits: float) -> int:
        door = PfiDoor(bench.bench.context, PfiSettings(port=0, limits=MllpLimits(**limits)))
        doors.append(door)
        return door.start()["mllp"]

    yield start
    for door in doors:
        door.stop()


# -- the base messages are valid -------------------------------------------------------------------------

def test_the_base_messages_are_accepted(bench, port):
    """Without this, every AE below could be the builders' fault."""
    assert_ack(send_and_receive("127.0.0.1", port, mdm("BASE-MDM").encode(), timeout=IO), "AA",
               control_id="BASE-MDM")
    dmp = [e for e in journal(bench, "dmp") if e["ref"] == "BASE-MDM"]
    assert [(e["operation"], e["verdict"]) for e in dmp] == [("TD2.1", "accepted")], dmp
    assert_ack(send_and_receive("127.0.0.1", port, adt("BASE-ADT").encode(), timeout=IO), "AA",
               control_id="BASE-ADT")
    assert bench.client.patient("dominique")["consent"] == {"consultation": "IC", "feeding_opposition": "INO"}
    assert wait_entry(bench, ref="BASE-ADT")["verdict"] == "accepted"


# -- the message itself: ACK AE / AR with the right table-0357 code ---------------------------------------

def _junk_before_msh() -> bytes:
    return b"HELLO DPI\r" + adt("JUNK").encode()


def _invalid_utf8() -> bytes:
    return adt("BADUTF8", {**DOMINIQUE, "family": "PAT\x00TROIS"}).encode().replace(b"\x00", b"\xc3\x28")


def _latin9_declared_utf8() -> bytes:
    return adt("LATIN9", NOEL, charset="UNICODE UTF-8").encode("iso-8859-15")


# id -> (payload, MSA-1, ERR-3, MSA-2 expected or None when no MSH-10 can be found, a word of ERR-8). Every
# one is AE: what is wrong in the message itself (trans-cda-r2/profils-messages.md, ACK section, MSA-1); MSA-2
# is MSH-10 whenever it can be found, even when MSH-1 or MSH-2 cannot be read, else HL7's null "".
MESSAGE_CASES: dict[str, tuple[Callable[[], bytes], str, str, str | None, str]] = {
    "junk-before-msh": (_junk_before_msh, "AE", "100", "JUNK", "before the MSH"),
    "missing-msh": (lambda: adt("NOMSH").split("\r", 1)[1].encode(), "AE", "100", None, "MSH"),
    "msh-without-field-separator": (lambda: adt("NOSEP").replace("|", "", 1).encode(), "AE", "101", "NOSEP", "MSH-1"),
    "msh-alphanumeric-separator": (lambda: adt("ALNUM").replace("|", "X").encode(), "AE", "101", "ALNUM", "MSH-1"),
    "msh-cut-short": (lambda: b"MSH|^~", "AE", "101", None, "MSH"),
    "msh-2-duplicate-characters": (lambda: adt("DUP").replace("^~\\&", "^^\\&", 1).encode(), "AE", "101", "DUP",
                                   "MSH-2"),
    "msh-2-holds-the-field-separator": (lambda: adt("SEP2").replace("^~\\&", "^|\\&", 1).encode(), "AE", "101",
                                        "SEP2", "MSH-2"),
    "msh-2-five-characters": (lambda: adt("FIVE").replace("^~\\&|", "^~\\&#|", 1).encode(), "AE", "101", "FIVE",
                              "MSH-2"),
    "msh-field-separator-nul-then-msh-2-too-long": (
        lambda: b"MSH\x00" + adt("NUL").encode()[3:].replace(b"&|", b"&\x00", 1), "AE", "101", "NUL", "MSH-2"),
    "unknown-charset": (lambda: adt("KLINGON", charset="KLINGON-8").encode(), "AE", "103", "KLINGON", "MSH-18"),
    "invalid-utf-8": (_invalid_utf8, "AE", "102", "BADUTF8", "UTF-8"),
    "8859-15-declared-utf-8": (_latin9_declared_utf8, "AE", "102", "LATIN9", "UTF-8"),
    "unsupported-message-type": (lambda: adt("ORM").replace("ADT^A01^ADT_A01", "ORM^O01^ORM_O01").encode(), "AE",
                                 "200", "ORM", "ORM"),
    "unsupported-mdm-event": (lambda: mdm("T01", msg_type="MDM^T01^MDM_T01").encode(), "AE", "201", "T01", "T01"),
    "unsupported-version": (lambda: mdm("V23", version="2.3").encode(), "AE", "203", "V23", "2.3"),
    "empty-msh-10": (lambda: mdm("").encode(), "AE", "101", '""', "MSH-10"),
    "mdm-without-txa": (lambda: mdm("NOTXA", drop=("TXA",)).encode(), "AE", "100", "NOTXA", "TXA"),
    "obx-11-disagrees-with-the-event": (lambda: mdm("OBX11", obx11="C").encode(), "AE", "207", "OBX11", "OBX-11"),
    "orc-1-disagrees-with-the-event": (lambda: mdm("ORC1", orc1="RO").encode(), "AE", "207", "ORC1", "ORC-1"),
    "orc-1-disagrees-with-a-deletion": (lambda: mdm("ORC1D", event="T04", orc1="NW").encode(), "AE", "207", "ORC1D",
                                        "ORC-1"),
    "document-not-base64": (lambda: mdm("NOB64", document="<ClinicalDocument/>").encode(), "AE", "207", "NOB64",
                            "base64"),
    "document-not-xml": (lambda: mdm("TEXT", document=b64(b"Compte rendu en texte libre")).encode(), "AE", "207",
                         "TEXT", "not a CDA"),
    "document-xml-but-not-cda": (lambda: mdm("HTML", document=b64(b"<html><body>CR</body></html>")).encode(), "AE",
                                 "207", "HTML", "not a CDA"),
    "document-external-entity": (lambda: mdm("XXE", document=b64(EXTERNAL_ENTITY)).encode(), "AE", "207", "XXE",
                                 "not a CDA"),
    "cda-patient-differs-from-pid-3": (
        lambda: mdm("OTHERINS", document=b64(cda("2.25.42", ins=NOEL["ins"]))).encode(), "AE", "207", "OTHERINS",
        "PID-3"),
}


@pytest.mark.parametrize("case", MESSAGE_CASES)
def test_a_broken_message_gets_ae_or_ar_and_the_connection_serves_on(bench, port, case):
    build, code, error, control_id, says = MESSAGE_CASES[case]
    with Conn(port) as conn:
        ack = assert_ack(conn.exchange(build()), code, error, control_id=control_id, says=says)
        entry = wait_entry(bench, code=f"HL7_{error}")
        assert entry["verdict"] == "refused"
        assert (entry["ref"] or '""') == str(ack.segment("MSA")[2])
        assert any(f["rule"] == "HL7/ACK" and error in f["message"] for f in entry["findings"]), entry
        assert_serving(port, conn, case)


def test_an_entity_bomb_in_the_cda_is_refused_at_once(bench, port):
    started = time.monotonic()
    ack = send_and_receive("127.0.0.1", port, mdm("BOMB", document=b64(ENTITY_BOMB)).encode(), timeout=IO)
    assert time.monotonic() - started < 2.0
    assert_ack(ack, "AE", "207", control_id="BOMB", says="entit")
    assert wait_entry(bench, ref="BOMB")["code"] == "HL7_207"
    started = time.monotonic()
    assert_serving(port, cid="BOMB")
    assert time.monotonic() - started < 2.0


def test_err_8_says_why_obx_11_disagrees(bench, port):
    ack = parse_ack(send_and_receive("127.0.0.1", port, mdm("WHY", obx11="D").encode(), timeout=IO))
    err = ack.segment("ERR")
    assert "T02" in str(err[8]) and "OBX-11 F" in str(err[8]) and "found D" in str(err[8]), str(err)
    assert str(err[2]) == "OBX^1^11"


def test_escaped_separators_read_from_the_msh_stay_escaped_in_the_ack(bench, port):
    """MSH-3 and MSH-10 holding \\F\\ and \\S\\: the ACK must carry them escaped, not add fields."""
    message = adt("A\\F\\B\\S\\C", app="G\\F\\AM").encode()
    ack = assert_ack(send_and_receive("127.0.0.1", port, message, timeout=IO), "AA")
    assert str(ack.segment("MSA")[2]) == "A\\F\\B\\S\\C"
    assert str(ack.segment("MSH")[5]) == "G\\F\\AM"
    assert str(ack.segment("MSH")[9]) == "ACK^A01^ACK"
    assert str(ack.segment("MSH")[10]).startswith("MB")


def test_a_message_with_another_field_separator_is_read(bench, port):
    message = adt("HASH").replace("|", "#").encode()
    assert_ack(send_and_receive("127.0.0.1", port, message, timeout=IO), "AA", control_id="HASH")


# -- character sets --------------------------------------------------------------------------------------

def test_an_8859_15_adt_is_decoded_and_records_the_consent(bench, port):
    payload = adt("LATIN9-ADT", NOEL, charset="8859/15").encode("iso-8859-15")
    assert b"C\xbcUR-L\xc9GER" in payload
    with Conn(port) as conn:
        raw = conn.exchange(payload)
        ack = assert_ack(raw, "AA", control_id="LATIN9-ADT", encoding="iso-8859-15")
        assert str(ack.segment("MSH")[18]) == "8859/15"
        entry = wait_entry(bench, ref="LATIN9-ADT")
        assert (entry["verdict"], entry["patient"]) == ("accepted", "noel")
        assert bench.client.patient("noel")["consent"] == {"consultation": "IC", "feeding_opposition": "INO"}
        assert_serving(port, conn, "LATIN9")


def test_an_8859_15_mdm_matches_the_accented_patient(bench, port):
    """The PFI compares PID-5 with the patient's birth name: a wrong decoding would end in ZAM 904."""
    payload = mdm("LATIN9-MDM", patient=NOEL, charset="8859/15").encode("iso-8859-15")
    assert_ack(send_and_receive("127.0.0.1", port, payload, timeout=IO), "AA", control_id="LATIN9-MDM",
               encoding="iso-8859-15")
    dmp = [e for e in journal(bench, "dmp") if e["ref"] == "LATIN9-MDM"]
    assert [(e["verdict"], e["code"]) for e in dmp] == [("accepted", None)], dmp


# -- framing ---------------------------------------------------------------------------------------------

def test_a_little_junk_before_the_block_is_tolerated_with_a_finding(bench, port):
    with Conn(port) as conn:
        conn.send(b"\n" * 10 + b"noise")
        assert_ack(conn.exchange(adt("AFTER-NOISE").encode()), "AA", control_id="AFTER-NOISE")
        entry = wait_entry(bench, ref="AFTER-NOISE")
        assert any(f["rule"] == "MLLP/FRAMING" and "15 bytes" in f["message"] for f in entry["findings"]), entry
        assert_serving(port, conn, "NOISE")


def test_junk_before_the_block_beyond_the_tolerance_closes_the_connection(bench, port):
    with Conn(port) as conn:
        conn.send(b"GET / HTTP/1.1\r\nHost: pfi\r\n" + b"x" * 2000 + frame(adt("LOST").encode()))
        assert conn.read_frame() is None
    entry = wait_entry(bench, code="MLLP_JUNK")
    assert entry["verdict"] == "error" and entry["operation"] == "MLLP"
    assert not [e for e in journal(bench) if e["ref"] == "LOST"]
    assert_serving(port, cid="JUNK")


def test_a_frame_that_never_ends_is_cut_at_the_frame_timeout(bench, limited_door):
    port = limited_door(frame_timeout=0.5)
    with Conn(port) as conn:
        conn.send(VT + adt("ENDLESS").encode())
        elapsed = conn.wait_closed(bound=3.0)
    assert 0.4 <= elapsed < 3.0
    entry = wait_entry(bench, code="MLLP_TIMEOUT")
    assert entry["verdict"] == "error" and "not ended within 0.5 s" in entry["findings"][0]["message"]
    assert_serving(port, cid="ENDLESS")


def test_a_sender_trickling_one_byte_every_200_ms_is_cut(bench, limited_door):
    port = limited_door(frame_timeout=0.5)
    payload = adt("TRICKLE").encode()
    with Conn(port) as conn:
        started = time.monotonic()
        conn.send(VT)
        closed = False
        for byte in payload:
            time.sleep(0.2)
            try:
                conn.send(bytes([byte]))
            except ConnectionError:
                closed = True
                break
            if time.monotonic() - started > 3.0:
                break
        if not closed:
            conn.wait_closed(bound=max(0.1, 3.0 - (time.monotonic() - started)))
        elapsed = time.monotonic() - started
    assert elapsed < 3.0
    assert wait_entry(bench, code="MLLP_TIMEOUT")["verdict"] == "error"
    assert not [e for e in journal(bench) if e["ref"] == "TRICKLE"]
    assert_serving(port, cid="TRICKLE")


def test_an_idle_connection_is_closed(bench, limited_door):
    port = limited_door(idle_timeout=0.3)
    with Conn(port) as conn:
        assert conn.wait_closed(bound=3.0) < 3.0
    assert wait_entry(bench, code="MLLP_IDLE")["verdict"] == "error"
    assert_serving(port, cid="IDLE")


def test_a_frame_past_the_size_limit_gets_ae_and_the_next_frame_is_served(bench, limited_door):
    """AE, not AR: the message is too large, sending it again would not help (profils-messages.md, MSA-1);
    MSA-2 still names its MSH-10 and the ACK answers as the message's MSH asks (MSH-9 ACK^T02^ACK)."""
    port = limited_door(max_message_bytes=2048)
    big = mdm("BIG")
    assert len(big) > 2048
    with Conn(port) as conn:
        ack = assert_ack(conn.exchange(big.encode()), "AE", "199", says="2048")
        assert str(ack.segment("MSA")[2]) == "BIG" and str(ack.segment("MSH")[9]) == "ACK^T02^ACK"
        entry = wait_entry(bench, code="MLLP_TOO_LARGE")
        assert entry["verdict"] == "error"
        assert_serving(port, conn, "BIG")


def test_a_connection_reset_in_the_middle_of_a_frame(bench, port):
    conn = Conn(port)
    conn.send(VT + mdm("RESET").encode()[:500])
    time.sleep(0.05)
    conn.reset()
    entry = wait_entry(bench, code="MLLP_TRUNCATED")
    assert entry["verdict"] == "error"
    assert not [e for e in journal(bench) if e["ref"] == "RESET"]
    assert_serving(port, cid="RESET")


def test_a_bare_fs_at_the_end_of_the_stream_still_ends_the_frame(bench, port):
    with Conn(port) as conn:
        conn.send(VT + adt("BAREFS").encode() + FS)
        conn.sock.shutdown(socket.SHUT_WR)
        answer = conn.read_frame()
    assert answer is not None
    assert_ack(answer, "AA", control_id="BAREFS")
    assert_serving(port, cid="BAREFS")


# -- many abusive connections at once --------------------------------------------------------------------

def _abuse(kind: str, port: int, until: float) -> None:
    """One abusive client, repeating its abuse until `until`; every socket wait is bounded."""
    big = frame(b"MSH|^~\\&|" + b"A" * 100_000)
    while time.monotonic() < until:
        try:
            with Conn(port) as conn:
                if kind == "junk":
                    while time.monotonic() < until:
                        conn.send(b"\x00garbage\xff" * 200)
                elif kind == "endless":
                    conn.send(VT + b"MSH|^~\\&|")
                    conn.wait_closed(bound=IO + 1.0)
                elif kind == "trickle":
                    conn.send(VT)
                    while time.monotonic() < until:
                        conn.send(b"x")
                        time.sleep(0.05)
                elif kind == "oversize":
                    for _ in range(3):
                        assert_ack(conn.exchange(big[1:-2]), "AE", "199")
                elif kind == "reset":
                    conn.send(VT + b"MSH|^~\\&|DPI")
                    conn.reset()
                elif kind == "garbage":
                    for i in range(5):
                        answer = conn.exchange(bytes(range(32, 127)) * (i + 1))
                        assert str(parse_ack(answer).segment("MSA")[1]) == "AE"
        except ConnectionError:
            pass  # the door hung up on the abuser: that is its right
        time.sleep(0.02)


def test_twenty_abusive_connections_do_not_starve_a_good_client(bench, limited_door):
    # A starved client would wait for an abuser's timeout (4 s): its exchanges are bound well below that, and
    # well above what a loaded CI machine needs for two small exchanges.
    port = limited_door(frame_timeout=4.0, idle_timeout=4.0, max_message_bytes=64 * 1024)
    until = time.monotonic() + 2.5
    kinds = ["junk", "endless", "trickle", "oversize", "reset", "garbage"]
    failures: list[BaseException] = []

    def run(kind: str) -> None:
        try:
            _abuse(kind, port, until)
        except BaseException as exc:  # reported by the test below
            failures.append(exc)

    abusers = [threading.Thread(target=run, args=(kinds[i % len(kinds)],), daemon=True) for i in range(20)]
    for thread in abusers:
        thread.start()
    served = 0
    with Conn(port) as kept:
        while time.monotonic() < until:
            started = time.monotonic()
            assert_ack(kept.exchange(adt(f"GOOD{served}").encode()), "AA", control_id=f"GOOD{served}")
            assert_ack(send_and_receive("127.0.0.1", port, adt(f"NEW{served}").encode(), timeout=IO), "AA",
                       control_id=f"NEW{served}")
            assert time.monotonic() - started < 2.5
            served += 1
    for thread in abusers:
        thread.join(timeout=IO)
    assert not [t for t in abusers if t.is_alive()]
    assert not failures, failures
    assert served >= 5
    codes = {e["code"] for e in journal(bench) if e["verdict"] == "error"}
    assert {"MLLP_JUNK", "MLLP_TOO_LARGE", "MLLP_TRUNCATED", "MLLP_TIMEOUT"} <= codes, codes
    assert_serving(port, cid="AFTER-ABUSE")
    assert_serving(bench.ports["mllp"], cid="MAIN-DOOR")
