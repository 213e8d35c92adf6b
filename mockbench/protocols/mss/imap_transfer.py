"""IMAP commands that file messages: APPEND (RFC 3501 6.3.11) with APPENDUID, COPY (6.4.7) and MOVE (RFC 6851)
with COPYUID (UIDPLUS, RFC 4315)."""

from __future__ import annotations

from datetime import datetime

from ...world import errors
from .imap_base import ImapRefusal, SessionBase, flags_of
from .imap_wire import Atom, as_text


class TransferCommands(SessionBase):
    async def cmd_append(self, tag: str, args: list) -> str:
        """RFC 3501 6.3.11, with APPENDUID (RFC 4315): a message the client files itself (a copy of what it
        sent, a draft); a folder that does not exist is NO [TRYCREATE]."""
        if len(args) < 2 or not isinstance(args[-1], bytes):
            raise ImapRefusal("APPEND takes a mailbox, optional flags and date, and the message as a literal",
                              bad=True)
        name = as_text(args[0])
        flags: list[str] = []
        received_at = ""
        for extra in args[1:-1]:
            if isinstance(extra, list):
                flags = flags_of(extra)
            else:
                received_at = _append_date(as_text(extra))
        raw = args[-1]
        if not raw:
            raise ImapRefusal("APPEND of an empty message", bad=True)
        with self.world.transaction() as tx:
            try:
                folder = self.world.mss.folder(tx, self.address, name)
            except errors.NotFound:
                raise ImapRefusal(f"no mailbox {name[:60]}: CREATE it first", code="TRYCREATE") from None
            message = self.world.mss.append(tx, self.address, folder, raw, flags, received_at)
            validity = self.world.mss.uid_validity(tx, self.address, folder)
            self.world.journal.append(tx, "mss", "IMAP_APPEND", actor=self.address,
                                      ref=message.message_id or message.id,
                                      raw=f"APPEND {folder} ({' '.join(flags)}) {len(raw)} octets -> UID {message.uid}")
        return f"[APPENDUID {validity} {message.uid}] APPEND completed"

    async def cmd_copy(self, tag: str, args: list, by_uid: bool = False, move: bool = False) -> str:
        """COPY (RFC 3501 6.4.7) and MOVE (RFC 6851), with COPYUID (RFC 4315 3): into another folder of the
        same mailbox; a folder that does not exist is NO [TRYCREATE]."""
        verb = "MOVE" if move else "COPY"
        if len(args) != 2 or not isinstance(args[0], Atom):
            raise ImapRefusal(f"{verb} takes a sequence set and a mailbox", bad=True)
        if move and self.readonly:
            raise ImapRefusal("the mailbox was opened with EXAMINE: read-only", code="READ-ONLY")
        name = as_text(args[1])
        self.sync(expunges=False)
        targets = self._targets(str(args[0]), by_uid)
        with self.world.transaction() as tx:
            try:
                folder = self.world.mss.folder(tx, self.address, name)
            except errors.NotFound:
                raise ImapRefusal(f"no mailbox {name[:60]}: CREATE it first", code="TRYCREATE") from None
            pairs = self.world.mss.copy(tx, self.address, [m for _, m in targets], folder, move=move)
            validity = self.world.mss.uid_validity(tx, self.address, folder)
            self.world.journal.append(
                tx, "mss", f"IMAP_{verb}", actor=self.address,
                raw=f"{'UID ' if by_uid else ''}{verb} {args[0]} {folder}: "
                    + (", ".join(f"{a}->{b}" for a, b in pairs) or "no message"))
        code = (f"[COPYUID {validity} {','.join(str(a) for a, _ in pairs)} {','.join(str(b) for _, b in pairs)}] "
                if pairs else "")
        if not move:
            return f"{code}COPY completed"
        if code:   # RFC 6851 4.3: COPYUID in an untagged OK before the EXPUNGE responses
            self.send(f"* OK {code}moved".encode())
        for seq, _ in sorted(targets, reverse=True):
            del self.uids[seq - 1]
            self.send(f"* {seq} EXPUNGE".encode())
        return "MOVE completed"

    async def cmd_move(self, tag: str, args: list, by_uid: bool = False) -> str:
        return await self.cmd_copy(tag, args, by_uid=by_uid, move=True)


def _append_date(text: str) -> str:
    """APPEND's date-time (RFC 3501 9: "dd-Mon-yyyy hh:mm:ss +zzzz") as ISO 8601."""
    try:
        return datetime.strptime(text.strip(), "%d-%b-%Y %H:%M:%S %z").isoformat()
    except ValueError:
        raise ImapRefusal(f"{text[:40]!r} is not an IMAP date-time (dd-Mon-yyyy hh:mm:ss +zzzz)", bad=True) from None

