"""The table: one row per figure and peer, mockbench's median, the peer's, their ratio and the noise."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from statistics import median

# The figures still to come hold a place in the table, and their issues fill it (start the peer in procs.py,
# add a fig_* method in run.py, drop the line here). None is left: the last one, OIDC against oidc-provider,
# hosts the library with benchmarks/harness/oidc_host.mjs.
LATER: list[tuple[str, tuple[str, str]]] = []  # (figure, (peer, why)): rows not measured yet; none left


@dataclass
class Row:
    figure: str
    peer: str
    unit: str
    better: str              # "lower" or "higher" ("" for a row without figures)
    ours: dict | None        # {"median", "min", "max", "n", "samples"} or None
    theirs: dict | None
    note: str | None = None  # why a side has no figure
    detail: str = ""

    def ratio(self) -> float | None:
        if not self.ours or not self.theirs or self.theirs["median"] <= 0:
            return None
        return self.ours["median"] / self.theirs["median"]

    def to_dict(self) -> dict:
        return {**asdict(self), "ratio": self.ratio()}


def value(v: float, unit: str) -> str:
    if unit == "s":
        return f"{v:.3f} s"
    if unit == "ms":
        return f"{v:.2f} ms"
    if unit == "MiB":
        return f"{v:.1f} MiB"
    return f"{v:,.0f} {unit}"


def cell(side: dict | None, unit: str) -> str:
    if not side:
        return "-"
    text = value(side["median"], unit)
    if side["n"] > 1 and side["median"]:
        text += f" ±{(side['max'] - side['min']) / 2 / abs(side['median']):.0%}"
    return text


def verdict(row: Row) -> str:
    r = row.ratio()
    if r is None:
        return "-"
    if row.ours["median"] < 0:
        return f"{r:.2f}"
    good = r < 1 if row.better == "lower" else r > 1
    return f"{r:.2f} ({'better' if good else 'worse'})" if abs(r - 1) >= 0.005 else f"{r:.2f}"


def table(rows: list[Row], meta: dict, details: dict) -> str:
    header = ("figure", "peer", "mockbench", "peer's", "mockbench / peer")
    regular, later = [header], []
    for row in rows:
        if row.ours is None and row.theirs is None:
            later.append((row.figure, row.peer, row.note or "-"))
            continue
        theirs = row.note if row.note and not row.theirs else cell(row.theirs, row.unit)
        regular.append((row.figure, row.peer, cell(row.ours, row.unit), theirs, verdict(row)))
    widths = [max(len(r[i]) for r in regular) for i in range(5)]
    for r in later:
        widths[0], widths[1] = max(widths[0], len(r[0])), max(widths[1], len(r[1]))
    out = []
    for i, r in enumerate(regular):
        out.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    for r in later:
        out.append(f"{r[0].ljust(widths[0])}  {r[1].ljust(widths[1])}  {r[2]}")
    notes = [
        "",
        "± is half the range of the rounds over their median; the ratio is mockbench's median over the peer's "
        "('better' when mockbench's is lower for times and memory, higher for rates).",
    ]
    if meta.get("mode_note"):
        notes.append(meta["mode_note"])
    mem = details.get("memory")
    if mem:
        series = mem["series"]
        for name, points in series.items():
            pts = ", ".join(f"{p['rss_mib']:.0f}" for p in points)
            notes.append(f"RSS of {name} (MiB) every {points[1]['requests'] if len(points) > 1 else 0:,} requests: "
                         f"{pts}; journal {mem['journal'].get(name)}")
        heap = mem.get("wiremock_live_heap_mib") or []
        if len(heap) == 2 and None not in heap:
            notes.append(f"WireMock's live heap after a full GC (jcmd): {heap[0]:.0f} MiB before, {heap[1]:.0f} MiB "
                         f"after the requests: its journal keeps every request")
    soap = details.get("soap") or {}
    if soap.get("wiremock_live_heap_mib") is not None:
        notes.append(f"After the SOAP rounds ({soap['requests_served'].get('WireMock', 0):,} TD3.1 served), "
                     f"WireMock's RSS is {soap['wiremock_rss_mib']:.0f} MiB and its live heap after a full GC "
                     f"{soap['wiremock_live_heap_mib']:.0f} MiB: its journal keeps each request with its answer; "
                     f"mockbench's RSS {(details.get('rss_after_mib') or {}).get('soap', {}).get('mockbench', 0):.0f} "
                     f"MiB after {soap['requests_served'].get('mockbench', 0):,}.")
    for key, label in (("soap", "SOAP"), ("mllp", "MLLP"), ("smtp", "SMTP"), ("oidc", "OIDC")):
        for conns, figures in ((details.get(key) or {}).get("rounds") or {}).items():
            server = figures["server_cpu_ms_per_request"]
            load = figures["load_cpu_ms_per_request"]
            notes.append(f"{label}, {conns.replace('_conn', '')} conn, CPU per request (median ms): " +
                         ", ".join(f"{name} {median(v):.2f}" for name, v in server.items()) +
                         "; the load process " + ", ".join(f"{median(v):.2f}" for v in load.values()))
    growth = details.get("growth")
    if growth:
        notes.extend(growth_notes(growth))
    slow = details.get("slow_clients")
    if slow:
        notes.append(slow_notes(slow))
    for figure, why in (details.get("failures") or {}).items():
        notes.append(f"figure {figure} failed: {why}")
    for err in meta.get("driver_errors", []):
        notes.append(f"load errors, {err}")
    peers = meta.get("peers", {})
    notes.append(f"{meta['mode']} run {meta['date']}, {meta['duration_s']} s (peers' install {meta['install_s']} s), "
                 f"{meta['cpus']} CPUs, Python {meta['python']}; " +
                 ", ".join(f"{k} {v}" for k, v in peers.items()))
    notes.append(f"load: {meta['load']}")
    return "\n".join(out + notes)


def slow_notes(slow: dict) -> str:
    """The slow-client figure (benchmarks/slow_clients.py), mockbench alone."""
    alone = median([r["p50_ms"] for r in slow["alone"]])
    first = slow["loaded"][0]
    loaded = median([r["p50_ms"] for r in slow["loaded"]])
    stalled = sum(r["stalled"] for r in slow["loaded"])
    ratio = loaded / alone if alone else float("nan")
    return (f"Slow clients (mockbench alone; GET /_bench/health on a new connection, median of the rounds' p50): "
            f"{alone:.1f} ms alone, {loaded:.1f} ms with {first['idle']} idle and {first['slowloris']} slowloris "
            f"connections open ({ratio:.2f}x, target within 1.10x); {stalled} of "
            f"{slow['requests_per_round'] * len(slow['loaded'])} stalled")


def growth_notes(g: dict) -> list[str]:
    """The lines of the growth figure (benchmarks/growth.py), mockbench alone: no peer has these."""
    def ms(d: dict) -> str:
        return f"{d['median_ms']:.1f} ms (max {d['max_ms']:.1f})"

    out = [f"Worlds of {g['patients']:,} (mockbench alone; medians, max in brackets): world.generate of "
           f"{g['patients']:,} patients and {g['professionals']:,} professionals loads in {g['load_s']:.1f} s; "
           f"a page of 100 patients {ms(g['list_first page'])} first, {ms(g['list_last page'])} last; "
           f"every patient at once {g['list_bare_ms']:.0f} ms"]
    out.append("FHIR at that size: first search (index built) " + f"{g['fhir_first_ms']:.0f} ms; " + "; ".join(
        f"{label} {ms(g['fhir_' + label])} (first {g['fhir_' + label].get('first_ms', 0):.0f} ms)" for label in ("read by id", "search by identifier", "search by family",
                                                           "search by name:contains", "roles of a practitioner")))
    out.append(f"reset of that world {g['reset_full_ms']:.1f} ms, small requests while its rows are deleted "
               f"{ms(g['during_reap'])}, p99 {g['during_reap']['p99_ms']:.1f} ms; reset of the emptied world "
               f"{ms(g['reset_empty'])}")
    if "journaled" in g:
        out.append(f"{g['journaled']['n']:,} journaled requests with the journal bounded to {g['journal'] // 2:,}: "
                   f"{ms(g['journaled'])}, p99.99 {g['journaled']['p9999_ms']:.1f} ms; GET /_bench/findings "
                   f"{ms(g['findings'])}")
    return out
