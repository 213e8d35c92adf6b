"""The dashboard: one page at `/` that watches and steers the bench (timeline, world, scenario).

Plain HTML, CSS and JavaScript shipped as package data (static/), no build step and no network at run time.
The page only reads and calls the control API (`/_bench/...`) and follows `/_bench/events`.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, send_from_directory

STATIC = Path(__file__).parent / "static"
ASSETS_PATH = "/_dashboard"


def create_blueprint() -> Blueprint:
    bp = Blueprint("dashboard", __name__, static_folder=str(STATIC), static_url_path=ASSETS_PATH)

    @bp.get("/")
    def index():
        response = send_from_directory(STATIC, "index.html", mimetype="text/html", max_age=0)
        response.headers["Cache-Control"] = "no-cache"
        return response

    return bp
