"""STAT/ES.01 (checks/stats.py): the vendor's CSV, what counts as a send in the journal, the comparison."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mockbench.checks import stats
from mockbench.checks.stats import StatCsvError, parse_csv

HEADER = ["Mois", "Type de document", "Nombre d'envois", "Nombre d'échecs"]
EBRIM_TYPE = ('<rim:Classification classificationScheme="urn:uuid:f0306f51-975f-434e-a61c-c59651d33983" '
              'classifiedObject="Document01" nodeRepresentation="{code}">')

rows_strategy = st.lists(
    st.tuples(st.integers(2000, 2099), st.integers(1, 12), st.from_regex(r"[0-9]{1,6}-[0-9]", fullmatch=True),
              st.integers(0, 10**6), st.integers(0, 10**6)),
    max_size=30, unique_by=lambda r: (r[0], r[1], r[2]))


def render(header: list[str], rows: list[list[object]], delimiter: str = ";", bom: bool = False,
           newline: str = "\r\n") -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator=newline)
    writer.writerow(header)
    writer.writerows(rows)
    return (b"\xef\xbb\xbf" if bom else b"") + out.getvalue().encode("utf-8")


@settings(max_examples=60, deadline=None)
@given(rows=rows_strategy, delimiter=st.sampled_from([";", ","]), bom=st.booleans(),
       newline=st.sampled_from(["\r\n", "\n"]), slash=st.booleans())
def test_any_well_formed_csv_reads_back(rows, delimiter, bom, newline, slash):
    body = [[f"{m:02d}/{y}" if slash else f"{y}-{m:02d}", code, successes + failures, failures]
            for y, m, code, successes, failures in rows]
    parsed, by_flux = parse_csv(render(HEADER, body, delimiter, bom, newline))
    assert not by_flux
    assert [(r.line, r.month, r.type, r.counts.as_dict()) for r in parsed] == [
        (i + 2, f"{y}-{m:02d}", code, {"sends": s + f, "successes": s, "failures": f})
        for i, (y, m, code, s, f) in enumerate(rows)]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_any_bytes_parse_or_give_a_csv_error(data):
    try:
        rows, _ = parse_csv(data)
    except StatCsvError as exc:
        assert exc.line >= 0 and str(exc)
    else:
        assert all(r.counts.sends == r.counts.successes + r.counts.failures for r in rows)


def test_headers_are_matched_without_case_accents_or_punctuation():
    rows, by_flux = parse_csv("MOIS,type de document,FLUX,Nombre de succes,Nombre d’echecs\n"
                              "2026-11,11488-4 - CR de consultation,mssanté,3,0\n".encode())
    assert by_flux and [(r.flux, r.type, r.counts.as_dict()) for r in rows] == [
        ("MSSanté", "11488-4", {"sends": 3, "successes": 3, "failures": 0})]


@pytest.mark.parametrize(("data", "line", "words"), [
    (b"", 1, "no header line"),
    (b"Mois;Type de document;Nombre d'envois\n", 1, "missing column Nombre d'échecs"),
    ("Mois;Type de document;Envois;Échecs;Remarque\n".encode(), 1, "unknown column 'Remarque'"),
    ("Mois;Type de document;Envois;Échecs\n2026-11;11488-4;2;1\n2026-13;11488-4;1;0\n".encode(), 3,
     "'2026-13' is not a month"),
    ("Mois;Type de document;Envois;Échecs\n2026-11;11488-4;2;-1\n".encode(), 2, "not a whole number"),
    ("Mois;Type de document;Envois;Échecs\n2026-11;11488-4;1;2\n".encode(), 2, "more than Nombre d'envois"),
    ("Mois;Type de document;Envois;Succès;Échecs\n2026-11;11488-4;3;1;1\n".encode(), 2, "is not Nombre de succès"),
    ("Mois;Type de document;Envois;Échecs\n2026-11;11488-4;2;1\n2026-11;11488-4;1;0\n".encode(), 3,
     "already on line 2"),
    ("Mois;Type de document;Envois;Échecs\n2026-11;11488-4;2\n".encode(), 2, "3 fields, the header has 4"),
    (b"Mois;Type de document;Envois;Echecs\n2026-11;Lettre \xe9;2;1\n", 2, "not UTF-8 (byte 0xE9)"),
    ("Mois;Type de document;Flux;Envois;Échecs\n2026-11;11488-4;Fax;1;0\n".encode(), 2, "neither DMP nor MSSanté"),
])
def test_bad_csv_names_the_line(data, line, words):
    with pytest.raises(StatCsvError) as caught:
        parse_csv(data)
    assert caught.value.line == line and words in str(caught.value)
    assert str(caught.value).startswith(f"line {line}: ")


def test_size_and_row_bounds():
    with pytest.raises(StatCsvError, match="at most"):
        parse_csv(b"x" * (stats.MAX_BYTES + 1))
    many = render(HEADER, [[f"{2000 + i // 12}-{i % 12 + 1:02d}", "11488-4", 1, 0] for i in range(stats.MAX_ROWS + 1)])
    with pytest.raises(StatCsvError, match=f"more than {stats.MAX_ROWS} rows"):
        parse_csv(many)


def journal(world, *entries: dict) -> None:
    with world.transaction() as tx:
        for e in entries:
            world.journal.append(tx, e.pop("channel"), e.pop("operation"), **e)


def test_what_counts_as_a_send(cast):
    world = cast.world
    doc = cast.submit(type_code="11490-0")
    mdm_refused = ("MSH|^~\\&|DPI|CHU|PFI|CHU|20261120||MDM^T02^MDM_T02|9|P|2.6\rTXA|1|18748-4|TEXT\r"
                   "OBX|2|CWE|DESTDMP^DESTDMP^MetaDMPMSS||Y^^expandedYes-NoIndicator\r"
                   "OBX|3|CWE|DESTMSSANTEPS^DESTMSSANTEPS^MetaDMPMSS||Y^^expandedYes-NoIndicator\r")
    journal(world,
            {"channel": "dmp", "operation": "TD2.1", "document": doc.unique_id},                     # success
            {"channel": "dmp", "operation": "TD2.1", "verdict": "refused", "raw": EBRIM_TYPE.format(code="11490-0")},
            {"channel": "dmp", "operation": "TD3.1"},                                                 # a read
            {"channel": "dmp", "operation": "TD3.3c", "document": doc.unique_id},                     # a deletion
            {"channel": "pfi", "operation": "MDM^T02", "verdict": "refused", "raw": mdm_refused},      # DMP + MSS
            {"channel": "pfi", "operation": "MDM^T02", "raw": mdm_refused},                           # counted downstream
            {"channel": "mss", "operation": "SUBMIT", "actor": "dpi@chu.mssante.fr"},                 # no package
            {"channel": "mss", "operation": "DELIVER", "direction": "out", "document": doc.unique_id,
             "verdict": "refused", "findings": [{"rule": "PFI/MSS", "severity": "info", "message": "x"}]})
    with world.transaction() as tx:
        month = stats._local_month(world, world.clock.now_iso())
        counts = stats.bench_counts(world, tx, {month}, by_flux=True)
        assert {k: v.as_dict() for k, v in counts.items()} == {
            (month, "DMP", "11490-0"): {"sends": 2, "successes": 1, "failures": 1},
            (month, "DMP", "18748-4"): {"sends": 1, "successes": 0, "failures": 1},
            (month, "MSSanté", "18748-4"): {"sends": 1, "successes": 0, "failures": 1},
            (month, "MSSanté", "11490-0"): {"sends": 1, "successes": 0, "failures": 1}}
        assert stats.bench_counts(world, tx, {"1999-01"}, by_flux=True) == {}


def test_the_comparison_and_its_journal_entry(cast):
    world = cast.world
    journal(world, {"channel": "dmp", "operation": "TD2.1", "raw": EBRIM_TYPE.format(code="11488-4")},
            {"channel": "dmp", "operation": "TD2.1", "raw": EBRIM_TYPE.format(code="11490-0"), "verdict": "refused"})
    month = stats._local_month(world, world.clock.now_iso())
    others = [[m, "Total", 0, 0] for m in stats.required_months(world) if m != month]
    good = render(HEADER, [*others, [month, "11488-4", 1, 0], [month, "11490-0", 1, 1]])
    with world.transaction() as tx:
        result = stats.check(world, tx, good, actor="test")
    assert result["verdict"] == "accepted" and {r["verdict"] for r in result["rows"]} == {"match"}
    bad = render(HEADER, [*others, [month, "11488-4", 1, 0], [month, "34133-9", 2, 0]])
    with world.transaction() as tx:
        result = stats.check(world, tx, bad, actor="test")
    assert result["verdict"] == "refused"
    n = len(others)
    assert [(r["type"], r["line"], r["verdict"]) for r in result["rows"] if r["month"] == month] == [
        ("11488-4", n + 2, "match"), ("11490-0", None, "mismatch"), ("34133-9", n + 3, "mismatch")]
    with world.transaction() as tx:
        entries = world.journal.query(tx, channel="control", operation="stat_check")
    assert [(e["verdict"], e["code"], len(e["findings"])) for e in entries] == [
        ("accepted", None, 0), ("refused", "STAT_MISMATCH", 2)]
    assert entries[1]["findings"][0]["message"] == (f"{month} 11490-0: the CSV has no row; the journal saw 1 sends, "
                                                    "0 successes, 1 failures")


def test_the_total_row_and_the_months_of_the_previous_and_current_year(cast):
    """Issue 19 (the ANS's reading of STAT/ES.01): the detail per type plus the total, for every month from
    January of the previous year; a Total row is checked against the month's sends (of its flux, or of every
    flux when its Flux is empty); the months missing are named."""
    world = cast.world
    journal(world, {"channel": "dmp", "operation": "TD2.1", "raw": EBRIM_TYPE.format(code="11488-4")},
            {"channel": "dmp", "operation": "TD2.1", "raw": EBRIM_TYPE.format(code="11490-0"), "verdict": "refused"})
    month = stats._local_month(world, world.clock.now_iso())
    required = stats.required_months(world)
    year = int(month[:4])
    assert required[0] == f"{year - 1}-01" and required[-1] == month and len(required) == 12 + int(month[5:])
    flux_header = ["Mois", "Type de document", "Flux", "Nombre d'envois", "Nombre d'échecs"]
    rows = [[m, "Total", "", 0, 0] for m in required[:-1]] + [
        [month, "11488-4", "DMP", 1, 0], [month, "11490-0", "DMP", 1, 1],
        [month, "Tous types", "DMP", 2, 1], [month, "TOTAL", "", 2, 1], [month, "Total", "MSSanté", 0, 0]]
    parsed, by_flux = parse_csv(render(flux_header, rows))
    assert by_flux and [(r.type, r.flux) for r in parsed[-3:]] == [("Total", "DMP"), ("Total", None),
                                                                  ("Total", "MSSanté")]
    with world.transaction() as tx:
        result = stats.check(world, tx, render(flux_header, rows), actor="test")
    assert result["verdict"] == "accepted", result["findings"]
    assert result["missing_months"] == []
    wrong = rows[2:-3] + [[month, "Total", "", 1, 0]]        # two months dropped, a total that forgets a send
    with world.transaction() as tx:
        result = stats.check(world, tx, render(flux_header, wrong), actor="test")
    assert result["verdict"] == "refused" and result["missing_months"] == required[:2]
    assert [f["message"] for f in result["findings"]] == [
        f"{month} Total: line {len(wrong) + 1} says 1 sends, 1 successes, 0 failures; the journal saw 2 sends, "
        "1 successes, 1 failures",
        f"the CSV lists no row for 2 month(s) of the previous and current year: {required[0]}, {required[1]}; list "
        "every month from January of the previous year (a Total row at 0 for a month without sends)"]
    with pytest.raises(StatCsvError, match="Flux '' is neither DMP nor MSSanté"):
        parse_csv(render(flux_header, [[month, "11488-4", "", 1, 0]]))    # only a Total may leave Flux empty
