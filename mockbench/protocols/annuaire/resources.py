"""The world's directory as FHIR R4 resources, in the shape of the ANS "API FHIR Annuaire Santé"
(profiles of ansforge/IG-fhir-annuaire: as-practitioner, as-practitionerrole, as-organization,
as-healthcareservice).

Choices, documented in the README:
- ids: Practitioner = the IDNPS (`8` + RPPS), Organization = the IDNST (`1` + FINESS), PractitionerRole =
  `{IDNPS}-{IDNST}` (one exercise situation per professional and structure), HealthcareService =
  `hs-{IDNST}` (one per structure); scenario names may hold `_`, which a FHIR id may not.
- identifiers: IDNPS `urn:oid:1.2.250.1.71.4.2.1` and RPPS `http://rpps.fr` (types IDNPS / RPPS of
  fr-v2-0203); FINESS `http://finess.sante.gouv.fr`, IDNST `urn:oid:1.2.250.1.71.4.2.2`, SIRET `https://sirene.fr`.
- profession on PractitionerRole.code (TRE-G15), with the category (TRE-R09, `C` civil); specialty on
  PractitionerRole.specialty (TRE-R38, e.g. SM26).
- MSSanté: Practitioner.telecom (system email) carrying the mailbox metadata extension (type PER, ORG, APP,
  CAB), one per address: the professional's `mssante` and the mailboxes the world gives that professional.
  ORG / APP mailboxes of a structure are on the Organization's telecom.
- names: the civil name on Practitioner.name, the exercise name on PractitionerRole (name extension).
- meta.lastUpdated: when the world was seeded (the scenario's loading time).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from ...world.model import Mailbox, Professional, Structure

IG = "https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition"
PROFILE = {
    "Practitioner": f"{IG}/as-practitioner",
    "PractitionerRole": f"{IG}/as-practitionerrole",
    "Organization": f"{IG}/as-organization",
    "HealthcareService": f"{IG}/as-healthcareservice",
}
EXT_MAILBOX = f"{IG}/as-ext-mailbox-mss-metadata"
EXT_ROLE_NAME = f"{IG}/as-ext-practitionerrole-name"

NOS = "https://mos.esante.gouv.fr/NOS"
PROFESSION = f"{NOS}/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante"
CATEGORY = f"{NOS}/TRE_R09-CategorieProfessionnelle/FHIR/TRE-R09-CategorieProfessionnelle"
SPECIALTY = f"{NOS}/TRE_R38-SpecialiteOrdinale/FHIR/TRE-R38-SpecialiteOrdinale"
MAILBOX_TYPE = f"{NOS}/TRE_R256-TypeMessagerie/FHIR/TRE-R256-TypeMessagerie"
ID_TYPE_PRO = "http://interopsante.org/fhir/CodeSystem/fr-v2-0203"
ID_TYPE_ORG = f"{NOS}/TRE_G07-TypeIdentifiantStructure/FHIR/TRE-G07-TypeIdentifiantStructure"

SYS_IDNPS = "urn:oid:1.2.250.1.71.4.2.1"
SYS_RPPS = "http://rpps.fr"
SYS_ADELI = "urn:oid:1.2.250.1.71.4.2.1.adeli"   # not served by the real API any more; kept for ADELI-only pros
SYS_FINESS = "http://finess.sante.gouv.fr"
SYS_IDNST = "urn:oid:1.2.250.1.71.4.2.2"
SYS_SIRET = "https://sirene.fr"

PROFESSIONS = {"10": "Médecin", "21": "Pharmacien", "40": "Chirurgien-Dentiste", "50": "Sage-Femme",
               "60": "Infirmier", "70": "Masseur-Kinésithérapeute", "91": "Orthophoniste"}
SPECIALTIES = {"SM26": "Qualifié en Médecine Générale", "SM54": "Médecine générale (SM54)",
               "SM04": "Cardiologie et maladies vasculaires", "SM40": "Pédiatrie", "SM53": "Spécialiste en "
               "Médecine Générale", "SM44": "Radio-diagnostic", "SCD01": "Orthopédie dento-faciale"}


@dataclass
class Directory:
    """What the door searches: the world's professionals, structures and mailboxes, indexed."""

    created: str
    professionals: list[Professional]
    structures: dict[str, Structure]                       # by structure id
    mailboxes: dict[str, list[Mailbox]] = field(default_factory=dict)   # by owner id
    _by_ref: dict | None = field(default=None, repr=False)
    memo: dict = field(default_factory=dict, repr=False)   # the search module's rows and indexes

    @classmethod
    def build(cls, created: str, professionals: list[Professional], structures: list[Structure],
              mailboxes: list[Mailbox]) -> Directory:
        owned: dict[str, list[Mailbox]] = defaultdict(list)
        for m in mailboxes:
            if m.owner and m.role != "outside":
                owned[m.owner].append(m)
        return cls(created, professionals, {s.id: s for s in structures}, dict(owned))

    def by_ref(self) -> dict:
        """"Practitioner/{id}" or "Organization/{id}" -> the professional or structure (built once)."""
        if self._by_ref is None:
            index: dict = {f"Practitioner/{practitioner_id(p)}": p for p in self.professionals}
            index.update({f"Organization/{organization_id(s)}": s for s in self.structures.values()})
            self._by_ref = index
        return self._by_ref

    def roles(self) -> list[tuple[Professional, Structure]]:
        return [(p, self.structures[p.structure]) for p in self.professionals if p.structure in self.structures]

    def pro_addresses(self, p: Professional) -> list[tuple[str, str]]:
        """(address, type) of a professional's MSSanté mailboxes, the `mssante` one first."""
        out = [(p.mssante.lower(), "PER")] if p.mssante else []
        seen = {a for a, _ in out}
        for m in self.mailboxes.get(p.id, []):
            if m.address not in seen:
                out.append((m.address, m.type))
                seen.add(m.address)
        return out

    def org_addresses(self, s: Structure) -> list[tuple[str, str]]:
        return [(m.address, m.type) for m in self.mailboxes.get(s.id, [])]


