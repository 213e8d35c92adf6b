"""The image for real: built from docker/Dockerfile, run by a Docker engine with its ports on 127.0.0.1 and a
named volume, and every door reached through the published ports by the real clients (zeep's transport, i.e.
requests, for the DMP; python-hl7's MLLP client; smtplib and imaplib; a browser's GET of the dashboard).
Then `docker stop`, a restart on the same volume without --reset, and docker/compose.yaml brought up by
Debian's docker-compose. Everything started here is removed at the end (the images are kept: a warm machine
reuses them). Fixtures: conftest.py (engine, base image, build)."""

from __future__ import annotations

import imaplib
import re
import secrets
import shutil
import smtplib
import socket
import subprocess
import time
import uuid

import pytest
import requests
import yaml
from container_support import ROOT, unavailable
from hl7.client import MLLPClient
from kit import dmp as dmp_messages  # the DMP door's own request builders
from kit import pfi as pfi_messages
from lxml import etree

from mockbench.testing.client import BenchClient
from mockbench.testing.container import BenchContainer, ContainerError

# One Docker engine, fixed image names and published ports: under xdist (`--dist loadgroup`, pyproject)
# these run one after another on one worker. A static mark: one added by a conftest hook is not seen by xdist.
pytestmark = pytest.mark.xdist_group("docker")

HEALTHY_WITHIN = 60.0   # the image's HEALTHCHECK first probes one --interval (10 s) after the start
JEANNE = "jeanne.martin@chu.mssante.fr"
DPI = "dpi@chu.mssante.fr"
WORLD = f"""\
id: container-check
title: Essai du conteneur
seed: 11
world:
  structures: [{{id: chu, name: CHU de Test}}]
  professionals:
    - {{id: dr_a, family_name: MARTIN, given_name: Jeanne, structure: chu, mssante: {JEANNE}}}
  mailboxes:
    - {{address: {DPI}, type: APP, owner: chu, role: hospital}}
  patients:
    - id: alice
      sex: F
      family_name: DURAND
      given_name: Alice
      birth_date: "1980-05-04"
      authorizations: [{{structure: chu}}]
"""

# The control token: bound to 0.0.0.0 in its container, the bench requires one (README, Security); the test
# gives it one and every control call sends it.
CONTROL_TOKEN = secrets.token_urlsafe(24)


def control(running: BenchContainer) -> BenchClient:
    return BenchClient(running.url, token=CONTROL_TOKEN)


def start(image: str, **options) -> BenchContainer:
    return BenchContainer.start(image, token=CONTROL_TOKEN, **options)


def security(people: dict, client: BenchClient) -> etree._Element:
    """The VIHF of the DMP requests here, signed by the structure's seal certificate that the bench in the
    container issues from its own PKI (fetched through GET /_bench/pki/signing/{idnst}, as a vendor would)."""
    return dmp_messages.vihf(people["dr_a"], people["chu"]["idnst"], people["alice"], signer=client)


def people(client: BenchClient) -> dict:
    pros = {p["id"]: p for p in client.call("GET", "/professionals")}
    structures = {s["id"]: s for s in client.call("GET", "/structures")}
    return {"alice": client.patient("alice"), "dr_a": pros["dr_a"] | {"finess": structures["chu"]["finess"]},
            "chu": structures["chu"]}


def soap(url: str, body: etree._Element, header: etree._Element, action: str) -> etree._Element:
    envelope = (f'<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope" '
                f'xmlns:wsa="http://www.w3.org/2005/08/addressing"><soap:Header><wsa:Action>{action}</wsa:Action>'
                f"<wsa:MessageID>urn:uuid:{uuid.uuid4()}</wsa:MessageID>{etree.tostring(header).decode()}"
                f"</soap:Header><soap:Body>{etree.tostring(body).decode()}</soap:Body></soap:Envelope>")
    answer = requests.post(url, data=envelope.encode(), headers={"Content-Type": "application/soap+xml"}, timeout=10)
    assert answer.status_code == 200, answer.text[:2000]
    return etree.fromstring(answer.content).find("{http://www.w3.org/2003/05/soap-envelope}Body")[0]


def unique_ids(response: etree._Element) -> list[str]:
    return [e.get("value") for e in response.iter(f"{{{dmp_messages.RIM}}}ExternalIdentifier")
            if e.get("identificationScheme") == "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab"]


def feed_over_mllp(running: BenchContainer, who: dict, unique_id: str, control_id: str):
    message = pfi_messages.mdm("T02", who["alice"], who["dr_a"], who["dr_a"]["finess"], unique_id,
                               control_id=control_id)
    with MLLPClient("127.0.0.1", running.ports["mllp"]) as client:
        client.socket.settimeout(10)
        return pfi_messages.parse_ack(client.send_message(message))


