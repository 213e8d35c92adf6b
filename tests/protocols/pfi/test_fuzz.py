"""The PFI door under random input. (a) Parser level, no sockets: every corpus HL7 message, mutated (byte
flips, deletions, insertions of delimiters and MLLP bytes, truncations, duplicated and swapped segments),
goes through `PfiDoor.handle`, which must always return an ACK and never raise. (b) Listener level:
random byte streams over a real socket to a door with short limits; every connection is answered or
closed within a bound, the bench keeps serving, and well-formed frames each get their answer."""

from __future__ import annotations

import functools
import re
import socket
import time
from pathlib import Path

import hl7
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kit.strict_hl7 import check_ack as strict_ack

from mockbench.bench import Bench
from mockbench.config import Config
from mockbench.protocols.pfi.door import PfiDoor, PfiSettings
from mockbench.protocols.pfi.mllp import FS, VT, MllpLimits, frame, send_and_receive

# The corpus messages' patient, sender and organisation, seeded so that the mutated messages reach the DMP.
SCENARIO = """
id: pfi-fuzz
title: Fuzz de la PFI
world:
  structures:
    - id: org-y
      finess: "300017985"
  professionals:
    - id: thomas
      idnps: "801234564895"
      check_digits: false
      family_name: Eric
      given_name: Thomas
      structure: org-y
    - id: bio
      idnps: "801234567866"
      check_digits: false
      structure: org-y
  patients:
    - id: dominique
      ins: "279035121518989"
      family_name: PAT-TROIS
      given_name: DOMINIQUE
      birth_date: "1979-03-28"
      sex: F
      authorizations:
        - structure: org-y
"""

ADT = ("MSH|^~\\&|GAM|CHU-X|PFI|ANS|20250615120000||ADT^A01^ADT_A01|{cid}|P|2.5|||||FRA|UNICODE UTF-8\r"
       "EVN||20250615120000\r"
       "PID|1||279035121518989^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.10&ISO^INS||PAT-TROIS^DOMINIQUE||19790328|F\r"
       "PV1|1|I\r")
ACK_CHARSETS = {"UNICODE UTF-8": "utf-8", "8859/15": "iso-8859-15", "8859/1": "iso-8859-1", "ASCII": "ascii"}
SPECIALS = [b"|", b"^", b"~", b"\\", b"&", b"\r", b"\n", VT, FS, b"\r\n", FS + b"\r"]
# Table 0357 codes an ERR-3 may carry (the ANS guide's list).
TABLE_0357 = {"100", "101", "102", "103", "198", "199", "200", "201", "202", "203", "207"}
PLAIN_ID = re.compile(r"[A-Za-z0-9._-]+")
IO_TIMEOUT = 5.0


def adt(cid: str) -> bytes:
    return ADT.format(cid=cid).encode()


@pytest.fixture(scope="module")
def fuzz_bench(tmp_path_factory: pytest.TempPathFactory):
    bench = Bench(Config(http_port=0, https_port=0, mllp_port=0, smtp_port=0, imap_port=0,
                         state=str(tmp_path_factory.mktemp("pfi-fuzz"))))
    bench.start()
    scenario = tmp_path_factory.mktemp("pfi-fuzz-scenario") / "pfi-fuzz.yaml"
    scenario.write_text(SCENARIO, encoding="utf-8")
    bench.load_scenario(str(scenario))
    bench.snapshot("seeded")
    yield bench
    bench.close()


@functools.cache
def corpus_messages(root: Path) -> list[tuple[str, bytes]]:
    files = sorted([*root.glob("hl7v2/**/*.er7"), *root.glob("hl7v2/**/*.hl7")])
    assert files, f"no HL7 message under {root / 'hl7v2'}"
    return [(str(p.relative_to(root)), p.read_bytes()) for p in files]


# -- (a) parser level --------------------------------------------------------------------------------------

def _segments(data: bytes) -> list[bytes]:
    return re.split(rb"(?<=[\r\n])", data)


def _at(pos: int, data: bytes) -> int:
    return pos % (len(data) + 1)


