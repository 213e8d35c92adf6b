"""The role rows of the VIHF table [trans-cda-r2/mapping.md, "Mapping VIHF pour le DMP", the three
`urn:oasis:names:tc:xacml:2.0:subject:role` rows], checked as findings."""

from __future__ import annotations

from mockbench.formats.findings import finding

from .token import (
    AUTOMATE,
    FIRST_ROLE_SYSTEMS,
    OID_AUTOMATE,
    OID_AUTRE_PROFESSION,
    OID_PROFESSION,
    OID_PROFESSION_SOCIAL,
    OID_PROFESSION_TRAINING,
    OID_ROLE_PRISE_CHARGE,
    SECOND_ROLE,
)


def role_findings(roles: tuple[tuple[str, str], ...]) -> list[dict]:
    """The role rows of mapping.md's VIHF table, as findings: the first occurrence's code system, the second
    occurrence required for doctors, pharmacists and the professionals characterized by their role."""
    out: list[dict] = []
    if not roles:
        return out
    if AUTOMATE in roles:
        return out     # an automated process: "Valeur AUTOMATE quand les autres cas ne sont pas possibles"
    (code, system), rest = roles[0], roles[1:]
    if system not in FIRST_ROLE_SYSTEMS:
        out.append(finding("VIHF/Role", f"first role {code}^{system or '(no codeSystem)'}: the VIHF table "
                           f"(trans-cda-r2/mapping.md) takes its code system from "
                           f"{', '.join(f'{n} ({o})' for o, n in FIRST_ROLE_SYSTEMS.items() if o != OID_AUTOMATE)}"
                           " or AUTOMATE",
                           fr=f"premier rôle {code}^{system or '(sans codeSystem)'} : la table du VIHF (trans-cda-r2/mapping.md) prend son système de codes parmi {', '.join(f'{n} ({o})' for o, n in FIRST_ROLE_SYSTEMS.items() if o != OID_AUTOMATE)} ou AUTOMATE"))
        return out
    if system in (OID_PROFESSION, OID_PROFESSION_TRAINING) and code in SECOND_ROLE:
        wanted, name, who = SECOND_ROLE[code]
    elif system == OID_AUTRE_PROFESSION or (system == OID_PROFESSION_SOCIAL and code == "41"):
        wanted, name, who = OID_ROLE_PRISE_CHARGE, "TRE_R85-RolePriseCharge", "a professional characterized by role"
    else:
        if rest:
            out.append(finding("VIHF/Role", f"a second role ({', '.join(f'{c}^{s}' for c, s in rest)}) for profession "
                               f"{code}^{system}: the VIHF table (trans-cda-r2/mapping.md) has a second occurrence "
                               "only for doctors, pharmacists and professionals characterized by role", "info",
                               fr=f"un second rôle ({', '.join(f'{c}^{s}' for c, s in rest)}) pour la profession {code}^{system} : la table du VIHF (trans-cda-r2/mapping.md) ne prévoit une seconde occurrence que pour les médecins, les pharmaciens et les professionnels caractérisés par leur rôle"))
        return out
    if not rest:
        out.append(finding("VIHF/Role", f"{who} (role {code}^{system}) needs a second role occurrence from {name} "
                           f"({wanted}) (trans-cda-r2/mapping.md, \"2e occurrence\")",
                           fr=f"{ {'a doctor': 'un médecin', 'a pharmacist': 'un pharmacien'}.get(who, 'un professionnel caractérisé par son rôle')} (rôle {code}^{system}) a besoin d'une seconde occurrence de rôle tirée de {name} ({wanted}) (trans-cda-r2/mapping.md, « 2e occurrence »)"))
    elif rest[0][1] != wanted:
        out.append(finding("VIHF/Role", f"the second role {rest[0][0]}^{rest[0][1] or '(no codeSystem)'} of {who} "
                           f"takes its code from {name} ({wanted}) (trans-cda-r2/mapping.md)",
                           fr=f"le second rôle {rest[0][0]}^{rest[0][1] or '(sans codeSystem)'} de { {'a doctor': 'un médecin', 'a pharmacist': 'un pharmacien'}.get(who, 'un professionnel caractérisé par son rôle')} prend son code dans {name} ({wanted}) (trans-cda-r2/mapping.md)"))
    if len(rest) > 1:
        out.append(finding("VIHF/Role", f"{len(roles)} role occurrences; the VIHF table has at most two", "info",
                           fr=f"{len(roles)} occurrences de rôle ; la table du VIHF en prévoit deux au plus"))
    return out
