"""Delivered MSSanté messages found by their Message-ID header, whatever their mailbox: the evidence report
recovers a mail the journal truncated, a scenario step checks the headers of the mail an entry names."""

from __future__ import annotations

import json

from .store import Tx


def by_message_id(tx: Tx, message_id: str, *, limit: int = 1) -> list[dict]:
    """The stored messages (as `world.model.Message` dicts) whose Message-ID is `message_id`, at most
    `limit` of them (a mail sent to several mailboxes is kept once per mailbox)."""
    if not message_id:
        return []
    rows = tx.conn.execute("SELECT data FROM messages WHERE ns = ? AND json_extract(data, '$.message_id') = ? "
                           "LIMIT ?", (tx.ns, message_id, int(limit))).fetchall()
    return [json.loads(row[0]) for row in rows]
