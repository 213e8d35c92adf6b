"""The world's directory as FHIR R4 resources in the shape of the Annuaire Santé API V2 (IG
ansforge/IG-fhir-annuaire 1.1.0, the "DP" public-data profiles).

Sources (corpus specs/annuaire-v2/):
- ig-fsh/AsDpPractitionerProfile.fsh, AsPractitionerProfile.fsh: identifiers idNatPs and rpps (1..1 each),
  `name` (usual, prefix), `telecom[mailbox-mss]` only, profession / category / specialty on
  `qualification` (slices exercicePro and savoirFaire), meta.profile as-dp + fr-core.
- ig-fsh/AsDpPractitionerRoleProfile.fsh, AsPractitionerRoleProfile.fsh: `identifier[idSituationExercice]`
  (system https://rpps.esante.gouv.fr), `code` slices genreActivite / modeExercice / fonction, `specialty 0..0`.
- ig-fsh/AsDpOrganizationProfile.fsh, AsOrganizationProfile.fsh: `type` slices organizationType (fr-core
  v2-3307 LEGAL-ENTITY / GEOGRAPHICAL-ENTITY) and secteurActiviteRASS (TRE-R02) with the
  as-ext-organization-types extension; `partOf` from the EG to its EJ.
- ig-fsh/AsMailboxMSSProfile.fsh, ASMailboxMetadataExtension.fsh: an MSSanté address is a ContactPoint
  `system=email` with the fr-core email-type extension (TRE-R256 `MSSANTE`) and the mailbox metadata
  extension whose `type` is from JDV-J139 (code system TRE-R257-TypeBAL: PER, ORG, APP, CAB), as
  use-case_uc-bal-mss.md shows it on a real answer.
- ig-fsh/PP16DP-*.fsh, PP19DP-*.fsh: meta (versionId, source, profile with versions), `language = fr`,
  identifier `use`/`type` as written there.
- getting-started_nouveautes.md §3-4: ids are technical (Practitioner and PractitionerRole ids are new in V2);
  use-case_uc-call-type.md §1 shows them (`003-...` Practitioner, `005-...` PractitionerRole, `001-...`
  Organization): the bench derives such opaque ids from a hash of the national ids, stable across runs.

What the world does not hold is not invented: no HealthcareService (activités de soins) and no Device
(équipements matériels lourds) are in a world, so their searches answer empty Bundles. A structure with a
`finess_ej` is two Organizations: its EG (FINEG) and its EJ (FINEJ), the EG's `partOf` naming the EJ.
A professional or structure may carry an `annuaire` map (the scenario's `annuaire:` key) that overrides
what is derived: the resource id, meta, the civility, degrees, the exercise codes... (see `ANNUAIRE_KEYS`);
that is how the IG's own example instances are seeded into a world.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from ...world.model import Mailbox, Professional, Structure

IG = "https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition"
FR_CORE = "https://hl7.fr/ig/fhir/core/StructureDefinition"
IG_VERSION = "1.2.0-snapshot-2"        # the as-dp canonical version fixed by the DP profiles
FR_CORE_VERSION = "2.2.0"              # as in the PP16DP / PP19DP examples
SOURCE = "https://annuaire.esante.gouv.fr"
PROFILE = {
    "Practitioner": (f"{IG}/as-dp-practitioner|{IG_VERSION}", f"{FR_CORE}/fr-core-practitioner|{FR_CORE_VERSION}"),
    "PractitionerRole": (f"{IG}/as-dp-practitionerrole|{IG_VERSION}",
                         f"{FR_CORE}/fr-core-practitioner-role|{FR_CORE_VERSION}"),
    "Organization": (f"{IG}/as-dp-organization|{IG_VERSION}", f"{FR_CORE}/fr-core-organization|{FR_CORE_VERSION}"),
}
EXT_MAILBOX = f"{IG}/as-ext-mailbox-mss-metadata"
EXT_EMAIL_TYPE = f"{FR_CORE}/fr-core-contact-point-email-type"
EXT_ORG_TYPES = f"{IG}/as-ext-organization-types"
EXT_PERIOD = "http://hl7.org/fhir/StructureDefinition/organization-period"
EXT_INSEE = f"{FR_CORE}/fr-core-address-insee-code"
ADXP = "http://hl7.org/fhir/StructureDefinition/iso21090-ADXP-"

NOS = "https://mos.esante.gouv.fr/NOS"
PROFESSION = f"{NOS}/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante"
CATEGORY = f"{NOS}/TRE_R09-CategorieProfessionnelle/FHIR/TRE-R09-CategorieProfessionnelle"
SPECIALTY = f"{NOS}/TRE_R38-SpecialiteOrdinale/FHIR/TRE-R38-SpecialiteOrdinale"
SKILL_TYPE = f"{NOS}/TRE_R04-TypeSavoirFaire/FHIR/TRE-R04-TypeSavoirFaire"
DEGREE = f"{NOS}/TRE_R48-DiplomeEtatFrancais/FHIR/TRE-R48-DiplomeEtatFrancais"
DEGREE_TYPE = f"{NOS}/TRE_R14-TypeDiplome/FHIR/TRE-R14-TypeDiplome"
GENRE = f"{NOS}/TRE_R22-GenreActivite/FHIR/TRE-R22-GenreActivite"
MODE = f"{NOS}/TRE_R23-ModeExercice/FHIR/TRE-R23-ModeExercice"
FUNCTION = f"{NOS}/TRE_R21-Fonction/FHIR/TRE-R21-Fonction"
SECTOR = f"{NOS}/TRE_R02-SecteurActivite/FHIR/TRE-R02-SecteurActivite"
COMMUNE = f"{NOS}/TRE_R13-Commune/FHIR/TRE-R13-Commune"
MESSAGING_TYPE = f"{NOS}/TRE_R256-TypeMessagerie/FHIR/TRE-R256-TypeMessagerie"
MAILBOX_TYPE = f"{NOS}/TRE_R257-TypeBAL/FHIR/TRE-R257-TypeBAL"
ID_TYPE = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203"
ORG_TYPE = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-3307"

SYS_IDNPS = "urn:oid:1.2.250.1.71.4.2.1"
SYS_RPPS = "https://rpps.esante.gouv.fr"
SYS_FINESS = "https://finess.esante.gouv.fr"
SYS_IDNST = "urn:oid:1.2.250.1.71.4.2.2"
SYS_RPPS_RANG = "https://rppsrang.esante.gouv.fr"
SYS_SIRET = "https://sirene.fr"

# The `annuaire:` keys a scenario may give (see the scenario schema); everything else is derived.
ANNUAIRE_KEYS = {
    "professional": ("id", "meta", "prefix", "degrees", "roles", "mailbox_rank", "mailbox_metadata"),
    "structure": ("id", "meta", "kind", "idnst", "finess_listed", "rpps_rang", "alias", "sector", "opened",
                  "phone", "fax", "address"),
}


@dataclass(frozen=True)
class LegalEntity:
    """An EJ the world knows only through its structures' `finess_ej`: one Organization per FINESS EJ."""

    finess: str
    name: str


