"""Who authenticated on an SMTP or IMAP session, and the MSS/CONF.01 rules both mail doors apply: a TLS
client certificate opens only an applicative (APP) mailbox (its own, or its structure's), a password on an APP
mailbox is a finding (the world's rule, world/mss.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...world import errors
from ...world.mss import CERT_TYPES, app_mailbox_by_password, is_mssante
from ...world.store import Tx
from . import errors as status
from .errors import Refusal


@dataclass(frozen=True)
class Identity:
    """Who authenticated on a session: the mailbox, its type, how, and as whom (professional or certificate)."""
    address: str
    type: str
    mechanism: str
    subject: str = ""


@dataclass
class Outcome:
    ok: bool
    line: str
    value: Any = None



def mechanism_findings(identity: Identity) -> list[dict]:
    """MSS/CONF.01 on an accepted authentication (the world's rule, world/mss.py). (Certificates on PER and ORG
    mailboxes are refused outright, in `_by_certificate`.)"""
    if identity.mechanism == "EXTERNAL":
        return []
    return app_mailbox_by_password(identity.type, identity.address, done=f"authenticated with {identity.mechanism}",
                                   done_fr=f"s'est authentifiée par {identity.mechanism}", opens="authenticates",
                                   opens_fr="s'authentifie par", command="AUTH EXTERNAL")


def bearer_token(auth: str) -> str:
    scheme, _, token = auth.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def certificate_identity(world: Any, tx: Tx, authzid: str, peercert: dict | None, tls: bool) -> Identity:
    """AUTH EXTERNAL (SMTP and IMAP) with the TLS client certificate, MSS/CONF.01: only applicative (APP)
    mailboxes. Two kinds of certificate open one:
    - a mailbox certificate, whose rfc822Name SAN is the mailbox (the authorization identity, if given, must
      be that address);
    - the structure's own ORG_AUTH_CLI-style certificate (no email SAN; O the structure, OU its IDNST, the
      certificate a DPI already holds for the DMP, which the seed says may be reused): the authorization
      identity names the APP mailbox, which the structure whose IDNST (or FINESS) the OU carries must own."""
    from ...pki import describe_peer

    if not tls or not peercert:
        raise Refusal(status.AUTH_INVALID, "CERTIFICATE_MISSING",
                      "EXTERNAL needs STARTTLS with a client certificate", rule="MSS/CONF.01")
    peer = describe_peer(peercert)
    address = (peer["email"] or "").lower()
    if not address:
        return _structure_certificate(world, tx, authzid, peer)
    if authzid and authzid != address:
        wanted = _known_mailbox(world, tx, authzid)
        if wanted is not None and wanted.type not in CERT_TYPES:   # the rule first: MSS/CONF.01
            raise Refusal(status.AUTH_INVALID, "CERTIFICATE_NOT_ALLOWED",
                          f"client certificate authentication is for applicative (APP) mailboxes only; "
                          f"{wanted.address} is {wanted.type} (MSS/CONF.01)", rule="MSS/CONF.01")
        raise Refusal(status.AUTH_INVALID, "CERTIFICATE_MISMATCH",
                      f"the client certificate is for {address}, not {authzid}", rule="MSS/CONF.01")
    box = _cert_mailbox(world, tx, address)
    return Identity(box.address, box.type, "EXTERNAL", peer["common_name"] or "")


def _known_mailbox(world: Any, tx: Tx, address: str) -> Any:
    if not is_mssante(address):
        return None
    try:
        return world.mss.mailbox_for(tx, address)
    except errors.WorldError:
        return None


def _cert_mailbox(world: Any, tx: Tx, address: str) -> Any:
    if not address or not is_mssante(address):
        raise Refusal(status.AUTH_INVALID, "MAILBOX_UNKNOWN", f"{address or '(no user)'} is not an MSSanté "
                      "mailbox of this world")
    box = world.mss.mailbox_for(tx, address)
    if box.type not in CERT_TYPES:
        raise Refusal(status.AUTH_INVALID, "CERTIFICATE_NOT_ALLOWED",
                      f"client certificate authentication is for applicative (APP) mailboxes only; "
                      f"{box.address} is {box.type} (MSS/CONF.01)", rule="MSS/CONF.01")
    return box


def _structure_certificate(world: Any, tx: Tx, authzid: str, peer: dict) -> Identity:
    who = f"{peer['common_name'] or '?'}, O={peer['organization'] or '?'}, OU={peer['organizational_unit'] or '?'}"
    if not authzid:
        raise Refusal(status.AUTH_INVALID, "CERTIFICATE_NO_EMAIL",
                      f"the client certificate ({who}) names no mailbox in an email SAN: a structure's certificate "
                      "gives the applicative mailbox as authorization identity", rule="MSS/CONF.01")
    box = _cert_mailbox(world, tx, authzid)
    unit = (peer["organizational_unit"] or "").strip()
    try:
        structure = world.directory.structure(tx, unit) if unit else None
    except errors.UnknownStructure:
        structure = None
    if structure is None or structure.id != box.owner:
        raise Refusal(status.AUTH_INVALID, "CERTIFICATE_NOT_OWNER",
                      f"the client certificate's structure ({who}: "
                      f"{structure.id if structure else 'no structure of this world'}) does not own {box.address} "
                      f"(owner {box.owner or 'none'})", rule="MSS/CONF.01")
    return Identity(box.address, box.type, "EXTERNAL", f"{peer['common_name'] or ''} ({structure.id})".strip())
