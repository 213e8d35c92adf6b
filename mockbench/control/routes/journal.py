"""The journal and what is read from it: entries, the live timeline (server-sent events), findings, the
evidence report, and the checks of the software's own statistics (STAT/ES.01) and access traces
(DMP/CONF.14)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Blueprint, Response, jsonify, request

from ...world.journal import CHANNELS
from ..common import ApiError, int_arg
from ..events import EventHub, TooManySubscribers

if TYPE_CHECKING:
    from ...bench import Bench

MAX_JOURNAL_PAGE = 10_000
STAT_CSV_TYPES = ("text/csv", "application/csv", "text/plain")


def blueprint(bench: Bench) -> Blueprint:
    bp = Blueprint("journal", __name__)
    world, engine = bench.world, bench.scenarios

    @bp.get("/journal")
    def journal():
        args = request.args
        channel = args.get("channel") or None
        if channel and channel not in CHANNELS:
            raise ApiError(400, "INVALID_PARAMETER", f"channel must be one of {', '.join(CHANNELS)}")
        since = int_arg("since")
        limit = int_arg("limit")
        limit = 1000 if limit is None else limit
        if not 1 <= limit <= MAX_JOURNAL_PAGE:
            raise ApiError(400, "INVALID_PARAMETER", f"limit must be between 1 and {MAX_JOURNAL_PAGE}")
        with world.read() as tx:
            entries = world.journal.query(tx, channel=channel, operation=args.get("operation") or None,
                                          patient=args.get("patient") or None, since=since,
                                          since_time=args.get("from") or None, until_time=args.get("to") or None,
                                          limit=limit)
            stats = world.journal.stats(tx)
        response = jsonify(entries)
        response.headers["X-Journal-Count"] = str(stats["count"])
        response.headers["X-Journal-Dropped"] = str(stats["dropped"])
        return response

    @bp.get("/findings")
    def findings():
        with world.read() as tx:
            return jsonify(world.advisor.findings(tx))

    # Evidence report ----------------------------------------------------------------------------
    @bp.get("/report")
    def report():
        """The evidence report (mockbench/report/): read-only, pending steps shown as the finish would
        leave them but kept pending."""
        from ... import __version__
        from ...report import build_report, render_html

        fmt = (request.args.get("format") or "json").lower()
        if fmt not in ("json", "html"):
            raise ApiError(400, "INVALID_PARAMETER", "format must be json or html")
        data = build_report(world, engine, bench={"version": __version__, "url": bench.url})
        if fmt == "json":
            return jsonify(data)
        from ...report import report_filename
        from ...report.html import CSP
        response = Response(render_html(data), mimetype="text/html")
        name = report_filename((data["scenario"] or {}).get("id"), "html")
        response.headers["Content-Disposition"] = f'inline; filename="{name}"'
        response.headers["Content-Security-Policy"] = f"{CSP}; frame-ancestors 'none'"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    # Statistics (STAT/ES.01) ----------------------------------------------------------------------
    @bp.post("/stat/check")
    def stat_check():
        """A vendor's CSV of sends per document type and month, compared with what the journal saw
        (checks/stats.py says what counts); journaled as control stat_check."""
        from ...checks import stats

        kind = (request.mimetype or "").lower()
        if kind and kind not in STAT_CSV_TYPES:
            raise ApiError(415, "UNSUPPORTED_MEDIA_TYPE", f"send the CSV as text/csv, not {kind}")
        if (request.content_length or 0) > stats.MAX_BYTES:
            raise ApiError(400, "CSV_TOO_LARGE", f"the CSV has {request.content_length} bytes; at most "
                           f"{stats.MAX_BYTES} are read")
        data = request.stream.read(stats.MAX_BYTES + 1)
        if len(data) > stats.MAX_BYTES:
            raise ApiError(400, "CSV_TOO_LARGE", f"the CSV is larger than the {stats.MAX_BYTES} bytes read")
        try:
            with world.transaction() as tx:
                return jsonify(stats.check(world, tx, data, actor=request.remote_addr or ""))
        except stats.StatCsvError as exc:
            raise ApiError(400, "CSV_INVALID", str(exc)) from None

    # The DPI's own access traces (DMP/CONF.14) ---------------------------------------------------
    @bp.post("/traces/check")
    def trace_check():
        """The DPI's extract of its access traces (CSV or JSON), compared action by action with the DMP traces
        since the scenario was loaded (world/trace_check.py); journaled as control trace_check."""
        from ...scenarios.engine import TRACE_MARK
        from ...world import trace_check as tc

        kind = (request.mimetype or "").lower()
        if kind not in STAT_CSV_TYPES + ("application/json",):
            raise ApiError(415, "UNSUPPORTED_MEDIA_TYPE", f"send the extract as text/csv or application/json, "
                           f"not {kind or 'no Content-Type'}")
        if (request.content_length or 0) > tc.MAX_BYTES:
            raise ApiError(400, "EXTRACT_TOO_LARGE", f"the extract has {request.content_length} bytes; at most "
                           f"{tc.MAX_BYTES} are read")
        data = request.stream.read(tc.MAX_BYTES + 1)
        if len(data) > tc.MAX_BYTES:
            raise ApiError(400, "EXTRACT_TOO_LARGE", f"the extract is larger than the {tc.MAX_BYTES} bytes read")
        structure = request.args.get("structure") or None
        try:
            with world.transaction() as tx:
                return jsonify(tc.check(world, tx, data, "json" if kind == "application/json" else "csv",
                                        since=tx.meta_get(TRACE_MARK, 0), structure=structure,
                                        actor=request.remote_addr or ""))
        except tc.TraceExtractError as exc:
            raise ApiError(400, "EXTRACT_INVALID", str(exc)) from None
    # Live timeline (server-sent events) ----------------------------------------------------------
    hub = EventHub(world)
    bp.record_once(lambda state: state.app.extensions.setdefault("mockbench.events", hub))

    @bp.get("/events")
    def events():
        last_id = request.headers.get("Last-Event-ID", "").strip()
        if last_id:
            if not last_id.isdigit():
                raise ApiError(400, "INVALID_PARAMETER", "Last-Event-ID must be a journal sequence number")
            since = int(last_id)
        else:
            since = int_arg("since")
        tail = int_arg("tail")
        if tail is not None and not 0 <= tail <= hub.limits.max_tail:
            raise ApiError(400, "INVALID_PARAMETER", f"tail must be between 0 and {hub.limits.max_tail}")
        try:
            sub = hub.subscribe()
        except TooManySubscribers as exc:
            response = jsonify(error="TOO_MANY_SUBSCRIBERS", message=str(exc))
            response.status_code = 429
            response.headers["Retry-After"] = "5"
            return response
        try:
            start = hub.start_point(since, tail)
        except BaseException:
            hub.unsubscribe(sub)
            raise
        response = Response(hub.stream(sub, start), mimetype="text/event-stream")
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Accel-Buffering"] = "no"
        response.call_on_close(lambda: hub.unsubscribe(sub))
        return response

    return bp
