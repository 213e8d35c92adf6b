"""POST /_bench/stat/check through a real HTTP client: answers and errors checked against the OpenAPI
description (the play of stat-es-01 is in tests/protocols/pfi/test_stat_es_01.py)."""

import pytest
import requests
from test_api import check  # the same directory, on sys.path under pytest

from mockbench.checks import stats
from mockbench.control.openapi import openapi_document

PATH = "/_bench/stat/check"


@pytest.fixture(scope="module")
def spec():
    return openapi_document()


def post(bench, body: bytes, content_type: str = "text/csv") -> requests.Response:
    return requests.post(bench.url + PATH, data=body, headers={"Content-Type": content_type}, timeout=10)


@pytest.mark.mockbench_scenario("stat-es-01")
def test_every_month_asked_for_and_answers_its_schema(mockbench, spec):
    body = check(spec, post(mockbench, "Mois;Type de document;Nombre d'envois;Nombre d'échecs\n".encode()),
                 PATH, "post")
    assert body["verdict"] == "refused" and body["rows"] == [] and body["months"] == []
    months = body["missing_months"]          # January of the previous year to now: every one is asked for
    assert months and months[0].endswith("-01") and body["findings"][0]["message"].startswith(
        f"the CSV lists no row for {len(months)} month(s) of the previous and current year: {months[0]}, ")
    zero = "".join(f"{m};Total;0;0\n" for m in months)
    body = check(spec, post(mockbench, f"Mois;Type de document;Nombre d'envois;Nombre d'échecs\n{zero}".encode()),
                 PATH, "post")
    assert body["verdict"] == "accepted" and body["missing_months"] == [] and len(body["rows"]) == len(months)
    body = check(spec, post(mockbench, b"Mois,Type de document,Nombre d'envois,Nombre d'echecs\n2020-01,11488-4,1,0\n",
                            "text/plain"), PATH, "post")
    assert body["verdict"] == "refused"
    assert body["rows"] == [{"month": "2020-01", "flux": None, "type": "11488-4", "line": 2,
                             "vendor": {"sends": 1, "successes": 1, "failures": 0},
                             "bench": {"sends": 0, "successes": 0, "failures": 0}, "verdict": "mismatch"}]
    (entry,) = mockbench.client.journal(channel="control", operation="stat_check", since=body["entry"] - 1)
    assert entry["seq"] == body["entry"] and entry["verdict"] == "refused" and entry["code"] == "STAT_MISMATCH"


@pytest.mark.mockbench_scenario("stat-es-01")
def test_errors_name_the_line(mockbench, spec):
    bad = check(spec, post(mockbench, b"Mois;Type;Envois\n"), PATH, "post")
    assert bad == {"error": "CSV_INVALID", "message": bad["message"]} and bad["message"].startswith("line 1: ")
    bad = check(spec, post(mockbench, b"Mois;Type de document;Envois;Echecs\n2026-11;11488-4;deux;0\n"), PATH, "post")
    assert bad["message"] == "line 2: Nombre d'envois 'deux' is not a whole number >= 0"
    too_large = post(mockbench, b"Mois;Type de document;Envois;Echecs\n" + b"2026-11;11488-4;1;0\n" * 60_000)
    assert too_large.status_code == 400 and check(spec, too_large, PATH, "post")["error"] == "CSV_TOO_LARGE"
    assert len(b"2026-11;11488-4;1;0\n" * 60_000) > stats.MAX_BYTES
    json_body = post(mockbench, b"{}", "application/json")
    assert json_body.status_code == 415 and check(spec, json_body, PATH, "post")["error"] == "UNSUPPORTED_MEDIA_TYPE"
    assert mockbench.client.journal(channel="control", operation="stat_check") == []
