"""The scenario format: its schema, written once as data, used to validate files (with line numbers) and to
generate `docs/scenarios.md`.

A scenario file is YAML. Validation walks the composed YAML nodes, so each problem names the file, the line
and the field in plain words: `hidden.yaml:12: patients[0].ins: 123 is not a valid NIR, its key should be 45`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import yaml

from ..world import identity
from ..world.clock import parse_duration, parse_time
from ..world.dpi import check_endpoint
from ..world.faults import KINDS as FAULT_KINDS
from ..world.faults import MATCH_FIELDS as FAULT_MATCH
from ..world.faults import MAX_RULES as MAX_FAULTS
from ..world.faults import FaultRuleInvalid
from ..world.faults import parse_rule as parse_fault_rule
from ..world.journal import CHANNELS
from ..world.model import (
    ACCESS_MODES,
    AUTHORIZATION_STATUSES,
    CONFIDENTIALITY_CODES,
    CONSULTATION_CONSENT,
    DMP_STATES,
    FEEDING_OPPOSITION,
    MAILBOX_ROLES,
    MAILBOX_TYPES,
    OPPOSITIONS,
    TRACE_ACTIONS,
)

GENERATE = "generate"


@dataclass
class Problem:
    line: int
    path: str
    message: str
    file: str = "<scenario>"

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.path}: {self.message}" if self.path else \
            f"{self.file}:{self.line}: {self.message}"


class ScenarioInvalid(ValueError):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


# Field types --------------------------------------------------------------------------------------
@dataclass
class Spec:
    doc: str = ""

    def kind(self) -> str:
        return "value"

    def convert(self, node: yaml.Node, path: str, v: Validator) -> Any:
        raise NotImplementedError


@dataclass
class Str(Spec):
    choices: tuple[str, ...] = ()
    pattern: str | None = None
    check: Callable[[str], None] | None = None   # raises ValueError with a plain message

    def kind(self) -> str:
        if self.choices:
            return " \\| ".join(f"`{c}`" for c in self.choices)
        return "text"

    def convert(self, node: yaml.Node, path: str, v: Validator) -> Any:
        if not isinstance(node, yaml.ScalarNode) or node.tag == "tag:yaml.org,2002:null":
            v.problem(node, path, f"expected {self._what()}, found {_describe(node)}")
            return None
        text = str(node.value)
        if self.choices and text not in self.choices:
            v.problem(node, path, f"{text!r} is not one of {', '.join(self.choices)}")
            return None
        if self.pattern and not re.fullmatch(self.pattern, text):
            v.problem(node, path, f"{text!r} does not have the expected form ({self.doc or self.pattern})")
            return None
        if self.check:
            try:
                self.check(text)
            except ValueError as exc:
                v.problem(node, path, str(exc))
                return None
        return text

    def _what(self) -> str:
        return f"one of {', '.join(self.choices)}" if self.choices else "a text"


@dataclass
class Int(Spec):
    minimum: int | None = None
    maximum: int | None = None

    def kind(self) -> str:
        return "integer"

    def convert(self, node: yaml.Node, path: str, v: Validator) -> Any:
        if isinstance(node, yaml.ScalarNode) and re.fullmatch(r"-?\d+", str(node.value)):
            value = int(node.value)
            if self.minimum is not None and value < self.minimum:
                v.problem(node, path, f"{value} is below the minimum {self.minimum}")
                return None
            if self.maximum is not None and value > self.maximum:
                v.problem(node, path, f"{value} is above the maximum {self.maximum}")
                return None
            return value
        v.problem(node, path, f"expected a whole number, found {_describe(node)}")
        return None


@dataclass
class Bool(Spec):
    def kind(self) -> str:
        return "`true` \\| `false`"

    def convert(self, node: yaml.Node, path: str, v: Validator) -> Any:
        if isinstance(node, yaml.ScalarNode) and str(node.value).lower() in ("true", "false", "yes", "no"):
            return str(node.value).lower() in ("true", "yes")
        v.problem(node, path, f"expected true or false, found {_describe(node)}")
        return None


@dataclass
class ListOf(Spec):
    item: Spec = field(default_factory=Str)

    def kind(self) -> str:
        return f"list of {self.item.kind()}"

    def convert(self, node: yaml.Node, path: str, v: Validator) -> Any:
        if isinstance(node, yaml.ScalarNode) and not isinstance(self.item, Map):
            node = yaml.SequenceNode("tag:yaml.org,2002:seq", [node], node.start_mark, node.end_mark)
        if not isinstance(node, yaml.SequenceNode):
            v.problem(node, path, f"expected a list, found {_describe(node)}")
            return []
        return [self.item.convert(child, f"{path}[{i}]", v) for i, child in enumerate(node.value)]


@dataclass
class Map(Spec):
    fields: dict[str, Field] = field(default_factory=dict)
    name: str = ""
    one_of: tuple[tuple[str, ...], ...] = ()      # exactly one field of each group
    post: Callable[[dict, yaml.Node, str, Validator], None] | None = None

    def kind(self) -> str:
        return f"[{self.name}](#{self.name.lower().replace(' ', '-')})" if self.name else "mapping"

    def convert(self, node: yaml.Node, path: str, v: Validator) -> Any:
        if not isinstance(node, yaml.MappingNode):
            v.problem(node, path, f"expected a mapping of fields, found {_describe(node)}")
            return {}
        out: dict[str, Any] = {}
        nodes: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            sub = f"{path}.{key}" if path else key
            if key in nodes:
                v.problem(key_node, sub, "this field is given twice")
                continue
            nodes[key] = value_node
            f = self.fields.get(key)
            if f is None:
                close = _closest(key, self.fields)
                hint = f" (did you mean {close}?)" if close else ""
                v.problem(key_node, sub, f"unknown field{hint}; known fields: {', '.join(self.fields)}")
                continue
            out[key] = f.spec.convert(value_node, sub, v)
        for name, f in self.fields.items():
            if f.required and name not in nodes:
                v.problem(node, path or "(top)", f"the field {name} is required")
            elif name not in out and f.default is not None:
                out[name] = f.default() if callable(f.default) else f.default
        for group in self.one_of:
            given = [g for g in group if g in nodes]
            if len(given) != 1:
                v.problem(node, path or "(top)", f"give exactly one of {', '.join(group)}"
                          + (f" (found {', '.join(given)})" if given else ""))
        v.lines[path] = node.start_mark.line + 1
        if self.post:
            self.post(out, node, path, v)
        return out


@dataclass
class Field:
    spec: Spec
    doc: str = ""
    required: bool = False
    default: Any = None


class Validator:
    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []
        self.lines: dict[str, int] = {}

    def problem(self, node: yaml.Node, path: str, message: str) -> None:
        self.problems.append(Problem(node.start_mark.line + 1, path, message, self.file))


def _describe(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if node.tag == "tag:yaml.org,2002:null":
        return "nothing"
    return repr(node.value)


def _closest(key: str, names: dict) -> str | None:
    import difflib
    found = difflib.get_close_matches(key, list(names), n=1, cutoff=0.7)
    return found[0] if found else None


# Checks of single values --------------------------------------------------------------------------
def _generated_or(check: Callable[[str], None]) -> Callable[[str], None]:
    def run(value: str) -> None:
        if value != GENERATE:
            try:
                check(value)
            except identity.IdentifierError as exc:
                raise ValueError(str(exc)) from None
    return run


def _check_date(value: str) -> None:
    try:
        date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a date: write it as YYYY-MM-DD") from None


def _check_time(value: str) -> None:
    """An ISO time, or a time relative to the moment the scenario is loaded: '-3d', '+2h', 'now'."""
    if value == "now" or value[:1] in "+-":
        parse_duration(value.lstrip("+-") if value != "now" else "0")
        return
    try:
        parse_time(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a time: write an ISO time, now, or +30s / -3d from loading") from None


def _check_duration(value: str) -> None:
    parse_duration(value)


ID = r"[A-Za-z0-9_][A-Za-z0-9_.-]*"
Id = lambda doc="": Str(doc=doc or "a name made of letters, digits, _ . -", pattern=ID)  # noqa: E731
Time = Str(doc="an ISO time, `now`, or relative to loading: `-3d`, `+2h`", check=_check_time)

ADDRESS = Map(name="Address", fields={
    "line": Field(Str(), "street line"),
    "postal_code": Field(Str(pattern=r"\d{5}", doc="5 digits"), "postal code"),
    "city": Field(Str(), "city"),
})

ANNUAIRE_META = Map(name="Annuaire meta", fields={
    "versionId": Field(Str(), "meta.versionId (1 if absent)"),
    "lastUpdated": Field(Str(check=lambda t: _check_time(t) if "T" in t else _check_date(t)),
                         "meta.lastUpdated (the scenario's loading time if absent); `_lastUpdated` searches it"),
    "source": Field(Str(), "meta.source (https://annuaire.esante.gouv.fr if absent)"),
    "profile": Field(ListOf(item=Str()), "meta.profile (the as-dp and fr-core profiles of the IG's examples if absent)"),
})

ANNUAIRE_ADDRESS = Map(name="Annuaire address", fields={
    "insee": Field(Str(pattern=r"[0-9AB]{5}", doc="5 characters"), "INSEE commune code (TRE-R13)"),
    "houseNumber": Field(Str(), "street number (ISO 21090 ADXP part)"),
    "streetNameType": Field(Str(), "street type, e.g. R (rue)"),
    "streetNameBase": Field(Str(), "street name"),
})

ANNUAIRE_STRUCTURE = Map(name="Annuaire structure", fields={
    "id": Field(Str(pattern=r"[A-Za-z0-9\-.]{1,64}", doc="a FHIR id"), "the Organization's resource id "
                "(an opaque 001-... derived from the FINESS if absent)"),
    "meta": Field(ANNUAIRE_META, "the Organization's meta"),
    "kind": Field(Str(choices=("GEOGRAPHICAL-ENTITY", "LEGAL-ENTITY")), "EG (the default) or EJ"),
    "idnst": Field(Str(), "the IDNST when it is not 1 + FINESS"),
    "finess_listed": Field(Bool(), "false: the directory does not list the FINESS (a cabinet known from the "
                           "RPPS only)", default=True),
    "rpps_rang": Field(Str(), "the RPPS rang identifier (https://rppsrang.esante.gouv.fr)"),
    "alias": Field(Str(), "the commercial name (Organization.alias)"),
    "sector": Field(Str(pattern=r"SA\d{2}", doc="SAnn"), "the secteur d'activité (TRE-R02), SA01 for a "
                    "structure of the hospital and SA07 for a directory-only one if absent"),
    "opened": Field(Str(check=_check_date), "opening date (the organization-period extension)"),
    "phone": Field(Str(), "telephone (rank 1)"),
    "fax": Field(Str(), "fax"),
    "address": Field(ANNUAIRE_ADDRESS, "the street in parts and the INSEE code"),
})

ANNUAIRE_DEGREE = Map(name="Annuaire degree", fields={
    "code": Field(Str(), "diploma code (TRE-R48, e.g. DE01)", required=True),
    "type": Field(Str(), "diploma type (TRE-R14)", default="DE"),
})

ANNUAIRE_ROLE = Map(name="Annuaire role", fields={
    "structure": Field(Id(), "the structure (EG or EJ) of this exercise situation", required=True),
    "id": Field(Str(pattern=r"[A-Za-z0-9\-.]{1,64}", doc="a FHIR id"), "the PractitionerRole's resource id"),
    "identifier": Field(Str(), "the RPPS activity identifier (idSituationExercice)"),
    "meta": Field(ANNUAIRE_META, "the PractitionerRole's meta"),
    "genre": Field(Str(), "genre d'activité (TRE-R22)", default="GENR01"),
    "mode": Field(Str(), "mode d'exercice (TRE-R23): L libéral, S salarié", default="S"),
    "function": Field(Str(), "fonction (TRE-R21)", default="FON-AU"),
    "mailboxes": Field(Bool(), "the professional's MSSanté addresses on this role too", default=False),
})

ANNUAIRE_PROFESSIONAL = Map(name="Annuaire professional", fields={
    "id": Field(Str(pattern=r"[A-Za-z0-9\-.]{1,64}", doc="a FHIR id"), "the Practitioner's resource id "
                "(an opaque 003-... derived from the IDNPS if absent)"),
    "meta": Field(ANNUAIRE_META, "the Practitioner's meta"),
    "prefix": Field(Str(), "civility (name.prefix), e.g. M, MME"),
    "degrees": Field(ListOf(item=ANNUAIRE_DEGREE), "diplomas (qualification, degree slice)"),
    "roles": Field(ListOf(item=ANNUAIRE_ROLE), "the exercise situations (PractitionerRole), instead of the one "
                   "derived from `structure`"),
    "mailbox_rank": Field(Int(minimum=1), "ContactPoint.rank of the MSSanté address"),
    "mailbox_metadata": Field(Bool(), "false: the address carries no mailbox metadata extension (type PER)",
                              default=True),
})

def _structure_finess(out: dict, node: yaml.Node, path: str, v: Validator) -> None:
    """The FINESS's check digit, unless `check_digits: false` (then only its form, by the field's pattern)."""
    finess = out.get("finess")
    if out.get("check_digits", True) and finess and finess != GENERATE:
        try:
            identity.check_finess(finess)
        except ValueError as exc:
            v.problem(node, f"{path}.finess" if path else "finess", str(exc))


STRUCTURE = Map(name="Structure", post=_structure_finess, fields={
    "id": Field(Id(), "the scenario's name for it", required=True),
    "finess": Field(Str(pattern=r"[0-9A-Z]{9}|generate", doc="9 characters or generate"), "FINESS (EG), or "
                    "`generate`", default=GENERATE),
    "check_digits": Field(Bool(), "false admits a FINESS whose check digit is wrong, as some ANS examples "
                          "carry", default=True),
    "finess_ej": Field(Str(check=_generated_or(identity.check_finess)), "FINESS of the legal entity (EJ), "
                       "or `generate`"),
    "name": Field(Str(), "raison sociale; generated if absent"),
    "address": Field(ADDRESS, "postal address; generated if absent"),
    "siret": Field(Str(check=identity.check_siret), "SIRET (14 digits, Luhn), served by the Annuaire door"),
    "directory_only": Field(Bool(), "a structure outside the hospital under test, only listed in the Annuaire "
                            "Santé (a correspondent's cabinet or clinic)", default=False),
    "annuaire": Field(ANNUAIRE_STRUCTURE, "what the Annuaire Santé V2 lists beyond the world's fields"),
})

CIBA = Map(name="Ciba", fields={
    "outcome": Field(Str(choices=("approve", "deny", "expire")), "what the professional answers a Pro Santé "
                     "Connect CIBA request with", default="approve"),
    "after_polls": Field(Int(minimum=0), "token polls answered `authorization_pending` first", default=1),
    "expires_in": Field(Str(check=_check_duration, doc="a duration: `30s`, `2m`"),
                        "the request's lifetime (120s if absent)"),
    "interval": Field(Int(minimum=1), "the polling interval in seconds (5 if absent)"),
})

PROFESSIONAL = Map(name="Professional", fields={
    "id": Field(Id(), "the scenario's name for the professional", required=True),
    "rpps": Field(Str(pattern=r"[0-9]{11}|generate", doc="11 digits or generate"), "RPPS number (11 digits, "
                  "Luhn), or `generate`; the IDNPS is `8` + RPPS", default=GENERATE),
    "idnps": Field(Str(pattern=r"[0358][0-9A-Za-z]+", doc="an IDNPS"), "the national id, when it is not "
                   "8 + RPPS (an ADELI-based 0..., or a given IDNPS)"),
    "check_digits": Field(Bool(), "false admits identifiers whose check digit is wrong, as some ANS example "
                          "messages carry (the doors report them as findings)", default=True),
    "family_name": Field(Str(), "generated if absent"),
    "given_name": Field(Str(), "generated if absent"),
    "profession": Field(Str(pattern=r"\d{2}", doc="TRE-G15 code, 2 digits"),
                        "profession code (TRE-G15: 10 médecin, 21 pharmacien, 60 infirmier...)", default="10"),
    "specialty": Field(Str(), "specialty code (e.g. SM26 qualifié en médecine générale)", default=""),
    "structure": Field(Id(), "id of the structure the professional works in"),
    "mssante": Field(Str(), "MSSanté address, `generate` (from the names), or `none`", default=GENERATE),
    "ciba": Field(CIBA, "how the professional answers CIBA requests (the OIDC door; also "
                  "`PUT /_bench/oidc/ciba/{idnps}`)"),
    "directory_only": Field(Bool(), "a professional outside the hospital under test, only listed in the "
                            "Annuaire Santé (the `/fhir/v2` door), e.g. a correspondent to search for; give "
                            "it its own structure (a cabinet, a clinic) with `directory_only` too",
                            default=False),
    "annuaire": Field(ANNUAIRE_PROFESSIONAL, "what the Annuaire Santé V2 lists beyond the world's fields"),
})

AUTHORIZATION = Map(name="Authorization", one_of=(("structure", "professional"),), fields={
    "structure": Field(Id(), "structure id"),
    "professional": Field(Id(), "professional id"),
    "status": Field(Str(choices=AUTHORIZATION_STATUSES), "the DMP authorization status", default="VALIDE"),
    "until": Field(Time, "end of validity; past it the status reads EXPIRE"),
})

DOCUMENT_FIELDS = {
    "id": Field(Id(), "the scenario's name for the document", required=True),
    "type": Field(Str(pattern=r"[0-9A-Za-z-]+", doc="a LOINC code"), "typeCode, a LOINC code (JDV_J07)",
                  default="11488-4"),
    "class": Field(Str(), "classCode (TRE_A03, 1.2.250.1.213.1.1.4.1); the type's class in ASS_X04 if absent"),
    "title": Field(Str(), "title; derived from the type if absent"),
    "author": Field(Id(), "id of the authoring professional; the first professional if absent"),
    "confidentiality": Field(ListOf(item=Str(choices=CONFIDENTIALITY_CODES)), "confidentiality codes",
                             default=lambda: ["N"]),
    "status": Field(Str(choices=("approved", "archived", "deleted")), "status after seeding (a replaced "
                    "document becomes deprecated by itself)", default="approved"),
    "replaces": Field(Id(), "id of an earlier document of the same patient that this one replaces (RPLC)"),
    "created": Field(Time, "creation time", default="-1d"),
    "practice_setting": Field(Str(), "practiceSettingCode (1.2.250.1.213.1.1.4.9)", default="ETABLISSEMENT"),
    "facility_type": Field(Str(), "healthcareFacilityTypeCode (1.2.250.1.71.4.2.4)", default="SA01"),
    "text": Field(Str(), "the narrative of the generated CDA body"),
}
DOCUMENT = Map(name="Document", fields=DOCUMENT_FIELDS)

CONSENT = Map(name="Consent", fields={
    "consultation": Field(Str(choices=CONSULTATION_CONSENT), "PAM.fr ZFA-11", default="NA"),
    "feeding_opposition": Field(Str(choices=FEEDING_OPPOSITION), "PAM.fr ZFA-9", default="NA"),
})

PATIENT = Map(name="Patient", fields={
    "id": Field(Id(), "the scenario's name for the patient", required=True),
    "ins": Field(Str(check=_generated_or(identity.check_nir)), "INS (NIR, 15 characters with its key), or "
                 "`generate`", default=GENERATE),
    "ins_oid": Field(Str(choices=(identity.OID_INS_NIR, identity.OID_INS_NIA, identity.OID_INS_NIR_TEST,
                                  identity.OID_INS_NIR_DEMO)), "the INS OID", default=identity.OID_INS_NIR_TEST),
    "family_name": Field(Str(), "generated if absent"),
    "given_name": Field(Str(), "generated if absent"),
    "birth_date": Field(Str(check=_check_date), "YYYY-MM-DD; generated (consistent with `minor`) if absent"),
    "sex": Field(Str(choices=("M", "F")), "generated if absent"),
    "minor": Field(Bool(), "a minor, with legal representatives", default=False),
    "dmp": Field(Str(choices=DMP_STATES), "the state of the patient's DMP", default="active"),
    "secret_connection": Field(Bool(), "a minor's secret connection (connexion secrète) in progress",
                               default=False),
    "consent": Field(CONSENT, "hospital-side DMP consent (PAM.fr ZFA), not checked by the DMP"),
    "oppositions": Field(ListOf(item=Str(choices=OPPOSITIONS)), "the patient's oppositions to emergency "
                         "access modes", default=list),
    "allow_masked_and_invisible": Field(Bool(), "DMP parameter cumul-invisible_patient-masque_ps",
                                        default=False),
    "masked_readable_in_emergency": Field(Bool(), "masked documents readable in bris de glace / centre 15",
                                          default=False),
    "authorizations": Field(ListOf(item=AUTHORIZATION), "DMP authorizations", default=list),
    "documents": Field(ListOf(item=DOCUMENT), "documents in the DMP, in the order they were fed",
                       default=list),
})

MAILBOX = Map(name="Mailbox", fields={
    "address": Field(Str(pattern=r"[^@\s]+@[^@\s]+", doc="an e-mail address"), "the address", required=True),
    "type": Field(Str(choices=MAILBOX_TYPES), "PER personal, ORG organisational, APP applicative, CAB",
                  default="PER"),
    "owner": Field(Id(), "id of the owning professional or structure"),
    "role": Field(Str(choices=MAILBOX_ROLES), "who reads it", default="hospital"),
    "behaviour": Field(Map(name="Behaviour", fields={
        "on_receive": Field(Str(choices=("integrate", "fail_integration", "bounce", "ignore")),
                            "what a correspondent does with a mail", default="integrate"),
        "mdn": Field(Bool(), "answer an MDN even when the mail does not ask"),
        "error": Field(Str(pattern=r"[^^]+\^.+", doc="code^label"), "the error of a failed integration (MDN "
                       "processed/Error: code^label); with `bounce`, the DSN's SMTP reply (`552^5.2.2 mailbox "
                       "full`; default `550^5.1.1 mailbox unavailable`), which the PFI's ZAM^Z02 carries"),
        "read_after": Field(Str(check=_check_duration, doc="a duration: `30s`, `2m`"),
                            "answer the MDN only this long after the delivery, on the virtual clock"),
    }), "how a correspondent answers (PUT /_bench/mss/mailboxes/{address}/behaviour changes it live)"),
})

# Worlds too large to list within the size limit: counts of made-up structures, professionals and patients,
# drawn from the scenario's seed (the same people on every run), with identifiers that never collide.
MAX_GENERATED = {"structures": 10_000, "professionals": 100_000, "patients": 100_000}
GENERATE_COUNTS = Map(name="Generate", fields={
    "structures": Field(Int(minimum=0, maximum=MAX_GENERATED["structures"]),
                        "structures made up (at most 10,000), ids `structure-00001`... (FINESS drawn)", default=0),
    "professionals": Field(Int(minimum=0, maximum=MAX_GENERATED["professionals"]),
                           "professionals made up (at most 100,000), ids `professional-000001`... (RPPS and MSSanté address "
                           "drawn), spread over the generated structures (or else the listed ones)", default=0),
    "patients": Field(Int(minimum=0, maximum=MAX_GENERATED["patients"]),
                      "patients made up (at most 100,000), ids `patient-000001`... (INS, names, birth date drawn), DMP active, "
                      "no document", default=0),
})

WORLD = Map(name="World", fields={
    "structures": Field(ListOf(item=STRUCTURE), "health structures", default=list),
    "professionals": Field(ListOf(item=PROFESSIONAL), "health professionals", default=list),
    "patients": Field(ListOf(item=PATIENT), "patients and their DMP", default=list),
    "mailboxes": Field(ListOf(item=MAILBOX), "MSSanté mailboxes beyond the professionals' own",
                       default=list),
    "generate": Field(GENERATE_COUNTS, "a large world without listing it: counts of people made up after the listed "
                      "ones (up to 100,000 patients; the scenario file stays small)"),
})

# Fault rules (world/faults.py): validated by the world's own parser, so that the control API and a scenario
# file refuse the same rules; the fields listed here document them (README, "Faults").
_FAULT_DOCS = {
    "id": Field(Id(), "the rule's id (fault-N when absent); the journal entries it touched carry it as `fault`"),
    "door": Field(Str(choices=tuple(FAULT_KINDS)), "the door that fails", required=True),
    "kind": Field(Str(), "what happens: `delay`, `reset`, `timeout`, `trickle` on every door; dmp `soap_fault`, "
                  "`http_503`; pfi `ack_ar`, `no_ack`, `zam_error`, `zam_delay`, `zam_duplicate`; mss "
                  "`smtp_reply`, `imap_bye`, `imap_no`, `mdn_delay`; oidc `temporarily_unavailable`, `http_503`; "
                  "annuaire `http_429`, `http_503`", required=True),
    "match": Field(Map(name="Fault match", fields={k: Field(ListOf(item=Str()), f"{k} (a list: any one matches)")
                                                   for k in FAULT_MATCH}),
                   "which exchanges, as a step's expect (operation, patient, actor, document)"),
    "times": Field(Int(minimum=1), "fires at most this many times (absent: every matching exchange)"),
    "probability": Field(Str(), "the chance a matching exchange meets it (0 < p <= 1), drawn from `seed`"),
    "seed": Field(Int(minimum=0), "the seed of its draws: the same seed gives the same sequence"),
    "from": Field(Str(), "from this virtual time: `+30s` after loading, or an ISO time"),
    "until": Field(Str(), "until this virtual time"),
    "enabled": Field(Bool(), "false: set but switched off (`PATCH /_bench/faults/{id}`, the dashboard)"),
    "say": Field(Str(), "what it stands for, in French"),
    "(kind's own)": Field(Str(), "`seconds`, `code`, `stage`, `text`, `retry_after`, `subcode`, `reason`, "
                          "`error`, `description`: README, \"Faults\""),
}


class FaultSpec(Map):
    """A fault rule: the YAML mapping given to the world's parser (world/faults.py, parse_rule); a problem
    names the field's line. For `set_fault`, `{id, enabled}` alone switches a rule set earlier."""

    def __init__(self, name: str = "Fault", switch: bool = False) -> None:
        super().__init__(fields=_FAULT_DOCS, name=name)
        self.switch = switch

    def convert(self, node: yaml.Node, path: str, v: Validator) -> Any:
        if not isinstance(node, yaml.MappingNode):
            v.problem(node, path, f"expected a mapping of fields, found {_describe(node)}")
            return {}
        data = yaml.SafeLoader("").construct_document(node)
        v.lines[path] = node.start_mark.line + 1
        if self.switch and isinstance(data, dict) and "id" in data and set(data) <= {"id", "enabled"}:
            if not isinstance(data.get("enabled", True), bool):
                v.problem(node, f"{path}.enabled", "expected true or false")
            return data
        try:
            parse_fault_rule(data, now=0.0)
        except FaultRuleInvalid as exc:
            key = exc.field.split(".")[0]
            at = next((k for k, _ in node.value if str(k.value) == key), node)
            v.problem(at, f"{path}.{exc.field}" if path else exc.field, exc.message.split(": ", 1)[-1])
        return data


