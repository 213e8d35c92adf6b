"""Scripted CIBA outcomes: how a professional answers a backchannel authentication request (approve after
some polls, deny, let it expire). The world holds them, so that a scenario and the control API set them
and the OIDC door reads them, without one importing the other."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import errors
from .clock import parse_duration
from .store import Tx

if TYPE_CHECKING:
    from .world import World

CIBA_OUTCOMES = ("approve", "deny", "expire")
CIBA_META = "oidc:ciba:"                      # + professional id: the scripted CIBA outcome


def scripted_ciba(tx: Tx, professional_id: str) -> dict:
    """What was scripted for this professional (empty: the door's defaults apply)."""
    return tx.meta_get(CIBA_META + professional_id, {}) or {}


def set_ciba_script(world: World, tx: Tx, key: str, body: dict) -> dict:
    """Validate and store a professional's CIBA outcome; returns it with the professional's ids."""
    pro = world.directory.professional(tx, key)
    unknown = set(body) - {"outcome", "after_polls", "expires_in", "interval"}
    if unknown:
        raise errors.InvalidRequest(f"unknown field {sorted(unknown)[0]}: outcome, after_polls, expires_in, "
                                    "interval")
    outcome = body.get("outcome", "approve")
    if outcome not in CIBA_OUTCOMES:
        raise errors.InvalidRequest(f"outcome must be one of {', '.join(CIBA_OUTCOMES)}")
    script: dict[str, Any] = {"outcome": outcome}
    after = body.get("after_polls", 1)
    if not isinstance(after, int) or isinstance(after, bool) or after < 0:
        raise errors.InvalidRequest("after_polls must be a whole number >= 0")
    script["after_polls"] = after
    if "expires_in" in body:
        try:
            script["expires_in"] = parse_duration(body["expires_in"])
        except ValueError as exc:
            raise errors.InvalidRequest(str(exc)) from None
    if "interval" in body:
        if not isinstance(body["interval"], int) or isinstance(body["interval"], bool) or body["interval"] < 1:
            raise errors.InvalidRequest("interval must be a whole number of seconds >= 1")
        script["interval"] = body["interval"]
    tx.meta_set(CIBA_META + pro.id, script)
    return {"idnps": pro.idnps, "professional": pro.id, **script}
