"""What the rules share: reading a journal time, a journal entry's raw message."""

from __future__ import annotations

from typing import Any

from ..world.clock import parse_time
from ..world.store import Tx


def timestamp(text: Any) -> float | None:
    """A journal or store time as POSIX seconds, None when it cannot be read."""
    try:
        return parse_time(str(text)).timestamp()
    except (TypeError, ValueError):
        return None


def journal_raw(tx: Tx, seq: int) -> str:
    """The raw message of a journal entry (the advisor's scan reads entries without it)."""
    row = tx.conn.execute("SELECT json_extract(data, '$.raw') FROM journal WHERE ns = ? AND seq = ?",
                          (tx.ns, seq)).fetchone()
    return str(row[0]) if row and row[0] is not None else ""