# Actions: what a transition does, and what POST /_bench/world/actions runs. Each is a mapping with one key.
BY = Field(Str(), "who acts: a professional id, `patient`, or the bench itself if absent")
ACTIONS: dict[str, Map] = {
    "set_authorization": Map(name="set_authorization", one_of=(("structure", "professional"),), fields={
        "patient": Field(Id(), "patient id", required=True), "structure": Field(Id(), "structure id"),
        "professional": Field(Id(), "professional id"),
        "status": Field(Str(choices=AUTHORIZATION_STATUSES), "new status", required=True),
        "until": Field(Time, "end of validity")}),
    "withdraw_authorization": Map(name="withdraw_authorization", one_of=(("structure", "professional"),), fields={
        "patient": Field(Id(), "patient id", required=True), "structure": Field(Id(), "structure id"),
        "professional": Field(Id(), "professional id")}),
    "submit_document": Map(name="submit_document", fields={
        "patient": Field(Id(), "patient id", required=True), **DOCUMENT_FIELDS, "by": BY}),
    "replace_document": Map(name="replace_document", fields={
        "document": Field(Id(), "id of the document to replace", required=True),
        "by": BY, "with": Field(DOCUMENT, "the new document", required=True)}),
    "delete_document": Map(name="delete_document", fields={
        "document": Field(Id(), "document id or unique id", required=True), "by": BY}),
    "archive_document": Map(name="archive_document", fields={
        "document": Field(Id(), "document id or unique id", required=True), "by": BY}),
    "unarchive_document": Map(name="unarchive_document", fields={
        "document": Field(Id(), "document id or unique id", required=True), "by": BY}),
    "mask_document": Map(name="mask_document", fields={
        "document": Field(Id(), "document id or unique id", required=True), "by": BY}),
    "unmask_document": Map(name="unmask_document", fields={
        "document": Field(Id(), "document id or unique id", required=True), "by": BY}),
    "make_visible": Map(name="make_visible", fields={
        "document": Field(Id(), "document id or unique id", required=True),
        "to": Field(Str(choices=("patient", "legal_representatives")), "to whom", required=True), "by": BY}),
    "close_dmp": Map(name="close_dmp", fields={
        "patient": Field(Id(), "patient id", required=True), "reason": Field(Str(), "closure reason")}),
    "reopen_dmp": Map(name="reopen_dmp", fields={"patient": Field(Id(), "patient id", required=True)}),
    "set_consent": Map(name="set_consent", fields={
        "patient": Field(Id(), "patient id", required=True),
        "consultation": Field(Str(choices=CONSULTATION_CONSENT), "PAM.fr ZFA-11"),
        "feeding_opposition": Field(Str(choices=FEEDING_OPPOSITION), "PAM.fr ZFA-9")}),
    "end_secret_connection": Map(name="end_secret_connection", fields={
        "patient": Field(Id(), "patient id", required=True)}),
    "set_fault": FaultSpec("set_fault", switch=True),   # a rule, or {id, enabled} to switch one
}