def mutate(data: bytes, op: tuple) -> bytes:
    kind = op[0]
    if kind == "flip":
        _, pos, byte = op
        if not data:
            return data
        i = pos % len(data)
        return data[:i] + bytes([byte]) + data[i + 1:]
    if kind == "delete":
        _, pos, length = op
        i = _at(pos, data)
        return data[:i] + data[i + length:]
    if kind == "insert":
        _, pos, chunk = op
        i = _at(pos, data)
        return data[:i] + chunk + data[i:]
    if kind == "truncate":
        return data[:_at(op[1], data)]
    segs = _segments(data)
    if kind == "duplicate":
        i = op[1] % len(segs)
        return b"".join(segs[:i + 1] + [segs[i]] + segs[i + 1:])
    if kind == "swap":
        i, j = op[1] % len(segs), op[2] % len(segs)
        segs[i], segs[j] = segs[j], segs[i]
        return b"".join(segs)
    raise AssertionError(kind)


# Half the positions fall in the first 600 bytes, where the MSH and the patient live; the rest anywhere
# (mostly in the base64 CDA).
positions = st.one_of(st.integers(0, 600), st.integers(0, 1 << 20))
mutations = st.one_of(
    st.tuples(st.just("flip"), positions, st.integers(0, 255)),
    st.tuples(st.just("delete"), positions, st.integers(1, 40)),
    st.tuples(st.just("insert"), positions, st.one_of(st.sampled_from(SPECIALS), st.binary(min_size=1, max_size=8))),
    st.tuples(st.just("truncate"), positions),
    st.tuples(st.just("duplicate"), st.integers(0, 40)),
    st.tuples(st.just("swap"), st.integers(0, 40), st.integers(0, 40)),
)


def readable_control_id(payload: bytes) -> str | None:
    """MSH-10 when any receiver could read it: the payload starts with an intact `MSH|^~\\&|`, its MSH line
    names a known MSH-18 and decodes in it, and MSH-10 is a plain token. None otherwise."""
    if not payload.startswith(b"MSH|^~\\&|"):
        return None
    line = re.split(rb"[\r\n]", payload, maxsplit=1)[0]
    fields = line.split(b"|")
    label = fields[17].decode("ascii", "replace").strip().upper() if len(fields) > 17 else "UNICODE UTF-8"
    if len(fields) < 10 or label not in ACK_CHARSETS:
        return None
    try:
        line.decode(ACK_CHARSETS[label])
        cid = fields[9].decode("ascii")
    except UnicodeDecodeError:
        return None
    return cid if PLAIN_ID.fullmatch(cid) else None


def check_ack(ack: bytes, expected_id: str | None) -> hl7.Message:
    assert isinstance(ack, bytes) and ack.startswith(b"MSH|^~\\&|"), ack[:80]
    strict_ack(ack)   # well formed for hl7apy in strict mode, whatever the mutation did to the message
    head = ack.split(b"\r", 1)[0].split(b"|")
    charset = head[17].decode("ascii").split("~")[0].strip().upper() if len(head) > 17 else ""
    text = ack.decode(ACK_CHARSETS.get(charset, "utf-8"))
    message = hl7.parse(text.replace("\n", "\r"))
    msh = message.segment("MSH")
    assert str(msh[9]).startswith("ACK"), text
    assert str(msh[10]).startswith("MB"), text
    msa = message.segment("MSA")
    assert str(msa[1]) in ("AA", "AE", "AR"), text
    errors = [s for s in message if str(s[0]) == "ERR"]
    if str(msa[1]) == "AA":
        assert not errors, text
    else:
        assert errors and all(str(e[3]).split("^")[0] in TABLE_0357 for e in errors), text
    if expected_id is not None:
        assert str(msa[2]) == expected_id, text
    return message


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow,
                                                                   HealthCheck.data_too_large])
@given(data=st.data())
def test_mutated_corpus_messages_always_get_an_ack(corpus, fuzz_bench, data):
    messages = corpus_messages(corpus)
    name, original = data.draw(st.sampled_from(messages), label="file")
    payload = original
    if data.draw(st.booleans(), label="cr"):
        payload = payload.replace(b"\r\n", b"\r").replace(b"\n", b"\r")
    for op in data.draw(st.lists(mutations, min_size=1, max_size=4), label="mutations"):
        payload = mutate(payload, op)
    fuzz_bench.restore("seeded")
    ack = fuzz_bench.pfi.handle(payload, "fuzz")
    check_ack(ack, readable_control_id(payload))


