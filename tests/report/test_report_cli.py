"""`mockbench report`, as a user types it, against a running bench."""

from __future__ import annotations

import json
import re
import socket
from datetime import UTC, datetime

from lxml import html as lxml_html
from report_messages import external_references, play_conf_03_01

from mockbench.cli import default_report_name, main, write_report


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_report_writes_the_file_named(mockbench, capsys, tmp_path):
    mockbench.client.load("dmp-conf-03-01")
    play_conf_03_01(mockbench)
    out = tmp_path / "preuves" / "rapport.html"
    code, printed, err = run(capsys, "report", "--url", mockbench.url, "--out", str(out))
    assert (code, err) == (0, "") and printed.strip() == str(out)
    document = out.read_text("utf-8")
    assert external_references(document) == []
    tree = lxml_html.document_fromstring(document)
    assert "dmp-conf-03-01" in tree.findtext(".//title")
    assert [b.text for b in tree.xpath("//tr[starts-with(@id, 'step-')]//span[contains(@class, 'badge')]")] == \
        ["réussie"] * 4

    code, printed, _ = run(capsys, "report", "--url", mockbench.url, "--format", "json", "--out",
                           str(tmp_path / "r.json"))
    assert code == 0
    report = json.loads((tmp_path / "r.json").read_text("utf-8"))
    assert report["scenario"]["id"] == "dmp-conf-03-01" and report["outcome"] == "passed"


def test_report_default_name_in_the_current_folder(mockbench, capsys, tmp_path, monkeypatch):
    mockbench.client.load("dmp-conf-03-01")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MOCKBENCH_URL", mockbench.url)
    for fmt in ("html", "json"):
        code, printed, _ = run(capsys, "report", "--url", mockbench.url, "--format", fmt)
        assert code == 0
        name = printed.strip()
        assert re.fullmatch(rf"mockbench-report-dmp-conf-03-01-\d{{8}}-\d{{6}}\.{fmt}", name), name
        assert (tmp_path / name).stat().st_size > 1000
    # The reusable function behind it (what `mockbench scenario run` calls on Ctrl-C).
    path = write_report(mockbench.url, "json", tmp_path / "x.json")
    assert json.loads(path.read_text("utf-8"))["steps"][0]["status"] == "failed"   # nothing played yet
    assert [s["status"] for s in mockbench.client.steps()] == ["pending"] * 4      # and the run goes on


def test_default_report_names():
    when = datetime(2026, 11, 26, 10, 4, 12, tzinfo=UTC)
    assert default_report_name("dmp-ux-15", "html", when) == "mockbench-report-dmp-ux-15-20261126-100412.html"
    assert default_report_name(None, "json", when) == "mockbench-report-sans-scenario-20261126-100412.json"
    assert default_report_name("../../etc/x y", "html", when) == "mockbench-report-etc-x-y-20261126-100412.html"


def test_report_without_a_bench(capsys, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, _, err = run(capsys, "report", "--url", f"http://127.0.0.1:{port}", "--out", str(tmp_path / "r.html"))
    assert code == 1 and "no bench answers at" in err
    assert not (tmp_path / "r.html").exists()
