"""The world: patients, their documents, traces and authorizations, professionals, structures, and scenario
actions run live."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import yaml
from flask import Blueprint, jsonify, request

from ...scenarios.loader import over_budget
from ...scenarios.schema import ActionSpec, ListOf, Validator
from ...scenarios.seed import Seeder
from ..common import MAX_PROBLEMS, ApiError, bounded, json_body, listing, pick
from ..security import download

if TYPE_CHECKING:
    from ...bench import Bench

PATIENT_FIELDS = ("id", "ins", "ins_oid", "family_name", "given_name", "birth_date", "sex", "minor", "dmp",
                  "consent", "secret_connection", "oppositions", "dmp_closed_at", "dmp_close_reason")
PROFESSIONAL_FIELDS = ("id", "rpps", "idnps", "family_name", "given_name", "profession", "specialty",
                       "structure", "mssante")
STRUCTURE_FIELDS = ("id", "finess", "finess_ej", "idnst", "name", "address")
DOCUMENT_HIDDEN = ("current", "extra")
CONTENT_SUFFIXES = {"text/xml": ".xml", "application/xml": ".xml", "application/pdf": ".pdf", "text/plain": ".txt",
                    "image/jpeg": ".jpg", "image/png": ".png", "image/tiff": ".tiff", "text/rtf": ".rtf"}


def _content_name(unique_id: str, mime_type: str | None) -> str:
    return unique_id + CONTENT_SUFFIXES.get((mime_type or "").lower(), ".bin")


def blueprint(bench: Bench) -> Blueprint:
    bp = Blueprint("world", __name__)
    world = bench.world

    @bp.get("/patients")
    def patients():
        with world.read() as tx:
            return listing(lambda offset, limit: [pick(p.to_dict(), PATIENT_FIELDS) for p in
                                                   world.directory.patients(tx, offset=offset, limit=limit)],
                            lambda: tx.count("patients"))

    @bp.get("/patients/<key>")
    def patient(key: str):
        with world.read() as tx:
            p = world.directory.patient(tx, key)
            return jsonify(pick(p.to_dict(), PATIENT_FIELDS))

    @bp.get("/patients/<key>/documents")
    def documents(key: str):
        history = request.args.get("history", "0").lower() in ("1", "true", "yes")
        with world.read() as tx:
            return listing(lambda offset, limit: [
                {k: v for k, v in d.to_dict().items() if k not in DOCUMENT_HIDDEN}
                for d in world.dmp.documents(tx, key, history=history, offset=offset, limit=limit)],
                lambda: world.dmp.documents_total(tx, key, history=history))

    @bp.get("/patients/<key>/traces")
    def traces(key: str):
        with world.read() as tx:
            return listing(lambda offset, limit: [
                pick(t.to_dict(), ("time", "actor", "structure", "document", "action", "mode"))
                for t in world.dmp.traces(tx, key, offset=offset, limit=limit)],
                lambda: world.dmp.traces_total(tx, key))

    @bp.get("/patients/<key>/authorizations")
    def authorizations(key: str):
        with world.read() as tx:
            now = world.clock.now_iso()
            rows = []
            for a in world.dmp.authorizations(tx, key):
                row = a.to_dict()
                if a.status == "VALIDE" and a.until and a.until <= now:
                    row["status"] = "EXPIRE"
                rows.append(row)
            return jsonify(rows)

    @bp.get("/documents/<path:key>")
    def document(key: str):
        with world.read() as tx:
            if key.endswith("/content"):
                doc = world.dmp.current(tx, key[: -len("/content")])
                return download(world.dmp.content(tx, doc.unique_id), _content_name(doc.unique_id, doc.mime_type),
                                doc.mime_type)
            doc = world.dmp.current(tx, key)
            return jsonify({k: v for k, v in doc.to_dict().items() if k not in DOCUMENT_HIDDEN})

    @bp.get("/professionals")
    def professionals():
        with world.read() as tx:
            return listing(lambda offset, limit: [pick(p.to_dict(), PROFESSIONAL_FIELDS) for p in
                                                   world.directory.professionals(tx, offset=offset, limit=limit)],
                            lambda: tx.count("professionals"))

    @bp.get("/structures")
    def structures():
        def page(offset: int, limit: int | None) -> list[dict]:
            rows = []
            for s in world.directory.structures(tx, offset=offset, limit=limit):
                row = pick(s.to_dict(), STRUCTURE_FIELDS)
                row["address"] = {k: (s.address or {}).get(k, "") for k in ("line", "postal_code", "city")}
                rows.append(row)
            return rows

        with world.read() as tx:
            return listing(page, lambda: tx.count("structures"))

    @bp.post("/world/actions")
    def actions():
        """Run scenario actions now, all or nothing: what a third party does to the world, live."""
        body = json_body()
        node = yaml.compose(json.dumps(body.get("actions")), Loader=yaml.SafeLoader)
        over = over_budget(node) if node is not None else None
        if over:
            raise ApiError(400, "INVALID_ACTIONS", over)
        v = Validator("request body")
        parsed = ListOf(item=ActionSpec()).convert(node, "actions", v) if node is not None else None
        if not parsed or v.problems:
            problems = v.problems
            message = bounded("; ".join(f"{p.path}: {p.message}" for p in problems[:MAX_PROBLEMS])) or \
                "send {\"actions\": [{name: {arguments}}, ...]}"
            raise ApiError(400, "INVALID_ACTIONS", message)
        with world.transaction() as tx:
            seeder = Seeder(world, tx)
            done = [seeder.run(a, cause="control:actions") for a in parsed]
            world.journal.append(tx, "control", "action", actor="control", raw="; ".join(done))
        return jsonify(done=done)

    return bp
