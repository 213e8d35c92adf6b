"""Issue 17 point 11: no small request costs the bench a large amount of memory, CPU or answer.

- Showing a mail's XDM package (GET /_bench/mss/messages/{id}/xdm) inflates at most 16 MiB a document and
  32 MiB in all (a 1 MiB zip may declare 40 MiB at a ratio the SMTP door tolerates), a few at a time.
- A scenario's YAML (POST /_bench/scenarios) is refused when its aliases expand past a node budget or
  contain themselves, before any walk; the control API's actions likewise.
- An error answer lists at most 50 problems, each bounded: its size does not grow with the input's.

Memory is measured with tracemalloc around one request to the in-process bench (the server's threads are
traced too).
"""

from __future__ import annotations

import base64
import os
import tracemalloc

import pytest
import requests

from mockbench.formats.xdm import write_package

MIB = 1024 * 1024


def _compressible(size: int) -> bytes:
    """Bytes that deflate about 50:1: below the 200:1 the XDM reader calls a bomb."""
    block = bytearray()
    while len(block) < size:
        block += os.urandom(16).hex().encode() + b" " * 1500
    return bytes(block[:size])


@pytest.fixture
def mailboxes(mockbench):
    mockbench.client.load_yaml("""\
id: boites
title: Messageries
world:
  structures: [{id: chu}]
  mailboxes:
    - {address: dpi@chu.mssante.fr, type: APP, owner: chu, role: hospital}
    - {address: dr.roux@clinique.mssante.fr, type: PER, role: correspondent}
""")
    return mockbench


def test_showing_a_large_xdm_package_inflates_a_bounded_amount(mailboxes):
    content = _compressible(40 * MIB)
    package = write_package([("DOC0001.PDF", content, {"unique_id": "1.2.250.1.999.1", "mime_type": "application/pdf",
                                                        "title": "Gros PDF", "type_code": "11502-2"})],
                            submission_set={"unique_id": "2.25.77", "source_id": "1.2.250.1.999", "content_type": "04"},
                            patient_id="123456789012345^^^&1.2.250.1.213.1.4.8&ISO^NH")
    del content
    assert len(package) < 2 * MIB
    sent = requests.post(f"{mailboxes.url}/_bench/mss/send", timeout=30, json={
        "from": "dpi@chu.mssante.fr", "to": ["dr.roux@clinique.mssante.fr"],
        "package": base64.b64encode(package).decode()})
    assert sent.status_code == 200, sent.text
    message = sent.json()[0]["id"]
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        response = requests.get(f"{mailboxes.url}/_bench/mss/messages/{message}/xdm", timeout=30)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert response.status_code == 200
    body = response.json()
    assert body["error"]["code"] == "XDM_TOO_LARGE" and body["files"], body
    assert peak < 24 * MIB, f"showing a {len(package)}-byte package took {peak / MIB:.0f} MiB"


def _laughs(levels: int, width: int = 10) -> str:
    lines = ["id: rires", "title: Rires", "lol0: &l0 [" + ", ".join(["{bad: 1}"] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"lol{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]")
    lines.append(f"world: {{patients: *l{levels - 1}}}")
    return "\n".join(lines) + "\n"


def test_a_yaml_whose_aliases_explode_is_refused_at_once(mockbench):
    text = _laughs(7)   # ten million nodes once expanded, in 700 bytes
    response = requests.post(f"{mockbench.url}/_bench/scenarios", data=text.encode(), timeout=10,
                             headers={"Content-Type": "application/yaml"})
    assert response.status_code == 400 and len(response.content) < 16 * 1024
    body = response.json()
    assert body["error"] == "SCENARIO_INVALID" and "nodes" in body["message"]
    endless = requests.post(f"{mockbench.url}/_bench/scenarios", timeout=10, headers={"Content-Type": "application/yaml"},
                            data=b"id: x\ntitle: y\nworld: &w {patients: [*w]}\n")
    assert endless.status_code == 400 and "alias" in endless.json()["message"]


def test_an_error_answer_does_not_grow_with_the_input(mockbench):
    # Thousands of wrong patients (30 KB): thousands of problems, fifty shown.
    text = "id: faux\ntitle: Faux\nworld:\n  patients: [" + ", ".join(["{bad: 1}"] * 3000) + "]\n"
    response = requests.post(f"{mockbench.url}/_bench/scenarios", data=text.encode(), timeout=10,
                             headers={"Content-Type": "application/yaml"})
    assert response.status_code == 400 and len(response.content) < 64 * 1024, len(response.content)
    body = response.json()
    assert len(body["problems"]) == 50 and body["truncated"] > 1000
    actions = requests.post(f"{mockbench.url}/_bench/world/actions", timeout=10,
                            json={"actions": [{"fly": {"x": "y" * 100}}] * 5000})
    assert actions.status_code == 400 and len(actions.content) < 16 * 1024
    assert actions.json()["error"] == "INVALID_ACTIONS"
