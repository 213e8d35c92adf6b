"""The X-MSS-* header fields of an MSSanté mail, as the "Référentiel socle MSSanté #2, Clients de Messageries
Sécurisées de Santé" (ANS, v1.0.1, §3.8.1 to §3.8.3) requires them of a sending system:

- ECO.2.4.1 `X-MSS-CODECDA`: set when the mail carries, in an IHE_XDM archive, one or more CDA documents; its
  value is the `code` of each CDA header (several documents: several values, comma-separated); absent when
  the mail carries no CDA in an IHE_XDM archive.
- ECO.2.4.2 `X-MSS-INS`: set under the same condition; `O` when the archive holds a qualified INS, `N`
  otherwise; absent without a CDA. A qualified INS, as the référentiel reads the INS annex of the CI-SIS: the
  INS matricule with its OID (an INS authority) and the identity traits (birth name, first given name, birth
  date, sex) in the CDA header.
- ECO.2.4.3 `X-MSS-NIL`: on every mail sent, the product reference the software got when declared on
  convergence.esante.gouv.fr.
- ECO.2.2.8 `X-MSS-MES: FIN` (3 capital letters), in a mail to a patient (`<INS>@patient.mssante.fr`, Mon
  espace santé) whose sender does not want the patient to reply (trans-cda-r2/mapping-mss.md, SMTP
  "X-MSS-MES").

`expected` gives what a sender must write for a package; `check` compares what a mail carries with it
(the findings the MSSanté door adds on the mails the software under test submits). No world, no wire.
"""

from __future__ import annotations

from collections.abc import Mapping

from .cda import INS_OIDS, CdaHeader
from .findings import finding

CODECDA, INS, NIL, MES = "X-MSS-CODECDA", "X-MSS-INS", "X-MSS-NIL", "X-MSS-MES"
RULE_CODECDA, RULE_INS, RULE_NIL = "REF2/ECO.2.4.1", "REF2/ECO.2.4.2", "REF2/ECO.2.4.3"
RULE_MES = "REF2/ECO.2.2.8"
PATIENT_DOMAIN = "@patient.mssante.fr"


def is_qualified_ins(cda: CdaHeader | None, *, reliability: str | None = None) -> bool:
    """ECO.2.4.2: the CDA names the patient by an INS (matricule and INS OID) with its traits (birth name,
    first given name, birth date, sex). `reliability` (PAM FR PID-32, when the sender knows it): an identity
    whose status is not VALI (qualified) is not qualified, whatever the document says."""
    if cda is None or cda.ins is None:
        return False
    value, oid = cda.ins
    if not value or oid not in INS_OIDS:
        return False
    if reliability is not None and "VALI" not in reliability.upper():
        return False
    first = cda.patient_first_given or (cda.patient_given or "").split(" ")[0]
    return all((cda.patient_family, first, cda.birth_date, (cda.sex or "") in ("M", "F", "U")))


def expected(cdas: list[CdaHeader | None], *, qualified: bool | None = None) -> dict[str, str]:
    """The X-MSS-CODECDA and X-MSS-INS values a mail carrying these CDA headers must have ({} for none).
    `qualified` overrides what the headers say about the INS (the sender knows better, e.g. PID-32)."""
    headers = [c for c in cdas if c is not None]
    if not headers:
        return {}
    codes = list(dict.fromkeys(c.type_code for c in headers if c.type_code))
    ins = qualified if qualified is not None else any(is_qualified_ins(c) for c in headers)
    out = {INS: "O" if ins else "N"}
    if codes:
        out[CODECDA] = ",".join(codes)
    return out


def _values(text: str | None) -> list[str]:
    return [v.strip() for v in (text or "").split(",") if v.strip()]


