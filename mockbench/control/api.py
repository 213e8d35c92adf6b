"""The control API (JSON over HTTP under /_bench): it only calls Bench, world and scenario-engine methods.

Errors are JSON {"error": CODE, "message": TEXT} with a 4xx status; a world error keeps its stable code.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import yaml
from flask import Blueprint, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from ..scenarios.loader import over_budget, parse
from ..scenarios.schema import ActionSpec, ListOf, ScenarioInvalid, Validator
from ..scenarios.seed import Seeder
from ..world import errors
from ..world.clock import parse_duration
from ..world.journal import CHANNELS
from ..world.store import StorageFull
from .events import EventHub, TooManySubscribers
from .openapi import openapi_document
from .security import download

if TYPE_CHECKING:
    from ..bench import Bench

log = logging.getLogger("mockbench.control")

PATIENT_FIELDS = ("id", "ins", "ins_oid", "family_name", "given_name", "birth_date", "sex", "minor", "dmp",
                  "consent", "secret_connection", "oppositions", "dmp_closed_at", "dmp_close_reason")
PROFESSIONAL_FIELDS = ("id", "rpps", "idnps", "family_name", "given_name", "profession", "specialty",
                       "structure", "mssante")
STRUCTURE_FIELDS = ("id", "finess", "finess_ej", "idnst", "name", "address")
DOCUMENT_HIDDEN = ("current", "extra")
MAX_JOURNAL_PAGE = 10_000
MAX_LIST_PAGE = 10_000   # items per page of a paginated list (?limit=&offset=)
DEFAULT_LIST_PAGE = 100
# An error answer says enough to fix the request and no more: its size never grows with the input's.
MAX_PROBLEMS = 50
MAX_MESSAGE = 8 * 1024
STAT_CSV_TYPES = ("text/csv", "application/csv", "text/plain")


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _status_of(exc: errors.WorldError) -> int:
    if isinstance(exc, errors.NotFound):
        return 404
    if isinstance(exc, errors.InvalidRequest):
        return 400
    return 409


def _pick(d: dict, names: tuple[str, ...]) -> dict:
    return {k: d.get(k) for k in names}


def _body() -> dict:
    if not request.data:
        return {}
    try:
        data = json.loads(request.data)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "INVALID_JSON", "the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "INVALID_JSON", "the request body must be a JSON object")
    return data


def create_blueprint(bench: Bench) -> Blueprint:
    bp = Blueprint("control", __name__)
    xdm_readers = threading.BoundedSemaphore(XDM_READERS)
    world, engine = bench.world, bench.scenarios

    @bp.errorhandler(ApiError)
    def api_error(exc: ApiError):
        return jsonify(error=exc.code, message=exc.message), exc.status

    @bp.errorhandler(errors.WorldError)
    def world_error(exc: errors.WorldError):
        return jsonify(exc.as_dict()), _status_of(exc)

    @bp.errorhandler(ScenarioInvalid)
    def scenario_invalid(exc: ScenarioInvalid):
        shown = exc.problems[:MAX_PROBLEMS]
        more = len(exc.problems) - len(shown)
        message = "\n".join(str(p) for p in shown) + (f"\n… and {more} more problems" if more else "")
        return jsonify(error="SCENARIO_INVALID", message=_bounded(message), truncated=more,
                       problems=[{"line": p.line, "path": p.path, "message": _bounded(p.message, 500)}
                                 for p in shown]), 400

    @bp.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        code = (exc.name or "error").upper().replace(" ", "_")
        return jsonify(error=code, message=exc.description), exc.code

    @bp.errorhandler(Exception)
    def unexpected(exc: Exception):
        if isinstance(exc, StorageFull):
            return storage_full_response(exc)
        log.exception("control API error on %s %s", request.method, request.path)
        return jsonify(error="INTERNAL", message=_bounded(f"{type(exc).__name__}: {exc}")), 500

    # Bench --------------------------------------------------------------------------------------
    @bp.get("/health")
    def health():
        return jsonify(bench.health())

    @bp.get("/endpoints")
    def endpoints():
        """What to configure in a DPI for this bench (control/endpoints.py; issue 18 point 4)."""
        from .endpoints import describe, render_text

        fmt = request.args.get("format", "json")
        if fmt not in ("json", "text"):
            raise ApiError(400, "INVALID_FORMAT", "format is json (default) or text")
        doc = describe(bench)
        if fmt == "text":
            return Response(render_text(doc), content_type="text/plain; charset=utf-8")
        return jsonify(doc)

    @bp.get("/openapi.json")
    def openapi():
        return jsonify(openapi_document(bench.url))

    @bp.post("/reset")
    def reset():
        bench.reset()
        return jsonify(status="reset")

    @bp.get("/snapshots")
    def snapshots():
        return jsonify(bench.store.snapshots())

    @bp.post("/snapshots/<name>")
    def snapshot(name: str):
        bench.snapshot(name)
        return jsonify(status="saved", snapshot=name)

    @bp.post("/snapshots/<name>/restore")
    def restore(name: str):
        bench.restore(name)
        return jsonify(status="restored", snapshot=name)

    # Scenarios ----------------------------------------------------------------------------------
    @bp.get("/scenarios")
    def scenarios():
        return jsonify([{"id": s.id, "title": s.title, "requirement": s.requirement}
                        for s in bench.catalogue.all().values()])

    @bp.get("/scenarios/<scenario_id>")
    def scenario_show(scenario_id: str):
        s = bench.catalogue.get(scenario_id)
        return jsonify(id=s.id, title=s.title, requirement=s.requirement, spec=s.spec)

    @bp.post("/scenarios/<scenario_id>")
    def scenario_load(scenario_id: str):
        return jsonify(engine.load(bench.catalogue.get(scenario_id)))

    @bp.post("/scenarios")
    def scenario_upload():
        """Load a scenario sent as YAML (or JSON) in the body, not from the catalogue."""
        text = request.get_data(as_text=True)
        if not text.strip():
            raise ApiError(400, "EMPTY_BODY", "send the scenario's YAML as the request body")
        return jsonify(engine.load(parse(text, "request body")))

    @bp.get("/scenario")
    def scenario_loaded():
        with world.read() as tx:
            state = engine.loaded(tx)
            if not state:
                return jsonify(id=None)
            return jsonify(id=state["id"], title=state["title"], requirement=state["requirement"],
                           description=(state["spec"].get("description") or "").strip() or None,
                           source=state["source"], transitions=engine.transitions(tx), steps=engine.steps(tx))

    # World --------------------------------------------------------------------------------------
    @bp.get("/patients")
    def patients():
        with world.read() as tx:
            return _listing(lambda offset, limit: [_pick(p.to_dict(), PATIENT_FIELDS) for p in
                                                   world.directory.patients(tx, offset=offset, limit=limit)],
                            lambda: tx.count("patients"))

    @bp.get("/patients/<key>")
    def patient(key: str):
        with world.read() as tx:
            p = world.directory.patient(tx, key)
            return jsonify(_pick(p.to_dict(), PATIENT_FIELDS))

    @bp.get("/patients/<key>/documents")
    def documents(key: str):
        history = request.args.get("history", "0").lower() in ("1", "true", "yes")
        with world.read() as tx:
            return _listing(lambda offset, limit: [
                {k: v for k, v in d.to_dict().items() if k not in DOCUMENT_HIDDEN}
                for d in world.dmp.documents(tx, key, history=history, offset=offset, limit=limit)],
                lambda: world.dmp.documents_total(tx, key, history=history))

    @bp.get("/patients/<key>/traces")
    def traces(key: str):
        with world.read() as tx:
            return _listing(lambda offset, limit: [
                _pick(t.to_dict(), ("time", "actor", "structure", "document", "action", "mode"))
                for t in world.dmp.traces(tx, key, offset=offset, limit=limit)],
                lambda: world.dmp.traces_total(tx, key))

    @bp.get("/patients/<key>/authorizations")
    def authorizations(key: str):
        with world.read() as tx:
            now = world.clock.now_iso()
            rows = []
            for a in world.dmp.authorizations(tx, key):
                row = a.to_dict()
                if a.status == "VALIDE" and a.until and a.until <= now:
                    row["status"] = "EXPIRE"
                rows.append(row)
            return jsonify(rows)

    @bp.get("/documents/<path:key>")
    def document(key: str):
        with world.read() as tx:
            if key.endswith("/content"):
                doc = world.dmp.current(tx, key[: -len("/content")])
                return download(world.dmp.content(tx, doc.unique_id), _content_name(doc.unique_id, doc.mime_type),
                                doc.mime_type)
            doc = world.dmp.current(tx, key)
            return jsonify({k: v for k, v in doc.to_dict().items() if k not in DOCUMENT_HIDDEN})

    @bp.get("/professionals")
    def professionals():
        with world.read() as tx:
            return _listing(lambda offset, limit: [_pick(p.to_dict(), PROFESSIONAL_FIELDS) for p in
                                                   world.directory.professionals(tx, offset=offset, limit=limit)],
                            lambda: tx.count("professionals"))

    @bp.get("/structures")
    def structures():
        def page(offset: int, limit: int | None) -> list[dict]:
            rows = []
            for s in world.directory.structures(tx, offset=offset, limit=limit):
                row = _pick(s.to_dict(), STRUCTURE_FIELDS)
                row["address"] = {k: (s.address or {}).get(k, "") for k in ("line", "postal_code", "city")}
                rows.append(row)
            return rows

        with world.read() as tx:
            return _listing(page, lambda: tx.count("structures"))

    @bp.post("/world/actions")
    def actions():
        """Run scenario actions now, all or nothing: what a third party does to the world, live."""
        body = _body()
        node = yaml.compose(json.dumps(body.get("actions")), Loader=yaml.SafeLoader)
        over = over_budget(node) if node is not None else None
        if over:
            raise ApiError(400, "INVALID_ACTIONS", over)
        v = Validator("request body")
        parsed = ListOf(item=ActionSpec()).convert(node, "actions", v) if node is not None else None
        if not parsed or v.problems:
            problems = v.problems
            message = _bounded("; ".join(f"{p.path}: {p.message}" for p in problems[:MAX_PROBLEMS])) or \
                "send {\"actions\": [{name: {arguments}}, ...]}"
            raise ApiError(400, "INVALID_ACTIONS", message)
        with world.transaction() as tx:
            seeder = Seeder(world, tx)
            done = [seeder.run(a, cause="control:actions") for a in parsed]
            world.journal.append(tx, "control", "action", actor="control", raw="; ".join(done))
        return jsonify(done=done)

    # Journal, steps, findings -------------------------------------------------------------------
    # MSSanté mailboxes ---------------------------------------------------------------------------
    @bp.get("/mss/mailboxes")
    def mailboxes():
        with world.read() as tx:
            return _listing(lambda offset, limit: [
                {"address": m.address, "type": m.type, "owner": m.owner, "role": m.role,
                 "behaviour": m.behaviour or {}} for m in world.directory.mailboxes(tx, offset=offset, limit=limit)],
                lambda: tx.count("mailboxes"))

    @bp.get("/mss/mailboxes/<address>/messages")
    def mailbox_messages(address: str):
        with world.read() as tx:
            messages = world.mss.messages(tx, address)   # one mailbox's: sorted by folder and UID in Python
            return _listing(lambda offset, limit: [_message_row(m) for m in
                                                   messages[offset:None if limit is None else offset + limit]],
                            lambda: len(messages))

    @bp.put("/mss/mailboxes/<address>/behaviour")
    def mailbox_behaviour(address: str):
        with world.transaction() as tx:
            box = world.mss.set_behaviour(tx, address, _body())
            world.journal.append(tx, "control", "mss-behaviour", actor="control", raw=f"{box.address} {box.behaviour}")
            return jsonify({"address": box.address, "type": box.type, "owner": box.owner, "role": box.role,
                            "behaviour": box.behaviour})

    @bp.get("/mss/messages/<message_id>")
    def mail_message(message_id: str):
        with world.read() as tx:
            message = world.mss.message(tx, message_id)
            raw = world.mss.raw(tx, message_id)
        if request.args.get("raw", "0").lower() in ("1", "true", "yes"):
            return download(raw, f"{message_id}.eml", "message/rfc822")
        return jsonify({**_message_row(message), "parts": _parts(raw)})

    @bp.get("/mss/messages/<message_id>/xdm")
    def mail_xdm(message_id: str):
        """What the message's IHE_XDM.ZIP holds: its files, its documents' metadata and the checks' findings."""
        with world.read() as tx:
            world.mss.message(tx, message_id)   # 404 MESSAGE_UNKNOWN first
            raw = world.mss.raw(tx, message_id)
        # The dashboard asks for up to 50 at once: a few are read at a time, each within XDM_VIEW_LIMITS.
        if not xdm_readers.acquire(timeout=XDM_WAIT):
            raise ApiError(503, "BUSY", f"{XDM_READERS} packages are being read; ask again in a moment")
        try:
            return jsonify(_xdm_contents(raw))
        finally:
            xdm_readers.release()

    @bp.post("/mss/send")
    def mail_send():
        """A professional of the world sends an XDM package (base64) to mailboxes, through the world's
        delivery (as the professional's operator would)."""
        import base64
        import binascii

        from ..formats.mime import xdm_mail
        from ..protocols.mss.smtp import xdm_check
        body = _body()
        missing = [k for k in ("from", "to", "package") if not body.get(k)]
        if missing:
            raise ApiError(400, "INVALID_PARAMETER", f"send from, to (a list) and package (base64): missing "
                           f"{', '.join(missing)}")
        try:
            package = base64.b64decode(body["package"], validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(400, "INVALID_PARAMETER", "package is not base64") from None
        to = body["to"] if isinstance(body["to"], list) else [body["to"]]
        raw = xdm_mail(sender=body["from"], to=to, subject=body.get("subject") or "XDM/1.0/DDM",
                       package=package, text=body.get("text", ""),
                       disposition_notification_to=body["from"] if body.get("mdn") else None)
        # The package's findings and first document, as the SMTP door records them: sent as it is, broken
        # or not (the recipient judges it; MSS/UX.12 checks its answer against these findings).
        findings, document, ins = xdm_check(raw)
        # The X-MSS-* rules (REF2/...) judge the mails the software under test writes, not this stand-in's.
        findings = [f for f in findings if not f["rule"].startswith("REF2/")]
        with world.transaction() as tx:
            stored = world.mss.deliver(tx, body["from"], to, raw, cause="control:mss-send", findings=findings,
                                       document=document)
            world.journal.append(tx, "mss", "DELIVER", direction="out", actor=body["from"], document=document,
                                 patient_ins=ins, findings=findings, raw=raw, ref=stored[0].message_id if stored else None)
            return jsonify([_message_row(m) for m in stored])

    @bp.get("/journal")
    def journal():
        args = request.args
        channel = args.get("channel") or None
        if channel and channel not in CHANNELS:
            raise ApiError(400, "INVALID_PARAMETER", f"channel must be one of {', '.join(CHANNELS)}")
        since = _int_arg("since")
        limit = _int_arg("limit")
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

    @bp.get("/steps")
    def steps():
        with world.read() as tx:
            return jsonify(engine.steps(tx))

    @bp.post("/steps/finish")
    def finish():
        return jsonify(engine.finish())

    @bp.get("/findings")
    def findings():
        with world.read() as tx:
            return jsonify(world.advisor.findings(tx))

    # Evidence report ----------------------------------------------------------------------------
    @bp.get("/report")
    def report():
        """The evidence report (mockbench/report/): read-only, pending steps shown as the finish would
        leave them but kept pending."""
        from .. import __version__
        from ..report import build_report, render_html

        fmt = (request.args.get("format") or "json").lower()
        if fmt not in ("json", "html"):
            raise ApiError(400, "INVALID_PARAMETER", "format must be json or html")
        data = build_report(world, engine, bench={"version": __version__, "url": bench.url})
        if fmt == "json":
            return jsonify(data)
        from ..report import report_filename
        from ..report.html import CSP
        response = Response(render_html(data), mimetype="text/html")
        name = report_filename((data["scenario"] or {}).get("id"), "html")
        response.headers["Content-Disposition"] = f'inline; filename="{name}"'
        response.headers["Content-Security-Policy"] = f"{CSP}; frame-ancestors 'none'"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    # Transitions and clock ----------------------------------------------------------------------
    @bp.get("/transitions")
    def transitions():
        with world.read() as tx:
            return jsonify(engine.transitions(tx))

    @bp.post("/transitions/<transition_id>")
    def fire(transition_id: str):
        return jsonify(engine.fire_manual(transition_id))

    @bp.get("/clock")
    def clock():
        return jsonify(now=world.clock.now_iso(), offset=world.clock.offset)

    @bp.post("/clock")
    def clock_advance():
        body = _body()
        if "advance" not in body:
            raise ApiError(400, "INVALID_PARAMETER", 'send {"advance": "30s"}')
        try:
            seconds = parse_duration(body["advance"])
        except ValueError as exc:
            raise ApiError(400, "INVALID_PARAMETER", str(exc)) from None
        if seconds < 0:
            raise ApiError(400, "INVALID_PARAMETER", "the clock only moves forward")
        with world.transaction() as tx:
            world.advance_clock(tx, seconds)
            world.journal.append(tx, "control", "clock", actor="control", raw=f"advance {body['advance']}")
        return jsonify(now=world.clock.now_iso(), offset=world.clock.offset)

    # Fault rules (world/faults.py) ----------------------------------------------------------------
    @bp.get("/faults")
    def faults():
        with world.read() as tx:
            return jsonify(world.faults.rules(tx))

    @bp.post("/faults")
    def fault_set():
        with world.transaction() as tx:
            return jsonify(world.faults.set(tx, _body()))

    @bp.delete("/faults")
    def faults_delete():
        with world.transaction() as tx:
            return jsonify(deleted=world.faults.delete(tx))

    @bp.get("/faults/fired")
    def faults_fired():
        with world.read() as tx:
            return jsonify(world.faults.fired(tx))

    @bp.get("/faults/<rule_id>")
    def fault(rule_id: str):
        with world.transaction() as tx:
            return jsonify(world.faults.rule(tx, rule_id))

    @bp.patch("/faults/<rule_id>")
    def fault_switch(rule_id: str):
        body = _body()
        if set(body) != {"enabled"} or not isinstance(body["enabled"], bool):
            raise ApiError(400, "FAULT_RULE_INVALID", 'enabled: send {"enabled": true} or {"enabled": false}')
        with world.transaction() as tx:
            return jsonify(world.faults.switch(tx, rule_id, body["enabled"]))

    @bp.delete("/faults/<rule_id>")
    def fault_delete(rule_id: str):
        with world.transaction() as tx:
            return jsonify(deleted=world.faults.delete(tx, rule_id))

    # Statistics (STAT/ES.01) ----------------------------------------------------------------------
    @bp.post("/stat/check")
    def stat_check():
        """A vendor's CSV of sends per document type and month, compared with what the journal saw
        (world/stats.py says what counts); journaled as control stat_check."""
        from ..world import stats

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
        from ..scenarios.engine import TRACE_MARK
        from ..world import trace_check as tc

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
            since = _int_arg("since")
        tail = _int_arg("tail")
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

    # PFI door: the outbound queue to the DPI ----------------------------------------------------
    @bp.get("/pfi/outbox")
    def pfi_outbox():
        state = request.args.get("state") or None
        if state not in (None, "pending", "dead"):
            raise ApiError(400, "INVALID_PARAMETER", "state must be pending or dead")
        with world.read() as tx:
            return jsonify(bench.pfi.outbox.rows(tx, state))

    @bp.post("/pfi/outbox/<message_id>/retry")
    def pfi_outbox_retry(message_id: str):
        if not message_id.isdigit():
            raise ApiError(404, "OUTBOX_MESSAGE_UNKNOWN", f"the PFI outbox holds no message {message_id}")
        with world.transaction() as tx:
            row = bench.pfi.outbox.retry(tx, int(message_id))
            if row is None:
                raise ApiError(404, "OUTBOX_MESSAGE_UNKNOWN", f"the PFI outbox holds no message {message_id}")
            world.journal.append(tx, "control", "pfi-retry", actor="control", ref=str(message_id),
                                 raw=f"outbox #{message_id} {row['operation']}: {row['state']}")
        return jsonify(row)

    @bp.get("/pfi/dpi")
    def pfi_dpi():
        with world.read() as tx:
            return jsonify(bench.pfi.dpi_view(tx))

    @bp.put("/pfi/dpi")
    def pfi_dpi_set():
        """The DPI's MLLP listener from now on (`{"mllp": "HOST:PORT"}`; null: none, the queue waits)."""
        body = _body()
        unknown = sorted(set(body) - {"mllp"})
        if unknown or "mllp" not in body or not isinstance(body["mllp"], str | None):
            raise ApiError(400, "INVALID_REQUEST", 'send {"mllp": "HOST:PORT"} (or {"mllp": null} for none)')
        with world.transaction() as tx:
            try:
                view = bench.pfi.set_dpi(tx, body["mllp"], "control")
            except ValueError as exc:
                raise ApiError(400, "INVALID_REQUEST", f"{exc}: give the DPI's MLLP listener as HOST:PORT") from None
            world.journal.append(tx, "control", "pfi-dpi", actor="control", raw=f"DPI MLLP listener: {view['mllp']}")
        return jsonify(view)

    @bp.delete("/pfi/dpi")
    def pfi_dpi_clear():
        """Back to the listener given at start (--dpi-mllp), or none."""
        with world.transaction() as tx:
            view = bench.pfi.set_dpi(tx, None, "config")
            world.journal.append(tx, "control", "pfi-dpi", actor="control", raw=f"DPI MLLP listener: {view['mllp']}")
        return jsonify(view)

    # OIDC door ----------------------------------------------------------------------------------
    @bp.put("/oidc/ciba/<key>")
    def oidc_ciba(key: str):
        return jsonify(bench.oidc.script_ciba(key, _body()))

    @bp.post("/oidc/keys/rotate")
    def oidc_rotate():
        return jsonify(bench.oidc.rotate_keys())

    # The DMP's trust: the seal certificates that sign VIHFs -----------------------------------------
    @bp.get("/pki/signing/<idnst>")
    def pki_signing(idnst: str):
        """A structure's seal certificate and key from the bench's own test PKI, issued on first use: what a
        DPI (or its tests) reaching the bench over the network, e.g. in a container, signs its VIHFs with.
        Test material only; behind the control token when the bench requires one."""
        from ..pki import PkiError

        try:
            identity = bench.vihf_signing_identity(idnst)
        except PkiError as exc:
            raise ApiError(409, "PKI_UNAVAILABLE", str(exc)) from None   # the message says why
        return jsonify(idnst=idnst, certificate=identity.cert_pem().decode("ascii"),
                       private_key=identity.key_pem().decode("ascii"),
                       ca=(bench.pki_dir / "ca.crt").read_text(encoding="ascii"))

    return bp


def storage_full_response(exc: StorageFull) -> Response:
    """507 Insufficient Storage (RFC 4918 11.5) in the prefix's own error form: what a full disk is on the HTTP
    port (the DMP and the Annuaire answer it in their own bodies). Not logged: the store logs each episode."""
    if request.path.startswith("/oidc"):   # RFC 6749 4.1.2.1: temporarily_unavailable
        response = jsonify(error="temporarily_unavailable", error_description=str(exc))
    else:
        response = jsonify(error=StorageFull.code, message=str(exc))
    response.status_code = 507
    response.headers["Retry-After"] = "30"
    return response


def _bounded(text: str, limit: int = MAX_MESSAGE) -> str:
    return text if len(text) <= limit else text[:limit] + f"… ({len(text) - limit} more characters)"


def _listing(page: Callable[[int, int | None], list], total: Callable[[], int]) -> Response:
    """A list route. With `limit` or `offset` in the query: one page, `{"total", "offset", "limit", "items"}`
    (worlds of 100,000: issue 21, point 6). Without: every item as a bare JSON array, as before (existing
    clients), with the total in `X-Total-Count` either way."""
    offset, limit = _int_arg("offset"), _int_arg("limit")
    if offset is None and limit is None:
        items = page(0, None)
        response = jsonify(items)
        response.headers["X-Total-Count"] = str(len(items))
        return response
    offset = offset or 0
    limit = DEFAULT_LIST_PAGE if limit is None else limit
    if offset < 0:
        raise ApiError(400, "INVALID_PARAMETER", "offset must be 0 or more")
    if not 1 <= limit <= MAX_LIST_PAGE:
        raise ApiError(400, "INVALID_PARAMETER", f"limit must be between 1 and {MAX_LIST_PAGE}")
    count = total()
    response = jsonify(total=count, offset=offset, limit=limit, items=page(offset, limit))
    response.headers["X-Total-Count"] = str(count)
    return response


def _int_arg(name: str) -> Any:
    value = request.args.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise ApiError(400, "INVALID_PARAMETER", f"{name} must be a whole number") from None


CONTENT_SUFFIXES = {"text/xml": ".xml", "application/xml": ".xml", "application/pdf": ".pdf", "text/plain": ".txt",
                    "image/jpeg": ".jpg", "image/png": ".png", "image/tiff": ".tiff", "text/rtf": ".rtf"}


def _content_name(unique_id: str, mime_type: str | None) -> str:
    return unique_id + CONTENT_SUFFIXES.get((mime_type or "").lower(), ".bin")


def _message_row(m) -> dict:
    return {"id": m.id, "mailbox": m.mailbox, "uid": m.uid, "sender": m.sender, "recipients": m.recipients,
            "subject": m.subject, "message_id": m.message_id, "received_at": m.received_at, "size": m.size,
            "flags": m.flags, "headers": m.headers, "findings": m.findings, "document": m.document}


MAX_XDM_FILES = 500
XDM_READERS = 4      # packages read at once for GET /mss/messages/{id}/xdm
XDM_WAIT = 30.0      # seconds a read waits for its turn before 503


def _view_limits():
    """What the control API inflates to show one package: the SMTP door judged it at receipt with the full
    XdmLimits (formats/xdm.py); to show it, 16 MiB a document and 32 MiB in all are plenty (a 1.9 MiB zip at
    the 200:1 ratio the door tolerates would otherwise inflate to ~250 MiB, per request)."""
    from ..formats.xdm import MIB, XdmLimits

    return XdmLimits(max_member_bytes=16 * MIB, max_total_bytes=32 * MIB)


def _xdm_contents(raw: bytes) -> dict:
    """The IHE_XDM.ZIP of a mail, for the eye: files (name, size), documents, findings; `package` null when
    the mail carries none, `error` when the package cannot be read at all."""
    import email
    import io
    import zipfile
    from email import policy

    from ..formats.xdm import XdmError, read_package
    from ..protocols.mss.smtp import XDM_ATTACHMENT

    parsed = email.message_from_bytes(raw, policy=policy.compat32)
    package = next((part.get_payload(decode=True) or b"" for part in parsed.walk()
                    if str(part.get_filename() or part.get_param("name") or "").upper() == XDM_ATTACHMENT), None)
    result: dict[str, Any] = {"package": None, "size": 0, "files": [], "documents": [], "findings": [],
                              "error": None}
    if package is None:
        return result
    result.update(package=XDM_ATTACHMENT, size=len(package))
    try:
        with zipfile.ZipFile(io.BytesIO(package)) as zf:
            result["files"] = [{"name": i.filename, "size": i.file_size} for i in zf.infolist()[:MAX_XDM_FILES]
                               if not i.is_dir()]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, OSError):
        pass  # read_package says why below
    try:
        pkg = read_package(package, _view_limits())
    except XdmError as exc:
        result["error"] = {"code": exc.code, "message": exc.message}
        return result
    result["findings"] = pkg.findings
    for doc in pkg.documents:
        meta = doc.entry.meta
        result["documents"].append({
            "path": doc.path, "unique_id": meta.get("unique_id") or "", "title": meta.get("title") or "",
            "type_code": meta.get("type_code") or "", "mime_type": meta.get("mime_type") or "",
            "size": len(doc.content), "hash_ok": doc.hash_ok, "size_ok": doc.size_ok, "action": doc.action})
    return result


def _parts(raw: bytes) -> list[dict]:
    """The MIME parts of a message, for the eye: content type, file name, size."""
    import email
    from email import policy

    parsed = email.message_from_bytes(raw, policy=policy.default)
    parts = []
    for part in parsed.walk():
        if part.is_multipart():
            continue
        payload = part.get_payload(decode=True) or b""
        parts.append({"content_type": part.get_content_type(), "filename": part.get_filename(),
                      "size": len(payload)})
    return parts
