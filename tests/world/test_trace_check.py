"""DMP/CONF.14 (world/trace_check.py): the DPI's extract of its access traces, read (CSV or JSON, bounded) and
compared action by action with the DMP's traces; every missing or extra trace named."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mockbench.world import trace_check
from mockbench.world.clock import parse_time
from mockbench.world.trace_check import TraceExtractError, parse_extract

HEADER = "Date;Utilisateur;Patient;Document;Action"


def acts(cast) -> tuple[str, list[dict]]:
    """dr-a feeds alice's DMP and dr-b reads it; dr-c (the clinic) searches: the DMP's traces. Returns the
    document and the chu's own traces as its DPI would export them."""
    doc = cast.submit()
    with cast.tx() as tx:
        cast.world.dmp.find(tx, cast.colleague, "alice")
        cast.world.dmp.read(tx, cast.colleague, doc.unique_id)
        cast.world.dmp.find(tx, cast.outsider, "alice")        # another structure: not the chu's DPI
    with cast.tx() as tx:
        traces = [t for t in cast.world.dmp.traces(tx, "alice") if t.actor in ("dr-a", "dr-b")]
        idnps = {p.id: p.idnps for p in cast.world.directory.professionals(tx)}
        ins = cast.world.directory.patient(tx, "alice").ins
    rows = [{"time": t.time, "user": idnps[t.actor], "patient": ins, "document": t.document or "",
             "action": t.action} for t in traces]
    return doc.unique_id, rows


def as_csv(rows: list[dict], delimiter: str = ";") -> bytes:
    lines = [HEADER.replace(";", delimiter)] + [delimiter.join(r[k] for k in ("time", "user", "patient", "document",
                                                                               "action")) for r in rows]
    return ("\n".join(lines) + "\n").encode()


def check(cast, body: bytes, kind: str = "csv", **kw) -> dict:
    with cast.tx() as tx:
        return trace_check.check(cast.world, tx, body, kind, actor="test", **kw)


def test_a_faithful_extract_pairs_every_trace(cast):
    uid, rows = acts(cast)
    assert [r["action"] for r in rows] == ["alimentation", "consultation", "telechargement"]
    result = check(cast, as_csv(rows))
    assert (result["verdict"], result["matched"], result["traces"], result["structures"]) == ("accepted", 3, 3, ["chu"])
    assert check(cast, json.dumps({"traces": rows}).encode(), "json")["verdict"] == "accepted"
    assert check(cast, json.dumps(rows).encode(), "json")["verdict"] == "accepted"       # a bare list too
    with cast.tx() as tx:
        entries = cast.world.journal.query(tx, channel="control", operation="trace_check")
    assert [(e["verdict"], e["code"], e["findings"]) for e in entries] == [("accepted", None, [])] * 3


def test_missing_and_extra_traces_are_each_named(cast):
    uid, rows = acts(cast)
    lacking = [r for r in rows if r["action"] != "telechargement"]
    invented = dict(rows[0], action="suppression")
    result = check(cast, as_csv([*lacking, invented]))
    assert result["verdict"] == "refused" and result["matched"] == 2
    assert [(m["user"], m["action"], m["document"]) for m in result["missing"]] == [("dr-b", "telechargement", uid)]
    assert [(e["where"], e["action"]) for e in result["extra"]] == [("line 4", "suppression")]
    messages = [f["message"] for f in result["findings"]]
    assert messages[0].startswith(f"the extract lacks the telechargement of {uid} by dr-b on alice's DMP at ")
    assert messages[1].startswith(f"line 4: suppression of {uid} by dr-a on alice's DMP at ")
    assert messages[1].endswith(": the DMP traced no such access")
    with cast.tx() as tx:
        (entry,) = cast.world.journal.query(tx, channel="control", operation="trace_check")
    assert (entry["verdict"], entry["code"], [f["rule"] for f in entry["findings"]]) == (
        "refused", "TRACE_MISMATCH", ["DMP/CONF.14", "DMP/CONF.14"])


def test_the_wrong_user_and_an_unknown_one(cast):
    """The VIHF named dr-b, the DPI's trace says dr-a: both sides named. An unknown user is an extra row."""
    _, rows = acts(cast)
    rows[1] = dict(rows[1], user=rows[0]["user"])                  # dr-a's IDNPS
    rows.append(dict(rows[0], user="899999999999"))
    result = check(cast, as_csv(rows))
    assert [(m["user"], m["action"]) for m in result["missing"]] == [("dr-b", "consultation")]
    assert [(e["user"], e["action"]) for e in result["extra"]] == [("dr-a", "consultation"),
                                                                  ("899999999999", "alimentation")]
    assert result["findings"][-1]["message"].endswith(": no professional 899999999999")


