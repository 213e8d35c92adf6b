"""A DPI that reaches the bench over the network (another process, a container) signs its VIHFs with the seal
certificate the bench's PKI issues for its structure, fetched from `GET /_bench/pki/signing/{idnst}`
(`mockbench.testing.sign_vihf(vihf, BenchClient)`): the DMP door then accepts them, as it requires a signature
chaining to its trust anchors (specs/trans-cda-r2/mapping.md, the VIHF table; issue 14 point 4)."""

import signal
import subprocess
import sys

import pytest
import zeep
from kit.dmp import WORLD, find_documents, vihf
from kit.process import wait_for_port_file
from test_dmp_door import call, client

from mockbench.testing.client import BenchClient, BenchHTTPError


@pytest.fixture
def remote(tmp_path):
    port_file = tmp_path / "ports.json"
    proc = subprocess.Popen([sys.executable, "-m", "mockbench", "up", "--http-port", "0", "--mllp-port", "0",
                             "--smtp-port", "0", "--imap-port", "0", "--state", str(tmp_path / "state"),
                             "--port-file", str(port_file), "--quiet"], stderr=subprocess.PIPE, text=True)
    bench = BenchClient(f"http://127.0.0.1:{wait_for_port_file(proc, port_file, 30)['http']}")
    yield bench, tmp_path / "state"
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=10)


def test_a_vihf_signed_with_the_fetched_seal_is_accepted(remote):
    bench, state = remote
    bench.load_yaml(WORLD)
    patient = bench.patient("alice")
    pros = {p["id"]: p for p in bench.call("GET", "/professionals")}
    idnst = {s["id"]: s for s in bench.call("GET", "/structures")}["chu"]["idnst"]
    seal = bench.call("GET", f"/pki/signing/{idnst}")
    assert seal["certificate"].startswith("-----BEGIN CERTIFICATE-----") and "PRIVATE KEY" in seal["private_key"]
    assert seal["ca"] == (state / "pki" / "ca.crt").read_text()   # the CA the DMP door trusts
    registry, history = client(f"{bench.url}/si-dmp-server/v2/services", "registry")
    signed = vihf(pros["dr_a"], idnst, patient, signer=bench)
    found = call(registry, history, "RegistryStoredQuery", find_documents(patient), signed)
    assert found.get("status").endswith(":Success")
    with pytest.raises(zeep.exceptions.Fault) as refused:   # the same request unsigned
        call(registry, history, "RegistryStoredQuery", find_documents(patient),
             vihf(pros["dr_a"], idnst, patient, signer=None))
    assert [q.localname for q in refused.value.subcodes] == ["DMPInvalidCertificate"]
    assert refused.value.message.startswith("the VIHF is not signed")


def test_a_name_that_is_not_an_idnst_is_refused_plainly(remote):
    bench, _ = remote
    with pytest.raises(BenchHTTPError) as refused:
        bench.call("GET", "/pki/signing/..%2F..%2Fetc")
    assert refused.value.status in (404, 409)
    with pytest.raises(BenchHTTPError) as refused:
        bench.call("GET", "/pki/signing/a%20b")
    assert (refused.value.status, refused.value.code) == (409, "PKI_UNAVAILABLE")
    assert "IDNST" in refused.value.body["message"]