def test_unmutated_corpus_messages_get_an_ack(corpus, fuzz_bench):
    """The oracle's baseline: every file as published is answered, and its MSH-10 is read."""
    for name, payload in corpus_messages(corpus):
        fuzz_bench.restore("seeded")
        assert readable_control_id(payload), name
        check_ack(fuzz_bench.pfi.handle(payload, "corpus"), readable_control_id(payload))


# -- (b) listener level ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fuzz_door(fuzz_bench):
    """A second PFI door on the fuzz bench, with limits short enough for one example to end quickly."""
    door = PfiDoor(fuzz_bench.context, PfiSettings(port=0, limits=MllpLimits(
        max_message_bytes=8192, frame_timeout=0.5, idle_timeout=0.3, max_junk_bytes=256)))
    port = door.start()["mllp"]
    yield door, port
    door.stop()


def read_frames(sock: socket.socket, bound: float) -> tuple[list[bytes], bool]:
    """Every answer frame until the peer closes; (frames, closed). Never waits past `bound` seconds."""
    deadline = time.monotonic() + bound
    data = b""
    closed = False
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionError:
            closed = True
            break
        if not chunk:
            closed = True
            break
        data += chunk
    frames = re.findall(rb"\x0b(.*?)\x1c\r", data, flags=re.S)
    return frames, closed


def assert_serving(port: int, cid: str) -> None:
    ack = send_and_receive("127.0.0.1", port, adt(cid), timeout=IO_TIMEOUT)
    message = check_ack(ack, cid)
    assert str(message.segment("MSA")[1]) == "AA"


def _no_mllp(data: bytes) -> bytes:
    return data.replace(VT, b"").replace(FS, b"")


stream_chunks = st.one_of(
    st.binary(max_size=300),
    st.binary(max_size=300).map(_no_mllp),
    st.sampled_from(SPECIALS),
    st.builds(lambda p: VT + p + FS + b"\r", st.binary(max_size=300)),
    st.builds(lambda p: VT + p, st.binary(max_size=300)),
    st.builds(lambda p: p + FS, st.binary(max_size=300)),
    st.just(frame(adt("FUZZ-IN"))),
    st.builds(lambda n: VT + b"MSH|^~\\&|" + b"x" * n + FS + b"\r", st.integers(0, 12000)),
)


@pytest.mark.slow
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chunks=st.lists(stream_chunks, max_size=8), half_close=st.booleans())
def test_random_streams_are_answered_or_closed(fuzz_door, chunks, half_close):
    door, port = fuzz_door
    with socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT) as sock:
        try:
            for chunk in chunks:
                sock.sendall(chunk)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except ConnectionError:
            pass  # the door already hung up on an earlier chunk: closing is an allowed answer
        answers, closed = read_frames(sock, bound=IO_TIMEOUT)
    assert closed, "the door neither answered to the end nor closed the connection"
    for answer in answers:
        check_ack(answer, None)
    assert door._runner.alive
    assert_serving(port, "AFTER-STREAM")


clean_payloads = st.one_of(
    st.binary(max_size=200).map(_no_mllp),
    st.builds(lambda i: adt(f"CLEAN{i}"), st.integers(0, 999)),
    st.builds(lambda n: b"MSH|^~\\&|" + b"y" * n, st.integers(0, 10000)),
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payloads=st.lists(clean_payloads, min_size=1, max_size=6))
def test_every_well_framed_payload_gets_its_answer_in_order(fuzz_door, payloads):
    door, port = fuzz_door
    with socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT) as sock:
        sock.sendall(b"".join(frame(p) for p in payloads))
        sock.shutdown(socket.SHUT_WR)
        answers, closed = read_frames(sock, bound=IO_TIMEOUT)
    assert closed
    assert len(answers) == len(payloads)
    for payload, answer in zip(payloads, answers, strict=True):
        message = check_ack(answer, readable_control_id(payload))
        if payload.startswith(b"MSH|^~\\&|GAM"):
            assert str(message.segment("MSA")[1]) == "AA"
    assert_serving(port, "AFTER-CLEAN")


def test_main_door_still_serves_after_the_fuzz(fuzz_bench):
    assert_serving(fuzz_bench.ports["mllp"], "FINAL")
