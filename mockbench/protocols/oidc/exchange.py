"""One exchange with an issuer: the request as the core sees it (`Request`), its answer (`Result`), the state
an endpoint builds while it answers (`Exchange`: what the journal entry will say, passed explicitly to every
step instead of being left in the transaction), and the small helpers of the wire (hashes, redirects)."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ...world.store import Tx
from .errors import NO_STORE

Result = tuple[int, Any, dict[str, str]]      # body: dict (JSON), str (HTML) or "" (empty)
HTML = {"Content-Type": "text/html; charset=utf-8"}


@dataclass
class Request:
    """What the core needs from an HTTP request. `headers` keys are lower case."""

    method: str
    args: dict[str, str] = field(default_factory=dict)
    form: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    client_cert: str | None = None             # PEM of the TLS client certificate (HTTPS port only)

    @property
    def params(self) -> dict[str, str]:
        return {**self.args, **self.form}



@dataclass
class Exchange:
    """What one request's endpoint works with (the open transaction, the request) and what it declares for the
    exchange's journal entry: who acts (the client at first, then the professional once known), and, where the
    endpoint's outcome alone does not say it, the operation, verdict and code to journal."""

    tx: Tx
    req: Request
    actor: str = ""
    operation: str | None = None    # e.g. `refresh` for a token request that refreshes (PSC.02)
    verdict: str | None = None      # e.g. `accepted` for a CIBA poll that waits: the protocol working
    code: str | None = None
    # A token request in a world shared by several processes (Provider.handle): the signatures its dry run made
    # on a snapshot (WorldTokens.sign's memo), and the access token's jti, drawn once for both runs. Empty:
    # signed in the write transaction, a jti drawn there.
    signatures: dict[tuple[str, str, str], str] | None = None
    jti: str = ""

    def declare(self, *, actor: str | None = None, operation: str | None = None, verdict: str | None = None,
             code: str | None = None) -> None:
        """Declare what the journal entry says; what is not given is left as it is."""
        if actor is not None:
            self.actor = actor
        if operation is not None:
            self.operation = operation
        if verdict is not None:
            self.verdict = verdict
        if code is not None:
            self.code = code


def token_hash(value: str) -> str:
    """How the `tokens` table keys a code, a login, a CIBA request or a client assertion's jti."""
    return hashlib.sha256(value.encode()).hexdigest()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def with_query(uri: str, params: dict[str, str | None]) -> str:
    parts = urlsplit(uri)
    query = parse_qsl(parts.query, keep_blank_values=True) + [(k, v) for k, v in params.items() if v is not None]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def redirect(uri: str) -> Result:
    return 302, "", {"Location": uri, **NO_STORE}


def answer_text(status: int, body: Any, headers: dict[str, str]) -> str:
    """The answer as the journal keeps it: the status, a redirect's Location, the body (JSON or HTML)."""
    lines = [f"HTTP {status}"]
    if headers.get("Location"):
        lines.append(f"Location: {headers['Location']}")
    if body not in ("", None):
        lines.append("")
        lines.append(json.dumps(body, ensure_ascii=False) if isinstance(body, dict) else str(body))
    return "\n".join(lines)


def masked(params: dict[str, str]) -> str:
    hidden = ("client_secret", "code_verifier", "client_assertion", "password")
    return urlencode({k: ("***" if k in hidden else v) for k, v in params.items()})