@dataclass(frozen=True)
class Role:
    """One exercise situation: a professional at an Organization (an EG structure, or an EJ one)."""

    pro: Professional
    org: Structure
    spec: dict          # the scenario's `annuaire.roles[i]`, or {} for the derived one


@dataclass
class Directory:
    """What the door searches: the world's professionals, structures and mailboxes, with the V2 rows."""

    created: str
    professionals: list[Professional]
    structures: dict[str, Structure]                       # by structure id
    mailboxes: dict[str, list[Mailbox]] = field(default_factory=dict)   # by owner id
    legal_entities: dict[str, LegalEntity] = field(default_factory=dict)  # by FINESS EJ
    memo: dict = field(default_factory=dict, repr=False)   # the search module's rows and indexes

    @classmethod
    def build(cls, created: str, professionals: list[Professional], structures: list[Structure],
              mailboxes: list[Mailbox]) -> Directory:
        owned: dict[str, list[Mailbox]] = defaultdict(list)
        for m in mailboxes:
            if m.owner and m.role != "outside":
                owned[m.owner].append(m)
        ejs: dict[str, LegalEntity] = {}
        known = {s.finess for s in structures}
        for s in structures:
            # an EJ that is itself a structure of the world is that structure, not a second Organization
            if s.finess_ej and s.finess_ej not in known and s.finess_ej not in ejs:
                ejs[s.finess_ej] = LegalEntity(s.finess_ej, s.name)
        return cls(created, professionals, {s.id: s for s in structures}, dict(owned), ejs)

    def organizations(self) -> list:
        return [*self.structures.values(), *self.legal_entities.values()]

    def roles(self) -> list[Role]:
        out = []
        for p in self.professionals:
            specs = (p.annuaire or {}).get("roles")
            if specs:
                out += [Role(p, self.structures[r["structure"]], r) for r in specs if r.get("structure") in
                        self.structures]
            elif p.structure in self.structures:
                out.append(Role(p, self.structures[p.structure], {}))
        return out

    def by_ref(self) -> dict[str, Any]:
        """"Practitioner/{id}", "PractitionerRole/{id}" or "Organization/{id}" -> its row (built once)."""
        if "by_ref" not in self.memo:
            index: dict = {f"Practitioner/{practitioner_id(p)}": p for p in self.professionals}
            index.update({f"Organization/{organization_id(o)}": o for o in self.organizations()})
            index.update({f"PractitionerRole/{role_id(r)}": r for r in self.roles()})
            self.memo["by_ref"] = index
        return self.memo["by_ref"]

    def ej_of(self, s: Structure) -> Structure | LegalEntity | None:
        if "ej" not in self.memo:
            by_finess = {x.finess: x for x in self.structures.values()}
            self.memo["ej"] = by_finess
        if not s.finess_ej or s.finess_ej == s.finess:
            return None
        return self.memo["ej"].get(s.finess_ej) or self.legal_entities.get(s.finess_ej)

    def pro_addresses(self, p: Professional) -> list[tuple[str, str]]:
        """(address, type) of a professional's MSSanté mailboxes, the `mssante` one first."""
        out = [(p.mssante.lower(), "PER")] if p.mssante else []
        seen = {a for a, _ in out}
        for m in self.mailboxes.get(p.id, []):
            if m.address not in seen:
                out.append((m.address, m.type))
                seen.add(m.address)
        return out

    def org_addresses(self, o: Any) -> list[tuple[str, str]]:
        if isinstance(o, LegalEntity):
            return []
        return [(m.address, m.type) for m in self.mailboxes.get(o.id, [])]


