"""IMAP folder commands (RFC 3501 6.3, 6.4.2 to 6.4.3; NAMESPACE, RFC 2342; UNSELECT, RFC 3691; UID EXPUNGE,
RFC 4315). The login is the MSSanté mailbox; its IMAP folders are INBOX, where mail arrives, and those the
client creates (RFC 3501 6.3.3), one level namespace with "/" as hierarchy delimiter (RFC 2342)."""

from __future__ import annotations

import re

from ...world.mss import INBOX
from .imap_base import AUTHENTICATED, SELECTED, SYSTEM_FLAGS, ImapRefusal, SessionBase
from .imap_wire import SeqSet, as_text, quote


class MailboxCommands(SessionBase):
    async def cmd_select(self, tag: str, args: list, readonly: bool = False) -> str:
        self.state, self.uids = AUTHENTICATED, []
        folder = self._folder(args, "SELECT")
        with self.world.transaction() as tx:
            messages = self.world.mss.messages(tx, self.address, folder)
            validity, uid_next = self.world.mss.uid_validity(tx, self.address, folder), self.world.mss.uid_next(tx, self.address, folder, messages)
        self.uids = [m.uid for m in messages]
        unseen = next((i for i, m in enumerate(messages, 1) if "\\Seen" not in m.flags), None)
        self.send(b"* FLAGS (" + " ".join(SYSTEM_FLAGS).encode() + b")")
        self.send(f"* {len(messages)} EXISTS".encode())
        self.send(b"* 0 RECENT")
        if unseen is not None:
            self.send(f"* OK [UNSEEN {unseen}] first unseen message".encode())
        self.send(f"* OK [UIDVALIDITY {validity}] UIDs valid".encode())
        self.send(f"* OK [UIDNEXT {uid_next}] predicted next UID".encode())
        flags = "" if readonly else " ".join(SYSTEM_FLAGS) + " \\*"
        self.send(f"* OK [PERMANENTFLAGS ({flags})] flags kept in the world".encode())
        self.state, self.readonly, self.folder = SELECTED, readonly, folder
        return f"[{'READ-ONLY' if readonly else 'READ-WRITE'}] {'EXAMINE' if readonly else 'SELECT'} completed"

    async def cmd_examine(self, tag: str, args: list) -> str:
        return await self.cmd_select(tag, args, readonly=True)

    async def cmd_namespace(self, tag: str, args: list) -> None:
        """RFC 2342: one personal namespace, no prefix, "/" between levels; no other users', no shared."""
        self.send(b'* NAMESPACE (("" "/")) NIL NIL')

    async def cmd_list(self, tag: str, args: list, verb: str = "LIST") -> None:
        if len(args) != 2:
            raise ImapRefusal(f"{verb} takes a reference and a mailbox pattern", bad=True)
        reference, pattern = as_text(args[0]), as_text(args[1])
        if pattern == "":
            self.send(f'* {verb} (\\Noselect) "/" ""'.encode())
            return
        pattern = reference + pattern if reference else pattern
        with self.world.transaction() as tx:
            folders = self.world.mss.folders(tx, self.address)
        for name in folders:
            if _matches(pattern, name):
                children = any(f.startswith(name + "/") for f in folders)
                attribute = "\\HasChildren" if children else "\\HasNoChildren"
                self.send(f"* {verb} ({attribute}) \"/\" ".encode() + _astring(name))

    async def cmd_lsub(self, tag: str, args: list) -> None:
        await self.cmd_list(tag, args, "LSUB")

    async def cmd_status(self, tag: str, args: list) -> None:
        folder = self._folder(args, "STATUS")
        if len(args) != 2 or not isinstance(args[1], list):
            raise ImapRefusal("STATUS takes a mailbox and a list of items", bad=True)
        with self.world.transaction() as tx:
            messages = self.world.mss.messages(tx, self.address, folder)
            values = {"MESSAGES": len(messages), "RECENT": 0, "UIDNEXT": self.world.mss.uid_next(tx, self.address, folder, messages),
                      "UIDVALIDITY": self.world.mss.uid_validity(tx, self.address, folder),
                      "UNSEEN": sum(1 for m in messages if "\\Seen" not in m.flags)}
        out = []
        for item in args[1]:
            key = as_text(item).upper()
            if key not in values:
                raise ImapRefusal(f"unknown STATUS item {key[:40]}", bad=True)
            out.append(f"{key} {values[key]}")
        self.send(b"* STATUS " + _astring(folder) + f" ({' '.join(out)})".encode())

    async def cmd_subscribe(self, tag: str, args: list) -> None:
        self._folder(args, "SUBSCRIBE")

    async def cmd_unsubscribe(self, tag: str, args: list) -> None:
        self._folder(args, "UNSUBSCRIBE")

    async def cmd_create(self, tag: str, args: list) -> str:
        if len(args) != 1:
            raise ImapRefusal("CREATE takes a mailbox name", bad=True)
        name = as_text(args[0])
        with self.world.transaction() as tx:
            exists = name.rstrip("/").upper() == INBOX or name.rstrip("/") in self.world.mss.folders(tx, self.address)
            if exists:
                raise ImapRefusal(f"{name[:60]} already exists", code="ALREADYEXISTS")
            created = self.world.mss.create_folder(tx, self.address, name)
            self.world.journal.append(tx, "mss", "IMAP_CREATE", actor=self.address, raw=f"CREATE {created}")
        return f"CREATE completed: {created}"

    async def cmd_delete(self, tag: str, args: list) -> None:
        folder = self._folder(args, "DELETE")
        if folder == INBOX:
            raise ImapRefusal("INBOX cannot be deleted (RFC 3501 6.3.4)", code="CANNOT")
        if self.state == SELECTED and self.folder == folder:
            self.state, self.uids = AUTHENTICATED, []
        with self.world.transaction() as tx:
            self.world.mss.delete_folder(tx, self.address, folder)
            self.world.journal.append(tx, "mss", "IMAP_DELETE", actor=self.address, raw=f"DELETE {folder}")

    async def cmd_rename(self, tag: str, args: list) -> None:
        raise ImapRefusal("RENAME is not offered: CREATE the new folder and MOVE the messages", code="CANNOT")

    async def cmd_close(self, tag: str, args: list) -> None:
        if not self.readonly:
            with self.world.transaction() as tx:
                self.world.mss.expunge(tx, self.address, self.folder)
        self.state, self.uids, self.folder = AUTHENTICATED, [], INBOX

    async def cmd_unselect(self, tag: str, args: list) -> None:
        self.state, self.uids = AUTHENTICATED, []

    async def cmd_expunge(self, tag: str, args: list, only: str | None = None) -> None:
        if self.readonly:
            raise ImapRefusal("the mailbox was opened with EXAMINE: read-only", code="READ-ONLY")
        self.sync(expunges=False)
        uids = None
        if only is not None:   # UID EXPUNGE (RFC 4315 2.1): only these UIDs
            wanted = SeqSet(only, self.uids[-1] if self.uids else 0)
            uids = {u for u in self.uids if u in wanted}
        with self.world.transaction() as tx:
            self.world.mss.expunge(tx, self.address, self.folder, uids)
        self.sync(expunges=True)


def _matches(pattern: str, name: str) -> bool:
    """RFC 3501 6.3.8: `*` matches anything, `%` anything but the hierarchy delimiter; INBOX in any case."""
    regex = "".join(".*" if c == "*" else "[^/]*" if c == "%" else re.escape(c) for c in pattern)
    if re.fullmatch(regex, name, re.DOTALL):
        return True
    return name == INBOX and re.fullmatch(regex, name, re.DOTALL | re.IGNORECASE) is not None


def _astring(name: str) -> bytes:
    """A mailbox name as an atom when it is one (RFC 3501 9 ATOM-CHAR), else a quoted string."""
    if name and name.isascii() and not any(c in '(){ %*"\\]' or ord(c) < 33 for c in name):
        return name.encode()
    return quote(name)

