"""The OIDC door's own answers on its wire, before an issuer's core (provider.py) is reached: a path that is
no endpoint, and the refusals of injected faults (world/faults.py). Each is an OAuth error response: a JSON
object with a stable `error` and an `error_description` (RFC 6749 section 5.2). The errors an issuer's
endpoints answer are `provider.OAuthError` and its subclasses, with `provider.from_world` for every world
error."""

from __future__ import annotations

import json

JSON = "application/json"
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}   # RFC 6749 5.1, on every token-side answer

NOT_FOUND = ("not_found", 404)                 # a path under /oidc that is no issuer's endpoint
# RFC 6749 4.1.2.1's code in 5.2's form and 400 status, so that a client reads the code on every endpoint
# (the authorization endpoint included, without a redirect)
TEMPORARILY_UNAVAILABLE = ("temporarily_unavailable", 400)
HTTP_503 = 503                                 # RFC 9110 15.6.4: the whole service down, a bare answer


def error_body(error: str, description: str) -> str:
    return json.dumps({"error": error, "error_description": description})


def not_found(path: str) -> tuple[str, int]:
    error, status = NOT_FOUND
    return error_body(error, f"no OIDC endpoint at {path}"), status


def temporarily_unavailable(description: str) -> tuple[str, int]:
    error, status = TEMPORARILY_UNAVAILABLE
    return error_body(error, description), status