# Ids ----------------------------------------------------------------------------------------------
def practitioner_id(p: Professional) -> str:
    return p.idnps


def organization_id(s: Structure) -> str:
    return s.idnst


def role_id(p: Professional, s: Structure) -> str:
    return f"{p.idnps}-{s.idnst}"


def service_id(s: Structure) -> str:
    return f"hs-{s.idnst}"


# Rendering ----------------------------------------------------------------------------------------
def _meta(kind: str, created: str) -> dict:
    return {"versionId": "1", "lastUpdated": created, "profile": [PROFILE[kind]]}


def _coding(system: str, code: str, display: str | None = None) -> dict:
    out = {"system": system, "code": code}
    if display:
        out["display"] = display
    return out


def _telecom(addresses: list[tuple[str, str]]) -> list[dict]:
    return [{"extension": [{"url": EXT_MAILBOX, "extension": [
                {"url": "type", "valueCodeableConcept": {"coding": [_coding(MAILBOX_TYPE, kind)]}}]}],
             "system": "email", "value": address} for address, kind in addresses]


def practitioner(d: Directory, p: Professional) -> dict:
    identifiers = [{"use": "official", "type": {"coding": [_coding(ID_TYPE_PRO, "IDNPS")]},
                    "system": SYS_IDNPS, "value": p.idnps}]
    if p.rpps:
        identifiers.append({"use": "official", "type": {"coding": [_coding(ID_TYPE_PRO, "RPPS")]},
                            "system": SYS_RPPS, "value": p.rpps})
    if p.adeli:
        identifiers.append({"use": "official", "type": {"coding": [_coding(ID_TYPE_PRO, "ADELI")]},
                            "system": SYS_ADELI, "value": p.adeli})
    out: dict = {"resourceType": "Practitioner", "id": practitioner_id(p), "meta": _meta("Practitioner", d.created),
                 "identifier": identifiers, "active": True,
                 "name": [{"use": "usual", "family": p.family_name, "given": [p.given_name]}]}
    telecom = _telecom(d.pro_addresses(p))
    if telecom:
        out["telecom"] = telecom
    return out


