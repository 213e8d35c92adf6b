"""Client authentication at the back-channel endpoints (RFC 6749 section 2.3, OIDC Core 9): the client
secret (Basic or in the form), a signed client assertion (RFC 7523, private_key_jwt) whose jti is kept
against replay, the TLS client certificate (RFC 8705, tls_client_auth), or none for a public client."""

from __future__ import annotations

import base64
import hmac
import json
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import unquote

from ...world.store import Tx
from .errors import InvalidClient
from .exchange import Exchange, token_hash
from .profiles import Client

if TYPE_CHECKING:
    from .provider import Provider

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def authenticate(provider: Provider, ex: Exchange, endpoint: str) -> Client:
    """The client of a back-channel request (token, introspection, revocation, CIBA), authenticated as it
    registered: client_secret_basic or _post, private_key_jwt (RFC 7523), tls_client_auth (RFC 8705), or
    none for a public client. Declares the client as the exchange's actor."""
    req = ex.req
    form = req.form
    auth = req.headers.get("authorization", "")
    if auth[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(auth[6:].strip(), validate=True).decode()
            client_id, _, secret = decoded.partition(":")
            client_id, secret = unquote(client_id), unquote(secret)
        except (ValueError, UnicodeDecodeError):
            raise InvalidClient("the Basic credentials are not base64 of client_id:secret") from None
        method = "client_secret_basic"
    elif form.get("client_assertion"):
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise InvalidClient(f"client_assertion_type must be {ASSERTION_TYPE}")
        client_id, secret, method = _assertion_client(form["client_assertion"]), "", "private_key_jwt"
    elif "client_secret" in form:
        client_id, secret, method = form.get("client_id", ""), form["client_secret"], "client_secret_post"
    elif form.get("client_id"):
        client_id, secret, method = form["client_id"], "", "none"
    else:
        raise InvalidClient("no client authentication (client_secret_basic, client_secret_post or "
                            "private_key_jwt)")
    ex.declare(actor=client_id)
    client = provider.profile.clients.get(client_id)
    if client is None:
        raise InvalidClient(f"unknown client {client_id}")
    if method == "none" and "tls_client_auth" in client.auth_methods:
        method = "tls_client_auth"
        _verify_certificate(client, req.client_cert)
    if method not in client.auth_methods:
        raise InvalidClient(f"client {client_id} authenticates with {', '.join(client.auth_methods)}, "
                            f"not {method}")
    if method.startswith("client_secret") and not hmac.compare_digest(secret.encode(),
                                                                      client.client_secret.encode()):
        raise InvalidClient(f"wrong client secret for {client_id}")
    if method == "private_key_jwt":
        _verify_assertion(provider, ex.tx, client, form["client_assertion"], endpoint)
    return client


def _verify_certificate(client: Client, pem: str | None) -> None:
    """RFC 8705 section 2.1.2: the certificate's subject DN must be the registered one. The TLS layer
    already checked that the bench's CA issued it."""
    from cryptography import x509

    if not pem:
        raise InvalidClient(f"client {client.client_id} authenticates with tls_client_auth: present its "
                            "certificate on the HTTPS port")
    subject = x509.load_pem_x509_certificate(pem.encode()).subject
    wanted = x509.Name.from_rfc4514_string(client.tls_subject_dn)
    if subject != wanted:
        raise InvalidClient(f"the client certificate's subject {subject.rfc4514_string()} is not "
                            f"{client.tls_subject_dn}")


def _assertion_client(assertion: str) -> str:
    try:
        payload = assertion.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return str(claims.get("sub") or claims.get("iss") or "")
    except (IndexError, ValueError):
        raise InvalidClient("client_assertion is not a JWT") from None


def _verify_assertion(provider: Provider, tx: Tx, client: Client, assertion: str, endpoint: str) -> None:
    """RFC 7523 section 3 and OIDC Core 9: iss = sub = client_id, aud the endpoint or the issuer, exp."""
    from joserfc import jwt
    from joserfc.jwk import KeySet

    if not client.jwks:
        raise InvalidClient(f"client {client.client_id} has no registered keys (jwks) for private_key_jwt")
    try:
        keys = KeySet.import_key_set(cast(Any, client.jwks))   # a JWKS as registered, checked by joserfc
        claims = jwt.decode(assertion, keys, algorithms=["RS256", "ES256", "PS256"]).claims
    except Exception as exc:   # joserfc raises several unrelated classes
        raise InvalidClient(f"client_assertion is not signed by a key of client {client.client_id}: "
                            f"{exc}") from None
    now = provider.world.clock.timestamp()
    aud = claims.get("aud")
    auds = aud if isinstance(aud, list) else [aud]
    if claims.get("iss") != client.client_id or claims.get("sub") != client.client_id:
        raise InvalidClient("client_assertion iss and sub must be the client_id")
    if not {provider.url(endpoint), provider.url("token"), provider.issuer} & set(auds):
        raise InvalidClient(f"client_assertion aud must be {provider.url('token')} or {provider.issuer}")
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or exp <= now or exp > now + 3600:
        raise InvalidClient("client_assertion exp is missing, past, or more than an hour ahead")
    jti = claims.get("jti")
    if not jti:
        raise InvalidClient("client_assertion needs a jti")
    digest = token_hash(f"{client.client_id}:{jti}")
    if tx.get("tokens", token_hash=digest):
        raise InvalidClient("client_assertion jti already used (replay)")
    tx.put("tokens", {"kind": "oidc-jti", "expires_at": exp}, token_hash=digest, kind="oidc-jti")