class ActionSpec(Spec):
    def kind(self) -> str:
        return "[action](#actions)"

    def convert(self, node: yaml.Node, path: str, v: Validator) -> Any:
        if not isinstance(node, yaml.MappingNode) or len(node.value) != 1:
            v.problem(node, path, f"an action is a mapping with one key, one of: {', '.join(ACTIONS)}")
            return None
        key_node, value_node = node.value[0]
        name = str(key_node.value)
        if name not in ACTIONS:
            close = _closest(name, ACTIONS)
            v.problem(key_node, path, f"unknown action {name!r}" + (f" (did you mean {close}?)" if close else "")
                      + f"; actions: {', '.join(ACTIONS)}")
            return None
        return {name: ACTIONS[name].convert(value_node, f"{path}.{name}", v)}


AFTER = Map(name="After", fields={
    "channel": Field(Str(choices=CHANNELS), "journal channel"),
    "operation": Field(Str(), "journal operation (TD3.1, MDM^T02, SUBMIT...)"),
    "patient": Field(Id(), "patient id"),
    "actor": Field(Str(), "who acted: a professional id, or the entry's actor as journaled (IDNPS, client id)"),
    "verdict": Field(Str(choices=("accepted", "refused", "error")), "only entries with this verdict"),
    "fault": Field(Str(), "only entries that met this fault rule (its id); without it, such entries never count"),
    "count": Field(Int(minimum=1), "fire after this many matching entries", default=1),
})

