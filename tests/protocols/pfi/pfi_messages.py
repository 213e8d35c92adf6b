"""Message builders for the PFI door's tests: MDM messages as the ANS guide shapes them."""

import base64

import hl7
from strict_hl7 import check_ack, decode

from mockbench.formats.cda import minimal_cda

META = ("MASQUE_PS", "INVISIBLE_PATIENT", "INVISIBLE_REP_LEGAUX", "CONNEXION_SECRETE", "MODIF_CONF_CODE", "DESTDMP",
        "DESTMSSANTEPS", "DESTMSSANTEPAT", "ACK_RECEPTION", "ACK_LECTURE_MSS")
EVENTS = {"T02": ("NW", "F"), "T10": ("RO", "C"), "T04": ("CA", "D")}


def cda_for(patient: dict, unique_id: str, author: dict) -> bytes:
    return minimal_cda(unique_id=unique_id, ins=patient["ins"], ins_oid=patient["ins_oid"], type_code="11488-4",
                       title="Compte rendu de consultation", author_idnps=author["idnps"],
                       author_family=author["family_name"], author_given=author["given_name"],
                       patient_family=patient["family_name"], patient_given=patient["given_name"],
                       birth_date=patient["birth_date"], sex=patient["sex"], effective_time="2026-11-20T10:00:00Z",
                       text="Examen normal.")


def table_defaults(flags: dict) -> dict:
    """The values trans-cda-r2/regles-gestion-mssante.md requires with the MSSanté exchange the flags ask for,
    unless the test sets them: to professionals only, INVISIBLE_PATIENT Y; to the patient only, DESTDMP N."""
    ps, pat = flags.get("DESTMSSANTEPS") == "Y", flags.get("DESTMSSANTEPAT") == "Y"
    if ps and not pat:
        return {"INVISIBLE_PATIENT": "Y"}
    if pat and not ps:
        return {"DESTDMP": "N"}
    return {}


def mdm(event: str, patient: dict, author: dict, finess: str | None, unique_id: str, parent_id: str = "", *,
        control_id: str = "1", flags: dict | None = None, recipients: tuple[str, ...] = ("dr.b@chu.mssante.fr",),
        cda: bytes | None = None, org_type: str = "FINEG") -> bytes:
    orc, status = EVENTS[event]
    values = {code: "N" for code in META} | {"DESTDMP": "Y"} | table_defaults(flags or {}) | (flags or {})
    content = cda if cda is not None else cda_for(patient, unique_id, author)
    b64 = base64.b64encode(content).decode()
    org = f"CHU^^^^^ASIP-SANTE-ST&1.2.250.1.71.4.2.2&ISO^{org_type}^^^{finess}" if finess is not None else "CHU"
    birth = patient["birth_date"].replace("-", "")
    lines = [
        f"MSH|^~\\&|DPI|CHU|PFI|CHU|20261120100000||MDM^{event}^MDM_T02|{control_id}|P|2.6|||||FRA|UNICODE UTF-8|||"
        "2.1^CISIS_CDA_HL7_V2",
        "EVN||20261120100000",
        f"PID|||{patient['ins']}^^^ASIP-SANTE-INS-NIR&{patient['ins_oid']}&ISO^INS||{patient['family_name']}^"
        f"{patient['given_name']}^^^^^L||{birth}|{patient['sex']}",
        "PV1|1|I",
        f"ORC|{orc}|",
        "OBR|1|||11488-4^CR de consultation^LN",
        f"TXA|1|11488-4|TEXT|20261120100000||||||||{unique_id}^CHU|{parent_id}{'^CHU' if parent_id else ''}"
        f"||||AU|||||{author['idnps']}",
        f"OBX|1|ED|11488-4^CR de consultation^LN||^text^XML^Base64^{b64}||||||{status}",
        f"PRT||UC||SB^^participation|{author['idnps']}^{author['family_name']}^{author['given_name']}^^^^^^"
        f"ASIP-SANTE-PS&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS|||{org}",
        *[f"PRT||UC||RCT^^participation|||||||||||^NET^X.400^{r}" for r in recipients],
        *[f"OBX|{i}|CWE|{code}^{code}^MetaDMPMSS||{values[code]}^^expandedYes-NoIndicator||||||F"
          for i, code in enumerate(META, start=2)],
    ]
    return ("\r".join(lines) + "\r").encode("utf-8")


def parse_ack(raw: bytes) -> hl7.Message:
    """The ACK read by python-hl7, after hl7apy in strict mode found it well formed (strict_hl7.py)."""
    check_ack(raw)
    return hl7.parse(decode(raw).replace("\n", "\r").strip("\x0b\x1c\r"))