def test_times_within_the_tolerance_and_beyond(cast):
    _, rows = acts(cast)
    paris = [dict(r, time=parse_time(r["time"]).astimezone().strftime("%d/%m/%Y %H:%M:%S")) for r in rows]
    # JJ/MM/AAAA is Europe/Paris time; the machine's zone may differ, so only check that it parses
    parse_extract(as_csv(paris), "csv")
    near = [dict(r, time=(parse_time(r["time"]) + timedelta(seconds=90)).isoformat()) for r in rows]
    assert check(cast, as_csv(near))["verdict"] == "accepted"
    far = [dict(r, time=(parse_time(r["time"]) - timedelta(hours=2)).isoformat()) if i == 0 else r
           for i, r in enumerate(rows)]
    result = check(cast, as_csv(far))
    assert result["verdict"] == "refused" and result["missing"] == result["extra"] == []
    (late,) = result["time_differences"]
    assert late["where"] == "line 2" and late["message"].endswith("(7200 s apart)")


def test_the_structure_parameter_and_the_since_mark(cast):
    _, rows = acts(cast)
    clinic = check(cast, as_csv([]), structure="clinic")
    assert [(m["user"], m["action"]) for m in clinic["missing"]] == [("dr-c", "consultation")]
    with cast.tx() as tx:
        last = max(t.seq for t in cast.world.dmp.traces(tx, "alice"))
    assert check(cast, as_csv([]), structure="chu", since=last)["verdict"] == "accepted"


@pytest.mark.parametrize(("body", "kind", "where"), [
    (b"", "csv", "line 1: the CSV has no header line"),
    (b"Date;Utilisateur;Action\n", "csv", "line 1: missing column(s) patient"),
    (b"Date;Utilisateur;Patient;Action;Remarque\n", "csv", "line 1: unknown column 'Remarque'"),
    (b"Date;Utilisateur;Patient;Action\n2026-12-06T10:00:00;8101;279;lecture\n", "csv", "line 2: Action 'lecture'"),
    (b"Date;Utilisateur;Patient;Action\nhier;8101;279;consultation\n", "csv", "line 2: Date 'hier' is not a time"),
    (b"Date;Utilisateur;Patient;Action\n2026-12-06T10:00:00;;279;consultation\n", "csv", "line 2: Utilisateur is"),
    (b"Date;Utilisateur;Patient;Action\n2026-12-06T10:00:00;8101\n", "csv", "line 2: 2 fields, the header has 4"),
    (b"Date;Utilisateur;Patient;Action\n\xe9\n", "csv", "the extract is not UTF-8"),
    (b"{", "json", "the JSON cannot be read"),
    (b'{"traces": 3}', "json", 'send {"traces": [...]}'),
    (b'[{"time": "2026-12-06T10:00:00", "user": "a", "patient": "b", "action": "consultation", "x": 1}]', "json",
     "item 1: unknown key 'x'"),
    (b'[{"time": "2026-12-06T10:00:00", "user": 7, "patient": "b", "action": "consultation"}]', "json",
     "item 1: user must be a text"),
])
def test_bad_extracts_name_the_line_or_item(body, kind, where):
    with pytest.raises(TraceExtractError) as caught:
        parse_extract(body, kind)
    assert str(caught.value).startswith(where), str(caught.value)


def test_bounds():
    with pytest.raises(TraceExtractError, match="at most"):
        parse_extract(b"x" * (trace_check.MAX_BYTES + 1), "csv")
    row = "2026-12-06T10:00:00;8101;279;;consultation\n"
    with pytest.raises(TraceExtractError, match=f"more than {trace_check.MAX_ROWS} rows"):
        parse_extract((HEADER + "\n" + row * (trace_check.MAX_ROWS + 1)).encode(), "csv")
    with pytest.raises(TraceExtractError, match="nested too deeply"):
        parse_extract(b"[" * 200_000, "json")
    with pytest.raises(TraceExtractError, match="longer than"):
        parse_extract((HEADER + "\n" + row.replace("8101", "8" * 300)).encode(), "csv")


def test_action_names_are_matched_without_case_or_accents():
    (row,) = parse_extract(f"{HEADER}\n06/12/2026 10:00;8101;279;1.2.3;Remise en visibilité\n".encode(), "csv")
    assert (row.action, row.document, row.time.utcoffset()) == ("remise_en_visibilite", "1.2.3", timedelta(hours=1))


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300), st.sampled_from(["csv", "json"]))
def test_any_bytes_parse_or_give_an_extract_error(data, kind):
    try:
        rows = parse_extract(data, kind)
    except TraceExtractError as exc:
        assert str(exc)
    else:
        assert all(r.action and r.user and r.patient for r in rows)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["consultation", "telechargement", "masquage"]),
                          st.integers(0, 10**6)), max_size=20), st.sampled_from([";", ","]))
def test_well_formed_extracts_read_back(rows, delimiter):
    base = datetime(2026, 12, 6, 10, tzinfo=UTC)
    items = [{"time": (base + timedelta(seconds=s)).isoformat(), "user": "8101", "patient": "279", "document": "",
              "action": a} for a, s in rows]
    parsed = parse_extract(as_csv(items, delimiter), "csv")
    assert [(r.action, r.time) for r in parsed] == [(a, base + timedelta(seconds=s)) for a, s in rows]
