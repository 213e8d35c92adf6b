"""The PFI door: its outbound queue to the DPI and the DPI's MLLP listener."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Blueprint, jsonify, request

from ..common import ApiError, json_body

if TYPE_CHECKING:
    from ...bench import Bench


def blueprint(bench: Bench) -> Blueprint:
    bp = Blueprint("pfi", __name__)
    world = bench.world

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
        body = json_body()
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

    return bp
