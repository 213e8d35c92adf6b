"""World -> claims: the Pro Santé Connect userinfo and the standard OIDC claims of the establishment
provider, both built from a professional of the world and the structure it works in.

The PSC shape follows a real sandbox userinfo, `specs/psc/sandbox_userinfo_2023-05-12.json` (see
`specs/SOURCES.md`): an opaque `sub` (`f:<uuid>:<national id>`) while `SubjectNameID` and
`preferred_username` carry the national id; `SubjectOrganizationID` and each activity's
`identifiantTechniqueDeLaStructure` are `F` + FINESS for an establishment and `R` + a number for a practice,
with the structure's former identifier in `ancienIdentifiantDeLaStructure` (`1` + FINESS, the IDNST);
`authMode`, `PSI_Locale`, `SubjectRefPro.codeCivilite`, the activity fields and one `otherIds` entry."""

from __future__ import annotations

import hashlib
import re
import uuid
from typing import TYPE_CHECKING, Any

from ...world import errors
from ...world.model import Professional, Structure
from ...world.store import Tx

if TYPE_CHECKING:
    from ...world.world import World

ROLE_SYSTEM = "1.2.250.1.213.1.1.5.5"        # TRE-G15 profession codes as PSC sends them in SubjectRole
SECTOR_SYSTEM = "1.2.250.1.71.4.2.4"         # TRE-R02 secteur d'activité
SECTOR_HOSPITAL = "SA01"                     # établissement public de santé
SECTOR_OFFICE = "SA07"                       # cabinet individuel
PSI_LOCALE = "1.2.250.1.213.1.3.1.1"         # the sample's PSI_Locale
AUTH_MODES = ("CARD", "MOBILE")              # CPS card or e-CPS: the sample's authMode, CIBA's channel
# One namespace for every bench: a professional's sub is the same on every bench and across resets, as the
# real one is stable for a professional, and reveals nothing a DPI could compute from the national id.
SUB_NAMESPACE = uuid.UUID("9b1f3c52-4a7e-5d0b-8e21-6c3f0a9d7e14")
# Ordinal authorities by profession (TRE-G15): the sample's autoriteDenregistrement reads CNOM/CNOM/CNOM for
# a doctor's practice and CNOM/CNOM/ARS for an establishment.
ORDERS = {"10": "CNOM", "21": "CNOP", "40": "CNOCD", "50": "CNOSF", "60": "ONI", "70": "CNOMK", "80": "ONPP"}
DOCTOR_TITLE = ("10", "21", "40")            # exercise civility DR, as the sample's médecin
# TRE-R35 type de voie: the sample's "R" for a rue
STREET_TYPES = {"rue": "R", "avenue": "AV", "boulevard": "BD", "place": "PL", "chemin": "CHE", "allee": "ALL",
                "allée": "ALL", "impasse": "IMP", "quai": "QU", "route": "RTE", "cours": "CRS"}
_STREET = re.compile(r"^\s*(\d+)\s*(bis|ter|quater)?\s*,?\s+(\S+)\s+(.+?)\s*$", re.IGNORECASE)


def psc_subject(pro: Professional) -> str:
    """The PSC `sub`: `f:<uuid>:<national id>` as in the sandbox sample, stable per professional."""
    return f"f:{uuid.uuid5(SUB_NAMESPACE, pro.idnps)}:{pro.idnps}"


def _practice_number(key: str) -> str:
    return str(int(hashlib.sha256(f"R:{key}".encode()).hexdigest()[:12], 16) % 900000 + 100000)


def structure_ids(s: Structure) -> tuple[str, str]:
    """(identifiantTechniqueDeLaStructure, ancienIdentifiantDeLaStructure) as the sample gives them:
    `F` + FINESS (old id `1` + FINESS, the IDNST) for an establishment, `R` + a number for a practice (old id
    its IDNST, or `3` + SIRET)."""
    if s.finess:
        return "F" + s.finess, s.idnst or "1" + s.finess
    return "R" + _practice_number(s.id), s.idnst or ("3" + s.siret if s.siret else "")


def practice_ids(pro: Professional) -> tuple[str, str]:
    """The ids of the practice of a professional who works in no structure of the world: `R` + a number, and
    as the sample's old id (`499700427885006`) `4` + the RPPS + a 3-digit rank."""
    rpps = pro.rpps or (pro.idnps[1:] if pro.idnps.startswith("8") else "")
    return "R" + _practice_number("pro:" + pro.id), ("4" + rpps + "001") if rpps else ""


def _street(line: str) -> dict[str, str]:
    m = _STREET.match(line or "")
    if m and m.group(3).lower() in STREET_TYPES:
        return {"numeroVoie": m.group(1), "indiceRepetitionVoie": (m.group(2) or "")[:1].upper(),
                "codeTypeDeVoie": STREET_TYPES[m.group(3).lower()], "libelleVoie": m.group(4)}
    return {"numeroVoie": "", "indiceRepetitionVoie": "", "codeTypeDeVoie": "", "libelleVoie": line or ""}