# Ids: opaque, stable, not a national id ---------------------------------------------------------------
def _digits(key: str, n: int) -> str:
    return str(int(hashlib.sha256(key.encode()).hexdigest()[:16], 16))[:n]


def practitioner_id(p: Professional) -> str:
    given = (p.annuaire or {}).get("id")
    return given or f"003-{_digits('PP' + p.idnps, 7)}-{_digits('EX' + p.idnps, 7)}"


def organization_id(o: Structure | LegalEntity) -> str:
    if isinstance(o, LegalEntity):
        return f"001-{_digits('EJ' + o.finess, 7)}"
    given = (o.annuaire or {}).get("id")
    return given or f"001-{_digits('EG' + (o.finess or o.id), 7)}"


def role_id(r: Role) -> str:
    return r.spec.get("id") or f"005-{_digits('SE' + r.pro.idnps + r.org.finess, 6)}-{_digits(r.pro.idnps, 7)}"


def role_identifier(r: Role) -> str:
    """The RPPS's idSituationExercice (10 digits in the IG's examples)."""
    return r.spec.get("identifier") or "1" + _digits("SI" + r.pro.idnps + r.org.finess, 9).rjust(9, "0")


# Rendering ----------------------------------------------------------------------------------------
def _coding(system: str, code: str, display: str | None = None) -> dict:
    out = {"system": system, "code": code}
    if display:
        out["display"] = display
    return out


def _meta(kind: str, created: str, given: dict | None) -> dict:
    meta = {"versionId": "1", "lastUpdated": created, "source": SOURCE, "profile": list(PROFILE[kind])}
    if given:
        meta.update(given)
    return meta


def _identifier(system: str, value: str, type_code: str | None) -> dict:
    out: dict = {"use": "official"}
    if type_code:
        out["type"] = {"coding": [_coding(ID_TYPE, type_code)]}
    out.update(system=system, value=value)
    return out


