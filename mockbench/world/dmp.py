"""The DMP's rules, once: every door and the scenario engine call these functions.

Facts behind the rules (see the project's DOMAIN.md, section 1, and the texts under
/work/shared/corpus/specs/pdsm4dmp/, cited per rule): nothing is physically deleted; access authorizations
are used only to consult a DMP (transaction_td02.md NB2): feeding (TD2.1), replacing, deleting and changing
a document's attributes need none (transaction_td3.3c.md NB1; td3.3a, td3.3b, td3.3d "sauf si le LPS
implémente le profil Alimentation"), while searching (TD3.1a) and reading (TD3.2) need a VALIDE one, or an
access mode the guide allows without it (bris de glace, centre 15); a professional whom the patient blocked
is refused everything, with or without an authorization (transaction_td02.md NB1); only the document's
author deletes it (transaction_td3.3c.md NB2); masking and visibility changes (TD3.3a/b) need direct
authentication (trans-cda-r2/def-proc-collab.md); a replacement (RPLC) deprecates the replaced entry; masking
and visibility changes are new metadata versions (same lid, new entryUUID); MASQUE_PS and INVISIBLE_PATIENT
cannot be combined while the DMP parameter is false; bris de glace needs direct authentication; in centre 15
the authorization is not checked; masked documents are readable in those modes only if the patient allowed
it. Consent held by the hospital (PAM.fr ZFA) is not checked by the DMP: going against it is a finding.

Findings (what a door journals beside the operation, as advice) are declared values: an operation that may
find something takes `findings`, a list its caller owns, and appends to it; the caller journals them.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from . import errors, events
from .clock import parse_time
from .journal import finding
from .model import (
    AUTHORIZATION_STATUSES,
    CONFIDENTIALITY_CODES,
    DOCUMENT_STATUSES,
    INVISIBLE_PATIENT,
    INVISIBLE_REPRESENTANTS_LEGAUX,
    MASQUE_PS,
    Actor,
    Authorization,
    Document,
    Patient,
    Trace,
)
from .store import Tx

if TYPE_CHECKING:
    from .world import World

FIND_FILTERS = (
    "type_code", "class_code", "format_code", "practice_setting", "facility_type", "confidentiality", "author",
)
TIME_FILTERS = ("creation_time", "service_start", "service_stop")
VISIBILITY_AUDIENCES = {"patient": INVISIBLE_PATIENT, "legal_representatives": INVISIBLE_REPRESENTANTS_LEGAUX}


def _keep(sink: list[dict] | None, found: list[dict]) -> None:
    """Hand an operation's findings to its caller's list (a caller that passes none does not journal them)."""
    if sink is not None:
        sink.extend(found)


def sha1_hex(content: bytes) -> str:
    return hashlib.sha1(content).hexdigest().upper()


def _parse_time(value: str, what: str):
    try:
        return parse_time(value)
    except (TypeError, ValueError):
        raise errors.InvalidRequest(f"{what}: {value!r} is not an ISO 8601 date and time") from None


def _require_creation_time(value: object) -> None:
    """A document entry without a readable creationTime is refused (XDSRegistryMetadataError on the DMP's wire,
    world/dmp_codes.py), never given the submission time: trans-cda-r2/mapping.md, "Mapping XDS", Fiche,
    creationTime "requis" (from the CDA's effectiveTime@value); the DMP door's reader refuses an entry without
    the slot for the same reason (formats/ebrim/reader.py, `entry_slots`). The PFI, which feeds the DMP with
    what it reads in the CDA, meets the same refusal (protocols/pfi/door.py `_apply`)."""
    if not value:
        raise errors.MetadataError("the document entry has no creationTime, which the DMP requires (the CDA's "
                                   "effectiveTime@value)")
    try:
        parse_time(str(value))
    except ValueError:
        raise errors.MetadataError(f"the document entry's creationTime {value!r} is not a date and time") from None


class Dmp:
    def __init__(self, world: World) -> None:
        self.world = world

    # Looking things up ---------------------------------------------------------------------------
    def _patient(self, tx: Tx, key: str) -> Patient:
        return self.world.directory.patient(tx, key)

    def current(self, tx: Tx, key: str, patient: Patient | None = None) -> Document:
        """The current metadata version of a document named by unique id, entryUUID or scenario id."""
        row = (tx.get("documents", unique_id=key, current=1) or tx.get("documents", entry_uuid=key)
               or self._by_scenario_id(tx, key))
        if row is not None and not row["current"]:
            row = tx.get("documents", unique_id=row["unique_id"], current=1)
        if row is None or (patient is not None and row["patient"] != patient.id):
            raise errors.UnknownDocument(f"no document {key}" + (f" in {patient.id}'s DMP" if patient else ""))
        return Document.from_dict(row)

    def _by_scenario_id(self, tx: Tx, key: str) -> dict | None:
        row = tx.conn.execute(
            "SELECT data FROM documents WHERE ns = ? AND current = 1 AND json_extract(data, '$.id') = ?",
            (tx.ns, key)).fetchone()
        return json.loads(row[0]) if row else None

    def documents(self, tx: Tx, patient_key: str, *, history: bool = False, offset: int = 0,
                  limit: int | None = None) -> list[Document]:
        """Everything in the DMP, rules aside: what the bench itself shows (control API, dashboard)."""
        patient = self._patient(tx, patient_key)
        where = {"patient": patient.id} if history else {"patient": patient.id, "current": 1}
        rows = tx.select("documents", order="rowid", offset=offset, limit=limit, **where)
        return [Document.from_dict(r) for r in rows]

    def documents_total(self, tx: Tx, patient_key: str, *, history: bool = False) -> int:
        patient = self._patient(tx, patient_key)
        where = {"patient": patient.id} if history else {"patient": patient.id, "current": 1}
        return tx.count("documents", **where)

    def content(self, tx: Tx, unique_id: str) -> bytes:
        blob = tx.get_blob("contents", unique_id=unique_id)
        if blob is None:
            raise errors.UnknownDocument(f"no content for document {unique_id}")
        return blob

    def traces(self, tx: Tx, patient_key: str, *, offset: int = 0, limit: int | None = None) -> list[Trace]:
        patient = self._patient(tx, patient_key)
        return [Trace.from_dict(r) for r in tx.select("traces", order="seq", offset=offset, limit=limit,
                                                      patient=patient.id)]

    def traces_total(self, tx: Tx, patient_key: str) -> int:
        return tx.count("traces", patient=self._patient(tx, patient_key).id)

    # Authorizations -----------------------------------------------------------------------------
    def authorizations(self, tx: Tx, patient_key: str) -> list[Authorization]:
        patient = self._patient(tx, patient_key)
        return [Authorization.from_dict(r) for r in tx.select("authorizations", patient=patient.id)]

    def set_authorization(self, tx: Tx, actor: Actor, patient_key: str, *, status: str,
                          structure: str | None = None, professional: str | None = None,
                          until: str | None = None, reason: str | None = None, cause: str | None = None
                          ) -> Authorization:
        if status not in AUTHORIZATION_STATUSES:
            raise errors.InvalidRequest(f"authorization status must be one of {', '.join(AUTHORIZATION_STATUSES)}")
        if (structure is None) == (professional is None):
            raise errors.InvalidRequest("an authorization names either a structure or a professional")
        patient = self._patient(tx, patient_key)
        self._require_dmp(patient, allow_closed=False)
        if structure is not None:
            kind, subject = "structure", self.world.directory.structure(tx, structure).id
        else:
            kind, subject = "professional", self.world.directory.professional(tx, professional or "").id
        if actor.kind == "professional" and actor.mode != "normal":
            raise errors.AccessModeRefused("only the normal access mode may declare an authorization (TD0.3)")
        if actor.kind in ("patient", "legal_representative") and actor.id not in (patient.id, patient.ins):
            raise errors.AuthorizationMissing("a patient may only act on their own DMP")
        if actor.kind == "professional" and subject not in (actor.id, actor.structure):
            raise errors.InvalidRequest("a professional declares only its own authorization or its "
                                        "structure's (TD0.3 is a self-declaration)")
        existing = tx.get("authorizations", patient=patient.id, subject_kind=kind, subject=subject)
        if actor.kind == "professional" and existing and existing["status"] == "INTERDIT":
            raise errors.ProfessionalBlocked(f"the patient blocked {subject}: only the patient may lift it")
        if until is not None:
            _parse_time(until, "until")
        auth = Authorization(patient=patient.id, subject_kind=kind, subject=subject, status=status,
                             since=self.world.clock.now_iso(), until=until, reason=reason)
        tx.put("authorizations", auth.to_dict(), patient=patient.id, subject_kind=kind, subject=subject)
        action = "autorisation" if status == "VALIDE" else "retrait_autorisation"
        self._trace(tx, actor, patient, action)
        self.world.events.publish(tx, events.Event(events.AUTHORIZATION_CHANGED, cause, patient.id, None,
                                                   self.world.clock.now_iso(), auth.to_dict()))
        return auth

    def withdraw_authorization(self, tx: Tx, actor: Actor, patient_key: str, *, structure: str | None = None,
                               professional: str | None = None, cause: str | None = None) -> Authorization:
        return self.set_authorization(tx, actor, patient_key, status="NON_EXISTE", structure=structure,
                                      professional=professional, reason="withdrawn", cause=cause)

    def authorization_status(self, tx: Tx, patient: Patient, actor: Actor) -> Authorization:
        """The authorization that applies to a professional: its own row first, then its structure's.
        An expired date reads as EXPIRE."""
        rows = []
        if actor.id:
            rows.append(tx.get("authorizations", patient=patient.id, subject_kind="professional", subject=actor.id))
        if actor.structure:
            rows.append(tx.get("authorizations", patient=patient.id, subject_kind="structure",
                               subject=actor.structure))
        found = [Authorization.from_dict(r) for r in rows if r]
        for auth in found:
            if auth.status == "INTERDIT":
                return auth
        for auth in found:
            if auth.status == "VALIDE" and auth.until and parse_time(auth.until) <= self.world.clock.now():
                auth.status = "EXPIRE"
            if auth.status == "VALIDE":
                return auth
        return found[0] if found else Authorization(patient=patient.id, subject_kind="structure",
                                                    subject=actor.structure, status="NON_EXISTE")

    def check_access(self, tx: Tx, actor: Actor, patient: Patient, *, closed_ok: bool = False,
                     consultation: bool = True) -> None:
        """Raise the domain error that refuses this actor access to this DMP, if any.

        `consultation` is True for what consults the DMP (TD3.1a search, TD3.2 read, TD1.6): those need a
        VALIDE access authorization, or an access mode that goes without it (bris de glace, centre 15).
        The authorizations are used only for consultation (specs/pdsm4dmp/transaction_td02.md NB2):
        feeding, replacing, deleting and the attribute changes (TD2.1, TD3.3a-d) pass `consultation=False`
        and need none (transaction_td3.3c.md NB1, and the same prerequisite in td3.3a, td3.3b, td3.3d).
        A professional whom the patient blocked is refused either way (transaction_td02.md NB1)."""
        self._require_dmp(patient, allow_closed=closed_ok)
        if actor.kind == "system":
            return
        if actor.kind in ("patient", "legal_representative"):
            # A legal representative acts under the represented patient's identity.
            if actor.id not in (patient.id, patient.ins):
                raise errors.AuthorizationMissing("a patient may only act on their own DMP")
            return
        if actor.kind != "device":   # a device acts for its structure (SC.DMP/CONF.12: "du professionnel ou du dispositif")
            self.world.directory.professional(tx, actor.id)
        auth = self.authorization_status(tx, patient, actor)
        if auth.status == "INTERDIT":
            raise errors.ProfessionalBlocked(f"the patient blocked {actor.id}: a blocked professional is refused "
                                             "every access, with or without an authorization (TD0.2 NB1)")
        if actor.mode not in ("normal", "centre_15", "bris_de_glace"):
            raise errors.AccessModeRefused(f"unknown access mode {actor.mode}")
        if actor.mode == "bris_de_glace" and actor.authentication != "DIRECTE":
            raise errors.AccessModeRefused("bris de glace needs direct authentication with a CPS card")
        if not consultation:
            return
        if actor.mode == "centre_15":
            if "OPPOSITION_ACCES_URGENCE" in patient.oppositions:
                raise errors.PatientOpposition("the patient opposed access by the centre 15")
            return
        if actor.mode == "bris_de_glace":
            if "OPPOSITION_BRIS_DE_GLACE" in patient.oppositions:
                raise errors.PatientOpposition("the patient opposed bris de glace access")
            return
        if auth.status == "EXPIRE":
            raise errors.AuthorizationExpired(f"{actor.id}'s authorization on {patient.id}'s DMP has expired")
        if auth.status == "NON_EXISTE" and auth.reason == "withdrawn":
            raise errors.AuthorizationWithdrawn(f"{patient.id} withdrew the authorization of {auth.subject}")
        if auth.status != "VALIDE":
            raise errors.AuthorizationMissing(f"{actor.id} is not authorized on {patient.id}'s DMP")

    def may_consult(self, tx: Tx, actor: Actor, patient: Patient) -> bool:
        """Whether check_access would let this actor consult the DMP (no exception, no trace)."""
        try:
            self.check_access(tx, actor, patient)
        except errors.WorldError:
            return False
        return True

    @staticmethod
    def _require_dmp(patient: Patient, *, allow_closed: bool) -> None:
        if patient.dmp == "absent":
            raise errors.DmpAbsent(f"{patient.id} has no DMP")
        if patient.dmp == "closed" and not allow_closed:
            raise errors.DmpClosed(f"{patient.id}'s DMP is closed")

    # DMP lifecycle ------------------------------------------------------------------------------
    def close(self, tx: Tx, actor: Actor, patient_key: str, *, reason: str = "", cause: str | None = None) -> None:
        patient = self._patient(tx, patient_key)
        self._require_dmp(patient, allow_closed=False)
        patient.dmp, patient.dmp_closed_at, patient.dmp_close_reason = "closed", self.world.clock.now_iso(), reason
        self.world.directory.save_patient(tx, patient)
        self._trace(tx, actor, patient, "fermeture")
        self._publish(tx, events.DMP_STATE_CHANGED, cause, patient, None, {"dmp": "closed"})

    def reopen(self, tx: Tx, actor: Actor, patient_key: str, *, cause: str | None = None) -> None:
        patient = self._patient(tx, patient_key)
        if patient.dmp == "active":
            raise errors.DmpAlreadyActive(f"{patient.id}'s DMP is already active")
        patient.dmp, patient.dmp_closed_at, patient.dmp_close_reason = "active", None, None
        self.world.directory.save_patient(tx, patient)
        self._trace(tx, actor, patient, "reouverture")
        self._publish(tx, events.DMP_STATE_CHANGED, cause, patient, None, {"dmp": "active"})

    def end_secret_connection(self, tx: Tx, actor: Actor, patient_key: str) -> None:
        patient = self._patient(tx, patient_key)
        if not patient.secret_connection:
            raise errors.NoChange(f"{patient.id} has no secret connection")
        patient.secret_connection = False
        self.world.directory.save_patient(tx, patient)

    def note_connection(self, tx: Tx, actor: Actor, patient_key: str, *, secret: bool) -> list[dict]:
        """A professional's request on a patient's DMP, with or without a minor's secret connection.

        EX_0.1-1100 (DMP integration guide, as quoted in the ANS homologation tracker): the software lets the
        user open a secret connection (connexion secrète) with a minor, and from then on every transaction of
        that connection carries the VIHF confidentiality-code INVISIBLE_REPRESENTANTS_LEGAUX. The DMP has no
        web service to open or close one: the code on each request is the connection. The world keeps its
        state on the patient, read from the wire: on from the first professional request that carries the
        code, off again (the care episode ended) from the first one that no longer does. Returns the
        findings to journal with the request."""
        if actor.kind != "professional":
            return []
        try:
            patient = self._patient(tx, patient_key)
        except errors.UnknownPatient:
            return []
        if secret and not patient.minor:
            return [finding(
                "DMP/EX_0.1-1100", f"the VIHF asks for a secret connection (confidentiality-code "
                f"{INVISIBLE_REPRESENTANTS_LEGAUX}) but {patient.id} is not a minor: the code is ignored",
                fr=f"le VIHF demande une connexion secrète (confidentiality-code {INVISIBLE_REPRESENTANTS_LEGAUX}) mais {patient.id} n'est pas mineur : le code est ignoré")]
        if secret == patient.secret_connection:
            if secret:
                return [finding(
                    "DMP/EX_0.1-1100", f"{actor.label} acts in {patient.id}'s secret connection", "info",
                    fr=f"{actor.label} agit dans la connexion secrète de {patient.id}")]
            return []
        patient.secret_connection = secret
        self.world.directory.save_patient(tx, patient)
        return [finding(
            "DMP/EX_0.1-1100",
            f"{actor.label} opens a secret connection with {patient.id}, a minor: the documents fed in it must be "
            f"invisible to the legal representatives (EX_2.1-1050)" if secret else
            f"{actor.label} acts on {patient.id}'s DMP without the secret connection's confidentiality-code: the "
            "secret connection is over (end of the care episode)", "info",
            fr=f"{actor.label} ouvre une connexion secrète avec {patient.id}, mineur : les documents qui y sont alimentés doivent être invisibles aux représentants légaux (EX_2.1-1050)" if secret else f"{actor.label} agit sur le DMP de {patient.id} sans le confidentiality-code de la connexion secrète : la connexion secrète est terminée (fin de l'épisode de soins)")]

    @staticmethod
    def _secret_feeding_findings(actor: Actor, patient: Patient, doc: Document) -> list[dict]:
        """EX_2.1-1050: in a minor's secret connection, only documents invisible to the legal representatives
        may be fed. Whether the real DMP refuses the others is not public: the bench feeds and reports."""
        if (actor.kind == "professional" and patient.minor and patient.secret_connection
                and INVISIBLE_REPRESENTANTS_LEGAUX not in doc.confidentiality):
            return [finding(
                "DMP/EX_2.1-1050", f"document {doc.unique_id} is fed in {patient.id}'s secret connection without "
                f"{INVISIBLE_REPRESENTANTS_LEGAUX}: in a secret connection only documents invisible to the legal "
                "representatives may be fed", "error",
                fr=f"le document {doc.unique_id} est alimenté dans la connexion secrète de {patient.id} sans {INVISIBLE_REPRESENTANTS_LEGAUX} : dans une connexion secrète, seuls des documents invisibles aux représentants légaux peuvent être alimentés")]
        return []

    # Feeding ------------------------------------------------------------------------------------
    def submit(self, tx: Tx, actor: Actor, patient_key: str, meta: dict, content: bytes, *,
               cause: str | None = None, findings: list[dict] | None = None,
               rng: random.Random | None = None) -> Document:
        """TD2.1: feed a new document. No access authorization is needed (transaction_td02.md NB2: they
        are used only for consultation); a blocked professional is still refused (NB1). `rng` draws the new
        ids (a seeded scenario: the same on every run)."""
        patient = self._patient(tx, patient_key)
        self.check_access(tx, actor, patient, consultation=False)
        _keep(findings, self._consent_findings(patient, feeding=True))
        doc = self._new_document(tx, actor, patient, meta, content, rng=rng)
        _keep(findings, self._secret_feeding_findings(actor, patient, doc))
        self._store_new(tx, doc, content)
        self._trace(tx, actor, patient, "alimentation", doc.unique_id)
        if set(VISIBILITY_AUDIENCES.values()) & set(doc.confidentiality):
            self._trace(tx, actor, patient, "invisibilisation", doc.unique_id)
        self._publish(tx, events.DOCUMENT_FED, cause, patient, doc.unique_id, {"entry_uuid": doc.entry_uuid})
        return doc

    def replace(self, tx: Tx, actor: Actor, patient_key: str, target: str, meta: dict, content: bytes, *,
                cause: str | None = None, findings: list[dict] | None = None,
                rng: random.Random | None = None) -> Document:
        """TD2.1 with an RPLC association: a new version that deprecates `target`. Like feeding, it needs no
        access authorization (transaction_td02.md NB2); the author or the author's structure replaces."""
        patient = self._patient(tx, patient_key)
        self.check_access(tx, actor, patient, consultation=False)
        old = self.current(tx, target, patient)
        self._require_current_approved(old)
        self._require_modifier(tx, actor, old)
        _keep(findings, self._consent_findings(patient, feeding=True))
        doc = self._new_document(tx, actor, patient, meta, content, replaces=old, rng=rng)
        _keep(findings, self._versioning_findings(old, doc))
        _keep(findings, self._secret_feeding_findings(actor, patient, doc))
        old.status, old.replaced_by = "deprecated", doc.unique_id
        self._save(tx, old)
        self._store_new(tx, doc, content)
        self._trace(tx, actor, patient, "remplacement", doc.unique_id)
        if set(VISIBILITY_AUDIENCES.values()) & set(doc.confidentiality):
            self._trace(tx, actor, patient, "invisibilisation", doc.unique_id)
        self._publish(tx, events.DOCUMENT_REPLACED, cause, patient, doc.unique_id,
                      {"replaces": old.unique_id, "entry_uuid": doc.entry_uuid})
        return doc

    def _new_document(self, tx: Tx, actor: Actor, patient: Patient, meta: dict, content: bytes, *,
                      replaces: Document | None = None, rng: random.Random | None = None) -> Document:
        meta = dict(meta)
        unknown = set(meta) - set(Document.__dataclass_fields__)
        if unknown:
            raise errors.MetadataError(f"unknown document fields: {', '.join(sorted(unknown))}")
        for key in ("entry_uuid", "lid", "version", "current", "status", "replaced_by", "patient"):
            meta.pop(key, None)
        if not meta.get("type_code"):
            raise errors.MetadataError("the document has no type code (typeCode)")
        _require_creation_time(meta.get("creation_time"))
        confidentiality = list(dict.fromkeys(meta.get("confidentiality") or ["N"]))
        bad = [c for c in confidentiality if c not in CONFIDENTIALITY_CODES]
        if bad:
            raise errors.MetadataError(f"unknown confidentiality code {bad[0]}")
        self._check_combination(patient, confidentiality)
        digest, size = sha1_hex(content), len(content)
        if meta.get("hash") and str(meta["hash"]).upper() != digest:
            raise errors.HashMismatch(f"the metadata says hash {meta['hash']}, the content's SHA-1 is {digest}")
        if meta.get("size") not in (None, "", 0) and int(meta["size"]) != size:
            raise errors.SizeMismatch(f"the metadata says size {meta['size']}, the content has {size} bytes")
        unique_id = meta.get("unique_id") or self.world.new_oid(rng)
        if tx.get("documents", unique_id=unique_id):
            raise errors.DuplicateIdentifier(f"a document with unique id {unique_id} is already in the DMP")
        entry_uuid = self.world.new_uuid(rng)
        now = self.world.clock.now_iso()
        author = meta.get("author") or (actor.id if actor.kind == "professional" else "")
        author_structure = meta.get("author_structure") or (actor.structure if actor.kind == "professional" else "")
        meta.update(unique_id=unique_id, confidentiality=confidentiality, hash=digest, size=size,
                    author=author, author_structure=author_structure)
        meta.setdefault("id", unique_id)
        meta["submission_time"] = now
        meta["submitted_by"] = actor.id
        meta["replaces"] = replaces.unique_id if replaces else None
        return Document(entry_uuid=entry_uuid, lid=entry_uuid, patient=patient.id, **meta)

    def _store_new(self, tx: Tx, doc: Document, content: bytes) -> None:
        self._save(tx, doc)
        tx.put("contents", content, unique_id=doc.unique_id)

    @staticmethod
    def _save(tx: Tx, doc: Document) -> None:
        tx.put("documents", doc.to_dict(), entry_uuid=doc.entry_uuid, unique_id=doc.unique_id,
               patient=doc.patient, current=1 if doc.current else 0)

    @staticmethod
    def _check_combination(patient: Patient, confidentiality: Iterable[str]) -> None:
        codes = set(confidentiality)
        if MASQUE_PS in codes and INVISIBLE_PATIENT in codes and not patient.allow_masked_and_invisible:
            raise errors.ConfidentialityConflict(
                "MASQUE_PS and INVISIBLE_PATIENT cannot be combined: the DMP parameter "
                "cumul-invisible_patient-masque_ps is false for this patient")

    # Status changes (ITI-57 UpdateAvailabilityStatus) -------------------------------------------
    def delete(self, tx: Tx, actor: Actor, target: str, *, patient_key: str | None = None,
               cause: str | None = None) -> Document:
        """TD3.3c: only the document's author deletes it (specs/pdsm4dmp/transaction_td3.3c.md NB2, "seul
        l'auteur du document peut supprimer le document (contrôle effectué par le système DMP)"), without an
        access authorization (NB1). "The author or a member of the author's organisation" is the PFI
        guide's consumer-side rule (trans-cda-r2/error-codes.md, error 901), not the DMP's. The patient
        may delete from their own DMP."""
        doc, patient = self._target(tx, actor, target, patient_key)
        if doc.status == "deleted":
            raise errors.DocumentDeleted(f"document {doc.unique_id} is already deleted")
        if doc.status == "deprecated":
            raise errors.NotCurrentVersion(
                f"document {doc.unique_id} was replaced by {doc.replaced_by}: delete the current version")
        self._require_modifier(tx, actor, doc, patient_may=True, author_only=True)
        return self._set_status(tx, actor, patient, doc, "deleted", "suppression", events.DOCUMENT_DELETED, cause)

    def archive(self, tx: Tx, actor: Actor, target: str, *, patient_key: str | None = None,
                cause: str | None = None) -> Document:
        doc, patient = self._target(tx, actor, target, patient_key)
        if doc.status != "approved":
            raise errors.InvalidStatusChange(f"only an approved document can be archived; {doc.unique_id} is "
                                             f"{doc.status}")
        self._require_modifier(tx, actor, doc, patient_may=True)
        return self._set_status(tx, actor, patient, doc, "archived", "archivage", events.DOCUMENT_ARCHIVED, cause)

    def unarchive(self, tx: Tx, actor: Actor, target: str, *, patient_key: str | None = None,
                  cause: str | None = None) -> Document:
        doc, patient = self._target(tx, actor, target, patient_key)
        if doc.status != "archived":
            raise errors.InvalidStatusChange(f"{doc.unique_id} is not archived (it is {doc.status})")
        self._require_modifier(tx, actor, doc, patient_may=True)
        return self._set_status(tx, actor, patient, doc, "approved", "desarchivage", events.DOCUMENT_UNARCHIVED,
                                cause)

    def _set_status(self, tx: Tx, actor: Actor, patient: Patient, doc: Document, status: str, action: str,
                    kind: str, cause: str | None) -> Document:
        previous, doc.status = doc.status, status
        self._save(tx, doc)
        self._trace(tx, actor, patient, action, doc.unique_id)
        self._publish(tx, kind, cause, patient, doc.unique_id, {"from": previous, "to": status})
        return doc

    # Metadata versions (ITI-57 with a new ExtrinsicObject version) ------------------------------
    def set_masked(self, tx: Tx, actor: Actor, target: str, masked: bool, *, patient_key: str | None = None,
                   cause: str | None = None) -> Document:
        """TD3.3a: mask or unmask to professionals (a new metadata version), in direct authentication."""
        doc, patient = self._target(tx, actor, target, patient_key)
        self._require_direct_authentication(actor, "masking or unmasking (TD3.3a)")
        self._require_current_approved(doc)
        self._require_modifier(tx, actor, doc, patient_may=True)
        codes = [c for c in doc.confidentiality if c != MASQUE_PS]
        if masked == (MASQUE_PS in doc.confidentiality):
            raise errors.NoChange(f"document {doc.unique_id} is already {'masked' if masked else 'unmasked'}")
        if masked:
            codes.append(MASQUE_PS)
        return self._new_version(tx, actor, patient, doc, codes, "masquage" if masked else "demasquage", cause)

    def make_visible(self, tx: Tx, actor: Actor, target: str, to: str, *, patient_key: str | None = None,
                     cause: str | None = None) -> Document:
        """TD3.3b: make a document visible again to the patient or to the legal representatives. Hiding
        happens only at submission: a document once visible cannot be hidden again."""
        if to not in VISIBILITY_AUDIENCES:
            raise errors.InvalidRequest(f"visibility is given to {' or '.join(VISIBILITY_AUDIENCES)}")
        doc, patient = self._target(tx, actor, target, patient_key)
        self._require_direct_authentication(actor, "a visibility change (TD3.3b)")
        self._require_current_approved(doc)
        self._require_modifier(tx, actor, doc)
        code = VISIBILITY_AUDIENCES[to]
        if code not in doc.confidentiality:
            raise errors.NoChange(f"document {doc.unique_id} is already visible to the {to.replace('_', ' ')}")
        codes = [c for c in doc.confidentiality if c != code]
        return self._new_version(tx, actor, patient, doc, codes, "remise_en_visibilite", cause)

    def hide(self, tx: Tx, actor: Actor, target: str, to: str) -> Document:
        """TD3.3b the other way: always refused (the DMP's rule), said in the DMP's terms."""
        self._require_direct_authentication(actor, "a visibility change (TD3.3b)")
        raise errors.InvalidStatusChange(
            f"a document already visible to the {to.replace('_', ' ')} cannot be hidden again; "
            "invisibility is chosen when the document is fed")

    def _new_version(self, tx: Tx, actor: Actor, patient: Patient, doc: Document, codes: list[str],
                     action: str, cause: str | None) -> Document:
        self._check_combination(patient, codes)
        old = Document.from_dict(doc.to_dict())
        old.current, old.status = False, "deprecated"
        self._save(tx, old)
        doc.version += 1
        doc.entry_uuid = self.world.new_uuid()
        doc.confidentiality = codes or ["N"]
        doc.current = True
        self._save(tx, doc)
        self._trace(tx, actor, patient, action, doc.unique_id)
        self._publish(tx, events.DOCUMENT_CONFIDENTIALITY, cause, patient, doc.unique_id,
                      {"action": action, "confidentiality": doc.confidentiality, "version": doc.version})
        return doc

    # Reading ------------------------------------------------------------------------------------
    def find(self, tx: Tx, actor: Actor, patient_key: str, *, statuses: Iterable[str] = ("approved",),
             trace: bool = True, findings: list[dict] | None = None, **filters: Any) -> list[Document]:
        """TD3.1: what this actor may see, honouring status filters, masking, visibility, authorization,
        DMP state and access mode. A deleted document is never returned."""
        patient = self._patient(tx, patient_key)
        self.check_access(tx, actor, patient)
        _keep(findings, self._consent_findings(patient, feeding=False))
        statuses = set(statuses)
        unknown_statuses = statuses - set(DOCUMENT_STATUSES)
        if unknown_statuses:
            raise errors.InvalidRequest(f"unknown document status {sorted(unknown_statuses)[0]}")
        statuses -= {"deleted"}
        unknown = set(filters) - {*FIND_FILTERS, *(f"{t}_from" for t in TIME_FILTERS),
                                  *(f"{t}_to" for t in TIME_FILTERS)}
        if unknown:
            raise errors.InvalidRequest(f"unknown search filter {sorted(unknown)[0]}")
        for key, value in filters.items():
            if value and key.endswith(("_from", "_to")):
                _parse_time(value, key)
        found = []
        for doc in self.documents(tx, patient.id):
            if doc.status not in statuses or self._hidden_from(actor, patient, doc) is not None:
                continue
            if self._matches(doc, filters):
                found.append(doc)
        if trace:
            self._trace(tx, actor, patient, "consultation")
        return found

    def get(self, tx: Tx, actor: Actor, patient_key: str, keys: Iterable[str], *, trace: bool = True,
            findings: list[dict] | None = None) -> list[Document]:
        """TD3.1b (GetDocuments): the documents named by unique id or entryUUID (of any metadata version)
        that this actor may see. Deleted, masked or invisible ones are left out, as find leaves them out.

        TD3.1b is how a feeding LPS finds the entryUUID of its own document to replace, delete or archive
        it; its prerequisite is a VALIDE authorization "sauf si le LPS implémente le profil Alimentation"
        (specs/pdsm4dmp/transaction_td3.1b.md). So a professional without one (not blocked) is answered
        too, but only about the documents that it, or its structure, authored: the ones it may act on.
        (INF: which entries the real DMP returns in that case is not published.)"""
        patient = self._patient(tx, patient_key)
        consults = self.may_consult(tx, actor, patient)
        if not consults:
            self.check_access(tx, actor, patient, consultation=False)   # raises the refusal that applies
        _keep(findings, self._consent_findings(patient, feeding=False))   # a consultation too (DMP/CONSENT)
        wanted = set(keys)
        found = [doc for doc in self.documents(tx, patient.id, history=True)
                 if ((doc.unique_id in wanted and doc.current) or doc.entry_uuid in wanted)
                 and (consults or doc.author == actor.id
                      or (actor.structure and doc.author_structure == actor.structure))]
        if trace:
            self._trace(tx, actor, patient, "consultation")
        return [doc for doc in found if self._hidden_from(actor, patient, doc) is None]

    def consulted(self, tx: Tx, *, actor: Actor, patient_id: str) -> None:
        """The access trace of a TD3.1 or TD3.1b computed on a snapshot with `trace=False` (what `find` and `get`
        write otherwise), written by the write transaction that journals it. `patient_id`: the patient's id
        (Patient.id), as the snapshot read it."""
        self._trace_id(tx, actor, patient_id, "consultation")

    def read(self, tx: Tx, actor: Actor, unique_id: str, *, patient_key: str | None = None,
             findings: list[dict] | None = None) -> tuple[Document, bytes]:
        """TD3.2: a document's bytes, as fed."""
        row = tx.get("documents", unique_id=unique_id, current=1)
        if row is None:
            raise errors.UnknownDocument(f"no document with unique id {unique_id}")
        doc = Document.from_dict(row)
        patient = self._patient(tx, doc.patient)
        if patient_key is not None and patient_key not in (patient.id, patient.ins):
            raise errors.UnknownDocument(f"no document with unique id {unique_id} in this DMP")
        self.check_access(tx, actor, patient)
        hidden = self._hidden_from(actor, patient, doc)
        if hidden is not None:
            raise hidden
        _keep(findings, self._consent_findings(patient, feeding=False))
        self._trace(tx, actor, patient, "telechargement", doc.unique_id)
        return doc, self.content(tx, doc.unique_id)

    def _hidden_from(self, actor: Actor, patient: Patient, doc: Document) -> errors.WorldError | None:
        if doc.status == "deleted":
            return errors.DocumentDeleted(f"document {doc.unique_id} was deleted")
        codes = set(doc.confidentiality)
        if actor.kind == "professional" and MASQUE_PS in codes and actor.id != doc.author:
            if actor.mode == "normal" or not patient.masked_readable_in_emergency:
                return errors.DocumentMasked(f"document {doc.unique_id} is masked to professionals")
        if actor.kind == "patient" and INVISIBLE_PATIENT in codes:
            return errors.DocumentInvisible(f"document {doc.unique_id} is not visible to the patient")
        if actor.kind == "legal_representative" and INVISIBLE_REPRESENTANTS_LEGAUX in codes:
            return errors.DocumentInvisible(f"document {doc.unique_id} is not visible to legal representatives")
        return None

    @staticmethod
    def _matches(doc: Document, filters: dict) -> bool:
        for key in FIND_FILTERS:
            wanted = filters.get(key)
            if not wanted:
                continue
            wanted = {wanted} if isinstance(wanted, str) else set(wanted)
            value = getattr(doc, key)
            values = set(value) if isinstance(value, list) else {value}
            if not values & wanted:
                return False
        for key in TIME_FILTERS:
            value = getattr(doc, key)
            low, high = filters.get(f"{key}_from"), filters.get(f"{key}_to")
            if (low or high) and not value:
                return False
            if low and parse_time(value) < parse_time(low):
                return False
            if high and parse_time(value) >= parse_time(high):
                return False
        return True

    # Shared checks ------------------------------------------------------------------------------
    def _target(self, tx: Tx, actor: Actor, target: str, patient_key: str | None) -> tuple[Document, Patient]:
        patient = self._patient(tx, patient_key) if patient_key else None
        doc = self.current(tx, target, patient)
        patient = patient or self._patient(tx, doc.patient)
        # TD3.3a-d change attributes: no access authorization needed (transaction_td3.3c.md NB1, and the
        # same prerequisite in td3.3a, td3.3b, td3.3d), a blocked professional still refused (td02 NB1)
        self.check_access(tx, actor, patient, consultation=False)
        return doc, patient

    @staticmethod
    def _require_current_approved(doc: Document) -> None:
        if doc.status == "deleted":
            raise errors.DocumentDeleted(f"document {doc.unique_id} was deleted")
        if doc.status == "deprecated":
            raise errors.NotCurrentVersion(f"document {doc.unique_id} was replaced by {doc.replaced_by}")
        if doc.status != "approved":
            raise errors.InvalidStatusChange(f"document {doc.unique_id} is {doc.status}")

    def _require_modifier(self, tx: Tx, actor: Actor, doc: Document, *, patient_may: bool = False,
                          author_only: bool = False) -> None:
        if actor.kind == "system":
            return
        if actor.kind == "patient" and patient_may:
            return
        # A device sender (PFI guide: PRT-10, no PRT-5) acts as the professional who feeds for its structure.
        if actor.kind in ("professional", "device") and actor.id == doc.author:
            return
        if author_only:
            raise errors.NotAuthor(f"{actor.label} is not the author of {doc.unique_id} ({doc.author or '?'}): "
                                   "only the document's author deletes it (TD3.3c NB2)")
        if actor.kind in ("professional", "device") and actor.structure and actor.structure == doc.author_structure:
            return
        raise errors.NotAuthor(f"{actor.label} is neither the author of {doc.unique_id} ({doc.author or '?'}) "
                               f"nor of its structure ({doc.author_structure or '?'})")

    @staticmethod
    def _require_direct_authentication(actor: Actor, what: str) -> None:
        """TD3.3a and TD3.3b need direct authentication: "la PFI, en authentification indirecte vis-à-vis du
        DMP, n'a pas la possibilité d'utiliser la transaction « TD3.3 Gestion des attributs d'un document »
        [...] car celle-ci nécessite une authentification directe" (specs/trans-cda-r2/def-proc-collab.md,
        process « Demande de remplacement de document(s) »): in indirect authentication a masking or
        visibility change is a new version (RPLC). The reinforced indirect mode (AIR) is not held to the
        indirect mode's limits (pdsm4dmp/transaction_td3.1b.md: "en authentification indirecte (hors mode
        AIR)"), so only INDIRECTE is refused. The pdsm4dmp texts give the DMP's error code for this case
        nowhere (they name only FHIR 4xx answers): the refusal is the bench's documented AccessModeRefused
        (DMPAccessModeRefused on the wire), the code it already gives bris de glace without direct
        authentication, with a message that names the rule."""
        if actor.kind == "professional" and actor.authentication == "INDIRECTE":
            raise errors.AccessModeRefused(
                f"{what} needs direct authentication: Authentification_Mode INDIRECTE cannot use TD3.3a/b "
                "(def-proc-collab.md); send a new version of the document (RPLC) instead")

    @staticmethod
    def _consent_findings(patient: Patient, *, feeding: bool) -> list[dict]:
        consent = patient.consent or {}
        found = []
        if feeding and consent.get("feeding_opposition") == "IO":
            found.append(finding(
                "DMP/CONSENT", f"{patient.id} opposed feeding the DMP (ZFA-9 IO); the DMP does not check it",
                fr=f"{patient.id} s'est opposé à l'alimentation du DMP (ZFA-9 IO) ; le DMP ne le vérifie pas"))
        if not feeding and consent.get("consultation") == "INC":
            found.append(finding(
                "DMP/CONSENT", f"{patient.id} did not consent to consultation (ZFA-11 INC); the DMP does not "
                "check it",
                fr=f"{patient.id} n'a pas consenti à la consultation (ZFA-11 INC) ; le DMP ne le vérifie pas"))
        return found

    @staticmethod
    def _versioning_findings(old: Document, new: Document) -> list[dict]:
        """A new version whose content is byte-identical to the one it replaces only changes attributes:
        the DMP keeps attribute changes as metadata versions of the same document (TD3.3a masking, TD3.3b
        visibility), not as a new document replacing it (the seed's versioning requirement)."""
        if not old.hash or old.hash != new.hash:
            return []
        changed = [name for name in ("confidentiality", "title", "type_code", "class_code", "practice_setting",
                                     "facility_type", "author", "creation_time")
                   if getattr(old, name) != getattr(new, name)]
        return [finding(
            "DMP/VERSIONING",
            f"document {new.unique_id} replaces {old.unique_id} with the same content (SHA-1 {new.hash}): a new "
            "version only to change an attribute"
            + (f" ({', '.join(changed)})" if changed else "")
            + "; change confidentiality by a metadata update instead (TD3.3a to mask or unmask to "
            "professionals, TD3.3b to make visible to the patient or legal representatives), and send a new "
            "version only when the content changes",
            fr=f"le document {new.unique_id} remplace {old.unique_id} avec le même contenu (SHA-1 {new.hash}) : une nouvelle version uniquement pour changer un attribut" + (f" ({', '.join(changed)})" if changed else "") + " ; changez la confidentialité par une mise à jour des métadonnées (TD3.3a pour masquer ou démasquer aux professionnels, TD3.3b pour rendre visible au patient ou aux représentants légaux), et n'envoyez une nouvelle version que si le contenu change")]

    def _trace(self, tx: Tx, actor: Actor, patient: Patient, action: str, document: str | None = None) -> None:
        self._trace_id(tx, actor, patient.id, action, document)

    def _trace_id(self, tx: Tx, actor: Actor, patient_id: str, action: str, document: str | None = None) -> None:
        trace = Trace(seq=tx.next_seq("trace"), time=self.world.clock.now_iso(), patient=patient_id,
                      actor=actor.label, actor_kind=actor.kind, structure=actor.structure or None,
                      document=document, action=action, mode=actor.mode)
        tx.put("traces", trace.to_dict(), seq=trace.seq, patient=patient_id)

    def _publish(self, tx: Tx, kind: str, cause: str | None, patient: Patient, document: str | None,
                 data: dict) -> None:
        self.world.events.publish(tx, events.Event(kind, cause, patient.id, document, self.world.clock.now_iso(),
                                                    data))
