"""The rows of the durable outbox (the `outbox` table) that the world keeps bounded; the queue itself (what is
due, sending, retries) is the PFI door's (protocols/pfi/outbox.py)."""

from __future__ import annotations

from .store import Tx


def trim_dead(tx: Tx, keep: int) -> int:
    """Delete the oldest dead messages beyond the `keep` most recent; how many were deleted."""
    dead = tx.count("outbox", state="dead")
    if dead <= keep:
        return 0
    return tx.conn.execute("DELETE FROM outbox WHERE ns = ? AND state = 'dead' AND id IN (SELECT id FROM outbox "
                           "WHERE ns = ? AND state = 'dead' ORDER BY id LIMIT ?)",
                           (tx.ns, tx.ns, dead - keep)).rowcount
