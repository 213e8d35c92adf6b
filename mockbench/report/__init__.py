"""The evidence report: what the bench saw during a scenario, as JSON-able data (build.py) and as one
self-contained HTML file (html.py), raw messages pretty-printed (pretty.py)."""

from .build import REPORT_VERSION, ReportLimits, build_report, report_filename
from .html import render_html

__all__ = ["REPORT_VERSION", "ReportLimits", "build_report", "render_html", "report_filename"]
