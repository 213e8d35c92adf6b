"""A bounded summary of the world's state, for the eye: patients with their documents (status,
confidentiality, versions) and authorizations, mailboxes with their message counts.

The scenario engine records it when a scenario is loaded (the world "before"); the evidence report shows it
beside the same summary taken now (the world "after"). Bounded, so that a large seeded world neither bloats
the record nor the report: what is left out is counted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .model import Document
from .store import Tx

if TYPE_CHECKING:
    from .world import World


@dataclass(frozen=True)
class SummaryLimits:
    patients: int = 100               # patients listed (the catalogue seeds one to three)
    documents: int = 50               # documents listed per patient
    versions: int = 20                # metadata versions listed per document
    mailboxes: int = 100


def first_ids(tx: Tx, limit: int) -> dict[str, list[str]]:
    """The first `limit` ids of each kind of thing in the world (structures, professionals, patients by id;
    current documents in the order fed, by scenario id; mailboxes by address): what a loaded scenario made."""

    def ids(table: str, key: str) -> list[str]:
        return [r[0] for r in tx.conn.execute(
            f"SELECT {key} FROM {table} WHERE ns = ? ORDER BY {key} LIMIT {int(limit)}", (tx.ns,))]

    return {
        "structures": ids("structures", "id"),
        "professionals": ids("professionals", "id"),
        "patients": ids("patients", "id"),
        "documents": [json.loads(r)["id"] for r in (row[0] for row in tx.conn.execute(
            f"SELECT data FROM documents WHERE ns = ? AND current = 1 ORDER BY rowid LIMIT {int(limit)}",
            (tx.ns,)))],
        "mailboxes": ids("mailboxes", "address"),
    }


def world_summary(world: World, tx: Tx, limits: SummaryLimits | None = None) -> dict:
    limits = limits or SummaryLimits()
    now = world.clock.now_iso()
    # Only the rows shown are read and decoded; the totals are counts (a generated world of 100,000).
    patients = world.directory.patients(tx, limit=limits.patients)
    mailboxes = world.directory.mailboxes(tx, limit=limits.mailboxes)
    return {
        "time": now,
        "structures": tx.count("structures"),
        "professionals": tx.count("professionals"),
        "patients": [_patient(world, tx, p, limits, now) for p in patients],
        "patients_total": tx.count("patients"),
        "mailboxes": [{"address": m.address, "role": m.role, "type": m.type, "owner": m.owner,
                       "messages": tx.count("messages", mailbox=m.address)} for m in mailboxes],
        "mailboxes_total": tx.count("mailboxes"),
    }


def _patient(world: World, tx: Tx, p, limits: SummaryLimits, now: str) -> dict:
    rows = [Document.from_dict(r) for r in tx.select("documents", order="rowid", patient=p.id)]
    versions: dict[str, list[Document]] = {}
    for doc in rows:
        versions.setdefault(doc.unique_id, []).append(doc)
    current = [d for d in rows if d.current]
    documents = []
    for doc in current[: limits.documents]:
        chain = sorted(versions.get(doc.unique_id, [doc]), key=lambda d: d.version)
        documents.append({
            "id": doc.id, "unique_id": doc.unique_id, "title": doc.title, "type_code": doc.type_code,
            "status": doc.status, "confidentiality": list(doc.confidentiality), "version": doc.version,
            "replaces": doc.replaces, "replaced_by": doc.replaced_by, "author": doc.author,
            "versions": [{"version": v.version, "status": v.status, "confidentiality": list(v.confidentiality),
                          "entry_uuid": v.entry_uuid} for v in chain[-limits.versions:]],
        })
    authorizations = []
    for a in world.dmp.authorizations(tx, p.id):
        status = "EXPIRE" if a.status == "VALIDE" and a.until and a.until <= now else a.status
        authorizations.append({"subject_kind": a.subject_kind, "subject": a.subject, "status": status,
                               "since": a.since, "until": a.until})
    return {
        "id": p.id, "ins": p.ins, "family_name": p.family_name, "given_name": p.given_name, "minor": p.minor,
        "dmp": p.dmp, "consent": dict(p.consent), "secret_connection": p.secret_connection,
        "documents": documents, "documents_total": len(current), "authorizations": authorizations,
    }


__all__ = ["SummaryLimits", "world_summary"]
