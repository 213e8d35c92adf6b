"""The release artifacts: `python -m build` makes an sdist and a wheel that `twine check` accepts; the wheel
carries the scenario catalogue, the dashboard's page, the console script and the pytest plugin, and once
installed in a clean venv (nothing from this checkout on its path) `mockbench up` serves the catalogue's
scenario and the dashboard."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tomllib
import urllib.request
import zipfile
from pathlib import Path

import pytest
from kit.process import wait_for_port_file

ROOT = Path(__file__).parents[1]

# One build for the module (its fixture is module-scoped): under xdist the module's tests share one worker.
pytestmark = pytest.mark.xdist_group("packaging")


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> dict[str, Path]:
    """The sdist, and the wheel built from it (as `python -m build` does by default: the sdist must be whole)."""
    out = tmp_path_factory.mktemp("dist")
    # Built from a copy: setuptools writes its staging folder and egg-info into the source tree, which another
    # build, an editable install or a test reading the tree could meet half made.
    source = tmp_path_factory.mktemp("source") / "mockbench"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", ".bench", ".mockbench", "build", "dist", "*.egg-info", "__pycache__", ".mypy_cache",
        ".pytest_cache", ".hypothesis", ".ruff_cache"))
    built = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(source)],
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (wheel,) = out.glob("mockbench-*.whl")
    (sdist,) = out.glob("mockbench-*.tar.gz")
    return {"wheel": wheel, "sdist": sdist}


def packages_in_pyproject() -> set[str]:
    return set(tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["packages"])


def test_pyproject_lists_every_package_of_the_source_tree():
    """pyproject.toml lists the packages (the catalogue's package-dir mapping rules out `find:`): a package
    added under mockbench/ and not listed would be missing from the wheel and the image. Some have no
    __init__.py (namespace packages, e.g. mockbench.world), some hold only data (the dashboard's static/):
    any folder holding a file counts."""
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "mockbench").rglob("*")
               if p.is_file() and "__pycache__" not in p.parts}
    on_disk.add("mockbench.catalogue")
    listed = packages_in_pyproject()
    assert not on_disk - listed, f"add to [tool.setuptools] packages in pyproject.toml: {sorted(on_disk - listed)}"
    assert not listed - on_disk, f"listed in pyproject.toml but not in the tree: {sorted(listed - on_disk)}"


def test_the_wheel_holds_every_module_of_the_source_tree(dist):
    names = set(zipfile.ZipFile(dist["wheel"]).namelist())
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "mockbench").rglob("*.py")}
    assert not modules - names, sorted(modules - names)
    assert "mockbench/catalogue/__init__.py" in names


def test_twine_check_accepts_both(dist):
    checked = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", str(dist["sdist"]),
                              str(dist["wheel"])], capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count("PASSED") == 2, checked.stdout


def test_sdist_holds_what_the_image_and_a_rebuild_need(dist):
    names = {Path(n).relative_to(Path(n).parts[0]).as_posix() for n in tarfile.open(dist["sdist"]).getnames()
             if len(Path(n).parts) > 1}
    assert {"pyproject.toml", "README.md", "mockbench/cli.py", "scenarios/hidden-documents.yaml",
            "mockbench/dashboard/static/index.html"} <= names


def test_wheel_ships_the_catalogue_and_entry_points(dist):
    wheel = dist["wheel"]
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {Path(n).name for n in names if n.startswith("mockbench/catalogue/") and n.endswith(".yaml")}
    # the top-level scenarios/ folder (issue 22 point 6) lands in the wheel as the package mockbench.catalogue
    assert shipped == {p.name for p in (ROOT / "scenarios").glob("*.yaml")}
    assert {"hidden-documents.yaml", "consent-withdrawal.yaml", "deleted-versions.yaml"} <= shipped
    dashboard = {Path(n).name for n in names if n.startswith("mockbench/dashboard/static/")}
    assert dashboard == {p.name for p in (ROOT / "mockbench" / "dashboard" / "static").iterdir()}
    assert {"index.html", "dashboard.js", "dashboard.css"} <= dashboard
    entry_points = zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "mockbench = mockbench.cli:main" in entry_points
    assert "[pytest11]" in entry_points and "mockbench = mockbench.testing.plugin" in entry_points


def test_the_wheel_in_a_clean_venv_runs_up_with_the_catalogue_and_the_dashboard(dist, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    installed = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                                "--disable-pip-version-check", str(dist["wheel"])], capture_output=True, text=True,
                               timeout=600)
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    port_file = tmp_path / "ports.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MOCKBENCH_", "PYTHON"))}
    # run from an empty folder: the installed package, not this checkout, is what starts
    proc = subprocess.Popen([str(venv / "bin" / "mockbench"), "up", "--http-port", "0", "--mllp-port", "0",
                             "--smtp-port", "0", "--imap-port", "0", "--port-file", str(port_file),
                             "--scenario", "hidden-documents"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{wait_for_port_file(proc, port_file, 60)['http']}"
        with urllib.request.urlopen(f"{url}/_bench/health", timeout=5) as answer:
            assert json.load(answer)["status"] == "ok"
        with urllib.request.urlopen(f"{url}/_bench/patients", timeout=5) as answer:
            assert [p["id"] for p in json.load(answer)] == ["alice", "leo"]   # the wheel's catalogue
        with urllib.request.urlopen(f"{url}/", timeout=5) as answer:
            assert answer.status == 200 and "mockbench · tableau de bord" in answer.read().decode()
        where = subprocess.run([str(venv / "bin" / "python"), "-c", "import mockbench; print(mockbench.__file__)"],
                               capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
        assert where.stdout.strip().startswith(str(venv)), where.stdout + where.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=15)[0]
    assert proc.returncode == 0, output
