"""STAT/ES.01: the software's statistics of sends per document type and month, checked against the journal.

A vendor's software produces a CSV of the documents it sent, per month and document type, with successes
and failures (failures may be 0). `POST /_bench/stat/check` compares it with what the bench's journal saw.
The public text of STAT/ES.01 was not found; the columns are the seed's reading of it (a "Type de
document" column, sends per month, failures that may be 0) and are documented in the README.

The CSV (UTF-8, with or without BOM; `;` or `,` between fields, as the header line shows; a header line,
then one row per month and type; names compared without case, accents or punctuation):

| column | required | what |
|---|---|---|
| `Mois` | yes | `AAAA-MM`, `MM/AAAA` or `AAAA/MM` |
| `Type de document` | yes | the LOINC code of the document type (`11488-4`, or `11488-4 - CR de consultation`) |
| `Flux` | no | `DMP` or `MSSanté`: with it, rows are per month, flux and type; without, both are added up |
| `Nombre d'envois` | one of these two | every send |
| `Nombre de succès` | | the sends that succeeded |
| `Nombre d'échecs` | yes | the sends that failed (0 allowed) |

What counts as a send, in the journal (one entry, one document):
- DMP: a `dmp` `TD2.1` (the software's own feed or replacement, or the PFI's feed on its behalf): a
  success when accepted, a failure when refused. A `pfi` document message (`MDM^T02`, `MDM^T10`,
  `ORU^R01`) refused at its technical acknowledgement (AE/AR) never reached the DMP: one failure for each
  destination its metadata asked for (`DESTDMP`, `DESTMSSANTEPS`/`DESTMSSANTEPAT` at Y).
- MSSanté: an `mss` `SUBMIT` that carries an IHE_XDM.ZIP (the software's own mail; an MDN carries none)
  is a success; a mail the PFI built for the software (`mss` `DELIVER` out, with a `PFI/MSS` finding) is a
  success when delivered, a failure when its recipients were unknown or it could not be made.
  A refused SUBMIT names no document, so it is not counted (its type cannot be known).
- Not sends: reads (TD3.x, IMAP), deletions and other metadata updates (TD3.3x, MDM^T04), a third
  party's mail (`POST /_bench/mss/send`), the simulated correspondents' MDNs and DSNs.
The month is the entry's time (virtual clock) in Europe/Paris. The type is the document's typeCode: the
world's document, the ebRIM of the TD2.1, the XDM metadata of the mail, or TXA-2 (OBR-4 for ORU) of the
HL7 message; `inconnu` when none can be read. The comparison covers the months the CSV lists.

What the ANS asks (issue 19, as the ANS reads STAT/ES.01): the detail per document type plus the total, for
the months of the previous and the current year. So:
- a row whose Type de document is `Total` (or `Tous types`, `Total général`) is the month's total (of its
  flux, when the CSV has a Flux column and the row names one; of every flux when its Flux is empty): it is
  checked against the sum of the sends the journal saw that month;
- every month from January of the previous year to the current month (virtual clock, Europe/Paris) must be
  listed, by a detail row or a Total row (`0` for a month without sends); the months missing are named in
  one STAT/ES.01 finding.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..formats import table as csvtable
from ..formats.mime import XDM_ATTACHMENT, find_attachment
from ..world import errors
from ..world.clock import parse_time
from ..world.journal import finding
from ..world.store import Tx
from .registry import rule

if TYPE_CHECKING:
    from ..world.world import World

RULE = "STAT/ES.01"
MAX_BYTES = 1024 * 1024       # a year of a big hospital's statistics is a few hundred rows
MAX_ROWS = 10_000
MAX_FIELD = 256
MAX_METADATA = 4 * 1024 * 1024   # the METADATA.XML read from a mail's package to find its typeCode
UNKNOWN_TYPE = "inconnu"
TOTAL = "Total"
TOTAL_NAMES = ("total", "tous", "tous types", "total general", "tous les types", "ensemble")
FLUXES = {"dmp": "DMP", "mssante": "MSSanté", "mss": "MSSanté"}
DOCUMENT_MESSAGES = ("MDM^T02", "MDM^T10", "ORU^R01")

COLUMNS: dict[str, tuple[str, ...]] = {
    "month": ("mois", "mois d envoi", "periode"),
    "type": ("type de document", "type document", "type de documents"),
    "flux": ("flux", "canal", "destination"),
    "sends": ("nombre d envois", "nombre envois", "nb envois", "envois", "nombre de documents envoyes"),
    "successes": ("nombre de succes", "nombre succes", "nb succes", "succes", "nombre d envois reussis",
                  "envois reussis", "reussis"),
    "failures": ("nombre d echecs", "nombre echecs", "nb echecs", "echecs", "nombre d envois en echec",
                 "envois en echec"),
}
HEADER_HELP = ("Mois; Type de document; [Flux]; Nombre d'envois and/or Nombre de succès; Nombre d'échecs")

_LOINC = re.compile(r"^\s*(\d{1,7}-\d)\b")
_TYPE_CODE_TAG = re.compile(r"<(?:\w+:)?Classification\b[^>]*f0306f51-975f-434e-a61c-c59651d33983[^>]*>",
                            re.IGNORECASE)
_NODE = re.compile(r"nodeRepresentation\s*=\s*[\"']([^\"']+)[\"']")


class StatCsvError(ValueError):
    """What is wrong with the vendor's CSV, with the line it is on (1 is the header)."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}" if line else message)
        self.line = line