def mailbox(address: str, kind: str, *, metadata: bool = True, rank: int | None = None) -> dict:
    """An MSSanté address as AsMailboxMSSProfile says (ig-fsh/AsMailboxMSSProfile.fsh): the email-type
    extension 1..1, the metadata extension (its `type`) 0..1."""
    extension = [{"url": EXT_EMAIL_TYPE, "valueCoding": _coding(MESSAGING_TYPE, "MSSANTE")}]
    if metadata:
        extension.append({"url": EXT_MAILBOX, "extension": [
            {"url": "type", "valueCodeableConcept": {"coding": [_coding(MAILBOX_TYPE, kind)]}}]})
    out: dict = {"extension": extension, "system": "email", "value": address}
    if rank is not None:
        out["rank"] = rank
    return out


def _mailboxes(addresses: list[tuple[str, str]], p: Professional | None = None) -> list[dict]:
    extra = (p.annuaire or {}) if p is not None else {}
    return [mailbox(a, k, metadata=extra.get("mailbox_metadata", True),
                    rank=extra.get("mailbox_rank") if i == 0 else None) for i, (a, k) in enumerate(addresses)]


def practitioner(d: Directory, p: Professional) -> dict:
    extra = p.annuaire or {}
    identifiers = [_identifier(SYS_IDNPS, p.idnps, "IDNPS")]
    if p.rpps:
        identifiers.append(_identifier(SYS_RPPS, p.rpps, "RPPS"))
    name: dict = {"use": "usual", "family": p.family_name, "given": [p.given_name]}
    if extra.get("prefix"):
        name = {"prefix": [extra["prefix"]], **name}
    out: dict = {"resourceType": "Practitioner", "id": practitioner_id(p),
                 "meta": _meta("Practitioner", d.created, extra.get("meta")), "language": "fr",
                 "identifier": identifiers, "active": True, "name": [name]}
    telecom = _mailboxes(d.pro_addresses(p), p)
    if telecom:
        out["telecom"] = telecom
    out["qualification"] = _qualifications(p)
    return out


def _qualifications(p: Professional) -> list[dict]:
    out = []
    for degree in (p.annuaire or {}).get("degrees") or []:
        out.append({"code": {"coding": [_coding(DEGREE, degree["code"]),
                                        _coding(DEGREE_TYPE, degree.get("type", "DE"))]}})
    out.append({"code": {"coding": [_coding(PROFESSION, p.profession), _coding(CATEGORY, "C")]}})
    if p.specialty:
        # savoir-faire slice: the specialty (TRE-R38) with its kind (TRE-R04 `S`, spécialité ordinale)
        out.append({"code": {"coding": [_coding(SPECIALTY, p.specialty), _coding(SKILL_TYPE, "S")]}})
    return out


def role_codes(r: Role) -> list[tuple[str, str]]:
    """(system, code) of the role's code slices: genreActivite, modeExercice, fonction."""
    liberal = r.org.directory_only
    return [(GENRE, r.spec.get("genre", "GENR01")), (MODE, r.spec.get("mode", "L" if liberal else "S")),
            (FUNCTION, r.spec.get("function", "FON-AU"))]


def practitioner_role(d: Directory, r: Role) -> dict:
    out: dict = {
        "resourceType": "PractitionerRole", "id": role_id(r),
        "meta": _meta("PractitionerRole", d.created, r.spec.get("meta")), "language": "fr",
        "identifier": [{"system": SYS_RPPS, "value": role_identifier(r)}], "active": True,
        "practitioner": {"reference": f"Practitioner/{practitioner_id(r.pro)}"},
        "organization": {"reference": f"Organization/{organization_id(r.org)}"},
        "code": [{"coding": [_coding(s, c)]} for s, c in role_codes(r)],
    }
    # the professional's PER/CAB boxes (use-case_uc-bal-mss.md §1.2); a role the scenario spells out says so
    telecom = _mailboxes(d.pro_addresses(r.pro), r.pro) if r.spec.get("mailboxes", not r.spec) else []
    if telecom:
        out["telecom"] = telecom
    return out


def org_kind(o: Structure | LegalEntity) -> str:
    if isinstance(o, LegalEntity):
        return "LEGAL-ENTITY"
    return (o.annuaire or {}).get("kind") or "GEOGRAPHICAL-ENTITY"