@pytest.fixture(scope="module")
def volume(docker_engine):
    """A named volume that outlives the first container (the restart test runs a second one on it)."""
    name = f"mockbench-ci-{uuid.uuid4().hex[:8]}"
    docker_engine.volumes.create(name, labels={"org.mockbench.started-by": "tests"})
    yield name
    for container in docker_engine.containers.list(all=True, filters={"volume": name}):
        container.remove(force=True)
    docker_engine.volumes.get(name).remove(force=True)


@pytest.fixture(scope="module")
def served(image, volume):
    """The image's default command (hidden-documents, --reset) on free ports and the named volume, healthy."""
    running = start(image, volume=volume)
    try:
        running.healthy_after = running.wait_healthy(HEALTHY_WITHIN)
        yield running
    finally:
        running.remove()


def test_every_door_answers_through_the_published_ports(served):
    client = control(served)
    health = client.health()
    assert health["status"] == "ok"
    # the bench was told the host's ports: what it advertises is what a DPI on the host dials
    # (https answers only with a TLS folder, which this run does not mount)
    assert health["ports"] == {door: port for door, port in served.ports.items() if door != "https"}
    assert [p["id"] for p in client.patients()] == ["alice", "leo"]   # the image's scenario, hidden-documents

    client.load_yaml(WORLD)
    who = people(client)
    services = f"{served.url}/si-dmp-server/v2/services"
    # DMP: TD2.1 then TD3.1 over SOAP 1.2 through the published HTTP port
    uid = "1.2.250.1.999.77.1"
    body, _ = dmp_messages.provide_and_register(who["alice"], who["dr_a"], uid,
                                                dmp_messages.cda(who["alice"], who["dr_a"], uid))
    fed = soap(f"{services}/repository", body, security(who, client), "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b")
    assert fed.get("status", "").endswith(":Success"), etree.tostring(fed)
    found = soap(f"{services}/registry", dmp_messages.find_documents(who["alice"]), security(who, client),
                 "urn:ihe:iti:2007:RegistryStoredQuery")
    assert found.get("status", "").endswith(":Success") and unique_ids(found) == [uid], etree.tostring(found)

    # PFI: an MDM^T02 over MLLP and its ACK, the document then in the DMP
    ack = feed_over_mllp(served, who, "1.2.250.1.999.77.2", "CT1")
    assert (str(ack.segment("MSA")[1]), str(ack.segment("MSA")[2])) == ("AA", "CT1")
    assert {d["unique_id"] for d in client.documents("alice")} == {uid, "1.2.250.1.999.77.2"}

    # MSSanté: a submission over SMTP, fetched back over IMAP, bytes identical
    raw = (f"From: {JEANNE}\r\nTo: {DPI}\r\nSubject: Conteneur\r\nMessage-ID: <container@test>\r\n"
           "Date: Wed, 25 Nov 2026 10:00:00 +0000\r\n\r\nBonjour,\r\nCordialement\r\n").encode()
    with smtplib.SMTP("127.0.0.1", served.ports["smtp"], timeout=10) as smtp:
        smtp.login(JEANNE, "mockbench")
        assert smtp.sendmail(JEANNE, [DPI], raw) == {}
    with imaplib.IMAP4("127.0.0.1", served.ports["imap"], timeout=10) as imap:
        imap.login(DPI, "mockbench")
        assert imap.select("INBOX")[0] == "OK"
        typ, data = imap.fetch("1", "(BODY.PEEK[])")
        assert typ == "OK" and data[0][1] == raw
        imap.logout()

    # the dashboard, as a browser loads it: bound beyond loopback, through the token link the ready line prints
    assert requests.get(served.url + "/", timeout=10).status_code == 401
    page = requests.get(f"{served.url}/?token={CONTROL_TOKEN}", timeout=10)
    assert page.status_code == 200 and "mockbench · tableau de bord" in page.text
    operations = {(e["channel"], e["operation"]) for e in client.journal()}
    assert {("dmp", "TD2.1"), ("dmp", "TD3.1"), ("pfi", "MDM^T02"), ("mss", "SUBMIT")} <= operations


def test_stop_exits_zero_and_a_restart_without_reset_keeps_the_world(served, image, volume):
    client = control(served)
    client.load_yaml(WORLD)
    who = people(client)
    ack = feed_over_mllp(served, who, "1.2.250.1.999.78.1", "CT2")
    assert str(ack.segment("MSA")[1]) == "AA"
    before = client.documents("alice")
    assert [d["unique_id"] for d in before] == ["1.2.250.1.999.78.1"]

    assert served.stop() == 0   # SIGTERM to the bench, PID 1: a clean exit, not Docker's SIGKILL (137)
    assert "Traceback" not in served.logs()
    served.remove()
    again = start(image, volume=volume, command=["up", "--host", "0.0.0.0", "--state", "/var/lib/mockbench"])
    try:
        again.wait_healthy(HEALTHY_WITHIN)
        kept = control(again)
        assert kept.documents("alice") == before
        assert [p["id"] for p in kept.patients()] == ["alice"]
    finally:
        again.remove()