@dataclass
class Counts:
    sends: int = 0
    successes: int = 0
    failures: int = 0

    def as_dict(self) -> dict:
        return {"sends": self.sends, "successes": self.successes, "failures": self.failures}


@dataclass
class VendorRow:
    line: int
    month: str
    type: str
    flux: str | None
    counts: Counts = field(default_factory=Counts)


# --- The vendor's CSV ------------------------------------------------------------------------------------

_norm = csvtable.fold   # column names and words compared without case, accents or punctuation


def _month(value: str, line: int) -> str:
    v = value.strip()
    for pattern, year, month in ((r"(\d{4})[-/](\d{1,2})", 1, 2), (r"(\d{1,2})[-/](\d{4})", 2, 1)):
        m = re.fullmatch(pattern, v)
        if m and 1 <= int(m.group(month)) <= 12:
            return f"{int(m.group(year)):04d}-{int(m.group(month)):02d}"
    raise StatCsvError(line, f"Mois {value!r} is not a month: AAAA-MM, MM/AAAA or AAAA/MM")


def _count(value: str, column: str, line: int) -> int:
    v = value.strip()
    if not re.fullmatch(r"\d{1,9}", v):
        raise StatCsvError(line, f"{column} {value!r} is not a whole number >= 0")
    return int(v)


def parse_csv(data: bytes) -> tuple[list[VendorRow], bool]:
    """The vendor's rows, and whether the CSV has a Flux column. StatCsvError names the line."""
    try:
        table = csvtable.read(csvtable.decode(data, max_bytes=MAX_BYTES), COLUMNS, header_help=HEADER_HELP)
    except csvtable.TableError as exc:
        raise StatCsvError(exc.line, exc.message) from None
    columns = table.columns
    _check_columns(columns)
    rows: list[VendorRow] = []
    seen: dict[tuple, int] = {}
    try:
        for line, record in table.records(max_rows=MAX_ROWS, max_field=MAX_FIELD):
            row = _row(columns, line, record)
            key = (row.month, row.flux, row.type)
            if key in seen:
                raise StatCsvError(line, f"{row.month} {row.flux + ' ' if row.flux else ''}{row.type} is "
                                   f"already on line {seen[key]}")
            seen[key] = line
            rows.append(row)
    except csvtable.TableError as exc:
        raise StatCsvError(exc.line, exc.message) from None
    return rows, "flux" in columns


def _check_columns(columns: dict[str, int]) -> None:
    missing = [k for k in ("month", "type", "failures") if k not in columns]
    if missing or ("sends" not in columns and "successes" not in columns):
        names = {"month": "Mois", "type": "Type de document", "failures": "Nombre d'échecs"}
        absent = [names[k] for k in missing] + ([] if "sends" in columns or "successes" in columns
                                               else ["Nombre d'envois (or Nombre de succès)"])
        raise StatCsvError(1, f"missing column {', '.join(absent)}; expected {HEADER_HELP}")


