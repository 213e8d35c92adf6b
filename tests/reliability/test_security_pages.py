"""Issue 17 point 5: a stored document or mail never runs in the bench's origin; the dashboard and the report
carry a strict Content-Security-Policy and cannot be framed.

Headless Chromium (Debian's chromium and chromium-driver, as tests/dashboard) opens a stored HTML document,
and an XML document carrying XHTML with a script, at their content URLs: the script, if it ran, would empty the
world with a synchronous call to the control API before the page finished loading (what it did on the bench
before the fix). Without Chromium the browser tests skip locally and fail under CI, like the dashboard's.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import requests

from mockbench.scenarios.seed import Seeder

CHROMIUM = os.environ.get("MOCKBENCH_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("MOCKBENCH_CHROMEDRIVER", "/usr/bin/chromedriver")

# Runs before the load event: a synchronous POST, then a mark in the title.
HOSTILE_SCRIPT = ('var x = new XMLHttpRequest(); x.open("POST", "/_bench/reset", false); '
                  'x.setRequestHeader("Content-Type", "application/json"); x.send("{}"); document.title = "ran";')
HOSTILE_HTML = f"<!DOCTYPE html><html><head><title>doc</title><script>{HOSTILE_SCRIPT}</script></head>" \
               "<body>compte rendu</body></html>"
HOSTILE_XHTML = ('<?xml version="1.0"?><ClinicalDocument xmlns="urn:hl7-org:v3"><text>'
                 f'<html xmlns="http://www.w3.org/1999/xhtml"><script>{HOSTILE_SCRIPT}</script></html>'
                 '</text></ClinicalDocument>')


def store_document(bench, doc_id: str, mime_type: str, content: bytes) -> str:
    """A document in Alice's DMP with the given type and bytes, as TD2.1 would store it (it accepts any
    mimeType); its content URL."""
    with bench.world.transaction() as tx:
        seeder = Seeder(bench.world, tx)
        meta, _ = seeder.document_meta("alice", {"id": doc_id})
        meta["mime_type"] = mime_type
        bench.world.dmp.submit(tx, seeder._author_actor(meta["author"]), "alice", meta, content)
    return f"{bench.url}/_bench/documents/{doc_id}/content"


def patient_count(bench) -> int:
    with bench.world.transaction() as tx:
        return len(bench.world.directory.patients(tx))


@pytest.fixture
def world(mockbench):
    mockbench.bench.load_scenario("hidden-documents")
    assert patient_count(mockbench.bench) > 0
    return mockbench


# Headers -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mime_type", ["text/html", "text/xml", "image/svg+xml", "text/html\r\nX-Evil: 1"])
def test_document_content_is_a_download_that_cannot_run(world, mime_type):
    url = store_document(world.bench, "piege", mime_type, HOSTILE_HTML.encode())
    response = requests.get(url, timeout=5)
    assert response.status_code == 200 and response.content == HOSTILE_HTML.encode()
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    csp = [d.strip() for d in response.headers["Content-Security-Policy"].split(";")]
    assert "sandbox" in csp and "default-src 'none'" in csp
    assert "X-Evil" not in response.headers
    if "\r" in mime_type:   # not a media type: served as bytes
        assert response.headers["Content-Type"] == "application/octet-stream"


def test_raw_mail_is_a_download(mockbench):
    import base64

    mockbench.client.load_yaml("""\
id: mss
title: Messageries
world:
  structures: [{id: chu}]
  mailboxes:
    - {address: dpi@chu.mssante.fr, type: APP, owner: chu, role: hospital}
    - {address: dr.roux@clinique.mssante.fr, type: PER, role: correspondent}
""")
    sent = requests.post(f"{mockbench.url}/_bench/mss/send", timeout=5, json={
        "from": "dpi@chu.mssante.fr", "to": ["dr.roux@clinique.mssante.fr"],
        "package": base64.b64encode(HOSTILE_HTML.encode()).decode()}).json()
    raw = requests.get(f"{mockbench.url}/_bench/mss/messages/{sent[0]['id']}", params={"raw": 1}, timeout=5)
    assert raw.status_code == 200 and raw.headers["Content-Type"] == "message/rfc822"
    assert raw.headers["Content-Disposition"].startswith("attachment;")
    assert "sandbox" in raw.headers["Content-Security-Policy"]


def test_dashboard_and_report_have_a_strict_policy_and_cannot_be_framed(world):
    for path in ("/", "/_bench/report?format=html"):
        response = requests.get(world.url + path, timeout=10)
        assert response.status_code == 200, path
        csp = {d.strip().split(" ")[0]: d.strip() for d in response.headers["Content-Security-Policy"].split(";")}
        assert csp["frame-ancestors"] == "frame-ancestors 'none'", path
        assert "'unsafe-eval'" not in response.headers["Content-Security-Policy"]
        assert csp["default-src"] == "default-src 'none'", path
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
    dashboard = requests.get(world.url + "/", timeout=5).headers["Content-Security-Policy"]
    assert "script-src 'self'" in dashboard and "unsafe-inline" not in dashboard


# In a browser -------------------------------------------------------------------------------------------
def start_browser(tmp_path: Path):
    """Headless Chromium, or a skip (a failure under CI) when it is not installed."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not (Path(p).is_file() or shutil.which(p))]
    if missing:
        reason = f"{', '.join(missing)} not installed (apt-get install chromium chromium-driver)"
        if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
            pytest.fail(f"CI is set and {reason}")
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-dev-shm-usage",
                 f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"download.default_directory": str(tmp_path / "downloads"),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(15)
    return driver


@pytest.fixture
def browser(tmp_path):
    driver = start_browser(tmp_path)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.mark.parametrize("mime_type, content", [("text/html", HOSTILE_HTML), ("text/xml", HOSTILE_XHTML)],
                         ids=["html", "cda-xhtml"])
def test_a_stored_document_does_not_run_in_the_bench_origin(world, browser, mime_type, content):
    from selenium.webdriver.support.ui import WebDriverWait

    url = store_document(world.bench, "piege", mime_type, content.encode())
    browser.get(world.url + "/")  # the bench's origin, where the script would have its power
    WebDriverWait(browser, 10).until(lambda d: d.execute_script("return document.readyState") == "complete")
    before = patient_count(world.bench)
    try:
        browser.get(url)
    except Exception:  # noqa: BLE001 - a download aborts the navigation; what matters is below
        pass
    # Had the page rendered, its script would have run before the load event that get() waits for.
    assert browser.title != "ran"
    assert patient_count(world.bench) == before, "the stored document's script reset the world"