def test_a_port_in_use_is_one_line_naming_it_and_nothing_is_left(image, docker_engine, leftovers):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ContainerError) as caught:
            start(image, ports={"mllp": port})
    first = str(caught.value).splitlines()[0]
    assert f"port {port} on 127.0.0.1 (for mllp) is in use" in first and "stop what listens" in first
    assert leftovers() == []


def test_an_image_that_exits_is_reported_with_its_last_output_and_removed(image, leftovers):
    running = start(image, command=["up", "--host", "0.0.0.0", "--scenario", "no-such-scenario"])
    try:
        with pytest.raises(ContainerError) as caught:
            running.wait_healthy(HEALTHY_WITHIN)
    finally:
        running.remove()
    message = str(caught.value)
    assert message.splitlines()[0].startswith(f"container {running.name} exited with code ")
    assert "no-such-scenario" in message.split("--- container's last output ---", 1)[1]
    assert leftovers() == []


def test_an_image_that_never_becomes_healthy_is_reported_with_the_probe_and_its_output(image, leftovers):
    never = {"test": ["CMD", "python", "-c", "import sys; print('probe says no'); sys.exit(1)"],
             "interval": 500_000_000, "timeout": 2_000_000_000, "retries": 2, "start_period": 1_000_000}
    running = start(image, run_options={"healthcheck": never})
    try:
        with pytest.raises(ContainerError) as caught:
            running.wait_healthy(HEALTHY_WITHIN)
    finally:
        running.remove()
    first = str(caught.value).splitlines()[0]
    assert first.startswith(f"container {running.name} is unhealthy after ") and "probe says no" in first
    assert first.endswith("read its output below")
    assert leftovers() == []


# compose -------------------------------------------------------------------------------------------------
def compose_command() -> list[str]:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    unavailable("docker-compose is not installed (apt-get install docker-compose): docker/compose.yaml "
                "could not be brought up")


def test_compose_file_comes_up_healthy(image, docker_engine):
    compose_file = ROOT / "docker" / "compose.yaml"
    service = yaml.safe_load(compose_file.read_text())["services"]["mockbench"]
    host_ports = [int(p.split(":")[1]) for p in service["ports"]]
    for port in host_ports:   # the file's fixed host ports (8080...) must be free for `up`
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                unavailable(f"port {port} on 127.0.0.1 is in use: docker/compose.yaml publishes it")
    project = f"mockbench-ci-{uuid.uuid4().hex[:8]}"
    command = [*compose_command(), "-f", str(compose_file), "-p", project]
    try:
        up = subprocess.run([*command, "up", "-d", "--build"], capture_output=True, text=True, timeout=600)
        assert up.returncode == 0, up.stdout + up.stderr
        (container,) = docker_engine.containers.list(filters={"label": f"com.docker.compose.project={project}"})
        deadline = time.monotonic() + HEALTHY_WITHIN
        while (status := docker_engine.containers.get(container.id).attrs["State"]["Health"]["Status"]) != "healthy":
            assert status == "starting" and time.monotonic() < deadline, container.logs(tail=40).decode()
            time.sleep(0.5)
        # the token the bench made, read from its ready line as the README says (`docker compose logs`)
        found = re.search(r"\?token=([A-Za-z0-9_-]+)", container.logs().decode("utf-8", "replace"))
        assert found, container.logs(tail=40).decode()
        assert requests.get(f"http://127.0.0.1:{host_ports[0]}/_bench/patients", timeout=5).status_code == 401
        health = requests.get(f"http://127.0.0.1:{host_ports[0]}/_bench/health", timeout=5,
                              headers={"Authorization": f"Bearer {found.group(1)}"}).json()
        assert health["status"] == "ok" and health["ports"]["http"] == 8080
        assert requests.get(f"http://127.0.0.1:{host_ports[0]}/?token={found.group(1)}", timeout=5).status_code == 200
    finally:
        down = subprocess.run([*command, "down", "--volumes", "--remove-orphans"], capture_output=True, text=True,
                              timeout=120)
    assert down.returncode == 0, down.stdout + down.stderr
    assert docker_engine.containers.list(all=True, filters={"label": f"com.docker.compose.project={project}"}) == []
    assert docker_engine.volumes.list(filters={"label": f"com.docker.compose.project={project}"}) == []
    assert not any(n.name.startswith(project) for n in docker_engine.networks.list())


def test_nothing_left_running(docker_engine, leftovers):
    """Last in this module: every container the check started is gone (fixtures removed theirs)."""
    assert leftovers() == []
    assert [v.name for v in docker_engine.volumes.list() if v.name.startswith("mockbench-")
            and not v.name.startswith("mockbench-ci-")] == []

