"""The OIDC door's errors and their wire form, each an OAuth error response: a JSON object with a stable
`error` and an `error_description` (RFC 6749 section 5.2; OIDC Core 3.1.2.6 and CIBA 11 name more codes).

- The errors an issuer's endpoints answer: `OAuthError` and its subclasses, with `from_world` for every world
  error (world/errors.py). `Provider.handle` is the one place that turns them into a response and journals the
  exchange.
- The door's own answers, before an issuer's core is reached (door.py): a path that is no endpoint, and the
  refusals of injected faults (world/faults.py).
- A change the bench's store cannot take now, nothing changed, goes up to the HTTP application
  (control/common.py), which answers it with RFC 6749 4.1.2.1's `temporarily_unavailable` in 5.2's form: a
  full disk (StorageFull) 507 Insufficient Storage, another process holding the world's write lock past its
  wait (WriteLockTimeout) 503 with Retry-After (RFC 9110 15.6.4), both retried later by the client."""

from __future__ import annotations

import json

from ...world import errors

JSON = "application/json"
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}   # RFC 6749 5.1, on every token-side answer

NOT_FOUND = ("not_found", 404)                 # a path under /oidc that is no issuer's endpoint
# RFC 6749 4.1.2.1's code in 5.2's form and 400 status, so that a client reads the code on every endpoint
# (the authorization endpoint included, without a redirect)
TEMPORARILY_UNAVAILABLE = ("temporarily_unavailable", 400)
HTTP_503 = 503                                 # RFC 9110 15.6.4: the whole service down, a bare answer


# An issuer's endpoints --------------------------------------------------------------------------------
class OAuthError(Exception):
    """RFC 6749 section 5.2 / OIDC Core 3.1.2.6 / CIBA 11: a stable `error` and a default status."""

    error = "invalid_request"
    status = 400

    def __init__(self, description: str = "") -> None:
        self.description = description
        super().__init__(description or self.error)

    def body(self) -> dict:
        return {"error": self.error, "error_description": self.description} if self.description \
            else {"error": self.error}


class InvalidRequest(OAuthError):
    error = "invalid_request"


class InvalidClient(OAuthError):
    error = "invalid_client"
    status = 401


class InvalidGrant(OAuthError):
    error = "invalid_grant"


class UnauthorizedClient(OAuthError):
    error = "unauthorized_client"


class UnsupportedGrantType(OAuthError):
    error = "unsupported_grant_type"


class UnsupportedResponseType(OAuthError):
    error = "unsupported_response_type"


class InvalidScope(OAuthError):
    error = "invalid_scope"


class LoginRequired(OAuthError):
    error = "login_required"


class InvalidToken(OAuthError):
    """RFC 6750 section 3.1: a bearer token that is unknown, expired or revoked."""

    error = "invalid_token"
    status = 401


class UnknownUserId(OAuthError):
    error = "unknown_user_id"


class AuthorizationPending(OAuthError):
    error = "authorization_pending"


class SlowDown(OAuthError):
    error = "slow_down"


class ExpiredToken(OAuthError):
    error = "expired_token"


class AccessDenied(OAuthError):
    error = "access_denied"
    status = 403


class ServerError(OAuthError):
    error = "server_error"
    status = 500


class InvalidBindingMessage(OAuthError):
    """CIBA Core section 13: the binding_message is invalid or unacceptable."""

    error = "invalid_binding_message"


class EndpointNotHere(OAuthError):
    """A well-known endpoint asked for at a path where this issuer does not serve it."""

    error = "invalid_request"
    status = 404


def from_world(exc: errors.WorldError) -> OAuthError:
    """The OIDC wire form of every world error (STYLE.md: each door maps them all)."""
    if isinstance(exc, errors.TokenInvalid):
        return InvalidGrant(exc.message)
    if isinstance(exc, errors.UnknownProfessional):
        return LoginRequired(exc.message)
    if isinstance(exc, errors.NotFound | errors.InvalidRequest):
        return InvalidRequest(exc.message)
    return ServerError(f"{exc.code}: {exc.message}")


class RedirectRefusal(Exception):
    """An OAuthError to answer as a redirect to a verified redirect URI (RFC 6749 section 4.1.2.1)."""

    def __init__(self, error: OAuthError, redirect_uri: str, state: str | None) -> None:
        self.error, self.redirect_uri, self.state = error, redirect_uri, state


# The door's own answers ------------------------------------------------------------------------------------
def error_body(error: str, description: str) -> str:
    return json.dumps({"error": error, "error_description": description})


def not_found(path: str) -> tuple[str, int]:
    error, status = NOT_FOUND
    return error_body(error, f"no OIDC endpoint at {path}"), status


def temporarily_unavailable(description: str) -> tuple[str, int]:
    error, status = TEMPORARILY_UNAVAILABLE
    return error_body(error, description), status
