"""The dashboard's world view lists the PFI's outbound queue: a message the DPI never took is shown dead,
with its reason (issue 17, point 1: never silently)."""

import socket
import time

from hl7.client import MLLPClient
from kit.pfi import mdm, parse_ack
from test_dashboard_browser import keys, open_dashboard, present, text, wait

from mockbench.protocols.pfi.door import PfiDoor, PfiSettings

WORLD = """\
id: dashboard-outbox
title: Un ZAM que le DPI ne prend pas
seed: 5
world:
  structures: [{id: chu, name: CHU de Test}]
  professionals: [{id: dr_a, family_name: MARTIN, given_name: Jeanne, structure: chu}]
  patients:
    - {id: alice, sex: F, family_name: DURAND, given_name: Alice, birth_date: "1980-05-04",
       authorizations: [{structure: chu}]}
"""


def test_a_dead_outbound_message_is_shown_with_its_reason(mockbench, browser, screenshot):
    client = mockbench.client
    client.load_yaml(WORLD)
    patient = client.patient("alice")
    dr_a = client.call("GET", "/professionals")[0]
    dr_a["finess"] = client.call("GET", "/structures")[0]["finess"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        nobody = s.getsockname()[1]
    door = PfiDoor(mockbench.bench.context, PfiSettings(port=0, dpi=("127.0.0.1", nobody), outbound_attempts=2,
                                                outbound_backoff=0.02))
    port = door.start()["mllp"]
    try:
        with MLLPClient("127.0.0.1", port) as mllp:
            mllp.socket.settimeout(10)
            parse_ack(mllp.send_message(mdm("T02", patient, dr_a, dr_a["finess"], "1.2.250.1.999.60.1",
                                            control_id="DASH1")))
        deadline = time.monotonic() + 10
        while not client.pfi_outbox("dead") and time.monotonic() < deadline:
            time.sleep(0.05)
        [dead] = client.pfi_outbox("dead")
    finally:
        door.stop()
    open_dashboard(browser, mockbench)
    keys(browser, "2")
    wait(browser, present(f'#outbox tr[data-outbox="{dead["id"]}"]'), message="the dead message in the outbox")
    row = text(browser, f'#outbox tr[data-outbox="{dead["id"]}"]')
    assert "abandonné" in row and "ZAM^Z01" in row and "DASH1" in row and "after 2 attempts" in row
    browser.execute_script("document.querySelector('#outbox').scrollIntoView()")
    screenshot("world-outbox")
