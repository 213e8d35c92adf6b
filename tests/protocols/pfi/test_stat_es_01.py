"""STAT/ES.01 played end to end: python-hl7's MLLP client stands in for the DPI feeding the DMP through the
PFI (one feed accepted, one refused because the DMP was closed meanwhile: an authorization withdrawn would
not refuse a feed, specs/pdsm4dmp/transaction_td02.md NB2), smtplib for its MSSanté
send of an IHE_XDM.ZIP; then the DPI's CSV goes to POST /_bench/stat/check."""

from __future__ import annotations

import smtplib
from zoneinfo import ZoneInfo

import pytest
import requests
from hl7.client import MLLPClient
from kit.pfi import mdm, parse_ack

from mockbench.formats.cda import minimal_cda
from mockbench.formats.mime import xdm_mail
from mockbench.formats.xdm import ans_subject, write_package
from mockbench.world.clock import parse_time

DPI = "dpi@chu-test.mssante.fr"
BIOLO = "biolo@labo.mssante.fr"
HEADER = "Mois;Type de document;Nombre d'envois;Nombre de succès;Nombre d'échecs"


def feed_through_the_pfi(bench) -> None:
    patient = bench.client.patient("alice")
    author = next(p for p in bench.client.call("GET", "/professionals") if p["id"] == "dr_martin")
    finess = next(s["finess"] for s in bench.client.call("GET", "/structures") if s["id"] == "chu")
    with MLLPClient("127.0.0.1", bench.ports["mllp"]) as client:
        client.socket.settimeout(10)
        for n in (1, 2):
            ack = parse_ack(client.send_message(mdm("T02", patient, author, finess, f"1.2.250.1.999.24.{n}",
                                                    control_id=f"S{n}")))
            assert str(ack.segment("MSA")[1]) == "AA"


def send_by_mssante(bench) -> None:
    patient = bench.client.patient("alice")
    author = next(p for p in bench.client.call("GET", "/professionals") if p["id"] == "dr_martin")
    cda = minimal_cda(unique_id="1.2.250.1.999.24.9", ins=patient["ins"], ins_oid=patient["ins_oid"],
                      type_code="11490-0", title="Lettre de liaison", author_idnps=author["idnps"],
                      author_family=author["family_name"], author_given=author["given_name"],
                      patient_family=patient["family_name"], patient_given=patient["given_name"],
                      birth_date=patient["birth_date"], sex=patient["sex"], effective_time="2026-11-20T10:00:00Z",
                      text="Sortie le 20 novembre.")
    patient_id = f"{patient['ins']}^^^&{patient['ins_oid']}&ISO^NH"
    package = write_package([("DOC0001.XML", cda, {"unique_id": "1.2.250.1.999.24.9", "type_code": "11490-0",
                                                   "title": "Lettre de liaison", "class_code": "11490-0",
                                                   "format_code": "urn:ihe:iti:xds-sd:text:2008"})],
                            submission_set={"unique_id": "1.2.250.1.999.24.10", "source_id": "1.2.250.1.999",
                                            "content_type": "04"}, patient_id=patient_id)
    raw = xdm_mail(sender=DPI, to=[BIOLO], package=package, text="Lettre de liaison.",
                   subject=ans_subject("Lettre de liaison", patient["family_name"], patient["given_name"],
                                       patient["birth_date"].replace("-", "")))
    client = smtplib.SMTP("127.0.0.1", bench.ports["smtp"], timeout=10)
    client.login(DPI, "mockbench")
    assert client.sendmail(DPI, [BIOLO], raw) == {}
    client.quit()


def play(bench) -> str:
    """The DPI's part; returns the month of its sends, as the bench counts it (Europe/Paris)."""
    bench.client.load("stat-es-01")
    feed_through_the_pfi(bench)
    send_by_mssante(bench)
    time = bench.client.journal(channel="dmp", operation="TD2.1")[0]["time"]
    return parse_time(time).astimezone(ZoneInfo("Europe/Paris")).strftime("%Y-%m")


