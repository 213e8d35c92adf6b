"""The control API's list routes in pages with their total (issue 21, point 6: worlds of 100,000), the bare
array kept for existing clients, and BenchClient's `page` / `each`; checked against the OpenAPI document."""

import pytest
import requests
from test_api import check  # the same directory, on sys.path under pytest

from mockbench.control.openapi import openapi_document

WORLD = """\
id: paged
title: Monde paginé
world:
  structures:
    - {id: s1}
    - {id: s2}
    - {id: s3}
  patients:
%s
"""


@pytest.fixture
def paged(mockbench):
    mockbench.client.load_yaml(WORLD % "\n".join(f"    - {{id: p{i:02d}}}" for i in range(25)))
    return mockbench


def test_a_page_holds_its_slice_and_the_total(paged):
    spec, api = openapi_document(), paged.url + "/_bench"
    r = requests.get(f"{api}/patients", params={"offset": 10, "limit": 7}, timeout=10)
    body = check(spec, r, "/_bench/patients")
    assert (body["total"], body["offset"], body["limit"]) == (25, 10, 7)
    assert [p["id"] for p in body["items"]] == [f"p{i:02d}" for i in range(10, 17)]
    assert r.headers["X-Total-Count"] == "25"
    last = requests.get(f"{api}/patients", params={"offset": 21, "limit": 10}, timeout=10).json()
    assert [p["id"] for p in last["items"]] == ["p21", "p22", "p23", "p24"]
    beyond = requests.get(f"{api}/patients", params={"offset": 40}, timeout=10).json()
    assert beyond == {"total": 25, "offset": 40, "limit": 100, "items": []}


def test_without_paging_parameters_the_bare_array_as_before(paged):
    spec, api = openapi_document(), paged.url + "/_bench"
    r = requests.get(f"{api}/patients", timeout=10)
    body = check(spec, r, "/_bench/patients")
    assert isinstance(body, list) and len(body) == 25 and r.headers["X-Total-Count"] == "25"
    structures = check(spec, requests.get(f"{api}/structures", params={"limit": 2}, timeout=10), "/_bench/structures")
    assert structures["total"] == 3 and [s["id"] for s in structures["items"]] == ["s1", "s2"]
    for path in ("/professionals", "/mss/mailboxes", "/patients/p00/documents", "/patients/p00/traces"):
        page = check(spec, requests.get(api + path, params={"limit": 5}, timeout=10),
                     "/_bench" + path.replace("p00", "{key}"))
        assert page["items"] == [] and page["total"] == 0


@pytest.mark.parametrize("params, message", [
    ({"limit": 0}, "limit must be between 1 and 10000"),
    ({"limit": 10_001}, "limit must be between 1 and 10000"),
    ({"offset": -1}, "offset must be 0 or more"),
    ({"offset": "x"}, "offset must be a whole number"),
])
def test_bad_paging_parameters_are_refused_with_the_reason(paged, params, message):
    r = requests.get(paged.url + "/_bench/patients", params=params, timeout=10)
    assert r.status_code == 400
    assert r.json() == {"error": "INVALID_PARAMETER", "message": message}


def test_bench_client_pages_and_walks_every_item(paged):
    client = paged.client
    page = client.page("/patients", offset=5, limit=3)
    assert page["total"] == 25 and [p["id"] for p in page["items"]] == ["p05", "p06", "p07"]
    assert [p["id"] for p in client.each("/patients", page_size=4)] == [f"p{i:02d}" for i in range(25)]
    assert [p["id"] for p in client.patients()] == [f"p{i:02d}" for i in range(25)]