# The sector (TRE-R02, secteur d'activité): given by the scenario, else a structure of the hospital is SA01
# (établissement public de santé) and a directory-only one SA08 (cabinet de groupe)... as the world does not
# say; an EJ takes its EG's.
SECTORS = {"SA01": "Etablissement public de santé", "SA07": "Cabinet individuel", "SA08": "Cabinet de groupe"}


def sector(o: Structure | LegalEntity, d: Directory | None = None) -> str:
    if isinstance(o, LegalEntity):
        return "SA01"
    return (o.annuaire or {}).get("sector") or ("SA07" if o.directory_only else "SA01")


def org_identifiers(o: Structure | LegalEntity) -> list[tuple[str, str, str]]:
    """(system, value, fr-core type) of an Organization's identifiers."""
    if isinstance(o, LegalEntity):
        return [(SYS_IDNST, "1" + o.finess, "IDNST"), (SYS_FINESS, o.finess, "FINEJ")]
    extra = o.annuaire or {}
    ej = org_kind(o) == "LEGAL-ENTITY"
    out = [(SYS_IDNST, extra.get("idnst") or o.idnst, "IDNST")]
    if o.finess and extra.get("finess_listed", True):
        out.append((SYS_FINESS, o.finess, "FINEJ" if ej else "FINEG"))
    if extra.get("rpps_rang"):
        out.append((SYS_RPPS_RANG, extra["rpps_rang"], "RPPSRG"))
    if o.siret:
        out.append((SYS_SIRET, o.siret, "SIRET"))
    return out


def _address(s: Structure) -> list[dict]:
    a = s.address or {}
    given = (s.annuaire or {}).get("address") or {}
    if not any(a.get(k) for k in ("line", "postal_code", "city")) and not given:
        return []
    out: dict = {}
    if given.get("insee"):
        out["extension"] = [{"url": EXT_INSEE, "valueCoding": _coding(COMMUNE, given["insee"])}]
    parts = [(k, given[k]) for k in ("houseNumber", "streetNameType", "streetNameBase") if given.get(k)]
    if parts:   # the street in ISO 21090 parts, as PP19DP-Organization-EG-CH.fsh gives it
        out["_line"] = [{"extension": [{"url": ADXP + k, "valueString": v} for k, v in parts]}]
        out["line"] = [None]
    elif a.get("line"):
        out["line"] = [a["line"]]
    if a.get("city"):
        out["city"] = a["city"]
    if a.get("postal_code"):
        out["postalCode"] = a["postal_code"]
    return [out]


def organization(d: Directory, o: Structure | LegalEntity) -> dict:
    extra = {} if isinstance(o, LegalEntity) else (o.annuaire or {})
    out: dict = {"resourceType": "Organization", "id": organization_id(o),
                 "meta": _meta("Organization", d.created, extra.get("meta")), "language": "fr"}
    if extra.get("opened"):
        out["extension"] = [{"url": EXT_PERIOD, "valuePeriod": {"start": extra["opened"]}}]
    out["identifier"] = [_identifier(s, v, t) for s, v, t in org_identifiers(o)]
    out["active"] = True
    out["type"] = [
        {"extension": [{"url": EXT_ORG_TYPES, "valueCode": "organizationType"}],
         "coding": [_coding(ORG_TYPE, org_kind(o))]},
        {"extension": [{"url": EXT_ORG_TYPES, "valueCode": "secteurActiviteRASS"}],
         "coding": [_coding(SECTOR, sector(o))]},
    ]
    out["name"] = o.name
    if extra.get("alias"):
        out["alias"] = [extra["alias"]]
    telecom = [{"system": "phone", "value": extra["phone"], "rank": 1}] if extra.get("phone") else []
    if extra.get("fax"):
        telecom.append({"system": "fax", "value": extra["fax"]})
    telecom += _mailboxes(d.org_addresses(o))
    if telecom:
        out["telecom"] = telecom
    if isinstance(o, Structure):
        address = _address(o)
        if address:
            out["address"] = address
        ej = d.ej_of(o)
        if ej is not None and org_kind(o) == "GEOGRAPHICAL-ENTITY":
            out["partOf"] = {"reference": f"Organization/{organization_id(ej)}"}
    return out
