"""The virtual clock and the fault rules (world/faults.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Blueprint, jsonify

from ...world.clock import parse_duration
from ..common import ApiError, json_body

if TYPE_CHECKING:
    from ...bench import Bench


def blueprint(bench: Bench) -> Blueprint:
    bp = Blueprint("clock", __name__)
    world = bench.world

    @bp.get("/clock")
    def clock():
        return jsonify(now=world.clock.now_iso(), offset=world.clock.offset)

    @bp.post("/clock")
    def clock_advance():
        body = json_body()
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
            return jsonify(world.faults.set(tx, json_body()))

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
        body = json_body()
        if set(body) != {"enabled"} or not isinstance(body["enabled"], bool):
            raise ApiError(400, "FAULT_RULE_INVALID", 'enabled: send {"enabled": true} or {"enabled": false}')
        with world.transaction() as tx:
            return jsonify(world.faults.switch(tx, rule_id, body["enabled"]))

    @bp.delete("/faults/<rule_id>")
    def fault_delete(rule_id: str):
        with world.transaction() as tx:
            return jsonify(deleted=world.faults.delete(tx, rule_id))

    return bp
