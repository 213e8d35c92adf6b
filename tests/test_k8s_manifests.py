"""The Kubernetes manifests (deploy/k8s/) validated against the Kubernetes schemas (kubernetes-validate, strict:
no unexpected property), then read as a cluster would wire them: probes on the control API's health, every
door in the Service, the state on a claim, the control token from the Secret, and in the workshop variant one
isolated bench per participant at a stable name. The image's ports and user come from docker/Dockerfile."""

from __future__ import annotations

import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = sorted((ROOT / "deploy" / "k8s").glob("*.yaml"))
DOORS = {"http": 8080, "https": 8443, "mllp": 2575, "smtp": 2525, "imap": 1143}
VERSION = "1.30.0"   # an old enough cluster: what passes here passes on newer ones too


def documents(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def by_kind(path: Path, kind: str) -> list[dict]:
    return [d for d in documents(path) if d["kind"] == kind]


def test_both_manifests_are_there():
    assert [p.name for p in MANIFESTS] == ["mockbench.yaml", "workshop.yaml"]


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
@pytest.mark.parametrize("version", [VERSION, kubernetes_validate.latest_version()])
def test_every_resource_passes_the_kubernetes_schema(path, version):
    for resource in documents(path):
        kubernetes_validate.validate(resource, version, strict=True)


def test_the_validator_refuses_what_a_cluster_refuses():
    (statefulset,) = by_kind(MANIFESTS[0], "StatefulSet")
    container = statefulset["spec"]["template"]["spec"]["containers"][0]
    container["readinessProbe"]["httpGet"]["port"] = {"name": "http"}   # an object where a port goes
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(statefulset, VERSION, strict=True)
    container["readinessProbe"]["httpGet"]["port"] = "http"
    container["readinessProbe"]["httpGets"] = {}   # a misspelt field: only strict validation sees it
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(statefulset, VERSION, strict=True)


def image_facts() -> tuple[set[int], int]:
    text = (ROOT / "docker" / "Dockerfile").read_text()
    exposed = {int(p) for p in re.search(r"^EXPOSE (.+)$", text, re.M).group(1).split()}
    uid = int(re.search(r"--uid (\d+)", text).group(1))
    return exposed, uid


def check_bench(statefulset: dict, service: dict, secrets: dict[str, dict]) -> dict:
    """What every bench's StatefulSet + Service must hold; its container, for further checks."""
    exposed, uid = image_facts()
    assert set(DOORS.values()) == exposed
    spec = statefulset["spec"]
    assert spec["replicas"] == 1   # one world, one process: a second replica would be another world
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == pod["securityContext"]["fsGroup"] == uid
    (container,) = pod["containers"]
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert named == DOORS
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/_bench/health", "port": "http"}, probe
    args = container["args"]
    assert args[:3] == ["up", "--host", "0.0.0.0"] and args[args.index("--state") + 1] == "/var/lib/mockbench"
    (mount,) = container["volumeMounts"]
    assert mount["mountPath"] == "/var/lib/mockbench"
    env = {e["name"]: e for e in container["env"]}
    ref = env["MOCKBENCH_CONTROL_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert ref["key"] in secrets[ref["name"]]["stringData"]
    requests, limits = container["resources"]["requests"], container["resources"]["limits"]
    assert requests["memory"].endswith("Mi") and int(requests["memory"][:-2]) >= 96   # ~65 MiB resident
    assert limits["cpu"] in ("1", "500m")   # one interpreter: more than a core is never used
    # the Service selects these pods and exposes every door under the container's port names
    labels = spec["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert spec["selector"]["matchLabels"] == service["spec"]["selector"]
    assert {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]} == {
        name: (port, name) for name, port in DOORS.items()}
    assert env["MOCKBENCH_PUBLIC_URL"]["value"] == f"http://{service['metadata']['name']}:8080"
    return container


def test_one_bench_keeps_its_world_on_a_claim():
    path = MANIFESTS[0]
    (statefulset,) = by_kind(path, "StatefulSet")
    (service,) = by_kind(path, "Service")
    secrets = {s["metadata"]["name"]: s for s in by_kind(path, "Secret")}
    container = check_bench(statefulset, service, secrets)
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == container["volumeMounts"][0]["name"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert "--reset" not in container["args"]   # a restarted pod resumes the world on the claim


def test_workshop_gives_each_participant_an_isolated_bench_at_a_stable_name():
    path = MANIFESTS[1]
    secrets = {s["metadata"]["name"]: s for s in by_kind(path, "Secret")}
    services = {s["metadata"]["name"]: s for s in by_kind(path, "Service")}
    statefulsets = {s["metadata"]["name"]: s for s in by_kind(path, "StatefulSet")}
    assert len(statefulsets) >= 2 and statefulsets.keys() == services.keys()
    selectors = []
    for name, statefulset in statefulsets.items():
        assert name.startswith("bench-") and statefulset["spec"]["serviceName"] == name
        check_bench(statefulset, services[name], secrets)
        selectors.append(services[name]["spec"]["selector"])
    # no Service selects another participant's pods
    for name, statefulset in statefulsets.items():
        labels = statefulset["spec"]["template"]["metadata"]["labels"]
        chosen = [s for s in selectors if s.items() <= labels.items()]
        assert chosen == [services[name]["spec"]["selector"]], name
