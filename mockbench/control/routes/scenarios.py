"""Scenarios: the catalogue, loading one (from the catalogue or the body), its steps and transitions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Blueprint, jsonify, request

from ...scenarios.loader import parse
from ..common import ApiError

if TYPE_CHECKING:
    from ...bench import Bench


def blueprint(bench: Bench) -> Blueprint:
    bp = Blueprint("scenarios", __name__)
    world, engine = bench.world, bench.scenarios

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

    @bp.get("/steps")
    def steps():
        with world.read() as tx:
            return jsonify(engine.steps(tx))

    @bp.post("/steps/finish")
    def finish():
        return jsonify(engine.finish())

    # Transitions ----------------------------------------------------------------------------------
    @bp.get("/transitions")
    def transitions():
        with world.read() as tx:
            return jsonify(engine.transitions(tx))

    @bp.post("/transitions/<transition_id>")
    def fire(transition_id: str):
        return jsonify(engine.fire_manual(transition_id))

    return bp