def post_csv(bench, text: str, *, bom: bool = False) -> requests.Response:
    body = (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8")
    return requests.post(bench.url + "/_bench/stat/check", data=body, timeout=10,
                         headers={"Content-Type": "text/csv; charset=utf-8"})


def other_months(month: str) -> list[str]:
    """Every month from January of the previous year to `month` (the current one), but `month`: the DPI lists
    them too, with a Total row at 0 (no sends then)."""
    year, current = (int(x) for x in month.split("-"))
    return [f"{y:04d}-{m:02d}" for y in (year - 1, year) for m in range(1, 13) if (y, m) < (year, current)]


def zero_months(month: str, row: str = "Total;0;0;0") -> str:
    return "".join(f"{m};{row}\r\n" for m in other_months(month))


@pytest.mark.scenario_play("stat-es-01", "correct")
def test_stat_es_01_the_csv_matches_what_the_bench_saw(mockbench):
    month = play(mockbench)
    td21 = mockbench.client.journal(channel="dmp", operation="TD2.1")
    assert [(e["verdict"], e["code"]) for e in td21] == [("accepted", None), ("refused", "DMP_CLOSED")]
    answer = post_csv(mockbench, f"{HEADER}\r\n{zero_months(month)}{month};11488-4 - CR de consultation;2;1;1\r\n"
                                 f"{month};11490-0;1;1;0\r\n{month};Total;3;2;1\r\n", bom=True)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["verdict"] == "accepted" and result["findings"] == [], result["findings"]
    assert result["missing_months"] == [] and len(result["months"]) == len(other_months(month)) + 1
    assert [(r["type"], r["vendor"], r["bench"], r["verdict"]) for r in result["rows"] if r["month"] == month] == [
        ("11488-4", {"sends": 2, "successes": 1, "failures": 1}, {"sends": 2, "successes": 1, "failures": 1}, "match"),
        ("11490-0", {"sends": 1, "successes": 1, "failures": 0}, {"sends": 1, "successes": 1, "failures": 0}, "match"),
        ("Total", {"sends": 3, "successes": 2, "failures": 1}, {"sends": 3, "successes": 2, "failures": 1}, "match")]
    steps = mockbench.client.finish()
    assert [(s["id"], s["status"]) for s in steps] == [
        ("alimentation", "passed"), ("alimentation_refusee", "passed"), ("envoi_mssante", "passed"),
        ("statistiques", "passed")], steps


@pytest.mark.scenario_play("stat-es-01", "mistake")
def test_stat_es_01_a_csv_that_forgets_the_refused_feed_fails(mockbench):
    month = play(mockbench)
    answer = post_csv(mockbench, f"Mois,Type de document,Flux,Nombre d'envois,Nombre d'échecs\n"
                                 f"{zero_months(month, 'Total,,0,0').replace(';', ',')}{month},11488-4,DMP,1,0\n{month},11490-0,MSSanté,1,0\n")
    assert answer.status_code == 200 and answer.json()["verdict"] == "refused"
    step = mockbench.client.finish()[-1]
    assert step["id"] == "statistiques" and step["status"] == "failed"
    assert step["reason"] == (f"the entry's verdict is refused (STAT_MISMATCH), accepted was expected; finding "
                              f"STAT/ES.01: {month} DMP 11488-4: line {len(other_months(month)) + 2} says 1 sends, "
                              "1 successes, 0 failures; the journal saw 2 sends, 1 successes, 1 failures")


@pytest.mark.scenario_play("stat-es-01", "mistake")
def test_stat_es_01_only_the_current_month_and_a_wrong_total(mockbench):
    """The ANS asks for the months of the previous and current year, and a total that adds up."""
    month = play(mockbench)
    answer = post_csv(mockbench, f"{HEADER}\n{month};11488-4;2;1;1\n{month};11490-0;1;1;0\n{month};Total;2;2;0\n")
    result = answer.json()
    assert result["verdict"] == "refused" and result["missing_months"] == other_months(month)
    messages = [f["message"] for f in result["findings"]]
    assert messages[0] == (f"{month} Total: line 4 says 2 sends, 2 successes, 0 failures; the journal saw 3 sends, "
                           "2 successes, 1 failures")
    assert messages[1].startswith(f"the CSV lists no row for {len(other_months(month))} month(s) of the previous "
                                  f"and current year: {other_months(month)[0]}, ")
    step = mockbench.client.finish()[-1]
    assert step["status"] == "failed" and "STAT/ES.01" in step["reason"]