def _row(columns: dict[str, int], line: int, record: list[str]) -> VendorRow:
    """One row of the CSV: its month, type, flux and counts, checked."""
    month = _month(record[columns["month"]], line)
    raw_type = record[columns["type"]].strip()
    if not raw_type:
        raise StatCsvError(line, "Type de document is empty")
    loinc = _LOINC.match(raw_type)
    doc_type = TOTAL if _norm(raw_type) in TOTAL_NAMES else loinc.group(1) if loinc else raw_type
    flux = None
    if "flux" in columns:
        given = record[columns["flux"]]
        flux = FLUXES.get(_norm(given).replace(" ", ""))
        if flux is None and not (doc_type == TOTAL and not given.strip()):
            raise StatCsvError(line, f"Flux {given!r} is neither DMP nor MSSanté")
    return VendorRow(line, month, doc_type, flux, _counts(columns, line, record))


def _counts(columns: dict[str, int], line: int, record: list[str]) -> Counts:
    failures = _count(record[columns["failures"]], "Nombre d'échecs", line)
    sends = _count(record[columns["sends"]], "Nombre d'envois", line) if "sends" in columns else None
    successes = (_count(record[columns["successes"]], "Nombre de succès", line)
                 if "successes" in columns else None)
    if sends is None:
        sends = (successes or 0) + failures
    if successes is None:
        if failures > sends:
            raise StatCsvError(line, f"Nombre d'échecs {failures} is more than Nombre d'envois {sends}")
        successes = sends - failures
    if sends != successes + failures:
        raise StatCsvError(line, f"Nombre d'envois {sends} is not Nombre de succès {successes} + "
                           f"Nombre d'échecs {failures}")
    return Counts(sends, successes, failures)


# --- What the journal saw --------------------------------------------------------------------------------

def _local_month(world: World, iso: str) -> str:
    when = parse_time(iso)
    try:
        from zoneinfo import ZoneInfo

        when = when.astimezone(ZoneInfo("Europe/Paris"))
    except Exception:   # no time zone database: UTC months
        pass
    return f"{when.year:04d}-{when.month:02d}"


def _dmp_type(world: World, tx: Tx, entry: dict) -> str:
    if entry.get("document"):
        try:
            return world.dmp.current(tx, entry["document"]).type_code or UNKNOWN_TYPE
        except errors.WorldError:
            pass
    tag = _TYPE_CODE_TAG.search(entry.get("raw") or "")
    node = _NODE.search(tag.group(0)) if tag else None
    if node:
        return node.group(1)
    if entry.get("ref"):   # the PFI's feed: its TD2.1 has the HL7 message's MSH-10 as ref
        row = tx.conn.execute("SELECT data FROM journal WHERE ns = ? AND channel = 'pfi' AND "
                              "json_extract(data, '$.ref') = ? ORDER BY seq DESC LIMIT 1",
                              (tx.ns, entry["ref"])).fetchone()
        if row is not None:
            return _hl7_type(json.loads(row[0]).get("raw") or "")
    return UNKNOWN_TYPE


def _mail_raw(world: World, tx: Tx, entry: dict) -> bytes:
    if entry.get("raw") and not entry.get("raw_truncated"):
        return entry["raw"].encode("utf-8", "replace")
    if entry.get("ref"):
        row = tx.conn.execute("SELECT id FROM messages WHERE ns = ? AND json_extract(data, '$.message_id') = ? "
                              "LIMIT 1", (tx.ns, entry["ref"])).fetchone()
        if row is not None:
            try:
                return world.mss.raw(tx, row[0])
            except errors.WorldError:
                pass
    return b""


def _xdm_type(package: bytes) -> str | None:
    """The typeCode in an IHE_XDM.ZIP's METADATA.XML, read with zipfile and a pattern (the world reads no
    XML; the SMTP door has already checked the package)."""
    try:
        with zipfile.ZipFile(io.BytesIO(package)) as zf:
            for info in zf.infolist():
                if info.filename.upper().endswith("METADATA.XML") and info.file_size <= MAX_METADATA:
                    with zf.open(info) as member:
                        text = member.read(MAX_METADATA).decode("utf-8", "replace")
                    tag = _TYPE_CODE_TAG.search(text)
                    node = _NODE.search(tag.group(0)) if tag else None
                    if node:
                        return node.group(1)
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, EOFError):
        return None
    return None


