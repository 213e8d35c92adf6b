"""POST /_bench/traces/check through a real HTTP client: answers and errors checked against the OpenAPI
description (the play of dmp-conf-14 is in tests/protocols/dmp/test_dmp_catalogue_plays.py)."""

import pytest
import requests
from test_api import check  # the same directory, on sys.path under pytest

from mockbench.control.openapi import openapi_document
from mockbench.world import trace_check

PATH = "/_bench/traces/check"
HEADER = b"Date;Utilisateur;Patient;Document;Action\n"


@pytest.fixture(scope="module")
def spec():
    return openapi_document()


def post(bench, body: bytes, content_type: str = "text/csv", **params) -> requests.Response:
    return requests.post(bench.url + PATH, data=body, headers={"Content-Type": content_type}, params=params,
                         timeout=10)


@pytest.mark.mockbench_scenario("dmp-conf-14")
def test_an_extract_answers_its_schema_and_is_journaled(mockbench, spec):
    body = check(spec, post(mockbench, HEADER, structure="chu"), PATH, "post")
    assert (body["verdict"], body["traces"], body["rows"], body["structures"]) == ("accepted", 0, 0, ["chu"])
    claire = mockbench.client.patient("claire")
    invented = f"2026-12-06T10:00:00+01:00;dr_petit;{claire['ins']};;consultation\n".encode()
    body = check(spec, post(mockbench, HEADER + invented), PATH, "post")
    assert body["verdict"] == "refused" and [e["where"] for e in body["extra"]] == ["line 2"]
    body = check(spec, post(mockbench, b'{"traces": []}', "application/json", structure="chu"), PATH, "post")
    assert body["verdict"] == "accepted"
    entries = mockbench.client.journal(channel="control", operation="trace_check")
    assert [(e["verdict"], e["code"]) for e in entries] == [("accepted", None), ("refused", "TRACE_MISMATCH"),
                                                            ("accepted", None)]


@pytest.mark.mockbench_scenario("dmp-conf-14")
def test_errors(mockbench, spec):
    bad = check(spec, post(mockbench, b"Date;Qui\n"), PATH, "post")
    assert bad["error"] == "EXTRACT_INVALID" and bad["message"].startswith("line 1: unknown column 'Qui'")
    bad = check(spec, post(mockbench, b"[1]", "application/json"), PATH, "post")
    assert bad == {"error": "EXTRACT_INVALID", "message": "item 1: a trace is an object with time, user, patient, "
                                                          "document, action"}
    too_large = post(mockbench, HEADER + b"2026-12-06T10:00:00;a;b;;consultation\n" * 30_000)
    assert too_large.status_code == 400 and check(spec, too_large, PATH, "post")["error"] == "EXTRACT_TOO_LARGE"
    assert len(b"2026-12-06T10:00:00;a;b;;consultation\n" * 30_000) > trace_check.MAX_BYTES
    form = post(mockbench, b"a=b", "application/x-www-form-urlencoded")
    assert form.status_code == 415 and check(spec, form, PATH, "post")["error"] == "UNSUPPORTED_MEDIA_TYPE"
    unknown = post(mockbench, HEADER, structure="nowhere")
    assert unknown.status_code == 404 and unknown.json()["error"] == "STRUCTURE_UNKNOWN"
    assert mockbench.client.journal(channel="control", operation="trace_check") == []
