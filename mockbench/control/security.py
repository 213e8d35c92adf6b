"""What guards the bench's own pages (the control API under /_bench and the dashboard at /) on the HTTP port.

The doors served on the same port (DMP, OIDC, Annuaire) keep their own wires and are not touched here.

- The control token. Bound to a non-loopback address, the bench requires one (generated at start when none is
  given with --control-token / MOCKBENCH_CONTROL_TOKEN / `control_token`); given explicitly, it is required on
  loopback too. A client sends it as `Authorization: Bearer <token>`; a browser opens `/?token=<token>` once
  (the token link printed at start, or the login page's form), which sets an HttpOnly, SameSite=Strict cookie.
  `GET /_bench/health` without it answers `{"status": "ok"}` only (a container's liveness check).
- The Host header (DNS rebinding: a hostile name resolved to 127.0.0.1 reaches the port with its own Host):
  loopback names, IP literals, the bound host, the public URL's host, this machine's name and
  `allowed_hosts` are served; any other name gets 403 HOST_NOT_ALLOWED.
- Cross-site requests (a hostile page in the user's browser, even on loopback): a state-changing call (POST,
  PUT, PATCH, DELETE) whose `Origin` is not the bench's own gets 403 CROSS_ORIGIN, and one whose content type
  is a form's (`application/x-www-form-urlencoded`, `multipart/form-data`, `text/plain`: what a page may send
  without asking) gets 415; the control API takes JSON or YAML (CSV on /_bench/stat/check, CSV or JSON on
  /_bench/traces/check).
- Stored content is never rendered in the bench's origin: content endpoints answer as downloads
  (`Content-Disposition: attachment`, `nosniff`, a `sandbox` CSP); the dashboard gets a strict CSP and
  `frame-ancestors 'none'`.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
import secrets
import socket
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from flask import Flask, Response, jsonify, redirect, request
from markupsafe import escape

if TYPE_CHECKING:
    from werkzeug.wrappers import Response as BaseResponse  # what flask.redirect returns

    from ..bench import Bench

COOKIE = "mockbench_token"
TOKEN_FILE = "control-token"
STATE_CHANGING = ("POST", "PUT", "PATCH", "DELETE")
# What a web page may send cross-site without a CORS preflight: never a control call.
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data", "text/plain")
API_TYPES = ("application/json", "application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
CSV_PATH = "/_bench/stat/check"
CSV_TYPES = ("text/csv", "application/csv", "text/plain")  # STAT/ES.01's CSV; Origin still checked
TRACE_PATH = "/_bench/traces/check"                         # DMP/CONF.14's extract: CSV or JSON
LOOPBACK_NAMES = ("localhost", "localhost.localdomain")

DASHBOARD_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                 "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "
                 "frame-ancestors 'none'")
# A stored document or mail, served for download: even if a browser rendered it, no script would run and
# it would have an opaque origin (no cookie, no same-origin call to the control API).
CONTENT_CSP = "sandbox; default-src 'none'; frame-ancestors 'none'"


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def new_token() -> str:
    return secrets.token_urlsafe(24)


_MEDIA_TYPE = re.compile(r"[A-Za-z0-9!#$&^_.+-]{1,64}/[A-Za-z0-9!#$&^_.+-]{1,64}")


def download(body: bytes, filename: str, mime_type: str | None = None) -> Response:
    """Stored content, answered as a file to save (its declared type kept for clients, when well formed),
    never as a page of the bench's origin."""
    kind = mime_type if mime_type and _MEDIA_TYPE.fullmatch(mime_type) else "application/octet-stream"
    response = Response(body, mimetype=kind)
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in filename)[:120] or "content"
    response.headers["Content-Disposition"] = f'attachment; filename="{safe}"'
    response.headers["Content-Security-Policy"] = CONTENT_CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _own_page(path: str) -> bool:
    """The bench's own pages: the control API and the dashboard; the doors' prefixes are theirs."""
    return path == "/" or path.startswith("/_bench") or path.startswith("/_dashboard")


