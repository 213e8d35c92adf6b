"""IMAP authentication and the commands valid in any state (RFC 3501 6.1 and 6.2): CAPABILITY, NOOP, CHECK,
LOGOUT, ID, STARTTLS, LOGIN, AUTHENTICATE (PLAIN, XOAUTH2, EXTERNAL). The login IS the mailbox: a client
authenticates as a mailbox address and sees that mailbox as INBOX."""

from __future__ import annotations

import base64
import binascii

from ...world import errors
from ...world.model import Mailbox
from ...world.mss import app_mailbox_by_password, is_mssante
from ...world.store import Tx
from .auth import certificate_identity
from .errors import Refusal
from .imap_base import AUTHENTICATED, LOGOUT, SELECTED, AlreadyAnswered, ImapRefusal, SessionBase
from .imap_wire import as_text


class AuthCommands(SessionBase):
    def _refuse_in_clear(self, what: str, user: str = "") -> None:
        if self.clear_auth_refused:
            with self.world.transaction() as tx:
                self._journal_login(tx, user.strip().lower(), ("PRIVACY_REQUIRED", f"{what} before STARTTLS: authentication in clear "
                                             "is refused when TLS is offered (RFC 3501 6.2.3)", ""), what)
            raise ImapRefusal(f"{what} is disabled before STARTTLS (LOGINDISABLED, RFC 3501 6.2.3): STARTTLS first",
                              code="PRIVACYREQUIRED")

    async def cmd_capability(self, tag: str, args: list) -> None:
        self.send(b"* CAPABILITY " + self.capabilities().encode())

    async def cmd_noop(self, tag: str, args: list) -> None:
        if self.state == SELECTED:
            self.sync(expunges=True)

    async def cmd_check(self, tag: str, args: list) -> None:
        self.sync(expunges=True)

    async def cmd_logout(self, tag: str, args: list) -> None:
        self.send(b"* BYE mockbench IMAP4rev1 server logging out")
        self.state = LOGOUT

    async def cmd_id(self, tag: str, args: list) -> None:
        self.send(b'* ID ("name" "mockbench")')

    async def cmd_starttls(self, tag: str, args: list) -> str | None:
        context = self.settings.tls
        if context is None or self.tls_active:
            raise ImapRefusal("STARTTLS is not offered: the bench runs without --tls-dir" if context is None
                              else "TLS is already active")
        self.send(f"{tag} OK begin TLS negotiation now".encode())
        await self.writer.drain()
        await self.writer.start_tls(context)
        self.tls_active = True
        raise AlreadyAnswered

    async def cmd_login(self, tag: str, args: list) -> str:
        if len(args) != 2:
            raise ImapRefusal("LOGIN takes a user name (the mailbox address) and a password", bad=True)
        user, password = as_text(args[0]), as_text(args[1])
        self._refuse_in_clear("LOGIN", user)
        self._password_login(user, password, f"LOGIN {user}")
        return "LOGIN completed: INBOX is " + self.address

    async def cmd_authenticate(self, tag: str, args: list) -> str:
        if not args:
            raise ImapRefusal("AUTHENTICATE takes a mechanism: PLAIN or XOAUTH2", bad=True)
        mechanism = as_text(args[0]).upper()
        self._refuse_in_clear(f"AUTHENTICATE {mechanism[:20]}")
        if mechanism not in ("PLAIN", "XOAUTH2", "EXTERNAL"):
            raise ImapRefusal(f"mechanism {mechanism[:40]} is not supported: PLAIN, XOAUTH2 or EXTERNAL (after "
                              "STARTTLS)")
        if len(args) > 1:      # SASL-IR (RFC 4959)
            response = as_text(args[1])
        else:
            self.send(b"+ ")
            await self.writer.drain()
            line = await self.io.line()
            if line is None:
                raise ConnectionError("the client left during AUTHENTICATE")
            response = line.decode("ascii", "replace").strip()
        if response == "*":
            raise ImapRefusal("AUTHENTICATE cancelled by the client", bad=True)
        try:
            data = base64.b64decode(response, validate=True) if response != "=" else b""
        except (binascii.Error, ValueError):
            raise ImapRefusal("the AUTHENTICATE response is not base64", bad=True) from None
        if mechanism == "EXTERNAL":
            self._external(data.decode("utf-8", "replace").strip().lower())
            return "AUTHENTICATE completed: INBOX is " + self.address
        if mechanism == "PLAIN":
            parts = data.split(b"\x00")
            if len(parts) != 3:
                raise ImapRefusal("PLAIN expects authzid NUL authcid NUL password", bad=True)
            authzid, user, password = (p.decode("utf-8", "replace") for p in parts)
            if authzid and authzid.lower() != user.lower():
                with self.world.transaction() as tx:
                    self._journal_login(tx, user, ("AUTHZID_REFUSED", "acting as another mailbox is not allowed",
                                                   ""), f"AUTHENTICATE PLAIN {user} as {authzid}")
                raise ImapRefusal("[AUTHORIZATIONFAILED] authorization identity must be the mailbox itself")
            self._password_login(user, password, f"AUTHENTICATE PLAIN {user}")
        else:
            self._xoauth2(data)
        return "AUTHENTICATE completed: INBOX is " + self.address

    def _password_login(self, user: str, password: str, raw: str) -> None:
        address = user.strip().lower()
        refusal: tuple[str, str, str] | None = None      # (journal code, reason, answer)
        with self.world.transaction() as tx:
            try:
                box = self._mailbox(tx, address)
            except errors.UnknownMailbox as exc:
                refusal = (exc.code, str(exc), f"no mailbox {address} in this world")
            else:
                if self.settings.password is None:
                    refusal = ("PASSWORD_LOGIN_OFF", "password login is turned off",
                               "password login is turned off on this bench: use AUTHENTICATE XOAUTH2")
                elif password != self.settings.password:
                    refusal = ("PASSWORD_WRONG", "wrong password", "wrong password for " + address)
            self._journal_login(tx, address, refusal, raw, warnings=[] if refusal else self._conf01(box, raw))
        if refusal is not None:
            raise ImapRefusal(refusal[2], code="AUTHENTICATIONFAILED")
        self.address, self.state = box.address, AUTHENTICATED

    @staticmethod
    def _conf01(box: Mailbox, raw: str) -> list[dict]:
        """MSS/CONF.01 (the world's rule, world/mss.py) on a LOGIN or AUTHENTICATE PLAIN."""
        how = raw.split(" ")[0] if raw.startswith("LOGIN") else " ".join(raw.split(" ")[:2])
        return app_mailbox_by_password(box.type, box.address, done=f"was opened with {how} and the password",
                                       done_fr=f"a été ouverte par {how} et le mot de passe", opens="is opened",
                                       opens_fr="s'ouvre avec", command="AUTHENTICATE EXTERNAL")

    def _external(self, authzid: str) -> None:
        """AUTHENTICATE EXTERNAL (RFC 4422 appendix A) with the TLS client certificate: the SMTP door's rule
        (auth.certificate_identity, MSS/CONF.01), an APP mailbox's own certificate or its structure's."""
        peercert = self.writer.get_extra_info("peercert") if self.tls_active else None
        refusal: tuple[str, str, str] | None = None
        with self.world.transaction() as tx:
            try:
                identity = certificate_identity(self.world, tx, authzid, peercert or None, self.tls_active)
            except (Refusal, errors.WorldError) as exc:
                text = exc.message if isinstance(exc, Refusal) else str(exc)
                refusal = (exc.code, text, text)
            self._journal_login(tx, authzid if refusal else identity.address, refusal,
                                f"AUTHENTICATE EXTERNAL {authzid}".strip())
        if refusal is not None:
            raise ImapRefusal(refusal[2], code="AUTHENTICATIONFAILED")
        self.address, self.state = identity.address, AUTHENTICATED

    def _xoauth2(self, data: bytes) -> None:
        fields = dict(part.split("=", 1) for part in data.decode("utf-8", "replace").split("\x01") if "=" in part)
        address = fields.get("user", "").strip().lower()
        auth = fields.get("auth", "")
        if not address or not auth.lower().startswith("bearer "):
            raise ImapRefusal("XOAUTH2 expects user=ADDRESS^Aauth=Bearer TOKEN^A^A", bad=True)
        token = auth[7:].strip()
        refusal: tuple[str, str, str] | None = None
        with self.world.transaction() as tx:
            try:
                box = self._mailbox(tx, address)
                row = self.world.tokens.verify(tx, token, kind="access")
                why_not = self.world.mss.token_refusal(tx, box, row.get("professional", ""))
            except errors.WorldError as exc:
                why_not = (exc.code, str(exc))
            if why_not is not None:
                refusal = (why_not[0], why_not[1], f"{address}: {why_not[1]}")
            self._journal_login(tx, address, refusal, f"AUTHENTICATE XOAUTH2 user={address}")
        if refusal is not None:
            raise ImapRefusal(refusal[2], code="AUTHENTICATIONFAILED")
        self.address, self.state = box.address, AUTHENTICATED

    def _mailbox(self, tx: Tx, address: str) -> Mailbox:
        if "@" not in address:
            raise errors.UnknownMailbox(f"{address} is not a mailbox address")
        try:
            return self.world.directory.mailbox(tx, address)
        except errors.UnknownMailbox:
            if not is_mssante(address):
                raise
        box = self.world.mss.mailbox_for(tx, address)   # a professional's or a patient's, made on first use
        if box.address != address:
            raise errors.UnknownMailbox(f"no mailbox {address}")
        return box
