"""The PFI's outbound queue when several processes serve one world (issue 21 point 3): only the process that
runs the PFI door (the primary) sends; a message another process queued in the store is found there by the
sender's look at the queue (outbox.IDLE_POLL) and sent once."""

import time

from kit.wait import wait_for

from mockbench.protocols.pfi.outbox import IDLE_POLL, Outbox
from mockbench.world.store import Store
from mockbench.world.world import World

ZAM = (b"MSH|^~\\&|PFI|CHU|DPI|CHU|20250101120000||ZAM^Z01^ZAM|OTHER1|P|2.5\r"
       b"OBX|1|ST|||Y\r")


def test_a_message_queued_by_another_process_is_sent_once(mockbench, dpi_listener):
    listener = dpi_listener()
    bench = mockbench.bench
    other = World(Store(bench.state_dir / "world.db"))   # a second process's view of the same world
    other.primary = False
    other.store.shared = True
    try:
        with other.transaction() as tx:
            Outbox(other, bench.pfi.settings).add(tx, ZAM, "ZAM^Z01", {"ref": "other"})
        assert wait_for(lambda: len(listener.of_type("ZAM^Z01")) == 1, timeout=IDLE_POLL + 10)
        assert wait_for(lambda: not mockbench.client.pfi_outbox("pending"))
        time.sleep(IDLE_POLL + 0.5)   # another look at the queue: nothing left to send again
        assert len(listener.of_type("ZAM^Z01")) == 1
        sent = [e for e in mockbench.client.journal(channel="pfi") if e["direction"] == "out"]
        assert [(e["operation"], e["ref"]) for e in sent] == [("ZAM^Z01", "other")]
    finally:
        other.store.close()
