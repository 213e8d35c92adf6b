"""The world's `Actor` for a VIHF: the professional its NameID names, the structure its
Identifiant_Structure names, with findings on how they were resolved."""

from __future__ import annotations

from mockbench.formats.findings import finding
from mockbench.world import errors
from mockbench.world.model import Actor

from .token import A_STRUCTURE, OID_PROFESSION, Vihf, VihfError


def _structure_id(world, tx, key: str) -> str:
    """The world's id of the structure an Identifiant_Structure names: the key as an id or FINESS, then
    without its first character (IDNST "1"+FINESS, "3"+SIRET), then as a structure's IDNST or SIRET."""
    if not key:
        return ""
    for candidate in (key, key[1:]):
        if candidate:
            try:
                return world.directory.structure(tx, candidate).id
            except errors.UnknownStructure:
                pass
    for s in world.directory.structures(tx):
        if key in (s.idnst, s.siret) or (s.siret and key[1:] == s.siret):
            return s.id
    return ""


def actor_for(world, tx, vihf: Vihf, *, accept_unknown: bool = False) -> tuple[Actor, list[dict]]:
    """The world's Actor for a VIHF, and findings about how it was resolved.

    The professional is looked up by NameID (IDNPS). Unknown: VIHFUnknownProfessional, or, with
    `accept_unknown`, an Actor whose id is the IDNPS itself, with a finding: the world then refuses most
    operations with PROFESSIONAL_UNKNOWN (authorizations, documents...), which is what a bench wants when it
    lets the DMP answer instead of the door. The structure is the one Identifiant_Structure names; when the
    world does not know it, the professional's own structure, with a finding; when there is none either,
    VIHFUnknownStructure (or, with `accept_unknown`, no structure and a finding). An automated process
    (role AUTOMATE) acts as a professional with its structure, with a finding."""
    findings: list[dict] = []
    try:
        prof = world.directory.professional(tx, vihf.name_id)
    except errors.UnknownProfessional:
        if not accept_unknown:
            raise VihfError("VIHFUnknownProfessional", f"no professional has the IDNPS {vihf.name_id}",
                            attribute="NameID") from None
        prof = None
        findings.append(finding("VIHF/NameID", f"no professional has the IDNPS {vihf.name_id}: acting under "
                                "that IDNPS; the DMP will refuse most operations (PROFESSIONAL_UNKNOWN)",
                                fr=f"aucun professionnel n'a l'IDNPS {vihf.name_id} : action sous cet IDNPS ; le DMP refusera la plupart des opérations (PROFESSIONAL_UNKNOWN)"))

    structure = _structure_id(world, tx, vihf.structure_id)
    if structure and prof is not None and prof.structure and structure != prof.structure:
        findings.append(finding("VIHF/Identifiant_Structure", f"{vihf.name_id} acts for structure {structure} "
                                f"(Identifiant_Structure {vihf.structure_id}), not for its own structure "
                                f"{prof.structure}", "info",
                                fr=f"{vihf.name_id} agit pour la structure {structure} (Identifiant_Structure {vihf.structure_id}), et non pour sa propre structure {prof.structure}"))
    if not structure:
        own = prof.structure if prof is not None else ""
        if own:
            structure = own
            findings.append(finding("VIHF/Identifiant_Structure", f"no structure is known as "
                                    f"{vihf.structure_id}: acting for the professional's own structure {own}",
                                    fr=f"aucune structure n'est connue sous {vihf.structure_id} : action pour la structure propre du professionnel {own}"))
        elif accept_unknown:
            findings.append(finding("VIHF/Identifiant_Structure", f"no structure is known as "
                                    f"{vihf.structure_id} and the professional has none: acting without a "
                                    "structure",
                                    fr=f"aucune structure n'est connue sous {vihf.structure_id} et le professionnel n'en a pas : action sans structure"))
        else:
            raise VihfError("VIHFUnknownStructure", f"no structure is known as {vihf.structure_id} and the "
                            f"professional {vihf.name_id} has none", attribute=A_STRUCTURE)

    if vihf.automated:
        findings.append(finding("VIHF/Role", f"automated process (AUTOMATE): acts as professional "
                                f"{vihf.name_id} for structure {structure or '(none)'}", "info",
                                fr=f"traitement automatisé (AUTOMATE) : agit comme le professionnel {vihf.name_id} pour la structure {structure or '(aucune)'}"))
    elif prof is not None:
        professions = [code for code, system in vihf.roles if system == OID_PROFESSION]
        if professions and prof.profession and prof.profession not in professions:
            findings.append(finding("VIHF/Role", f"the VIHF gives profession {', '.join(professions)}; the "
                                    f"directory has {prof.profession} for {vihf.name_id}",
                                    fr=f"le VIHF donne la profession {', '.join(professions)} ; l'annuaire a {prof.profession} pour {vihf.name_id}"))

    actor = Actor(kind="professional", id=prof.id if prof is not None else vihf.name_id, structure=structure,
                  mode=vihf.mode, authentication=vihf.authentication)
    return actor, findings

