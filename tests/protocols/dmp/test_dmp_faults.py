"""Injected faults on the DMP door (issue 23), seen through zeep and requests over real sockets: what the
client sees, and that the world did not change."""

import time

import pytest
import requests
import zeep
from kit.dmp import cda, find_documents, provide_and_register, vihf
from zeep.transports import Transport


def _send(dmp_world, uid: str = "1.2.250.1.999.23.1", timeout: float = 10.0):
    patient, dr_a = dmp_world["patient"], dmp_world["pros"]["dr_a"]
    security = vihf(dr_a, dmp_world["structures"]["chu"]["idnst"], patient, signer=dmp_world["bench"])
    repository = zeep.Client(f"{dmp_world['url']}/repository?wsdl", transport=Transport(operation_timeout=timeout))
    body, _ = provide_and_register(patient, dr_a, uid, cda(patient, dr_a, uid))
    return repository.service["ProvideAndRegisterDocumentSet-b"](_value_1=list(body), _attr_1=dict(body.attrib),
                                                                  _soapheaders=[security])


def _documents(dmp_world) -> list[str]:
    """The documents the test fed (the world's seeded ones left out)."""
    return sorted(d["unique_id"] for d in dmp_world["bench"].client.documents("alice")
                  if d["unique_id"].startswith("1.2.250.1.999.23."))


def _last(dmp_world) -> dict:
    return dmp_world["bench"].client.journal(channel="dmp", operation="TD2.1")[-1]


def test_a_receiver_fault_applies_nothing_and_is_journaled_with_its_rule(dmp_world):
    client = dmp_world["bench"].client
    client.set_fault(id="down", door="dmp", kind="soap_fault", times=1, match={"operation": "TD2.1",
                                                                             "patient": "alice"})
    with pytest.raises(zeep.exceptions.Fault) as caught:
        _send(dmp_world)
    assert caught.value.code.endswith("Receiver")          # SOAP 1.2 part 1, 5.4.6: may succeed later
    assert caught.value.subcodes[0].localname == "DMPServiceUnavailable"
    assert _documents(dmp_world) == []                      # nothing applied
    entry = _last(dmp_world)
    assert (entry["fault"], entry["verdict"], entry["code"]) == ("down", "error", "FAULT_SOAP_FAULT")
    # once: the same message now goes through, and the DMP holds one copy
    assert _send(dmp_world)["_attr_1"]["status"].endswith(":Success")
    assert _documents(dmp_world) == ["1.2.250.1.999.23.1"]
    assert "fault" not in _last(dmp_world)
    assert [f["rule"] for f in client.fired_faults()] == ["down"]


def test_http_503_then_the_retry_succeeds(dmp_world):
    dmp_world["bench"].client.set_fault(door="dmp", kind="http_503", retry_after=7, times=1)
    with pytest.raises(zeep.exceptions.TransportError) as caught:
        _send(dmp_world)
    assert caught.value.status_code == 503
    assert _documents(dmp_world) == []
    assert _send(dmp_world)["_attr_1"]["status"].endswith(":Success")


def test_reset_drops_the_connection(dmp_world):
    dmp_world["bench"].client.set_fault(door="dmp", kind="reset", times=1)
    with pytest.raises(requests.exceptions.ConnectionError):
        _send(dmp_world)
    assert _documents(dmp_world) == []
    assert _last(dmp_world)["code"] == "FAULT_RESET"


def test_timeout_answers_nothing_until_the_client_gives_up(dmp_world):
    dmp_world["bench"].client.set_fault(door="dmp", kind="timeout", seconds=30, times=1)
    started = time.monotonic()
    with pytest.raises(requests.exceptions.Timeout):
        _send(dmp_world, timeout=1.0)
    assert time.monotonic() - started < 10
    assert _documents(dmp_world) == []
    # the bench kept serving: the same request now succeeds
    assert _send(dmp_world)["_attr_1"]["status"].endswith(":Success")


def test_delay_and_trickle_slow_the_answer_and_apply_it(dmp_world):
    client = dmp_world["bench"].client
    client.set_fault(id="slow", door="dmp", kind="delay", seconds=1.0, times=1)
    started = time.monotonic()
    assert _send(dmp_world, "1.2.250.1.999.23.2")["_attr_1"]["status"].endswith(":Success")
    assert time.monotonic() - started >= 1.0
    assert _last(dmp_world)["fault"] == "slow"
    client.set_fault(id="drip", door="dmp", kind="trickle", seconds=1.0, times=1)
    started = time.monotonic()
    assert _send(dmp_world, "1.2.250.1.999.23.3")["_attr_1"]["status"].endswith(":Success")
    assert time.monotonic() - started >= 0.9
    assert _documents(dmp_world) == ["1.2.250.1.999.23.2", "1.2.250.1.999.23.3"]


def test_a_fault_on_one_operation_leaves_the_others_served(dmp_world):
    dmp_world["bench"].client.set_fault(door="dmp", kind="soap_fault", match={"operation": "TD3.1"})
    assert _send(dmp_world)["_attr_1"]["status"].endswith(":Success")
    patient, dr_a = dmp_world["patient"], dmp_world["pros"]["dr_a"]
    security = vihf(dr_a, dmp_world["structures"]["chu"]["idnst"], patient, signer=dmp_world["bench"])
    registry = zeep.Client(f"{dmp_world['url']}/registry?wsdl")
    body = find_documents(patient)
    with pytest.raises(zeep.exceptions.Fault):
        registry.service.RegistryStoredQuery(_value_1=list(body), _attr_1=dict(body.attrib), _soapheaders=[security])