def practitioner_role(d: Directory, p: Professional, s: Structure) -> dict:
    code = [{"coding": [_coding(PROFESSION, p.profession, PROFESSIONS.get(p.profession))]},
            {"coding": [_coding(CATEGORY, "C", "Civil")]}]
    out: dict = {
        "resourceType": "PractitionerRole", "id": role_id(p, s), "meta": _meta("PractitionerRole", d.created),
        "extension": [{"url": EXT_ROLE_NAME, "valueHumanName": {"family": p.family_name, "given": [p.given_name]}}],
        "active": True,
        "practitioner": {"reference": f"Practitioner/{practitioner_id(p)}",
                         "display": f"{p.given_name} {p.family_name}"},
        "organization": {"reference": f"Organization/{organization_id(s)}", "display": s.name},
        "code": code,
    }
    if p.specialty:
        out["specialty"] = [{"coding": [_coding(SPECIALTY, p.specialty, SPECIALTIES.get(p.specialty))]}]
    telecom = _telecom(d.pro_addresses(p))
    if telecom:
        out["telecom"] = telecom
    return out


def _address(s: Structure) -> list[dict]:
    a = s.address or {}
    if not any(a.get(k) for k in ("line", "postal_code", "city")):
        return []
    out: dict = {"use": "work", "type": "both"}
    if a.get("line"):
        out["line"] = [a["line"]]
    if a.get("city"):
        out["city"] = a["city"]
    if a.get("postal_code"):
        out["postalCode"] = a["postal_code"]
    out["country"] = "FR"
    return [out]


def organization(d: Directory, s: Structure) -> dict:
    identifiers = [
        {"use": "official", "type": {"coding": [_coding(ID_TYPE_ORG, "FINEG", "FINESS d'entité géographique")]},
         "system": SYS_FINESS, "value": s.finess},
        {"use": "official", "type": {"coding": [_coding(ID_TYPE_ORG, "IDNST")]}, "system": SYS_IDNST,
         "value": s.idnst},
    ]
    if s.finess_ej:
        identifiers.append({"use": "official", "type": {"coding": [_coding(ID_TYPE_ORG, "FINEJ",
                            "FINESS d'entité juridique")]}, "system": SYS_FINESS, "value": s.finess_ej})
    if s.siret:
        identifiers.append({"use": "official", "type": {"coding": [_coding(ID_TYPE_ORG, "SIRET")]},
                            "system": SYS_SIRET, "value": s.siret})
    out: dict = {"resourceType": "Organization", "id": organization_id(s), "meta": _meta("Organization", d.created),
                 "identifier": identifiers, "active": True,
                 "type": [{"coding": [_coding(SECTOR, org_type(s), SECTORS[org_type(s)])]}],
                 "name": s.name}
    telecom = _telecom(d.org_addresses(s))
    if telecom:
        out["telecom"] = telecom
    address = _address(s)
    if address:
        out["address"] = address
    return out


# The organisation's kind, TRE-R02 (secteur d'activité, the nomenclature of the XDS healthcareFacilityTypeCode):
# the world does not hold it, so a structure of the hospital is SA01 (établissement public de santé) and a
# directory-only structure SA07 (cabinet individuel).
SECTOR = f"{NOS}/TRE_R02-SecteurActivite/FHIR/TRE-R02-SecteurActivite"
SECTORS = {"SA01": "Etablissement public de santé", "SA07": "Cabinet individuel"}


def org_type(s: Structure) -> str:
    return "SA07" if s.directory_only else "SA01"


def healthcare_service(d: Directory, s: Structure) -> dict:
    return {"resourceType": "HealthcareService", "id": service_id(s), "meta": _meta("HealthcareService", d.created),
            "active": True, "providedBy": {"reference": f"Organization/{organization_id(s)}", "display": s.name},
            "name": s.name}
