"""Issue 17, point 13: a long read (the evidence report, a journal page, the live timeline's catch-up, the
dashboard's data) runs in a read transaction of its own and never delays a door's write: an MLLP message
sent while such a read is in progress is acknowledged at once.

The read is made long on purpose: the world function it calls blocks (up to HOLD seconds) until the test
has its ACK. Reading under the world's write lock, the ACK waits the whole HOLD; in a read transaction, it
does not wait at all. The bound checked, ACK_BOUND, is generous (loaded CI machines) and far below HOLD.
"""

from __future__ import annotations

import threading
import time

import pytest
import requests
from hl7.client import MLLPClient
from kit.pfi import mdm, parse_ack
from reliability_helpers import PFI_WORLD

HOLD = 6.0        # seconds the read stays in progress at most
ACK_BOUND = 2.5   # seconds an ACK may take while it is


def _hold(owner, name: str, entered: threading.Event, release: threading.Event) -> None:
    """Make owner.name block on its first call (inside the request's read) until release, at most HOLD."""
    original = getattr(owner, name)

    def held(*args, **kwargs):
        result = original(*args, **kwargs)
        if not entered.is_set():
            entered.set()
            release.wait(HOLD)
        return result

    setattr(owner, name, held)


@pytest.mark.parametrize("path,target", [
    ("/_bench/report?format=json", "journal.query"),
    ("/_bench/journal?limit=10000", "journal.query"),
    ("/_bench/events?since=0", "journal.query"),
    ("/_bench/patients", "directory.patients"),
    ("/_bench/findings", "advisor.findings"),
])
def test_a_long_read_does_not_delay_an_mllp_ack(mockbench_factory, path, target):
    running = mockbench_factory()
    client = running.client
    client.load_yaml(PFI_WORLD)
    patient = client.patient("alice")
    dr_a = client.call("GET", "/professionals")[0]
    dr_a["finess"] = client.call("GET", "/structures")[0]["finess"]
    world = running.bench.world
    owner_name, attr = target.split(".")
    entered, release = threading.Event(), threading.Event()
    _hold(getattr(world, owner_name), attr, entered, release)

    def read() -> None:
        with requests.get(client.url + path, timeout=HOLD + 10, stream=True) as response:
            assert response.status_code == 200
            for _ in response.iter_content(None):   # the body, or the event stream until the test is done
                if release.is_set():
                    return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert entered.wait(10), f"{path} did not call {target}"
        started = time.monotonic()
        with MLLPClient("127.0.0.1", running.bench.ports["mllp"]) as mllp:
            mllp.socket.settimeout(HOLD + 10)
            ack = parse_ack(mllp.send_message(mdm("T02", patient, dr_a, dr_a["finess"], "1.2.250.1.999.13.1",
                                                  control_id="R13")))
        took = time.monotonic() - started
        still_reading = not release.is_set() and reader.is_alive()
    finally:
        release.set()
        reader.join(HOLD + 10)
    assert str(ack.segment("MSA")[1]) == "AA"
    assert still_reading, "the read ended before the ACK came: nothing was measured"
    assert took < ACK_BOUND, f"the MLLP ACK took {took:.2f} s while {path} was reading"