WHEN = Map(name="When", one_of=(("after", "at", "manual"),), fields={
    "after": Field(AFTER, "after N journal entries that match"),
    "at": Field(Str(check=_check_time, doc="`+30s` after loading, or an ISO time"),
                "at a virtual time: `+30s` after loading, or an ISO time"),
    "manual": Field(Bool(), "fired by `POST /_bench/transitions/{id}`"),
})

TRANSITION = Map(name="Transition", fields={
    "id": Field(Id(), "transition id", required=True),
    "say": Field(Str(), "what happens, in French"),
    "when": Field(WHEN, "what fires it", required=True),
    "do": Field(ListOf(item=ActionSpec()), "the actions, in order", required=True),
})

EXPECT = Map(name="Expect", fields={
    "channel": Field(Str(choices=CHANNELS), "journal channel"),
    "operation": Field(ListOf(item=Str()), "journal operation, or a list of them (any one matches: "
                       "`[MDM^T02, ORU^R01]`)"),
    "patient": Field(Id(), "patient id"),
    "document": Field(Str(), "document id or unique id"),
    "actor": Field(Str(), "who acted: a professional id, or the entry's actor as journaled (IDNPS, client id, "
                   "mailbox)"),
    "direction": Field(Str(choices=("in", "out")), "in (to the bench) or out (from it)"),
    "code": Field(Str(), "the entry's code, e.g. the OAuth error of a refusal (`access_denied`, `expired_token`)"),
    "fault": Field(Str(), "the fault rule (its id) the entry met: an exchange that met an injected fault decides "
                   "only a step that names it"),
})