class Guard:
    def __init__(self, bench: Bench) -> None:
        cfg = bench.config
        self.bench = bench
        self.token: str | None = bench.control_token
        names = {*LOOPBACK_NAMES, socket.gethostname().lower()}
        if cfg.host not in ("0.0.0.0", "::", ""):
            names.add(cfg.host.lower().strip("[]"))
        for url in (cfg.public_url, cfg.public_https_url, cfg.backchannel_url, cfg.backchannel_https_url):
            if url:
                names.add((urlsplit(url).hostname or "").lower())
        names.update(n.strip().lower() for n in (cfg.allowed_hosts or "").split(",") if n.strip())
        self.names = frozenset(n for n in names if n)

    # Checks -------------------------------------------------------------------------------------
    def host_allowed(self, host: str) -> bool:
        name = urlsplit(f"//{host}").hostname or ""
        if name in self.names or name.endswith(".localhost"):
            return True
        try:
            ipaddress.ip_address(name)
            return True  # an address is no rebinding: the page that uses it is served from it
        except ValueError:
            return False

    def presented_token(self) -> str | None:
        auth = request.headers.get("Authorization", "")
        if auth[:7].lower() == "bearer ":
            return auth[7:].strip()
        return request.cookies.get(COOKIE)

    def token_ok(self, candidate: str | None) -> bool:
        if not candidate or self.token is None:
            return False
        return hmac.compare_digest(candidate.encode(), self.token.encode())

    def same_origin(self, origin: str) -> bool:
        own = {request.host_url.rstrip("/").lower()}
        if self.bench.config.public_url:
            parts = urlsplit(self.bench.config.public_url)
            own.add(f"{parts.scheme}://{parts.netloc}".lower())
        return origin.rstrip("/").lower() in own

    # The hook -----------------------------------------------------------------------------------
    def before(self) -> BaseResponse | tuple | None:
        path = request.path
        if not _own_page(path):
            return None
        if not self.host_allowed(request.host):
            return _refuse(403, "HOST_NOT_ALLOWED",
                           f"Host {request.host!r} is not a name of this bench ({', '.join(sorted(self.names))}, or "
                           "an IP address); add it with --allowed-hosts")
        if request.method in STATE_CHANGING and path.startswith("/_bench"):
            refused = self._cross_site_refusal(path)
            if refused is not None:
                return refused
        if self.token is None or path.startswith("/_dashboard"):
            return None  # no token asked; the dashboard's script and style sheet hold no state
        if path == "/":
            given = request.args.get("token")
            if given is not None:
                if not self.token_ok(given):
                    return self._login(wrong=True)
                response = redirect("/", code=303)  # the token leaves the address bar and the history
                response.set_cookie(COOKIE, given, httponly=True, samesite="Strict",
                                    secure=request.scheme == "https")
                return response
            return None if self.token_ok(self.presented_token()) else self._login(wrong=False)
        if self.token_ok(self.presented_token()):
            return None
        if path == "/_bench/health" and request.method == "GET":
            return jsonify(status="ok")  # liveness only: no state, no ports, no scenario
        response = _refuse(401, "TOKEN_REQUIRED", "this bench requires its control token: send "
                           "'Authorization: Bearer <token>' (the token is printed at start, and kept in the "
                           f"state folder's {TOKEN_FILE} file)")
        response.headers["WWW-Authenticate"] = 'Bearer realm="mockbench"'
        return response

    def _cross_site_refusal(self, path: str) -> Response | None:
        origin = request.headers.get("Origin")
        if origin is not None and not self.same_origin(origin):
            return _refuse(403, "CROSS_ORIGIN", f"a control call from the page at {origin} is refused: only "
                           "the bench's own pages and clients outside a browser may change its state")
        if request.headers.get("Sec-Fetch-Site", "") in ("cross-site", "same-site"):
            return _refuse(403, "CROSS_ORIGIN", "a control call from another site is refused")
        kind = (request.mimetype or "").lower()
        allowed = CSV_TYPES if path == CSV_PATH else CSV_TYPES + API_TYPES if path == TRACE_PATH else API_TYPES
        if kind and kind not in allowed and not kind.endswith("+json"):
            return _refuse(415, "UNSUPPORTED_MEDIA_TYPE", f"a control call takes {' or '.join(allowed)}, not "
                           f"{kind}")
        if not kind and request.content_length:
            return _refuse(415, "UNSUPPORTED_MEDIA_TYPE", "a control call with a body says its Content-Type "
                           f"({' or '.join(allowed)})")
        return None

    def _login(self, *, wrong: bool) -> Response:
        note = "<p class=\"error\">Ce jeton n'est pas celui du banc.</p>" if wrong else ""
        page = (f"<!DOCTYPE html><html lang=\"fr\"><head><meta charset=\"utf-8\"><title>mockbench : jeton"
                "</title><link rel=\"stylesheet\" href=\"/_dashboard/dashboard.css\"></head><body><main>"
                "<h1>mockbench</h1><p>Ce banc écoute au-delà de la boucle locale : ouvrez le lien affiché à son "
                "démarrage, ou saisissez son jeton de contrôle.</p>"
                f"{note}<form method=\"get\" action=\"/\"><label>Jeton <input name=\"token\" type=\"password\" "
                "autocomplete=\"off\" required></label> <button type=\"submit\">Entrer</button></form>"
                f"<p><small>{escape(self.bench.state_dir / TOKEN_FILE)}</small></p></main></body></html>")
        response = Response(page, status=401, mimetype="text/html")
        response.headers["Content-Security-Policy"] = DASHBOARD_CSP
        return response

    def after(self, response: Response) -> Response:
        path = request.path
        if _own_page(path):
            response.headers.setdefault("X-Content-Type-Options", "nosniff")
            if path == "/" or (response.mimetype == "text/html" and "Content-Security-Policy" not in response.headers):
                response.headers["Content-Security-Policy"] = DASHBOARD_CSP
            if response.mimetype == "text/html":
                response.headers.setdefault("X-Frame-Options", "DENY")
            response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response


def _refuse(status: int, code: str, message: str) -> Response:
    response = jsonify(error=code, message=message)
    response.status_code = status
    return response


def install(app: Flask, bench: Bench) -> Guard:
    guard = Guard(bench)
    app.before_request(guard.before)
    app.after_request(guard.after)
    return guard
