"""The PFI tests' kit: the shipped message builders (mockbench.testing.messages) under the signature these
tests use, the MLLP senders (python-hl7's client) and the strict ACK reader."""

import hl7
from hl7.client import MLLPClient

from mockbench.testing import messages
from mockbench.testing.messages import EVENTS, META, table_defaults  # noqa: F401 - re-exported to the tests

from .strict_hl7 import check_ack, decode


def cda_for(patient: dict, unique_id: str, author: dict) -> bytes:
    return messages.cda(patient, author, unique_id)


def mdm(event: str, patient: dict, author: dict, finess: str | None, unique_id: str, parent_id: str = "", *,
        control_id: str = "1", flags: dict | None = None, recipients: tuple[str, ...] = ("dr.b@chu.mssante.fr",),
        cda: bytes | None = None, org_type: str = "FINEG") -> bytes:
    return messages.mdm(event, patient, author, unique_id, finess=finess, parent_id=parent_id, control_id=control_id,
                        flags=flags, recipients=recipients, document=cda, org_type=org_type)


def parse_ack(raw: bytes) -> hl7.Message:
    """The ACK read by python-hl7, after hl7apy in strict mode found it well formed (strict_hl7.py)."""
    check_ack(raw)
    return hl7.parse(decode(raw).replace("\n", "\r").strip("\x0b\x1c\r"))


def send_raw(port: int, *messages: bytes, host: str = "127.0.0.1") -> list[bytes]:
    """Each message over MLLP to `host:port` with python-hl7's client, one connection; the raw answers."""
    with MLLPClient(host, port) as client:
        client.socket.settimeout(10)
        return [client.send_message(m) for m in messages]


def send(bench, *messages: bytes) -> list:
    """Each message to the bench's PFI over MLLP, one connection; their ACKs parsed (and checked by the strict
    parser, as parse_ack does)."""
    return [parse_ack(raw) for raw in send_raw(bench.ports["mllp"], *messages)]


def send_codes(bench, *messages: bytes) -> list[str]:
    """`send`, keeping each ACK's MSA-1 (AA, AE, AR)."""
    return [str(ack.segment("MSA")[1]) for ack in send(bench, *messages)]
