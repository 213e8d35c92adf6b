"""The HTTP application: the control API now; the DMP, OIDC and Annuaire doors and the dashboard register
their blueprints here as they land."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Flask, jsonify, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import HTTPException

from ..world.store import StorageFull
from ..world.xlock import WriteLockTimeout
from .api import create_blueprint, storage_full_response, store_busy_response

if TYPE_CHECKING:
    from ..bench import Bench

MAX_REQUEST_BYTES = 64 * 1024 * 1024  # a TD2.1 with a large document fits; anything beyond is refused


def create_app(bench: Bench) -> Flask:
    app = Flask("mockbench")
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    if isinstance(app.json, DefaultJSONProvider):   # Flask's own provider (the only one the bench uses)
        app.json.sort_keys = False
    app.extensions["mockbench"] = bench
    from .security import install

    app.extensions["mockbench.guard"] = install(app, bench)
    app.register_blueprint(create_blueprint(bench), url_prefix="/_bench")
    for door in bench.doors.values():   # the door registry (protocols/registry.py): the HTTP doors' routes
        routes = door.http_routes()
        if routes is not None:
            prefix, blueprint = routes
            app.register_blueprint(blueprint, url_prefix=prefix)
    from ..dashboard import create_blueprint as dashboard_blueprint

    app.register_blueprint(dashboard_blueprint())

    # A full disk (world/store.py StorageFull) reaching the app: 507 Insufficient Storage (RFC 4918 11.5), in
    # the prefix's own error form; logged once per episode by the store, so not here.
    app.register_error_handler(StorageFull, storage_full_response)
    # Another process holding the world's write lock past its wait (world/xlock.py): 503 with Retry-After, the
    # same way (control/common.py store_busy_response).
    app.register_error_handler(WriteLockTimeout, store_busy_response)

    # Routing errors (404, 405) never reach a blueprint's handlers: answer them here, on the wire of
    # the prefix they fell under.
    @app.errorhandler(HTTPException)
    def routing_error(exc: HTTPException):
        if request.path.startswith("/_bench"):
            code = (exc.name or "error").upper().replace(" ", "_")
            message = exc.description
            if exc.code == 404:
                message = f"no control API call at {request.path}; see /_bench/openapi.json"
            elif exc.code == 405:
                message = f"{request.method} is not allowed on {request.path}"
            return jsonify(error=code, message=message), exc.code
        dmp = getattr(bench, "dmp", None)
        if dmp is not None and request.path.startswith("/si-dmp-server"):
            if exc.code == 413:
                reason = f"the request is larger than the {MAX_REQUEST_BYTES} bytes the bench takes"
            else:
                verb = "is not a DMP service" if exc.code == 404 else f"does not take {request.method}"
                reason = (f"{request.path} {verb}: POST SOAP 1.2 to /si-dmp-server/v2/services/{{service}}, or "
                          "GET it with ?wsdl")
            return dmp.routing_fault(exc.code or 404, reason)
        annuaire = getattr(bench, "annuaire", None)
        if annuaire is not None and request.path.startswith("/fhir/"):
            return annuaire.routing_error(exc.code or 404, f"{request.method} {request.path} is not served: GET "
                                          "/fhir/v2/{type}?params, POST /fhir/v2/{type}/_search, "
                                          "/fhir/v2/{type}/{id} or /fhir/v2/metadata")
        return exc

    return app