def _mail_type(world: World, tx: Tx, entry: dict) -> str:
    raw = _mail_raw(world, tx, entry)
    package = find_attachment(raw, XDM_ATTACHMENT)[1] if raw else None
    found = _xdm_type(package) if package else None
    if found:
        return found
    return _dmp_type(world, tx, {"document": entry.get("document")})


def _segments(raw: str) -> list[list[str]]:
    return [s.split("|") for s in re.split(r"\r\n|\r|\n", raw) if s]


def _hl7_type(raw: str) -> str:
    """TXA-2 of an HL7 document message, else OBR-4 (ORU^R01), else UNKNOWN_TYPE."""
    doc_type = UNKNOWN_TYPE
    for seg in _segments(raw):
        if seg[0] == "TXA" and len(seg) > 2 and seg[2].split("^")[0]:
            return seg[2].split("^")[0]
        if seg[0] == "OBR" and len(seg) > 4 and seg[4].split("^")[0]:
            doc_type = seg[4].split("^")[0]
    return doc_type


def _hl7_sends(entry: dict) -> list[tuple[str, str]]:
    """(flux, type) for each destination of a refused HL7 document message."""
    segments = _segments(entry.get("raw") or "")
    doc_type = _hl7_type(entry.get("raw") or "")
    wanted = {seg[3].split("^")[0] for seg in segments
              if seg[0] == "OBX" and len(seg) > 5 and seg[5].upper().startswith("Y")}
    fluxes = []
    if "DESTDMP" in wanted:
        fluxes.append("DMP")
    if wanted & {"DESTMSSANTEPS", "DESTMSSANTEPAT"}:
        fluxes.append("MSSanté")
    return [(f, doc_type) for f in fluxes]


def classify(world: World, tx: Tx, entry: dict) -> list[tuple[str, str, bool]]:
    """The sends one journal entry stands for: (flux, document type, success)."""
    channel, operation, verdict = entry["channel"], entry["operation"], entry["verdict"]
    if channel == "dmp" and operation == "TD2.1":
        return [("DMP", _dmp_type(world, tx, entry), verdict == "accepted")]
    if channel == "pfi" and operation in DOCUMENT_MESSAGES and entry.get("direction") == "in" \
            and verdict != "accepted":
        return [(f, t, False) for f, t in _hl7_sends(entry)]
    if channel == "mss" and operation == "SUBMIT" and entry.get("document") and verdict == "accepted":
        return [("MSSanté", _mail_type(world, tx, entry), True)]
    if channel == "mss" and operation == "DELIVER" and entry.get("direction") == "out" \
            and any(f.get("rule") == "PFI/MSS" for f in entry.get("findings") or []):
        return [("MSSanté", _mail_type(world, tx, entry), verdict == "accepted")]
    return []


def bench_counts(world: World, tx: Tx, months: set[str], by_flux: bool) -> dict[tuple, Counts]:
    counts: dict[tuple, Counts] = {}
    since = 0
    while True:
        page = world.journal.query(tx, since=since, limit=5000)
        for entry in page:
            if entry["channel"] == "control":
                continue
            sends = classify(world, tx, entry)
            if not sends:
                continue
            month = _local_month(world, entry["time"])
            if month not in months:
                continue
            for flux, doc_type, ok in sends:
                c = counts.setdefault((month, flux if by_flux else None, doc_type), Counts())
                c.sends += 1
                c.successes += ok
                c.failures += not ok
        if len(page) < 5000:
            return counts
        since = page[-1]["seq"]


# --- The comparison --------------------------------------------------------------------------------------

def required_months(world: World) -> list[str]:
    """January of the previous year to the current month, on the virtual clock (Europe/Paris)."""
    year, month = (int(x) for x in _local_month(world, world.clock.now_iso()).split("-"))
    return [f"{y:04d}-{m:02d}" for y in (year - 1, year) for m in range(1, 13) if (y, m) <= (year, month)]


