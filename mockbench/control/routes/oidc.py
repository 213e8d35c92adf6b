"""The OIDC door: scripted CIBA answers, key rotation."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Blueprint, jsonify

from ..common import json_body

if TYPE_CHECKING:
    from ...bench import Bench


def blueprint(bench: Bench) -> Blueprint:
    bp = Blueprint("oidc", __name__)

    @bp.put("/oidc/ciba/<key>")
    def oidc_ciba(key: str):
        return jsonify(bench.oidc.script_ciba(key, json_body()))

    @bp.post("/oidc/keys/rotate")
    def oidc_rotate():
        return jsonify(bench.oidc.rotate_keys())

    return bp
