"""The world's records. Plain dataclasses; the store keeps them as JSON."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")

# Confidentiality codes (1.2.250.1.213.1.1.4.13) and the HL7 default (2.16.840.1.113883.5.25).
MASQUE_PS = "MASQUE_PS"
INVISIBLE_PATIENT = "INVISIBLE_PATIENT"
INVISIBLE_REPRESENTANTS_LEGAUX = "INVISIBLE_REPRESENTANTS_LEGAUX"
CONFIDENTIALITY_CODES = ("N", MASQUE_PS, INVISIBLE_PATIENT, INVISIBLE_REPRESENTANTS_LEGAUX)

DOCUMENT_STATUSES = ("approved", "deprecated", "archived", "deleted")
DMP_STATES = ("active", "closed", "absent")
AUTHORIZATION_STATUSES = ("VALIDE", "INTERDIT", "EXPIRE", "NON_EXISTE")
ACCESS_MODES = ("normal", "bris_de_glace", "centre_15")
CONSULTATION_CONSENT = ("IC", "INC", "NA")
FEEDING_OPPOSITION = ("INO", "IO", "NA")
OPPOSITIONS = ("OPPOSITION_BRIS_DE_GLACE", "OPPOSITION_ACCES_URGENCE")
TRACE_ACTIONS = (
    "alimentation", "remplacement", "suppression", "archivage", "desarchivage", "masquage", "demasquage",
    "invisibilisation", "remise_en_visibilite", "consultation", "telechargement",
    "autorisation", "retrait_autorisation", "fermeture", "reouverture",
)
MAILBOX_TYPES = ("PER", "ORG", "APP", "CAB")
MAILBOX_ROLES = ("hospital", "correspondent", "error", "outside")


class Record:
    @classmethod
    def _field_names(cls) -> tuple[tuple[str, ...], frozenset[str]]:
        # Read once per class: dataclasses.fields() on every row read and written was a visible part of the
        # PFI door's time per message. Kept in the class's own __dict__, so a subclass gets its own.
        names = cls.__dict__.get("_record_fields")
        if names is None:
            ordered = tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]
            names = (ordered, frozenset(ordered))
            cls._record_fields = names  # type: ignore[attr-defined]
        return names

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        names = cls._field_names()[1]  # type: ignore[attr-defined]
        if names.issuperset(data):   # the usual case, a row this class wrote: no filtering copy
            return cls(**data)
        return cls(**{k: v for k, v in data.items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        # Shallow copies of lists and dicts are enough (records hold JSON values); dataclasses.asdict's deep
        # recursion was a tenth of the PFI door's time per message.
        out = {}
        for name in self._field_names()[0]:
            value = getattr(self, name)
            out[name] = value.copy() if isinstance(value, list | dict) else value
        return out


@dataclass
class Address(Record):
    line: str = ""
    postal_code: str = ""
    city: str = ""


@dataclass
class Structure(Record):
    id: str
    finess: str
    name: str
    finess_ej: str = ""
    idnst: str = ""
    siret: str = ""
    address: dict = field(default_factory=dict)
    directory_only: bool = False    # listed in the Annuaire Santé only (outside the hospital under test)
    annuaire: dict = field(default_factory=dict)   # Annuaire Santé V2 attributes a scenario gives (see schema)


@dataclass
class Professional(Record):
    id: str
    idnps: str
    family_name: str
    given_name: str
    rpps: str = ""
    adeli: str = ""
    profession: str = "10"          # TRE-G15: 10 = médecin
    specialty: str = ""             # TRE-R38 / SM codes
    structure: str = ""             # structure id
    mssante: str = ""               # MSSanté address
    directory_only: bool = False    # listed in the Annuaire Santé only (outside the hospital under test)
    annuaire: dict = field(default_factory=dict)   # Annuaire Santé V2 attributes a scenario gives (see schema)


@dataclass
class Consent(Record):
    consultation: str = "NA"        # PAM.fr ZFA-11: IC / INC / NA
    feeding_opposition: str = "NA"  # PAM.fr ZFA-9: INO / IO / NA


@dataclass
class Patient(Record):
    id: str
    ins: str
    family_name: str
    given_name: str
    birth_date: str
    sex: str
    ins_oid: str = "1.2.250.1.213.1.4.10"
    minor: bool = False
    dmp: str = "active"
    dmp_closed_at: str | None = None
    dmp_close_reason: str | None = None
    secret_connection: bool = False
    consent: dict = field(default_factory=lambda: Consent().to_dict())
    oppositions: list = field(default_factory=list)
    # DMP parameter cumul-invisible_patient-masque_ps (false by default on the real DMP).
    allow_masked_and_invisible: bool = False
    # Whether masked documents are readable in bris de glace / centre 15 (the patient decides).
    masked_readable_in_emergency: bool = False


@dataclass
class Authorization(Record):
    patient: str
    subject_kind: str               # "structure" or "professional"
    subject: str                    # structure id or professional id
    status: str = "VALIDE"
    since: str | None = None
    until: str | None = None
    reason: str | None = None


@dataclass
class Document(Record):
    """One metadata version of a document. Versions of one document share `unique_id` and `lid`."""

    id: str
    unique_id: str
    entry_uuid: str
    lid: str
    patient: str
    version: int = 1
    current: bool = True
    status: str = "approved"
    title: str = ""
    type_code: str = ""
    type_system: str = "2.16.840.1.113883.6.1"
    class_code: str = ""
    format_code: str = ""
    practice_setting: str = ""
    facility_type: str = ""
    content_type: str = ""
    mime_type: str = "text/xml"
    language: str = "fr-FR"
    author: str = ""                # professional id
    author_structure: str = ""      # structure id
    author_specialty: str = ""
    creation_time: str = ""
    service_start: str | None = None
    service_stop: str | None = None
    submission_time: str = ""
    confidentiality: list = field(default_factory=lambda: ["N"])
    replaces: str | None = None     # unique_id replaced by this one (RPLC)
    replaced_by: str | None = None
    hash: str = ""                  # SHA-1, upper-case hex
    size: int = 0
    repository_id: str = "1.2.250.1.213.4.1.1.1.2"
    submitted_by: str = ""          # professional id of the submitter
    extra: dict = field(default_factory=dict)


@dataclass
class Trace(Record):
    seq: int
    time: str
    patient: str
    actor: str
    action: str
    actor_kind: str = "professional"
    structure: str | None = None
    document: str | None = None
    mode: str = "normal"


@dataclass
class Mailbox(Record):
    address: str
    type: str = "PER"
    owner: str = ""                 # professional or structure id, or patient INS
    role: str = "hospital"
    behaviour: dict = field(default_factory=dict)


@dataclass
class Message(Record):
    id: str
    mailbox: str
    sender: str = ""
    subject: str = ""
    received_at: str = ""
    flags: list = field(default_factory=list)
    size: int = 0
    headers: dict = field(default_factory=dict)
    uid: int = 0                    # IMAP UID, per mailbox, never reused
    message_id: str = ""            # the Message-ID header
    recipients: list = field(default_factory=list)   # the envelope's recipients
    findings: list = field(default_factory=list)
    document: str = ""              # the unique id of the first document of its IHE_XDM.ZIP, if any
    folder: str = "INBOX"           # the IMAP folder of its mailbox (CREATE / COPY / MOVE / APPEND)


@dataclass(frozen=True)
class Actor:
    """Who acts on the world: a professional (with the structure acting for it), a device of a structure (a PFI
    sender named by PRT-10), the patient, one of the patient's legal representatives, or the bench itself
    (scenario transitions, seeding)."""

    kind: str                       # professional | device | patient | legal_representative | system
    id: str = ""
    structure: str = ""
    mode: str = "normal"            # normal | bris_de_glace | centre_15
    authentication: str = "INDIRECTE_RENFORCEE"

    @classmethod
    def system(cls) -> Actor:
        return cls(kind="system", id="mockbench")

    @property
    def label(self) -> str:
        return self.id or self.kind
