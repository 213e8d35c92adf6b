"""The control API (JSON over HTTP under /_bench): it only calls Bench, world and scenario-engine methods.

One blueprint per area (control/routes/), nested in the `control` blueprint, whose error handlers answer for
all of them: errors are JSON {"error": CODE, "message": TEXT} with a 4xx status (control/common.py); a world
error keeps its stable code.

| area | routes |
|---|---|
| routes/bench.py | health, endpoints, openapi.json, reset, snapshots |
| routes/scenarios.py | scenarios, scenario, steps, transitions |
| routes/world.py | patients (documents, traces, authorizations), documents, professionals, structures, world/actions |
| routes/journal.py | journal, events, findings, report, stat/check, traces/check |
| routes/clock.py | clock, faults |
| routes/mss.py | mss/mailboxes, mss/messages, mss/send |
| routes/pfi.py | pfi/outbox, pfi/dpi |
| routes/oidc.py | oidc/ciba, oidc/keys/rotate |
| routes/pki.py | pki/signing |
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from flask import Blueprint, jsonify, request
from werkzeug.exceptions import HTTPException

from ..scenarios.schema import ScenarioInvalid
from ..world import errors
from ..world.store import StorageFull
from ..world.xlock import WriteLockTimeout
from .common import MAX_PROBLEMS, ApiError, bounded, status_of, storage_full_response, store_busy_response
from .routes import bench as bench_routes
from .routes import clock, journal, mss, oidc, pfi, pki, scenarios, world

if TYPE_CHECKING:
    from ..bench import Bench

__all__ = ["ApiError", "create_blueprint", "storage_full_response"]

log = logging.getLogger("mockbench.control")

AREAS = (bench_routes, scenarios, world, journal, clock, mss, pfi, oidc, pki)


def create_blueprint(bench: Bench) -> Blueprint:
    bp = Blueprint("control", __name__)

    @bp.errorhandler(ApiError)
    def api_error(exc: ApiError):
        return jsonify(error=exc.code, message=exc.message), exc.status

    @bp.errorhandler(errors.WorldError)
    def world_error(exc: errors.WorldError):
        return jsonify(exc.as_dict()), status_of(exc)

    @bp.errorhandler(ScenarioInvalid)
    def scenario_invalid(exc: ScenarioInvalid):
        shown = exc.problems[:MAX_PROBLEMS]
        more = len(exc.problems) - len(shown)
        message = "\n".join(str(p) for p in shown) + (f"\n… and {more} more problems" if more else "")
        return jsonify(error="SCENARIO_INVALID", message=bounded(message), truncated=more,
                       problems=[{"line": p.line, "path": p.path, "message": bounded(p.message, 500)}
                                 for p in shown]), 400

    @bp.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        code = (exc.name or "error").upper().replace(" ", "_")
        return jsonify(error=code, message=exc.description), exc.code

    @bp.errorhandler(Exception)
    def unexpected(exc: Exception):
        if isinstance(exc, StorageFull):
            return storage_full_response(exc)
        if isinstance(exc, WriteLockTimeout):
            return store_busy_response(exc)
        log.exception("control API error on %s %s", request.method, request.path)
        return jsonify(error="INTERNAL", message=bounded(f"{type(exc).__name__}: {exc}")), 500

    for area in AREAS:
        bp.register_blueprint(area.blueprint(bench))
    return bp
