"""The OIDC core's shape (issue 20 point 4): endpoints and grant types are classes a provider registers, as
Authlib's authorization server does, and each request's journal entry says what its endpoint declared on the
`Exchange` it was handed (no state left in the transaction). Driven through `Provider.handle`, no HTTP."""

from __future__ import annotations

import base64

import pytest

from mockbench.protocols.oidc.endpoints import Endpoint
from mockbench.protocols.oidc.errors import InvalidGrant
from mockbench.protocols.oidc.exchange import Exchange, Result
from mockbench.protocols.oidc.grants import CIBA_GRANT, Grant
from mockbench.protocols.oidc.profiles import Client
from mockbench.protocols.oidc.provider import Provider, Request, profiles_from_config
from mockbench.world.clock import Clock
from mockbench.world.store import Store
from mockbench.world.world import World

BASIC = {"authorization": "Basic " + base64.b64encode(b"mockbench:mockbench-secret").decode()}


@pytest.fixture
def world(tmp_path) -> World:
    return World(Store(tmp_path / "w.db"), Clock())


@pytest.fixture(params=["psc", "etab"])
def provider(request, world) -> Provider:
    profile = next(p for p in profiles_from_config({}) if p.name == request.param)
    return Provider(world, profile, lambda: "http://bench.test")


def journal(world: World) -> list[dict]:
    with world.read() as tx:
        return world.journal.query(tx, channel="oidc")


def test_every_routed_endpoint_is_registered(provider):
    names = {*provider.profile.endpoints, *provider.profile.wallet_endpoints}
    assert names <= set(provider.endpoints)
    assert set(provider.endpoints) - names <= {"issuer_authorize"}   # PSC's only (see PSC_ENDPOINTS)
    for name, endpoint in provider.endpoints.items():
        assert endpoint.name == name and endpoint.provider is provider


def test_discovery_advertises_the_registered_grants(provider):
    assert set(provider.grants) == {"authorization_code", "refresh_token", CIBA_GRANT}
    assert provider.discovery()["grant_types_supported"] == list(provider.grants)


def test_the_entry_says_what_the_endpoint_declared(provider, world):
    class Probe(Endpoint):
        name = "userinfo"
        journal = "probe"

        def __call__(self, ex: Exchange) -> Result:
            assert ex.actor == "the-client"          # the request's client_id, until the endpoint knows better
            ex.declare(actor="8001234567", operation="probe-op", code="noted")
            ex.declare(verdict=None)                # what is not given stays as it is
            return 200, {"ok": True}, {}

    provider.register_endpoint(Probe)
    assert provider.handle("userinfo", Request("GET", args={"client_id": "the-client"}))[0] == 200
    (entry,) = journal(world)
    assert (entry["operation"], entry["actor"], entry["verdict"], entry["code"]) == \
        ("probe-op", "8001234567", "accepted", "noted")


def test_a_refusal_keeps_what_was_declared_and_its_own_code(provider, world):
    class Refusing(Grant):
        grant_type = "authorization_code"

        def issue(self, ex: Exchange, client: Client) -> dict:
            ex.declare(actor="8001234567", code="overwritten")
            raise InvalidGrant("no")

    provider.register_grant(Refusing)
    status, body, _ = provider.handle("token", Request("POST", form={"grant_type": "authorization_code"},
                                                       headers=BASIC))
    assert (status, body["error"]) == (400, "invalid_grant")
    (entry,) = journal(world)
    assert (entry["operation"], entry["actor"], entry["verdict"], entry["code"]) == \
        ("token", "8001234567", "refused", "invalid_grant")


def test_an_unexpected_failure_is_a_server_error_that_undoes_the_endpoints_writes(provider, world):
    class Broken(Endpoint):
        name = "userinfo"
        journal = "userinfo"

        def __call__(self, ex: Exchange) -> Result:
            ex.tx.meta_set("probe", 1)
            ex.declare(actor="someone")
            raise RuntimeError("boom")

    provider.register_endpoint(Broken)
    status, body, _ = provider.handle("userinfo", Request("GET"))
    assert (status, body["error"]) == (500, "server_error")
    (entry,) = journal(world)
    assert (entry["actor"], entry["verdict"], entry["code"]) == ("someone", "error", "server_error")
    with world.read() as tx:
        assert tx.meta_get("probe") is None


def test_the_jwks_is_journaled_only_when_a_fault_slows_it(provider, world):
    assert provider.handle("jwks", Request("GET"))[0] == 200
    assert journal(world) == []
    provider.handle("jwks", Request("GET"), fault="slow-jwks")
    (entry,) = journal(world)
    assert (entry["operation"], entry["fault"]) == ("jwks", "slow-jwks")
