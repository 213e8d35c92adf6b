"""CIBA's backchannel authentication endpoint (CIBA Core 7, poll mode): the client names the professional
(login_hint) and gets an auth_req_id to poll the token endpoint with (grants/ciba.py); what the professional
answers is scripted per professional (world/ciba.py, the control API's PUT /_bench/oidc/ciba/{idnps})."""

from __future__ import annotations

import re
import secrets

from ....world import errors
from ....world.ciba import scripted_ciba
from ....world.model import Professional
from ....world.store import Tx
from ..clientauth import authenticate
from ..errors import InvalidBindingMessage, InvalidRequest, InvalidScope, UnknownUserId
from ..exchange import NO_STORE, Exchange, Result, token_hash
from ..profiles import Limits
from .base import Endpoint

CIBA_CHANNELS = ("CARD", "MOBILE")
# Keycloak's BackchannelAuthenticationEndpoint (keycloak/keycloak, services/src/main/java/org/keycloak/protocol/
# oidc/grants/ciba/endpoints/BackchannelAuthenticationEndpoint.java, BINDING_MESSAGE_VALIDATION): PSC is a
# Keycloak realm (specs/psc/mock_discovery_response.json), so its binding_message rule is this one.
BINDING_MESSAGE = re.compile(r"[a-zA-Z0-9\-._+/!?#]{1,50}")


class Backchannel(Endpoint):
    name = "ciba"
    journal = "ciba"

    def __call__(self, ex: Exchange) -> Result:
        tx = ex.tx
        client = authenticate(self.provider, ex, "ciba")
        form = ex.req.form
        if self.profile.psc:
            pro, channel = self._psc_ciba_request(ex, form)
        else:
            pro, channel = self._generic_ciba_request(ex, form), ""
        scopes = form.get("scope", "").split()
        message = form.get("binding_message", "")
        script = ciba_script(tx, pro.id, self.limits)
        auth_req_id = secrets.token_urlsafe(32)
        now = self.world.clock.timestamp()
        row = {"kind": "oidc-ciba", "issuer": self.profile.name, "client_id": client.client_id,
               "professional": pro.id, "scopes": scopes, "binding_message": message,
               "channel": channel, "outcome": script["outcome"],
               "after_polls": script["after_polls"], "polls": 0, "last_poll": None,
               "interval": script["interval"], "expires_at": now + script["expires_in"], "done": False}
        tx.put("tokens", row, token_hash=token_hash(auth_req_id), kind="oidc-ciba")
        return 200, {"auth_req_id": auth_req_id, "expires_in": int(script["expires_in"]),
                     "interval": script["interval"]}, dict(NO_STORE)

    def _generic_ciba_request(self, ex: Exchange, form: dict[str, str]) -> Professional:
        """CIBA Core 7.1 and 13 (the establishment's provider)."""
        tx = ex.tx
        scopes = form.get("scope", "").split()
        if "openid" not in scopes:
            raise InvalidScope("scope must contain openid")
        hint = form.get("login_hint", "").strip()
        if not hint:
            raise InvalidRequest("login_hint (the professional's IDNPS) is required; login_hint_token and "
                                 "id_token_hint are not served")
        try:
            pro = self.world.directory.professional(tx, hint)
        except errors.UnknownProfessional:
            raise UnknownUserId(f"no professional {hint}") from None
        ex.declare(actor=pro.idnps)
        if len(form.get("binding_message", "")) > 64:
            raise InvalidBindingMessage("binding_message is limited to 64 characters here")
        return pro

    def _psc_ciba_request(self, ex: Exchange, form: dict[str, str]) -> tuple[Professional, str]:
        """PSC's CIBA request, from three sources of unequal weight (the README's OIDC section lists them):
        - Keycloak's checks, in its order and words (PSC is a Keycloak realm, specs/psc/mock_discovery_response
          .json; BackchannelAuthenticationEndpoint: `missing parameter : login_hint`, `missing parameter :
          scope`, `invalid user`, the binding_message pattern with `invalid_binding_message`);
        - what the ANS's own CIBA client always sends (ansforge/psc-edc-proxy-esante, PSCSessionService.
          cibaAuthentication: scope `openid scope_all`, `acr_values=eidas1`, a binding_message, a `channel`
          custom parameter) and requires from its own callers (model/Connection.validate: bindingMessage
          present, channel CARD or MOBILE), the two means the CIBA page names (industriels.esante.gouv.fr,
          "Pro Santé Connect - CIBA", "A propos de l'utilisation de CIBA": the CPx card through CPS-Gestion,
          the e-CPS). PSC's page has a table of the request's parameters ("Paramètre | Obligatoire |
          Valeur") that no copy reachable from here reproduces: that PSC refuses a request without them, and
          with which error, is the bench's reading, answered with CIBA Core 13's codes (`invalid_scope`,
          `invalid_binding_message`, `invalid_request`)."""
        tx = ex.tx
        if "login_hint" not in form:
            raise InvalidRequest("missing parameter : login_hint")
        if "scope" not in form:
            raise InvalidRequest("missing parameter : scope")
        hint = form["login_hint"].strip()
        try:
            pro = self.world.directory.professional(tx, hint) if hint else None
        except errors.UnknownProfessional:
            pro = None
        if pro is None:
            raise InvalidRequest(f"invalid user: login_hint {hint!r} is no professional's national id")
        ex.declare(actor=pro.idnps)
        scopes = form["scope"].split()
        if not {"openid", "scope_all"} <= set(scopes):
            raise InvalidScope(f"Invalid scopes: {form['scope']} (Pro Santé Connect's CIBA takes "
                               "scope=openid scope_all)")
        message = form.get("binding_message")
        if not message:
            raise InvalidBindingMessage("binding_message is required: the code shown to the professional on "
                                        "the card reader or the e-CPS")
        if not BINDING_MESSAGE.fullmatch(message):
            raise InvalidBindingMessage("the binding_message value has to be max 50 characters in length and must "
                                        "contain only basic plain-text characters without spaces")
        acr = form.get("acr_values", "").split()
        if acr != ["eidas1"]:
            raise InvalidRequest(f"acr_values must be eidas1, not {form.get('acr_values', '')!r}")
        channel = form.get("channel", "")
        if channel not in CIBA_CHANNELS:
            raise InvalidRequest(f"channel must be CARD (CPS card) or MOBILE (e-CPS), not {channel!r}"
                                 if channel else "missing parameter : channel (CARD or MOBILE)")
        return pro, channel


# Scripted CIBA outcomes (the control API's PUT /_bench/oidc/ciba/{idnps}) ---------------------------
def ciba_script(tx: Tx, professional_id: str, limits: Limits | None = None) -> dict:
    limits = limits or Limits()
    script = {"outcome": "approve", "after_polls": 1, "expires_in": limits.ciba_expires_in,
              "interval": limits.ciba_interval}
    script.update(scripted_ciba(tx, professional_id))
    return script
