"""Issue 17, point 3: a write that fails for lack of disk space is answered on each door's own wire as a
circumstantial refusal the client may retry (HL7 ACK AR with ERR 207, SMTP 452 4.3.1, SOAP 1.2 Receiver
fault, HTTP 507), never a dropped connection or a traceback per request; it is logged once per episode, and
the bench takes the same requests again by itself once space returns.

The state folder lives on a small tmpfs, which only root may mount: skipped otherwise, saying so.
"""

from __future__ import annotations

import errno
import logging
import os
import smtplib
import sqlite3
import subprocess
from pathlib import Path

import hl7
import pytest
import requests
from hl7.client import MLLPClient
from kit.pfi import mdm
from reliability_helpers import PFI_WORLD

from mockbench.bench import Bench
from mockbench.config import Config
from mockbench.protocols.annuaire.door import PREFIX as FHIR

SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
WSA = "http://www.w3.org/2005/08/addressing"
SENDER = "dr.martin@chu.mssante.fr"


@pytest.fixture
def small_disk(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("a full disk is tested on a small tmpfs, which only root may mount; run the suite as root")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()})")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(path: Path) -> None:
    """Write to `path` until the file system has no byte left."""
    with open(path, "wb", buffering=0) as f:
        for size in (1 << 20, 1 << 12, 1):
            block = b"\0" * size
            while True:
                try:
                    f.write(block)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
                    break


def soap_query() -> bytes:
    """A registry query without a VIHF: refused (Sender) when it can be journaled."""
    return (f'<soap:Envelope xmlns:soap="{SOAP12}" xmlns:wsa="{WSA}"><soap:Header>'
            "<wsa:Action>urn:ihe:iti:2007:RegistryStoredQuery</wsa:Action>"
            "<wsa:MessageID>urn:uuid:5f6a1d4e-3c2b-4a10-9e8f-0d1c2b3a4f5e</wsa:MessageID></soap:Header>"
            "<soap:Body/></soap:Envelope>").encode()


def fault_code(response: requests.Response) -> tuple[str, str]:
    from lxml import etree

    fault = etree.fromstring(response.content).find(f"{{{SOAP12}}}Body/{{{SOAP12}}}Fault")
    return (fault.findtext(f"{{{SOAP12}}}Code/{{{SOAP12}}}Value").rpartition(":")[2],
            fault.findtext(f"{{{SOAP12}}}Code/{{{SOAP12}}}Subcode/{{{SOAP12}}}Value").rpartition(":")[2])