class HeaderValues(Spec):
    """A mapping of mail header names to the text each must have."""

    def kind(self) -> str:
        return "mapping of header name to text"

    def convert(self, node: yaml.Node, path: str, v: Validator) -> Any:
        if not isinstance(node, yaml.MappingNode) or not node.value:
            v.problem(node, path, "expected a mapping of header names to values, e.g. {X-MSS-MES: FIN}")
            return {}
        out = {}
        for key_node, value_node in node.value:
            if not isinstance(value_node, yaml.ScalarNode) or not re.fullmatch(r"[!-9;-~]+", str(key_node.value)):
                v.problem(key_node, f"{path}.{key_node.value}", "a header name and its value as text")
                continue
            out[str(key_node.value)] = str(value_node.value)
        return out


THEN_DOCUMENT = Map(name="Then document", one_of=(("id", "submitted_in"),), fields={
    "id": Field(Id(), "document id or unique id"),
    "submitted_in": Field(Id(), "the document of the entry that decided that step (this step's own id: the "
                          "entry deciding it)"),
    "status": Field(Str(choices=("approved", "deprecated", "archived", "deleted")), "expected status"),
    "confidentiality_has": Field(ListOf(item=Str(choices=CONFIDENTIALITY_CODES)), "codes it must carry"),
    "confidentiality_lacks": Field(ListOf(item=Str(choices=CONFIDENTIALITY_CODES)), "codes it must not carry"),
    "version": Field(Int(minimum=1), "expected metadata version"),
})

