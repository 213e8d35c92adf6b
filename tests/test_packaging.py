"""The wheel carries the scenario catalogue, the dashboard's page, the console script and the pytest plugin."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_wheel_ships_the_catalogue_and_entry_points(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path), str(ROOT)],
                   check=True, timeout=300, capture_output=True)
    (wheel,) = tmp_path.glob("mockbench-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {Path(n).name for n in names if n.startswith("mockbench/catalogue/") and n.endswith(".yaml")}
    assert shipped == {p.name for p in (ROOT / "mockbench" / "catalogue").glob("*.yaml")}
    assert {"hidden-documents.yaml", "consent-withdrawal.yaml", "deleted-versions.yaml"} <= shipped
    dashboard = {Path(n).name for n in names if n.startswith("mockbench/dashboard/static/")}
    assert dashboard == {p.name for p in (ROOT / "mockbench" / "dashboard" / "static").iterdir()}
    assert {"index.html", "dashboard.js", "dashboard.css"} <= dashboard
    entry_points = zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "mockbench = mockbench.cli:main" in entry_points
    assert "[pytest11]" in entry_points and "mockbench = mockbench.testing.plugin" in entry_points