def test_a_full_disk_is_a_retryable_refusal_on_every_wire_then_the_bench_recovers(small_disk, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    scenario = tmp_path / "world.yaml"
    scenario.write_text(PFI_WORLD.replace("Jeanne, structure: chu}", f"Jeanne, structure: chu, mssante: {SENDER}}}"),
                        encoding="utf-8")
    bench = Bench(Config(state=small_disk / "state", scenario=str(scenario), http_port=0, mllp_port=0,
                         smtp_port=0, imap_port=0))
    bench.start()
    base = bench.url
    smtp = None
    try:
        patient = requests.get(f"{base}/_bench/patients/alice", timeout=10).json()
        dr_a = requests.get(f"{base}/_bench/professionals", timeout=10).json()[0]
        dr_a["finess"] = requests.get(f"{base}/_bench/structures", timeout=10).json()[0]["finess"]
        message = mdm("T02", patient, dr_a, dr_a["finess"], "1.2.250.1.999.3.1", control_id="FULL1")
        mail = f"From: <{SENDER}>\r\nTo: <{SENDER}>\r\nSubject: essai\r\n\r\nBonjour\r\n".encode()
        smtp = smtplib.SMTP("127.0.0.1", bench.ports["smtp"], timeout=10)
        smtp.login(SENDER, "mockbench")     # before the disk fills: AUTH is journaled too
        with sqlite3.connect(small_disk / "state" / "world.db") as conn:   # the WAL emptied, as after a checkpoint
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        filler = small_disk / "filler"
        fill(filler)
        caplog.clear()

        # HL7: AR (trans-cda-r2 profils-messages.md: "rejeté pour une raison circonstancielle"), ERR 207
        with MLLPClient("127.0.0.1", bench.ports["mllp"]) as client:
            client.socket.settimeout(10)
            for _ in range(2):
                ack = hl7.parse(client.send_message(message).decode())
                assert (str(ack.segment("MSA")[1]), str(ack.segment("MSA")[2])) == ("AR", "FULL1")
                assert str(ack.segment("ERR")[3][0][0]) == "207"
        # SMTP: 452 4.3.1 to DATA on a session opened before, and to AUTH on a new one
        with pytest.raises(smtplib.SMTPDataError) as refused:
            smtp.sendmail(SENDER, [SENDER], mail)
        assert refused.value.smtp_code == 452 and refused.value.smtp_error.startswith(b"4.3.1")
        with smtplib.SMTP("127.0.0.1", bench.ports["smtp"], timeout=10) as other, \
                pytest.raises(smtplib.SMTPAuthenticationError) as auth:
            other.login(SENDER, "mockbench")
        assert auth.value.smtp_code == 452
        # SOAP 1.2: a Receiver fault (the same message may succeed later)
        soap = requests.post(f"{base}/si-dmp-server/v2/services/registry", data=soap_query(),
                             headers={"Content-Type": "application/soap+xml"}, timeout=10)
        assert fault_code(soap) == ("Receiver", "DMPStorageFull")
        # HTTP: 507 on the control API, the Annuaire (an OperationOutcome) and the OIDC token endpoint
        control = requests.post(f"{base}/_bench/clock", json={"advance": "1s"}, timeout=10)
        assert (control.status_code, control.json()["error"]) == (507, "STORAGE_FULL")
        fhir = requests.get(f"{base}{FHIR}/v2/Practitioner", headers={"ESANTE-API-KEY": "mockbench"}, timeout=10)
        assert fhir.status_code == 507 and fhir.json()["issue"][0]["code"] == "transient"
        token = requests.post(f"{base}/oidc/etab/token", data={"grant_type": "authorization_code", "code": "x",
                                                              "redirect_uri": "http://127.0.0.1/callback"},
                              auth=("mockbench", "mockbench-secret"), timeout=10)
        assert (token.status_code, token.json()["error"]) == (507, "temporarily_unavailable")
        # Logged once for the whole episode, and never a traceback.
        full = [r for r in caplog.records if "disk is full" in r.getMessage()]
        assert len(full) == 1, [r.getMessage() for r in full]
        assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records]

        filler.unlink()   # space returns: the same requests go through, nothing restarted
        with MLLPClient("127.0.0.1", bench.ports["mllp"]) as client:
            client.socket.settimeout(10)
            ack = hl7.parse(client.send_message(message).decode())
        assert str(ack.segment("MSA")[1]) == "AA"
        assert smtp.sendmail(SENDER, [SENDER], mail) == {}
        assert fault_code(requests.post(f"{base}/si-dmp-server/v2/services/registry", data=soap_query(),
                                        headers={"Content-Type": "application/soap+xml"}, timeout=10))[0] == "Sender"
        assert requests.post(f"{base}/_bench/clock", json={"advance": "1s"}, timeout=10).status_code == 200
        assert len([r for r in caplog.records if "disk space is back" in r.getMessage()]) == 1
        journal = requests.get(f"{base}/_bench/journal", timeout=10).json()
        assert [e["verdict"] for e in journal if e["operation"] == "MDM^T02"] == ["accepted"]
        assert len([e for e in journal if e["operation"] == "SUBMIT"]) == 1
    finally:
        if smtp is not None:
            smtp.close()
        bench.close()
