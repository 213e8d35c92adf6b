"""Structures, professionals, patients and mailboxes: who exists in the world."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import errors, identity
from .model import (
    CONSULTATION_CONSENT,
    DMP_STATES,
    FEEDING_OPPOSITION,
    MAILBOX_ROLES,
    MAILBOX_TYPES,
    Mailbox,
    Patient,
    Professional,
    Structure,
)
from .store import Tx

if TYPE_CHECKING:
    from .world import World


def _check(fn, value: str, what: str) -> None:
    try:
        fn(value)
    except identity.IdentifierError as exc:
        raise errors.InvalidIdentifier(f"{what}: {exc}") from None


class Directory:
    def __init__(self, world: World) -> None:
        self.world = world

    def change_mark(self, tx: Tx) -> tuple[int | None, ...]:
        """A value that changes whenever a professional, a structure or a mailbox is added or replaced: the
        last rowid of each table, in every namespace (SQLite reads it off the end of the table, where COUNT(*)
        scans: three of them cost a read by id 10 ms at 100,000 professionals). INSERT OR REPLACE gives a row
        a new, larger rowid; a change elsewhere only costs its reader a rebuild."""
        return tuple(tx.conn.execute(f"SELECT max(rowid) FROM {table}").fetchone()[0]
                     for table in ("professionals", "structures", "mailboxes"))

    # Structures ---------------------------------------------------------------------------------
    def add_structure(self, tx: Tx, s: Structure, *, check_digits: bool = True) -> Structure:
        """`check_digits=False` admits a FINESS whose check digit is wrong, as some ANS examples carry (the
        Annuaire IG's PP19DP); its form (9 characters) is still checked."""
        for what, finess in (("finess", s.finess), ("finess_ej", s.finess_ej)):
            if not finess:
                continue
            if check_digits:
                _check(identity.check_finess, finess, f"structure {s.id} {what}")
            elif not (len(finess) == 9 and finess.isalnum()):
                raise errors.InvalidIdentifier(f"structure {s.id} {what}: {finess} does not have the form of a "
                                               "FINESS (9 characters)")
        s.idnst = s.idnst or (identity.idnst_from_finess(s.finess) if check_digits else "1" + s.finess)
        if tx.get("structures", id=s.id):
            raise errors.DuplicateIdentifier(f"a structure with id {s.id} already exists")
        tx.put("structures", s.to_dict(), id=s.id, finess=s.finess)
        return s

    def structure(self, tx: Tx, key: str) -> Structure:
        row = tx.get("structures", id=key) or tx.get("structures", finess=key)
        if row is None and key[:1] in "13":
            row = tx.get("structures", finess=key[1:])
        if row is None:
            raise errors.UnknownStructure(f"no structure {key}")
        return Structure.from_dict(row)

    def structures(self, tx: Tx, *, offset: int = 0, limit: int | None = None) -> list[Structure]:
        return [Structure.from_dict(r) for r in tx.select("structures", order="id", offset=offset, limit=limit)]

    # Professionals ------------------------------------------------------------------------------
    def add_professional(self, tx: Tx, p: Professional, *, check_digits: bool = True) -> Professional:
        """`check_digits=False` admits an identifier whose check digit is wrong, as some ANS example
        messages carry; its form (prefix, length, digits) is still checked."""
        if check_digits:
            if p.rpps:
                _check(identity.check_rpps, p.rpps, f"professional {p.id} rpps")
            _check(identity.check_idnps, p.idnps, f"professional {p.id} idnps")
        elif not (p.idnps[:1] in "0358" and len(p.idnps) > 1 and p.idnps.isalnum()):
            raise errors.InvalidIdentifier(f"professional {p.id} idnps: {p.idnps} does not have the form of an "
                                           "IDNPS (8+RPPS, 0+ADELI, 3 or 5 + a local id)")
        if p.structure:
            self.structure(tx, p.structure)
        if tx.get("professionals", id=p.id) or tx.get("professionals", idnps=p.idnps):
            raise errors.DuplicateIdentifier(f"a professional with id {p.id} or IDNPS {p.idnps} already exists")
        tx.put("professionals", p.to_dict(), id=p.id, idnps=p.idnps)
        return p

    def professional(self, tx: Tx, key: str) -> Professional:
        row = tx.get("professionals", id=key) or tx.get("professionals", idnps=key)
        if row is None and len(key) == 11:
            row = tx.get("professionals", idnps="8" + key)
        if row is None:
            raise errors.UnknownProfessional(f"no professional {key}")
        return Professional.from_dict(row)

    def professionals(self, tx: Tx, *, offset: int = 0, limit: int | None = None) -> list[Professional]:
        return [Professional.from_dict(r) for r in tx.select("professionals", order="id", offset=offset, limit=limit)]

    # Patients -----------------------------------------------------------------------------------
    def add_patient(self, tx: Tx, p: Patient) -> Patient:
        _check(identity.check_nir, p.ins, f"patient {p.id} ins")
        if p.dmp not in DMP_STATES:
            raise errors.InvalidRequest(f"patient {p.id}: dmp must be one of {', '.join(DMP_STATES)}")
        if tx.get("patients", id=p.id) or tx.get("patients", ins=p.ins):
            raise errors.DuplicateIdentifier(f"a patient with id {p.id} or INS {p.ins} already exists")
        tx.put("patients", p.to_dict(), id=p.id, ins=p.ins)
        return p

    def patient(self, tx: Tx, key: str) -> Patient:
        row = tx.get("patients", id=key) or tx.get("patients", ins=key)
        if row is None:
            raise errors.UnknownPatient(f"no patient {key}")
        return Patient.from_dict(row)

    def identify(self, tx: Tx, ins: str | None, *, ins_oid: str | None, family_name: str | None,
                 birth_date: str | None, sex: str | None) -> Patient:
        """The patient an INS and its traits designate, as the DMP identifies one (by INS only, the traits
        matching: birth name, birth date as YYYYMMDD, sex, the INS's OID). The refusal is the DMP's error:
        unknown patient, incomplete identity, patient mismatch (the PFI reports it in the ZAM^Z01 with its DMP
        code, world/dmp_codes.py). The two refusals on the traits are those of specs/trans-cda-r2/
        error-codes.md, "Codes erreurs de l'accusé métier de lecture/traitement de la demande": 904 (the
        traits or the matricule do not match exactly those stored) and 905 (the INS's traits are not all
        present); neither document can then be processed automatically."""
        if not ins:
            raise errors.UnknownPatient("PID-3 carries no INS: the DMP identifies a patient by INS only")
        if not (ins_oid and family_name and birth_date and sex):
            raise errors.MetadataError("the INS comes without all its traits (OID, birth name, birth date, sex)")
        patient = self.patient(tx, ins)   # UnknownPatient when no patient has it
        differences = []
        if family_name.upper() != patient.family_name.upper():
            differences.append(f"birth name {family_name} / {patient.family_name}")
        if birth_date != patient.birth_date.replace("-", ""):
            differences.append(f"birth date {birth_date} / {patient.birth_date}")
        if sex != patient.sex:
            differences.append(f"sex {sex} / {patient.sex}")
        if ins_oid != patient.ins_oid:
            differences.append(f"INS OID {ins_oid} / {patient.ins_oid}")
        if differences:
            raise errors.PatientMismatch("the INS traits differ from the patient's: " + "; ".join(differences))
        return patient

    def record_consent(self, tx: Tx, key: str, *, consultation: str | None = None,
                       feeding_opposition: str | None = None) -> Patient:
        """The hospital-side DMP consent (PAM.fr ZFA): kept for findings, never enforced by the DMP."""
        if consultation not in (None, *CONSULTATION_CONSENT):
            raise errors.InvalidRequest(f"consultation consent must be one of {', '.join(CONSULTATION_CONSENT)}")
        if feeding_opposition not in (None, *FEEDING_OPPOSITION):
            raise errors.InvalidRequest(f"feeding opposition must be one of {', '.join(FEEDING_OPPOSITION)}")
        patient = self.patient(tx, key)
        changes = {k: v for k, v in (("consultation", consultation), ("feeding_opposition", feeding_opposition))
                   if v is not None}
        patient.consent = {**(patient.consent or {}), **changes}
        self.save_patient(tx, patient)
        return patient

    def save_patient(self, tx: Tx, p: Patient) -> None:
        tx.put("patients", p.to_dict(), id=p.id, ins=p.ins)

    def patients(self, tx: Tx, *, offset: int = 0, limit: int | None = None) -> list[Patient]:
        return [Patient.from_dict(r) for r in tx.select("patients", order="id", offset=offset, limit=limit)]

    # Mailboxes ----------------------------------------------------------------------------------
    def add_mailbox(self, tx: Tx, m: Mailbox) -> Mailbox:
        if "@" not in m.address:
            raise errors.InvalidRequest(f"{m.address} is not an e-mail address")
        if m.type not in MAILBOX_TYPES:
            raise errors.InvalidRequest(f"mailbox {m.address}: type must be one of {', '.join(MAILBOX_TYPES)}")
        if m.role not in MAILBOX_ROLES:
            raise errors.InvalidRequest(f"mailbox {m.address}: role must be one of {', '.join(MAILBOX_ROLES)}")
        m.address = m.address.lower()
        if tx.get("mailboxes", address=m.address):
            raise errors.DuplicateIdentifier(f"mailbox {m.address} already exists")
        tx.put("mailboxes", m.to_dict(), address=m.address)
        return m

    def mailbox(self, tx: Tx, address: str) -> Mailbox:
        row = tx.get("mailboxes", address=address.lower())
        if row is None:
            raise errors.UnknownMailbox(f"no mailbox {address}")
        return Mailbox.from_dict(row)

    def save_mailbox(self, tx: Tx, m: Mailbox) -> None:
        tx.put("mailboxes", m.to_dict(), address=m.address)

    def mailboxes(self, tx: Tx, *, offset: int = 0, limit: int | None = None) -> list[Mailbox]:
        return [Mailbox.from_dict(r) for r in tx.select("mailboxes", order="address", offset=offset, limit=limit)]
