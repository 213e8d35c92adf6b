"""The MSSanté door's entry point: one door, `mss`, with two ports of its own, SMTP submission (smtp.py) and
IMAP (imap.py), started and stopped together and configured by one `[doors.mss]` table."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..context import DoorConfigError, DoorContext
from .imap import ImapDoor, settings_from
from .smtp import MssSettings, SmtpDoor

if TYPE_CHECKING:
    from flask import Blueprint

    from ...config import Config


class MssDoor:
    name = "mss"

    def __init__(self, context: DoorContext, smtp: SmtpDoor, imap: ImapDoor) -> None:
        self.context = context
        self.smtp = smtp
        self.imap = imap

    def wanted_ports(self) -> dict[str, int]:
        return {**self.smtp.wanted_ports(), **self.imap.wanted_ports()}

    def http_routes(self) -> tuple[str, Blueprint] | None:
        return None

    def start(self) -> dict[str, int]:
        # A failure to start IMAP leaves SMTP running: the bench stops every door when a start fails.
        return {**self.smtp.start(), **self.imap.start()}

    def stop(self) -> None:
        self.imap.stop()
        self.smtp.stop()

    def endpoints(self) -> dict[str, Any]:
        """Its section of /_bench/endpoints: the two ports and how each kind of mailbox authenticates (the
        rules' text is French: the dashboard and `mockbench endpoints` show it as it is)."""
        smtp, imap = self.smtp.settings, self.imap.settings
        tls = self.context.tls is not None
        in_clear = not tls or not smtp.auth_require_tls
        rules = []
        if smtp.password is not None:
            rules.append(f"PER, ORG : AUTH PLAIN ou LOGIN avec l'adresse de la boîte et le mot de passe "
                         f"« {smtp.password} »" + ("" if in_clear else ", après STARTTLS"))
        rules.append("PER : XOAUTH2 ou OAUTHBEARER avec un jeton d'accès du fournisseur OIDC, pour son titulaire ; "
                     "ORG : pour les membres de sa structure")
        rules.append("APP : AUTH EXTERNAL après STARTTLS avec le certificat de la boîte (clients/app-mailbox) ou "
                     "celui de sa structure (clients/org-auth-cli), en nommant la boîte (MSS/CONF.01)"
                     if tls else "APP : certificat (AUTH EXTERNAL) seulement avec TLS (mockbench up --tls-dir)")
        if not smtp.auth_required:
            rules.append("soumission sans authentification acceptée ([doors.mss] auth_required = false)")
        return {
            "smtp": {**self.smtp.endpoints(), "starttls": tls, "starttls_required": tls and smtp.require_starttls,
                     "auth_in_clear": in_clear},
            "imap": {**self.imap.endpoints(), "starttls": imap.tls is not None,
                     "auth_in_clear": imap.tls is None or not imap.auth_require_tls},
            "password": smtp.password, "auth_rules": rules,
        }


def build(context: DoorContext, config: Config) -> MssDoor:
    """The door from the bench's configuration: --smtp-port, --imap-port, their connection caps, [doors.mss]."""
    try:
        smtp_settings = MssSettings.from_config(config.host, config.smtp_port, config.doors.get("mss", {}))
    except ValueError as exc:
        raise DoorConfigError(f"[doors.mss] {exc}") from None
    smtp_settings = replace(smtp_settings, max_connections=config.smtp_max_connections)
    return MssDoor(context, SmtpDoor(context, smtp_settings), ImapDoor(context, settings_from(config, context.tls)))
