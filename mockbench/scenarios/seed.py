"""Seeding a world from a scenario, and the actions that transitions (and the control API) run.

Seeding goes through the world's own operations (submit, replace, delete...), acting as the bench on
behalf of the named author, so that a seeded DMP is one the rules could have produced, traces included.
Names and numbers come from a Faker seeded with the scenario's seed, identifiers from a seeded random
generator: the same scenario gives the same people, numbers and document ids on every run.
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from ..formats import nos
from ..formats.cda import minimal_cda
from ..world import errors, identity
from ..world.ciba import set_ciba_script
from ..world.clock import iso, parse_duration, parse_time
from ..world.model import Actor, Mailbox, Patient, Professional, Structure
from ..world.store import Tx
from ..world.world import World
from .loader import generated_id

FRESH_TRIES = 1000   # draws of a free identifier before giving up (a full space, not bad luck)
# The Faker providers the seeder draws from (names, addresses; FrenchHealthProvider is always there): the
# same draws as a Faker with all of them (tests/scenarios/test_seed_faker.py), 13 ms less to start a bench.
FAKER_PROVIDERS = ["faker.providers.address", "faker.providers.person"]

TYPE_TITLES = {
    "11488-4": "Compte rendu de consultation",
    "34133-9": "Synthèse d'épisode de soins",
    "18748-4": "Compte rendu d'imagerie médicale",
    "11502-2": "Compte rendu d'examens biologiques",
    "11490-0": "Lettre de liaison à la sortie d'un établissement de soins",
    "60591-5": "Synthèse médicale",
    "57833-6": "Prescription de médicaments",
    "34874-8": "Compte rendu opératoire",
}


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-") or "x"


def resolve_time(world: World, value: str | None, base: float | None = None) -> str:
    """'now', '-3d', '+2h' (relative to `base`, the loading time) or an ISO time -> ISO time."""
    now = world.clock.timestamp() if base is None else base
    if value in (None, "", "now"):
        return iso(_dt(now))
    if value[0] in "+-":
        seconds = parse_duration(value[1:])
        return iso(_dt(now + seconds if value[0] == "+" else now - seconds))
    return iso(parse_time(value))


def _dt(ts: float):
    from datetime import UTC, datetime
    return datetime.fromtimestamp(ts, UTC)


class Seeder:
    """Applies a validated scenario's `world` section and runs actions, inside one transaction."""

    def __init__(self, world: World, tx: Tx, seed: int | None = None) -> None:
        """With a seed, names, numbers and ids are the same on every run (seeding a scenario). Without,
        they are fresh (actions run later, which must not collide with what the seed made)."""
        self.world = world
        self.tx = tx
        self.rng = random.Random(seed)
        self._faker_seed = seed if seed is not None else self.rng.getrandbits(32)
        self._faker: Any = None
        # What draws the world's new ids (documents' unique ids and entryUUIDs): this rng when seeded
        self.id_rng = self.rng if seed is not None else None
        # Identifiers drawn so far, by kind: a draw that repeats one (or one the store holds) is drawn again,
        # so that a world of 100,000 has no collision (RPPS have 10^8 values: a repeat is likely from about
        # 10,000 draws; FINESS 10^5 per department; addresses repeat with common names).
        self._used: dict[str, set[str]] = {"ins": set(), "rpps": set(), "finess": set(), "mssante": set()}

    @property
    def faker(self) -> Any:
        """Made on first use: an action that draws no name (most of them) does not pay for a Faker."""
        if self._faker is None:
            self._faker = identity.make_faker(self._faker_seed, providers=FAKER_PROVIDERS)
        return self._faker

    def _fresh(self, kind: str, make: Callable[[], str], taken: Callable[[str], bool]) -> str:
        used = self._used[kind]
        for _ in range(FRESH_TRIES):
            value = make()
            if value not in used and not taken(value):
                used.add(value)
                return value
        raise errors.ScenarioError(f"no free {kind} left after {FRESH_TRIES} draws: the world holds too many")

    def _reserve(self, spec: dict) -> None:
        """The identifiers a scenario gives explicitly, so that a generated one never takes them first."""
        for s in spec.get("structures", []):
            for key in ("finess", "finess_ej"):
                if s.get(key) not in (None, "", "generate"):
                    self._used["finess"].add(str(s[key]))
        for p in spec.get("professionals", []):
            if p.get("rpps") not in (None, "", "generate"):
                self._used["rpps"].add(str(p["rpps"]))
            if p.get("mssante") not in (None, "", "generate", "none"):
                self._used["mssante"].add(str(p["mssante"]).lower())
        for p in spec.get("patients", []):
            if p.get("ins") not in (None, "", "generate"):
                self._used["ins"].add(str(p["ins"]))

    def new_finess(self) -> str:
        return self._fresh("finess", self.faker.finess,
                           lambda v: self.tx.get("structures", finess=v) is not None)

    def new_rpps(self) -> str:
        return self._fresh("rpps", self.faker.rpps,
                           lambda v: self.tx.get("professionals", idnps="8" + v) is not None)

    def new_ins(self, sex: str, birth: date) -> str:
        return self._fresh("ins", lambda: self.faker.nir(sex, birth),
                           lambda v: self.tx.get("patients", ins=v) is not None)

    def new_mssante(self, given: str, family: str, domain: str) -> str:
        """given.family@domain, then given.family2@domain... when that address is taken."""
        base = self.faker.mssante_address(given, family, domain)
        local, _, host = base.partition("@")
        used = self._used["mssante"]
        n = 1
        address = base
        while address in used:
            n += 1
            address = f"{local}{n}@{host}"
        used.add(address)
        return address

    # World section ------------------------------------------------------------------------------
    def seed_world(self, spec: dict) -> None:
        d = self.world.directory
        self._reserve(spec)
        for s in spec.get("structures", []):
            finess = self._value(s.get("finess"), self.new_finess)
            ej = self._value(s.get("finess_ej"), self.new_finess) if s.get("finess_ej") else ""
            city = self.faker.city()
            address = s.get("address") or {"line": self.faker.street_address(),
                                            "postal_code": self.faker.postcode(), "city": city}
            name = s.get("name") or f"Centre hospitalier de {address.get('city') or city}"
            d.add_structure(self.tx, Structure(id=s["id"], finess=finess, finess_ej=ej, name=name,
                                               address=address, siret=s.get("siret") or "",
                                               directory_only=bool(s.get("directory_only")),
                                               annuaire=s.get("annuaire") or {}),
                            check_digits=s.get("check_digits", True))
        for p in spec.get("professionals", []):
            rpps = "" if p.get("idnps") and p.get("rpps") in (None, "generate") else \
                self._value(p.get("rpps"), self.new_rpps)
            given = p.get("given_name") or self.faker.first_name()
            family = p.get("family_name") or self.faker.last_name().upper()
            mss = p.get("mssante", "generate")
            if mss == "generate":
                domain = f"{_slug(p.get('structure') or 'cabinet')}.mssante.fr"
                mss = self.new_mssante(given, family, domain)
            elif mss == "none":
                mss = ""
            d.add_professional(self.tx, Professional(
                id=p["id"], idnps=p.get("idnps") or "8" + rpps, rpps=rpps, family_name=family,
                given_name=given, profession=p.get("profession", "10"), specialty=p.get("specialty", ""),
                structure=p.get("structure", ""), mssante=mss, directory_only=bool(p.get("directory_only")),
                annuaire=p.get("annuaire") or {}),
                check_digits=p.get("check_digits", True))
            if p.get("ciba"):
                set_ciba_script(self.world, self.tx, p["id"], p["ciba"])
        for m in spec.get("mailboxes", []):
            d.add_mailbox(self.tx, Mailbox(address=m["address"], type=m.get("type", "PER"),
                                           owner=m.get("owner", ""), role=m.get("role", "hospital")))
            if m.get("behaviour"):
                self.world.mss.set_behaviour(self.tx, m["address"], m["behaviour"])
        for p in spec.get("patients", []):
            self._seed_patient(p)
        if spec.get("generate"):
            self.generate(spec["generate"], listed_structures=[s["id"] for s in spec.get("structures", [])])

    def generate(self, counts: dict, listed_structures: list[str]) -> None:
        """`world.generate`: made-up people in the numbers asked, through the same checks as listed ones."""
        d = self.world.directory
        structures: list[str] = []
        for n in range(1, counts.get("structures", 0) + 1):
            city = self.faker.city()
            new_structure = Structure(id=generated_id("structure", n), finess=self.new_finess(), name=f"Centre hospitalier "
                                  f"de {city} ({n})", address={"line": self.faker.street_address(),
                                                               "postal_code": self.faker.postcode(), "city": city})
            d.add_structure(self.tx, new_structure)
            structures.append(new_structure.id)
        structures = structures or listed_structures
        for n in range(1, counts.get("professionals", 0) + 1):
            rpps = self.new_rpps()
            given, family = self.faker.first_name(), self.faker.last_name().upper()
            structure = structures[(n - 1) % len(structures)] if structures else ""
            d.add_professional(self.tx, Professional(
                id=generated_id("professional", n), idnps="8" + rpps, rpps=rpps, family_name=family, given_name=given,
                profession="10", structure=structure,
                mssante=self.new_mssante(given, family, f"{_slug(structure or 'cabinet')}.mssante.fr")))
        for n in range(1, counts.get("patients", 0) + 1):
            self._seed_patient({"id": generated_id("patient", n)})

    def _seed_patient(self, p: dict) -> None:
        sex = p.get("sex") or self.rng.choice("MF")
        birth = p.get("birth_date") or self._birth_date(bool(p.get("minor")))
        ins = self._value(p.get("ins"), lambda: self.new_ins(sex, date.fromisoformat(birth)))
        given = p.get("given_name") or (self.faker.first_name_male() if sex == "M" else self.faker.first_name_female())
        family = p.get("family_name") or self.faker.last_name().upper()
        patient = Patient(
            id=p["id"], ins=ins, ins_oid=p.get("ins_oid", identity.OID_INS_NIR_TEST), family_name=family,
            given_name=given, birth_date=birth, sex=sex, minor=bool(p.get("minor")),
            dmp="active" if p.get("dmp", "active") != "absent" else "absent",
            secret_connection=bool(p.get("secret_connection")),
            consent={"consultation": "NA", "feeding_opposition": "NA", **(p.get("consent") or {})},
            oppositions=list(p.get("oppositions") or []),
            allow_masked_and_invisible=bool(p.get("allow_masked_and_invisible")),
            masked_readable_in_emergency=bool(p.get("masked_readable_in_emergency")))
        self.world.directory.add_patient(self.tx, patient)
        system = Actor.system()
        for a in p.get("authorizations", []):
            self.world.dmp.set_authorization(
                self.tx, system, patient.id, status=a.get("status", "VALIDE"), structure=a.get("structure"),
                professional=a.get("professional"),
                until=resolve_time(self.world, a["until"]) if a.get("until") else None)
        for doc in p.get("documents", []):
            self.submit_document(patient.id, doc, by=None)
            status = doc.get("status", "approved")
            if status in ("archived", "deleted"):
                op = self.world.dmp.archive if status == "archived" else self.world.dmp.delete
                op(self.tx, self._author_actor(doc.get("author")), doc["id"], patient_key=patient.id)
        if p.get("dmp") == "closed":
            self.world.dmp.close(self.tx, system, patient.id, reason="seeded closed")

    def _birth_date(self, minor: bool) -> str:
        today = _dt(self.world.clock.timestamp()).date()
        years = self.rng.randint(6, 16) if minor else self.rng.randint(20, 90)
        return (today - timedelta(days=years * 365 + self.rng.randint(0, 364))).isoformat()

    def _value(self, given: Any, make) -> str:
        return make() if given in (None, "generate") else str(given)

    # Documents ----------------------------------------------------------------------------------
    def _author_actor(self, author: str | None) -> Actor:
        if not author:
            return Actor.system()
        prof = self.world.directory.professional(self.tx, author)
        return Actor(kind="system", id=prof.id, structure=prof.structure)

    def _default_author(self) -> str:
        professionals = self.world.directory.professionals(self.tx, limit=1)
        if not professionals:
            raise errors.ScenarioError("a document needs an author, and the world has no professional")
        return professionals[0].id

    def document_meta(self, patient_key: str, doc: dict) -> tuple[dict, bytes]:
        patient = self.world.directory.patient(self.tx, patient_key)
        author = self.world.directory.professional(self.tx, doc.get("author") or self._default_author())
        type_code = doc.get("type", "11488-4")
        title = doc.get("title") or TYPE_TITLES.get(type_code, "Document")
        created = resolve_time(self.world, doc.get("created", "-1d"))
        structure = self.world.directory.structure(self.tx, author.structure) if author.structure else None
        unique_id = self.world.new_oid(self.id_rng)
        content = minimal_cda(
            unique_id=unique_id, ins=patient.ins, ins_oid=patient.ins_oid, type_code=type_code, title=title,
            author_idnps=author.idnps, author_family=author.family_name, author_given=author.given_name,
            patient_family=patient.family_name, patient_given=patient.given_name, birth_date=patient.birth_date,
            sex=patient.sex, effective_time=created, custodian_idnst=structure.idnst if structure else "",
            custodian_name=structure.name if structure else "",
            text=doc.get("text") or f"{title} de {patient.given_name} {patient.family_name}.",
            facility_type=doc.get("facility_type", "SA01"), practice_setting=doc.get("practice_setting", "ETABLISSEMENT"))
        meta = {
            "id": doc["id"], "unique_id": unique_id, "title": title, "type_code": type_code,
            "class_code": self._class_of(doc, type_code),
            # minimal_cda writes a CDA N1 in text/plain: its formatCode by ASS_A12, as the PFI derives it
            "format_code": nos.format_code(structured=False, media_type="text/plain", template_ids=(nos.N1_TEMPLATE,)),
            "practice_setting": doc.get("practice_setting", "ETABLISSEMENT"),
            "facility_type": doc.get("facility_type", "SA01"), "author": author.id,
            "author_structure": author.structure, "author_specialty": author.specialty,
            "creation_time": created, "service_start": created, "service_stop": created, "language": "fr-FR",
            "confidentiality": list(doc.get("confidentiality") or ["N"]),
        }
        return meta, content

    @staticmethod
    def _class_of(doc: dict, type_code: str) -> str:
        """The document's classCode: the scenario's, else the one ASS_X04 gives its type (formats/nos.py), as the
        PFI derives it from the CDA (trans-cda-r2/mapping.md, Mapping XDS, Fiche, classCode)."""
        if doc.get("class"):
            return str(doc["class"])
        found = nos.class_of_type(type_code)
        if found is None:
            raise errors.ScenarioError(f"document {doc.get('id')}: the type {type_code} is not in ASS_X04 "
                                       "(typeCode -> classCode): give its class")
        return found

    def submit_document(self, patient_key: str, doc: dict, by: str | None) -> None:
        meta, content = self.document_meta(patient_key, doc)
        actor = self.actor(by, patient_key) if by else self._author_actor(meta["author"])
        if doc.get("replaces"):
            self.world.dmp.replace(self.tx, actor, patient_key, doc["replaces"], meta, content, rng=self.id_rng)
        else:
            self.world.dmp.submit(self.tx, actor, patient_key, meta, content, rng=self.id_rng)

    # Actions ------------------------------------------------------------------------------------
    def actor(self, by: str | None, patient_key: str | None = None) -> Actor:
        if not by:
            return Actor.system()
        if by == "patient":
            return Actor(kind="patient", id=patient_key or "")
        prof = self.world.directory.professional(self.tx, by)
        return Actor(kind="professional", id=prof.id, structure=prof.structure)

    def run(self, action: dict, cause: str | None = None) -> str:
        """Run one action ({name: arguments}); returns a one-line description for the journal."""
        (name, args), = action.items()
        dmp, tx = self.world.dmp, self.tx
        if name in ("set_authorization", "withdraw_authorization"):
            target = {"structure": args.get("structure"), "professional": args.get("professional")}
            if name == "withdraw_authorization":
                dmp.withdraw_authorization(tx, Actor(kind="patient", id=args["patient"]), args["patient"],
                                           cause=cause, **target)
            else:
                until = resolve_time(self.world, args["until"]) if args.get("until") else None
                dmp.set_authorization(tx, Actor.system(), args["patient"], status=args["status"], until=until,
                                      cause=cause, **target)
            return f"{name} {args['patient']} {args.get('structure') or args.get('professional')}"
        if name == "submit_document":
            spec = {k: v for k, v in args.items() if k not in ("patient", "by")}
            self.submit_document(args["patient"], spec, args.get("by"))
            return f"{name} {spec['id']} for {args['patient']}"
        if name == "replace_document":
            old = dmp.current(tx, args["document"])
            new = dict(args["with"], replaces=old.unique_id)
            self.submit_document(old.patient, new, args.get("by") or old.author)
            return f"{name} {args['document']} by {new['id']}"
        if name in ("delete_document", "archive_document", "unarchive_document", "mask_document",
                    "unmask_document", "make_visible"):
            doc = dmp.current(tx, args["document"])
            actor = self.actor(args.get("by"), doc.patient)
            if name == "make_visible":
                dmp.make_visible(tx, actor, doc.unique_id, args["to"], cause=cause)
            elif name in ("mask_document", "unmask_document"):
                dmp.set_masked(tx, actor, doc.unique_id, name == "mask_document", cause=cause)
            else:
                op = {"delete_document": dmp.delete, "archive_document": dmp.archive,
                      "unarchive_document": dmp.unarchive}[name]
                op(tx, actor, doc.unique_id, cause=cause)
            return f"{name} {args['document']}"
        if name == "close_dmp":
            dmp.close(tx, Actor.system(), args["patient"], reason=args.get("reason", ""), cause=cause)
            return f"{name} {args['patient']}"
        if name == "reopen_dmp":
            dmp.reopen(tx, Actor.system(), args["patient"], cause=cause)
            return f"{name} {args['patient']}"
        if name == "set_consent":
            self.world.directory.record_consent(tx, args["patient"], consultation=args.get("consultation"),
                                                feeding_opposition=args.get("feeding_opposition"))
            return f"{name} {args['patient']}"
        if name == "set_fault":   # a rule (world/faults.py), or {id, enabled} to switch one set earlier
            if "door" not in args:
                self.world.faults.switch(tx, args["id"], args.get("enabled", True), cause=cause or "scenario")
                return f"{name} {args['id']} {'on' if args.get('enabled', True) else 'off'}"
            rule = self.world.faults.set(tx, args, cause=cause or "scenario")
            return f"{name} {rule['id']}: {rule['door']} {rule['kind']}"
        if name == "end_secret_connection":
            dmp.end_secret_connection(tx, Actor.system(), args["patient"])
            return f"{name} {args['patient']}"
        raise errors.ScenarioError(f"unknown action {name}")