def _one_document(out: dict, node: yaml.Node, path: str, v: Validator) -> None:
    if out.get("document") and out.get("submitted_in"):
        v.problem(node, path, "give document or submitted_in, not both")


THEN_TRACE = Map(name="Then trace", post=_one_document, fields={
    "patient": Field(Id(), "patient id", required=True),
    "action": Field(Str(choices=TRACE_ACTIONS), "the traced action (the `action` of "
                    "`GET /_bench/patients/{id}/traces`)", required=True),
    "document": Field(Str(), "document id or unique id the trace names"),
    "submitted_in": Field(Id(), "the document of the entry that decided that step (this step's own id: the "
                          "entry deciding it)"),
    "actor": Field(Str(), "who acted: a professional id or IDNPS (the VIHF NameID)"),
    "mode": Field(Str(choices=ACCESS_MODES), "the access mode"),
})

THEN = Map(name="Then", fields={
    "document": Field(THEN_DOCUMENT, "a document's state"),
    "patient": Field(Map(name="Then patient", fields={
        "id": Field(Id(), "patient id", required=True),
        "dmp": Field(Str(choices=DMP_STATES), "DMP state"),
        "secret_connection": Field(Bool(), "secret connection in progress")}), "a patient's state"),
    "authorization": Field(Map(name="Then authorization", one_of=(("structure", "professional"),), fields={
        "patient": Field(Id(), "patient id", required=True),
        "structure": Field(Id(), "structure id"), "professional": Field(Id(), "professional id"),
        "status": Field(Str(choices=AUTHORIZATION_STATUSES), "expected status", required=True)}),
        "an authorization's state"),
    "mail": Field(Map(name="Then mail", fields={
        "headers": Field(HeaderValues(), "header fields and the value each must have (`X-MSS-MES: FIN`)",
                         required=True)}),
        "the mail of the deciding entry (an `mss` entry: its `ref`, a Message-ID) as it was delivered"),
    "traces": Field(ListOf(item=THEN_TRACE), "DMP access traces (DMP/CONF.14) that must have been recorded since "
                    "the previous step was decided (since loading, for the first step): each one listed is "
                    "found by its patient, action and the document, actor and mode it names"),
})