def _structure(world: World, tx: Tx, pro: Professional) -> Structure | None:
    if not pro.structure:
        return None
    try:
        return world.directory.structure(tx, pro.structure)
    except errors.NotFound:
        return None


def _activity(pro: Professional, s: Structure | None) -> dict[str, Any]:
    """One entry of `SubjectRefPro.exercices[].activities[]`, with every field of the sample, in its order."""
    establishment = s is not None and bool(s.finess)
    technical, former = structure_ids(s) if s is not None else practice_ids(pro)
    address = (s.address if s is not None else {}) or {}
    order = ORDERS.get(pro.profession, "ARS")
    return {
        "codeModeExercice": "S" if establishment else "L",
        "codeSecteurDactivite": SECTOR_HOSPITAL if establishment else SECTOR_OFFICE,
        "codeSectionPharmacien": "",
        "codeRole": "",
        "codeGenreActivite": "",
        "numeroSiretSite": s.siret if s is not None else "",
        "numeroSirenSite": s.siret[:9] if s is not None and s.siret else "",
        "numeroFinessSite": s.finess if s is not None else "",
        "numeroFinessetablissementJuridique": s.finess_ej if s is not None else "",
        "identifiantTechniqueDeLaStructure": technical,
        "raisonSocialeSite": s.name if s is not None else f"CABINET {pro.family_name}",
        "enseigneCommercialeSite": "",
        "complementDestinataire": "",
        "complementPointGeographique": "",
        **_street(address.get("line", "")),
        "mentionDistribution": "",
        "bureauCedex": " ".join(x for x in (address.get("postal_code", ""), address.get("city", "")) if x),
        "codePostal": address.get("postal_code", ""),
        "codeCommune": "",
        "codePays": "99000",
        "telephone": "",
        "telephone2": "",
        "telecopie": "",
        "adresseEMail": pro.mssante,
        "codeDepartement": "",
        "ancienIdentifiantDeLaStructure": former,
        "autoriteDenregistrement": f"{order}/{order}/{'ARS' if establishment else order}",
    }


def psc_userinfo(world: World, tx: Tx, pro: Professional, auth_mode: str = "CARD") -> dict[str, Any]:
    s = _structure(world, tx, pro)
    activity = _activity(pro, s)
    return {
        "Secteur_Activite": f"{activity['codeSecteurDactivite']}^{SECTOR_SYSTEM}",
        "sub": psc_subject(pro),
        "SubjectOrganization": activity["raisonSocialeSite"],
        "Mode_Acces_Raison": "",
        "preferred_username": pro.idnps,
        "given_name": pro.given_name,
        "Acces_Regulation_Medicale": "FAUX",
        "UITVersion": "1.0",
        "authMode": auth_mode,
        "Palier_Authentification": "APPPRIP3^1.2.250.1.213.1.5.1.1.1",
        "SubjectRefPro": {
            "codeCivilite": "",          # the world holds no civility
            "exercices": [{
                "codeProfession": pro.profession,
                "codeCategorieProfessionnelle": "C",
                "codeCiviliteDexercice": "DR" if pro.profession in DOCTOR_TITLE else "",
                "nomDexercice": pro.family_name,
                "prenomDexercice": pro.given_name,
                "codeTypeSavoirFaire": "S" if pro.specialty else "",
                "codeSavoirFaire": pro.specialty,
                "activities": [activity],
            }]},
        "SubjectOrganizationID": activity["identifiantTechniqueDeLaStructure"],
        "SubjectRole": [f"{pro.profession}^{ROLE_SYSTEM}"],
        "PSI_Locale": PSI_LOCALE,
        # the sample has one entry, the national id with its origin
        "otherIds": [{"identifiant": pro.idnps, "origine": "RPPS" if pro.idnps.startswith("8") else "ADELI",
                      "qualite": 1}],
        "SubjectNameID": pro.idnps,
        "family_name": pro.family_name,
    }


def standard_userinfo(world: World, tx: Tx, pro: Professional) -> dict[str, Any]:
    s = _structure(world, tx, pro)
    claims: dict[str, Any] = {
        "sub": pro.idnps,
        "preferred_username": pro.id,
        "name": f"{pro.given_name} {pro.family_name}",
        "given_name": pro.given_name,
        "family_name": pro.family_name,
        "idnps": pro.idnps,
        "rpps": pro.rpps,
        "profession": pro.profession,
        "specialty": pro.specialty,
    }
    if pro.mssante:
        claims.update(email=pro.mssante, email_verified=True)
    if s is not None:
        claims.update(organization=s.name, finess=s.finess)
    return claims