def _totals(bench: dict[tuple, Counts], rows: list[VendorRow]) -> dict[tuple, Counts]:
    """The journal's sums for each Total row of the CSV: its month, its flux (every flux when None)."""
    out: dict[tuple, Counts] = {}
    for r in rows:
        if r.type != TOTAL:
            continue
        c = out.setdefault((r.month, r.flux, TOTAL), Counts())
        for (month, flux, _), b in bench.items():
            if month == r.month and (r.flux is None or flux == r.flux):
                c.sends += b.sends
                c.successes += b.successes
                c.failures += b.failures
    return out


def compare(world: World, tx: Tx, rows: list[VendorRow], by_flux: bool) -> dict:
    """Per (month, [flux,] type): the vendor's figures, the bench's, a verdict; the findings of mismatches,
    of Total rows that do not add up to the journal's sends, and of the months of the previous and current
    year the CSV does not list."""
    months = {r.month for r in rows}
    bench = bench_counts(world, tx, months, by_flux)
    bench.update(_totals(bench, rows))
    vendor = {(r.month, r.flux, r.type): r for r in rows}
    out, findings = [], []
    for key in sorted(set(vendor) | set(bench), key=lambda k: (k[0], k[1] or "", k[2] == TOTAL, k[2])):
        month, flux, doc_type = key
        v = vendor.get(key)
        b = bench.get(key, Counts())
        ok = v is not None and v.counts == b
        out.append({"month": month, "flux": flux, "type": doc_type, "line": v.line if v else None,
                    "vendor": v.counts.as_dict() if v else None, "bench": b.as_dict(),
                    "verdict": "match" if ok else "mismatch"})
        if not ok:
            where = f"{month} {flux + ' ' if flux else ''}{doc_type}"
            said = (f"line {v.line} says {v.counts.sends} sends, {v.counts.successes} successes, "
                    f"{v.counts.failures} failures" if v else "the CSV has no row")
            findings.append(finding(RULE, f"{where}: {said}; the journal saw {b.sends} sends, {b.successes} "
                                    f"successes, {b.failures} failures", "error",
                                    fr=f"{where} : " + (f"la ligne {v.line} indique {v.counts.sends} envois, {v.counts.successes} succès, {v.counts.failures} échecs" if v else "le CSV n'a pas de ligne") + f" ; le journal a vu {b.sends} envois, {b.successes} succès, {b.failures} échecs"))
    missing = [m for m in required_months(world) if m not in months]
    if missing:
        findings.append(finding(RULE, f"the CSV lists no row for {len(missing)} month(s) of the previous and "
                                f"current year: {', '.join(missing)}; list every month from January of the "
                                "previous year (a Total row at 0 for a month without sends)", "error",
                                fr=f"le CSV n'a aucune ligne pour {len(missing)} mois de l'année précédente et de "
                                   f"l'année en cours : {', '.join(missing)} ; listez chaque mois depuis janvier de "
                                   "l'année précédente (une ligne Total à 0 pour un mois sans envoi)"))
    return {"verdict": "accepted" if not findings else "refused", "months": sorted(months),
            "missing_months": missing, "by_flux": by_flux, "rows": out, "findings": findings}


@rule(RULE, "upload", "The software's statistics of sends per month and document type match what the bench saw, "
      "for every month of the previous and the current year",
      fr="Les statistiques d'envois du logiciel par mois et type de document correspondent à ce que le banc a "
         "vu, pour chaque mois de l'année précédente et de l'année en cours")
def check(world: World, tx: Tx, data: bytes, actor: str = "") -> dict:
    """Parse, compare and journal (channel control, operation stat_check) in the caller's transaction.
    StatCsvError for a CSV that cannot be read (journaled by no one: nothing was checked)."""
    rows, by_flux = parse_csv(data)
    result = compare(world, tx, rows, by_flux)
    entry = world.journal.append(tx, "control", "stat_check", actor=actor, verdict=result["verdict"],
                                 code=None if result["verdict"] == "accepted" else "STAT_MISMATCH",
                                 findings=result["findings"], raw=data)
    result["entry"] = entry["seq"]
    return result
