"""World -> claims: the Pro Santé Connect userinfo (DOMAIN.md section 4) and the standard OIDC claims of the
establishment provider, both built from a professional of the world and the structure it works in."""

from __future__ import annotations

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


def _structure(world: World, tx: Tx, pro: Professional) -> Structure | None:
    if not pro.structure:
        return None
    try:
        return world.directory.structure(tx, pro.structure)
    except errors.NotFound:
        return None


def psc_userinfo(world: World, tx: Tx, pro: Professional) -> dict[str, Any]:
    s = _structure(world, tx, pro)
    sector = SECTOR_HOSPITAL if s is not None and s.finess else SECTOR_OFFICE
    address = (s.address if s is not None else {}) or {}
    activity = {
        "codeModeExercice": "S" if s is not None else "L",
        "codeSecteurDactivite": sector,
        "codeSectionPharmacien": "",
        "codeRole": "",
        "codeGenreActivite": "GENR01",
        "numeroSiretSite": s.siret if s is not None else "",
        "numeroSirenSite": s.siret[:9] if s is not None and s.siret else "",
        "numeroFinessSite": s.finess if s is not None else "",
        "numeroFinessetablissementJuridique": s.finess_ej if s is not None else "",
        "identifiantTechniqueDeLaStructure": (s.idnst or "1" + s.finess) if s is not None else "",
        "raisonSocialeSite": s.name if s is not None else "",
        "enseigneCommercialeSite": "",
        "libelleVoie": address.get("line", ""),
        "bureauCedex": " ".join(x for x in (address.get("postal_code", ""), address.get("city", "")) if x),
        "codePostal": address.get("postal_code", ""),
        "codeCommune": "",
        "codePays": "99000",
        "adresseEMail": pro.mssante,
    }
    other_ids = [{"identifiant": pro.idnps, "origine": "RPPS" if pro.rpps else "ADELI", "qualite": 1}]
    if pro.rpps:
        other_ids.append({"identifiant": pro.rpps, "origine": "RPPS", "qualite": 1})
    return {
        "sub": pro.idnps,
        "SubjectNameID": pro.idnps,
        "preferred_username": pro.idnps,
        "given_name": pro.given_name,
        "family_name": pro.family_name,
        "SubjectOrganization": s.name if s is not None else "",
        "SubjectOrganizationID": activity["identifiantTechniqueDeLaStructure"],
        "SubjectRole": [f"{pro.profession}^{ROLE_SYSTEM}"],
        "Secteur_Activite": f"{sector}^{SECTOR_SYSTEM}",
        "otherIds": other_ids,
        "SubjectRefPro": {"exercices": [{
            "codeProfession": pro.profession,
            "codeCategorieProfessionnelle": "C",
            "codeCiviliteDexercice": "",
            "nomDexercice": pro.family_name,
            "prenomDexercice": pro.given_name,
            "codeTypeSavoirFaire": "S" if pro.specialty else "",
            "codeSavoirFaire": pro.specialty,
            "activities": [activity],
        }]},
        "Mode_Acces_Raison": "",
        "Acces_Regulation_Medicale": "FAUX",
        "Palier_Authentification": "APPPRIP3^1.2.250.1.213.1.5.1.1.1",
        "UITVersion": "1.0",
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