STEP = Map(name="Step", fields={
    "id": Field(Id(), "step id", required=True),
    "say": Field(Str(), "what the software under test must do and what the user should see, in French",
                 required=True),
    "expect": Field(EXPECT, "the journal entry that decides the step", required=True),
    "verdict": Field(Str(choices=("accepted", "refused", "error")), "the verdict that passes it",
                     default="accepted"),
    "then": Field(THEN, "what must hold in the world when it is decided"),
    "forbid_findings": Field(ListOf(item=Str()), "rules (`DMP/CONF.12`...) that the deciding entry must not "
                             "report a finding of"),
})

SCENARIO = Map(name="Scenario", fields={
    "id": Field(Str(pattern=r"[a-z0-9][a-z0-9-]*", doc="lower case letters, digits and -"), "scenario id",
                required=True),
    "title": Field(Str(), "title, in French", required=True),
    "requirement": Field(Str(), "the requirement it serves (DMP/CONF.03...)", default=""),
    "description": Field(Str(), "a longer explanation, in French", default=""),
    "seed": Field(Int(minimum=0), "Faker seed: the same names and numbers on every run", default=0),
    "world": Field(WORLD, "the seeded world", default=dict),
    "dpi": Field(Map(name="Dpi", fields={
        "mllp": Field(Str(check=check_endpoint, doc="HOST:PORT"), "the DPI's MLLP listener, where the PFI sends "
                      "its ZAMs and the MDMs of mails received (as `--dpi-mllp`; kept until set again, also by "
                      "`PUT /_bench/pfi/dpi`)", required=True)}),
        "the DPI under test's own endpoints, when the scenario knows them"),
    "transitions": Field(ListOf(item=TRANSITION), "scripted changes of the world", default=list),
    "faults": Field(ListOf(item=FaultSpec()), f"fault rules set when the scenario loads (at most {MAX_FAULTS}; "
                    "README, \"Faults\")", default=list),
    "steps": Field(ListOf(item=STEP), "what the software under test must do, in order", default=list),
})

