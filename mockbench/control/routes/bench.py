"""The bench itself: health, what to configure in a DPI, the OpenAPI document, reset and snapshots."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Blueprint, Response, jsonify, request

from ..common import ApiError
from ..openapi import openapi_document

if TYPE_CHECKING:
    from ...bench import Bench


def blueprint(bench: Bench) -> Blueprint:
    bp = Blueprint("bench", __name__)

    @bp.get("/health")
    def health():
        return jsonify(bench.health())

    @bp.get("/endpoints")
    def endpoints():
        """What to configure in a DPI for this bench (control/endpoints.py; issue 18 point 4)."""
        from ..endpoints import describe, render_text

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

    return bp
