"""A finding, as plain data: what a reader accepted with a remark (an ANS example's quirk, a lenient
reading). The formats return findings with what they read; the doors journal them and the world's
advisor adds its own, all in this one shape (the journal re-exports `finding`)."""

from __future__ import annotations

__all__ = ["SEVERITIES", "finding"]

SEVERITIES = ("info", "warning", "error")


def finding(rule: str, message: str, severity: str = "warning", *, fr: str | None = None) -> dict:
    """A finding: `rule` is the stable machine code, `message` the English text (CI scripts read it),
    `fr` its French translation, stored as `message_fr` and shown to users (issue 19)."""
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}")
    out = {"rule": rule, "severity": severity, "message": message}
    if fr is not None:
        out["message_fr"] = fr
    return out