def check(headers: Mapping[str, str], cdas: list[CdaHeader | None], recipients: list[str] | None = None) \
        -> list[dict]:
    """Findings on a mail's X-MSS-* fields against the CDA documents its IHE_XDM archive carries (`cdas`:
    the readable CDA headers; empty when the mail carries no archive) and its envelope `recipients` (for
    X-MSS-MES, when known)."""
    out: list[dict] = []
    want = expected(cdas)
    got_codes, got_ins = headers.get(CODECDA), headers.get(INS)
    if not want:
        for name, rule in ((CODECDA, RULE_CODECDA), (INS, RULE_INS)):
            if headers.get(name) is not None:
                out.append(finding(rule, f"{name}: {headers[name]} is set but the mail carries no CDA document in "
                                   "an IHE_XDM archive (Référentiel socle MSSanté #2: it must then be absent)",
                                   "error",
                                   fr=f"{name}: {headers[name]} est présent mais le courriel ne porte aucun document CDA dans une archive IHE_XDM (Référentiel socle MSSanté #2 : il doit alors être absent)"))
    else:
        if CODECDA in want:
            if got_codes is None:
                out.append(finding(RULE_CODECDA, f"no {CODECDA} header; the IHE_XDM archive carries CDA document(s) "
                                   f"of code {want[CODECDA]} (Référentiel socle MSSanté #2 ECO.2.4.1)", "error",
                                   fr=f"pas d'en-tête {CODECDA} ; l'archive IHE_XDM contient des documents CDA de code {want[CODECDA]} (Référentiel socle MSSanté #2 ECO.2.4.1)"))
            elif set(_values(got_codes)) != set(_values(want[CODECDA])):
                out.append(finding(RULE_CODECDA, f"{CODECDA}: {got_codes} differs from the code of the CDA "
                                   f"header(s), {want[CODECDA]} (ECO.2.4.1)", "error",
                                   fr=f"{CODECDA}: {got_codes} diffère du code des en-têtes CDA, {want[CODECDA]} (ECO.2.4.1)"))
        if got_ins is None:
            out.append(finding(RULE_INS, f"no {INS} header; the IHE_XDM archive carries a CDA document, so "
                               f"{INS}: {want[INS]} was expected (ECO.2.4.2)", "error",
                               fr=f"pas d'en-tête {INS} ; l'archive IHE_XDM contient un document CDA, {INS}: {want[INS]} était donc attendu (ECO.2.4.2)"))
        elif got_ins.strip() != want[INS]:
            why = ("the CDA names the patient by a qualified INS (matricule, INS OID and traits)" if want[INS] == "O"
                   else "no CDA of the archive names the patient by a qualified INS (matricule, INS OID and traits)")
            out.append(finding(RULE_INS, f"{INS}: {got_ins.strip()!r} but {why}: {want[INS]} was expected "
                               "(ECO.2.4.2)", "error",
                               fr=f"{INS}: {got_ins.strip()!r} alors que " + ("le CDA désigne le patient par une INS qualifiée (matricule, OID de l'INS et traits)" if want[INS] == "O" else "aucun CDA de l'archive ne désigne le patient par une INS qualifiée (matricule, OID de l'INS et traits)") + f" : {want[INS]} était attendu (ECO.2.4.2)"))
    mes = headers.get(MES)
    if mes is not None:
        if mes.strip() != "FIN":
            out.append(finding(RULE_MES, f"{MES}: {mes.strip()!r}; its one value is FIN (3 capital letters, "
                               "trans-cda-r2/mapping-mss.md)", "error",
                               fr=f"{MES}: {mes.strip()!r} ; sa seule valeur est FIN (3 lettres capitales, trans-cda-r2/mapping-mss.md)"))
        if recipients is not None and not any(r.strip().lower().endswith(PATIENT_DOMAIN) for r in recipients):
            out.append(finding(RULE_MES, f"{MES} on a mail to no patient (<INS>{PATIENT_DOMAIN}): it tells Mon "
                               "espace santé that the patient may not reply", "warning",
                               fr=f"{MES} sur un courriel adressé à aucun patient (<INS>{PATIENT_DOMAIN}) : il indique à Mon espace santé que le patient ne peut pas répondre"))
    if not (headers.get(NIL) or "").strip():
        out.append(finding(RULE_NIL, f"no {NIL} header: every mail a software sends carries its product reference "
                           "from convergence.esante.gouv.fr (Référentiel socle MSSanté #2 ECO.2.4.3)", "warning",
                           fr=f"pas d'en-tête {NIL} : tout courriel envoyé par un logiciel porte sa référence produit de convergence.esante.gouv.fr (Référentiel socle MSSanté #2 ECO.2.4.3)"))
    return out
