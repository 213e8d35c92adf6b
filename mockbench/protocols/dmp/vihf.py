"""The VIHF: the SAML 2.0 Assertion that every DMP request carries in its wsse:Security header.

`parse_vihf` reads it into a `Vihf` (or raises `VihfError` with a stable, DMP-style subcode that the door
maps to a SOAP 1.2 Fault, Sender); `actor_for` turns it into the world's `Actor`; `check_signature` /
`signature_problem` verify its enveloped XML signature. Nothing here touches the SOAP envelope: the door
hands over the wsse:Security element (or None), already parsed by `mockbench.formats.xml.parse_xml`.

Choices, each also stated where it is made:

* Required: the Issuer, the NameID and every attribute that the VIHF table of the PFI guide
  [specs/trans-cda-r2/mapping.md, "Mapping VIHF pour le DMP"] does not call optional and that all corpus
  tokens carry (the four `VIHF_*.xml` and the sixteen DMP `*_request.xml` of the ANS/GIE examples):
  Identifiant_Structure, Secteur_Activite, the xacml role, VIHF_Version, Authentification_Mode, the
  resource-id, Ressource_URN, the purposeofuse, LPS_Nom, LPS_Version and LPS_ID_HOMOLOGATION_DMP. Optional:
  LPS_ID (the table: "Facultatif"), the subject-id (absent from `VIHF_DIRECTE_*` and from every request
  example) and the confidentiality-code (required only for a minor's secret connection). An attribute
  present with an empty value counts as missing.
* `VIHF_Version`: "3.0" (every ANS example, DRIMbox `VIHFField.java`) or "4.0" (the table's constant); the
  version read is journaled as an info finding, anything else is refused as VIHFInvalidAttribute naming the
  attribute, so that a DPI still sending an older token hears it at once.
* `Authentification_Mode` is read under both spellings; the lower-case `Authentification_mode` of every
  ANS example is noted as an info finding. Both spellings with different values are refused.
* Roles [mapping.md, the three `urn:oasis:names:tc:xacml:2.0:subject:role` rows], checked as findings: the
  first occurrence takes a profession code system (TRE_G15 or TRE_G16 for a health professional; TRE_A00,
  TRE_R95, TRE_R94 or TRE_R291 for the others; AUTOMATE for an automated process); a second occurrence is
  required for doctors (TRE_R01 savoir-faire) and pharmacists (TRE_G05 CNOP sub-section), and for the
  professionals characterized by their role (TRE_R85), and not expected for anyone else.
* `signed` says that the Assertion holds a ds:Signature, not that it verifies: `signature_problem` does,
  against trust anchors that are always explicit. The table requires the signature ("Signature XML-DSIG
  avec le certificat de cachet de la structure de soins"); the door, not the parser, refuses an unsigned or
  untrusted VIHF (DMPInvalidCertificate), or notes it when configured to be lenient.
* The rules of the access modes (bris de glace needs DIRECTE, centre 15 skips the authorization...) are the
  world's (`mockbench.world.dmp`), not the parser's: any of the three modes parses with any authentication.
"""

from __future__ import annotations

import base64
import binascii
import copy
import functools
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lxml import etree

from mockbench.world import errors, identity

if TYPE_CHECKING:   # cryptography is imported when a signature is checked: a tenth of the start-up otherwise
    from cryptography import x509
from mockbench.world.journal import finding
from mockbench.world.model import ACCESS_MODES, CONFIDENTIALITY_CODES, Actor

__all__ = [
    "AUTHENTICATION_MODES",
    "OPTIONAL_ATTRIBUTES",
    "REQUIRED_ATTRIBUTES",
    "SUBCODES",
    "Vihf",
    "VihfError",
    "actor_for",
    "check_signature",
    "parse_vihf",
    "patient_of",
    "signature_problem",
    "signer_findings",
]

NS_WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
NS_SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
NS_HL7 = "urn:hl7-org:v3"
NS_DS = "http://www.w3.org/2000/09/xmldsig#"
NS_EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"

SUBCODES = (
    "VIHFMissing", "VIHFInvalid", "VIHFMissingAttribute", "VIHFInvalidAttribute", "VIHFUnknownProfessional",
    "VIHFUnknownStructure", "VIHFPatientMismatch", "DMPInvalidCertificate",
)

# Attribute names, as on the wire.
A_STRUCTURE = "Identifiant_Structure"
A_SECTOR = "Secteur_Activite"
A_SUBJECT_ID = "urn:oasis:names:tc:xspa:1.0:subject:subject-id"
A_ROLE = "urn:oasis:names:tc:xacml:2.0:subject:role"
A_VERSION = "VIHF_Version"
A_AUTHENTICATION = "Authentification_Mode"
A_AUTHENTICATION_LOWER = "Authentification_mode"     # the spelling of every ANS example
A_RESOURCE_ID = "urn:oasis:names:tc:xacml:2.0:resource:resource-id"
A_RESOURCE_URN = "Ressource_URN"
A_PURPOSE = "urn:oasis:names:tc:xspa:1.0:subject:purposeofuse"
A_LPS_ID = "LPS_ID"
A_LPS_NAME = "LPS_Nom"
A_LPS_VERSION = "LPS_Version"
A_LPS_HOMOLOGATION = "LPS_ID_HOMOLOGATION_DMP"
A_CONFIDENTIALITY = "urn:oasis:names:tc:xspa:1.0:resource:patient:hl7:confidentiality-code"

# In the order they are checked (and named when several are missing). Issuer and NameID are elements.
REQUIRED_ATTRIBUTES = (
    A_VERSION, A_STRUCTURE, A_SECTOR, A_ROLE, A_AUTHENTICATION, A_RESOURCE_ID, A_RESOURCE_URN, A_PURPOSE,
    A_LPS_NAME, A_LPS_VERSION, A_LPS_HOMOLOGATION,
)
OPTIONAL_ATTRIBUTES = (A_LPS_ID, A_SUBJECT_ID, A_CONFIDENTIALITY)
_KNOWN_ATTRIBUTES = frozenset((*REQUIRED_ATTRIBUTES, *OPTIONAL_ATTRIBUTES, A_AUTHENTICATION_LOWER))

VIHF_VERSION = "3.0"                 # what the bench's own examples send
VIHF_VERSIONS = ("3.0", "4.0")       # the ANS examples' and the VIHF table's (mapping.md: Constante "4.0")
RESOURCE_URN = "urn:dmp"
AUTHENTICATION_MODES = ("DIRECTE", "INDIRECTE", "INDIRECTE_RENFORCEE")
OID_PROFESSION = "1.2.250.1.71.1.2.7"
OID_SPECIALTY = "1.2.250.1.71.4.2.5"
OID_AUTOMATE = "1.2.250.1.213.1.1.4.6"
OID_ACCESS_MODE = "1.2.250.1.213.1.1.4.248"
OID_CONFIDENTIALITY = "1.2.250.1.213.1.1.4.13"
# The code systems of the role rows of mapping.md's VIHF table (OIDs from the NOS terminologies).
OID_PROFESSION_TRAINING = "1.2.250.1.71.1.2.8"    # TRE_G16-ProfessionFormation
OID_SAVOIR_FAIRE = OID_SPECIALTY                  # TRE_R01-EnsembleSavoirFaire-CISIS
OID_CNOP = "1.2.250.1.71.4.2.6"                   # TRE_G05-SousSectionTableauCNOP
OID_ROLE_PRISE_CHARGE = "1.2.250.1.213.1.6.1.107"  # TRE_R85-RolePriseCharge
OID_USAGER_TITRE = "1.2.250.1.213.1.6.1.109"       # TRE_R95-UsagerTitre
OID_PROFESSION_SOCIAL = "1.2.250.1.213.1.6.1.4"    # TRE_R94-ProfessionSocial
OID_AUTRE_PROFESSION = "1.2.250.1.213.1.6.1.140"   # TRE_R291-AutreProfession
FIRST_ROLE_SYSTEMS = {
    OID_PROFESSION: "TRE_G15-ProfessionSante", OID_PROFESSION_TRAINING: "TRE_G16-ProfessionFormation",
    OID_AUTOMATE: "TRE_A00-ProducteurDocNonPS", OID_USAGER_TITRE: "TRE_R95-UsagerTitre",
    OID_PROFESSION_SOCIAL: "TRE_R94-ProfessionSocial", OID_AUTRE_PROFESSION: "TRE_R291-AutreProfession",
}
# profession code (G15/G16) -> (code system of the required second role, its name, who)
SECOND_ROLE = {"10": (OID_SAVOIR_FAIRE, "TRE_R01-EnsembleSavoirFaire-CISIS", "a doctor"),
               "21": (OID_CNOP, "TRE_G05-SousSectionTableauCNOP", "a pharmacist")}
ROLE_SYSTEMS = (*FIRST_ROLE_SYSTEMS, OID_SAVOIR_FAIRE, OID_CNOP, OID_ROLE_PRISE_CHARGE)
AUTOMATE = ("AUTOMATE", OID_AUTOMATE)
_INS_OIDS = (identity.OID_INS_NIR, identity.OID_INS_NIA, identity.OID_INS_NIR_TEST, identity.OID_INS_NIR_DEMO,
             identity.OID_INS_C)
_X509_SUBJECT_NAME = "urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName"


class VihfError(Exception):
    """A VIHF the DMP refuses. `subcode` is one of SUBCODES (stable: the door puts it in the SOAP Fault's
    Subcode), `reason` a plain sentence, `attribute` the offending attribute's name when there is one."""

    def __init__(self, subcode: str, reason: str, attribute: str = "") -> None:
        super().__init__(reason)
        self.subcode = subcode
        self.reason = reason
        self.attribute = attribute

    def as_dict(self) -> dict:
        out = {"error": self.subcode, "message": self.reason}
        if self.attribute:
            out["attribute"] = self.attribute
        return out


@dataclass(frozen=True)
class Vihf:
    """What a VIHF says. Every field but `name_id` has a default, so that a door test can build one."""

    name_id: str                                  # NameID: the PS identifier (IDNPS)
    issuer: str = ""
    version: str = VIHF_VERSION                   # VIHF_Version
    structure_id: str = ""                        # Identifiant_Structure (IDNST "1"+FINESS, "3"+SIRET, local)
    sector: str = ""                              # Secteur_Activite, raw ("SA07^1.2.250.1.71.4.2.4")
    subject_id: str = ""                          # subject-id: the PS's display name (optional)
    roles: tuple[tuple[str, str], ...] = ()       # (code, codeSystem) of each hl7 Role
    authentication: str = "DIRECTE"               # DIRECTE | INDIRECTE | INDIRECTE_RENFORCEE
    resource_id: str = ""                         # raw CX: INS^^^&OID&ISO^NH
    patient_ins: str = ""
    patient_ins_oid: str = ""
    resource_urn: str = RESOURCE_URN
    mode: str = "normal"                          # normal | bris_de_glace | centre_15
    lps_id: str = ""
    lps_name: str = ""
    lps_version: str = ""
    lps_homologation: str = ""
    confidentiality: str = ""                     # code part of the confidentiality-code, "" when absent
    signed: bool = False                          # a ds:Signature is present (not: it verifies)
    findings: tuple[dict, ...] = ()

    @property
    def automated(self) -> bool:
        return AUTOMATE in self.roles


# --- parsing -----------------------------------------------------------------------------------------


def _elements(node: etree._Element) -> list[etree._Element]:
    return [child for child in node if isinstance(child.tag, str)]


def _string(node: etree._Element) -> str:
    """All the text directly in `node`, comments skipped: `.text` would stop at a comment, and a comment
    inside a signed value is the classic way to make a parser read less than the signer signed."""
    # the text() nodes: the text before the first child, then the tail of every child (comments included)
    return "".join([node.text or "", *(child.tail or "" for child in node)]).strip()


def _local(tag: str) -> str:
    return etree.QName(tag).localname


def _assertion(security: etree._Element | None) -> etree._Element:
    """The one SAML 2.0 Assertion of a wsse:Security element. An Assertion given directly is accepted too
    (the corpus `VIHF_*.xml` files are bare Assertions)."""
    if security is None:
        raise VihfError("VIHFMissing", "the request carries no wsse:Security header, hence no VIHF")
    if not isinstance(security.tag, str):
        raise VihfError("VIHFInvalid", "the security header is not an element")
    if security.tag == f"{{{NS_SAML}}}Assertion":
        return security
    if security.tag != f"{{{NS_WSSE}}}Security":
        raise VihfError("VIHFInvalid", f"expected a wsse:Security element ({NS_WSSE}), got {security.tag}")
    found = [el for el in _elements(security) if el.tag == f"{{{NS_SAML}}}Assertion"]
    if len(found) > 1:
        raise VihfError("VIHFInvalid", f"wsse:Security holds {len(found)} SAML assertions, one VIHF is expected")
    if found:
        return found[0]
    others = [el for el in _elements(security) if _local(el.tag) == "Assertion"]
    if others:
        raise VihfError("VIHFInvalid", f"the Assertion in wsse:Security is not SAML 2.0 ({others[0].tag}); the "
                                       "VIHF is a SAML 2.0 Assertion")
    raise VihfError("VIHFMissing", "wsse:Security holds no SAML 2.0 Assertion (the VIHF)")


def _attributes(assertion: etree._Element) -> dict[str, list[etree._Element]]:
    """Attribute name -> its AttributeValue elements, over every AttributeStatement."""
    statements = assertion.findall(f"{{{NS_SAML}}}AttributeStatement")
    if not statements:
        raise VihfError("VIHFInvalid", "the VIHF has no AttributeStatement")
    out: dict[str, list[etree._Element]] = {}
    for statement in statements:
        for attribute in statement.findall(f"{{{NS_SAML}}}Attribute"):
            name = (attribute.get("Name") or "").strip()
            if not name:
                raise VihfError("VIHFInvalid", "a VIHF Attribute has no Name")
            if name in out:
                raise VihfError("VIHFInvalidAttribute", f"{name} is given twice", attribute=name)
            out[name] = attribute.findall(f"{{{NS_SAML}}}AttributeValue")
    return out


def _has_value(values: list[etree._Element]) -> bool:
    return any(_elements(v) or _string(v) for v in values)


def _text(attrs: dict[str, list[etree._Element]], name: str) -> str:
    """The single text value of an attribute ("" when absent: required ones were checked before)."""
    values = [v for v in attrs.get(name, []) if _elements(v) or _string(v)]
    if not values:
        return ""
    if len(values) > 1:
        raise VihfError("VIHFInvalidAttribute", f"{name} has {len(values)} values, one is expected", attribute=name)
    if _elements(values[0]):
        raise VihfError("VIHFInvalidAttribute", f"{name} must be a text value, not an element", attribute=name)
    return _string(values[0])


def _coded(value: etree._Element, name: str, element: str, findings: list[dict]) -> tuple[str, str]:
    """(code, codeSystem) of an AttributeValue holding an HL7 CE element (`<Role code= codeSystem=>`), or,
    tolerated with a finding, the text form CODE^OID."""
    children = _elements(value)
    if len(children) > 1:
        raise VihfError("VIHFInvalidAttribute", f"a {name} value holds {len(children)} elements, one "
                                                f"{element} is expected", attribute=name)
    if children:
        child = children[0]
        if child.tag != f"{{{NS_HL7}}}{element}":
            findings.append(finding("VIHF/" + element, f"{name}: expected an hl7 {element} element "
                                    f"({{{NS_HL7}}}{element}), got {child.tag}; read it anyway",
                                    fr=f"{name} : élément hl7 {element} attendu ({{{NS_HL7}}}{element}), {child.tag} reçu ; lu quand même"))
        code = (child.get("code") or "").strip()
        system = (child.get("codeSystem") or "").strip()
    else:
        text = _string(value)
        code, _, system = text.partition("^")
        findings.append(finding("VIHF/" + element, f"{name} given as the text {text!r}, not as an hl7 {element} "
                                "element",
                                fr=f"{name} donné sous forme du texte {text!r}, et non d'un élément hl7 {element}"))
    if not code:
        raise VihfError("VIHFInvalidAttribute", f"a {name} value has no code", attribute=name)
    return code, system


def parse_vihf(security: etree._Element | None) -> Vihf:
    """Read the VIHF of a DMP request from its wsse:Security element (or None when the request has none).

    Raises VihfError: VIHFMissing (no Security, no Assertion), VIHFInvalid (not a SAML 2.0 Assertion, no
    AttributeStatement), VIHFMissingAttribute (a required element or attribute is absent or empty; the error
    names the first one, its reason lists them all), VIHFInvalidAttribute (a value out of its value set)."""
    assertion = _assertion(security)
    findings: list[dict] = []
    if assertion.get("Version") != "2.0":
        raise VihfError("VIHFInvalid", f"the Assertion's Version is {assertion.get('Version')!r}, SAML 2.0 "
                                       "(Version=\"2.0\") is expected")

    issuer_el = assertion.find(f"{{{NS_SAML}}}Issuer")
    issuer = _string(issuer_el) if issuer_el is not None else ""
    subject = assertion.find(f"{{{NS_SAML}}}Subject")
    name_el = subject.find(f"{{{NS_SAML}}}NameID") if subject is not None else None
    name_id = _string(name_el) if name_el is not None else ""
    attrs = _attributes(assertion)

    # Both spellings of Authentification_Mode: read whichever is there.
    upper, lower = _has_value(attrs.get(A_AUTHENTICATION, [])), _has_value(attrs.get(A_AUTHENTICATION_LOWER, []))
    auth_name = A_AUTHENTICATION_LOWER if lower and not upper else A_AUTHENTICATION

    missing = [n for n, present in (("Issuer", bool(issuer)), ("NameID", bool(name_id))) if not present]
    for name in REQUIRED_ATTRIBUTES:
        if not _has_value(attrs.get(auth_name if name == A_AUTHENTICATION else name, [])):
            missing.append(name)
    if missing:
        also = f" (also missing: {', '.join(missing[1:])})" if len(missing) > 1 else ""
        raise VihfError("VIHFMissingAttribute", f"{missing[0]} is missing from the VIHF{also}",
                        attribute=missing[0])

    if issuer_el.get("Format") not in (None, _X509_SUBJECT_NAME):
        findings.append(finding("VIHF/Issuer", f"Issuer Format is {issuer_el.get('Format')}, the VIHF uses "
                                f"{_X509_SUBJECT_NAME}", "info",
                                fr=f"le Format de l'Issuer est {issuer_el.get('Format')}, le VIHF utilise {_X509_SUBJECT_NAME}"))
    if not identity.is_valid_idnps(name_id):
        findings.append(finding("VIHF/NameID", f"NameID {name_id} is not a valid IDNPS (8+RPPS, 0+ADELI, "
                                "3 or 5 + a local id, with its check digit)",
                                fr=f"le NameID {name_id} n'est pas un IDNPS valide (8+RPPS, 0+ADELI, 3 ou 5 + un identifiant local, avec sa clé de contrôle)"))

    version = _text(attrs, A_VERSION)
    if version not in VIHF_VERSIONS:
        raise VihfError("VIHFInvalidAttribute", f"VIHF_Version is {version!r}, the DMP accepts "
                                                f"{' or '.join(VIHF_VERSIONS)}", attribute=A_VERSION)
    findings.append(finding("VIHF/VIHF_Version", f"VIHF {version}", "info", fr=f"VIHF {version}"))

    # Authentication mode.
    authentication = _text(attrs, auth_name)
    if upper and lower:
        other = _text(attrs, A_AUTHENTICATION_LOWER)
        if other != authentication:
            raise VihfError("VIHFInvalidAttribute", f"{A_AUTHENTICATION}={authentication} and "
                                                    f"{A_AUTHENTICATION_LOWER}={other} disagree",
                            attribute=A_AUTHENTICATION)
        findings.append(finding("VIHF/Authentification_Mode", f"both {A_AUTHENTICATION} and "
                                f"{A_AUTHENTICATION_LOWER} are given (same value)",
                                fr=f"{A_AUTHENTICATION} et {A_AUTHENTICATION_LOWER} sont tous deux donnés (même valeur)"))
    elif auth_name == A_AUTHENTICATION_LOWER:
        findings.append(finding("VIHF/Authentification_Mode", f"spelled {A_AUTHENTICATION_LOWER} (lower-case m), "
                                f"as in the ANS examples; the guide's name is {A_AUTHENTICATION}", "info",
                                fr=f"écrit {A_AUTHENTICATION_LOWER} (m minuscule), comme dans les exemples de l'ANS ; le nom du guide est {A_AUTHENTICATION}"))
    if authentication not in AUTHENTICATION_MODES:
        raise VihfError("VIHFInvalidAttribute", f"{A_AUTHENTICATION} is {authentication!r}, expected one of "
                                                f"{', '.join(AUTHENTICATION_MODES)}", attribute=A_AUTHENTICATION)

    # Roles: profession, specialty, or AUTOMATE for an automated process.
    roles = tuple(_coded(v, A_ROLE, "Role", findings) for v in attrs[A_ROLE] if _elements(v) or
                  _string(v))
    findings.extend(_role_findings(roles))

    # The patient.
    resource_id = _text(attrs, A_RESOURCE_ID)
    try:
        ins, oid = identity.parse_xds_patient_id(resource_id)
    except identity.IdentifierError as exc:
        raise VihfError("VIHFInvalidAttribute", f"resource-id: {exc}", attribute=A_RESOURCE_ID) from None
    if oid not in _INS_OIDS:
        raise VihfError("VIHFInvalidAttribute", f"resource-id {resource_id}: {oid} is not an INS authority "
                                                f"({', '.join(_INS_OIDS)})", attribute=A_RESOURCE_ID)
    if oid == identity.OID_INS_C:
        findings.append(finding("VIHF/resource-id", f"the patient is named by a legacy INS-C ({oid})",
                                fr=f"le patient est désigné par un ancien INS-C ({oid})"))

    resource_urn = _text(attrs, A_RESOURCE_URN)
    if resource_urn != RESOURCE_URN:
        raise VihfError("VIHFInvalidAttribute", f"Ressource_URN is {resource_urn!r}, expected {RESOURCE_URN}",
                        attribute=A_RESOURCE_URN)

    # Access mode.
    purposes = [v for v in attrs[A_PURPOSE] if _elements(v) or _string(v)]
    if len(purposes) > 1:
        raise VihfError("VIHFInvalidAttribute", f"purposeofuse has {len(purposes)} values, one is expected",
                        attribute=A_PURPOSE)
    mode, mode_system = _coded(purposes[0], A_PURPOSE, "PurposeOfUse", findings)
    if mode not in ACCESS_MODES:
        raise VihfError("VIHFInvalidAttribute", f"purposeofuse is {mode!r}, expected one of "
                                                f"{', '.join(ACCESS_MODES)}", attribute=A_PURPOSE)
    if mode_system != OID_ACCESS_MODE:
        findings.append(finding("VIHF/PurposeOfUse", f"purposeofuse code system is "
                                f"{mode_system or '(none)'}, expected {OID_ACCESS_MODE}",
                                fr=f"le système de codes de purposeofuse est {mode_system or '(aucun)'}, {OID_ACCESS_MODE} attendu"))

    # Optional confidentiality code (a minor's secret connection).
    confidentiality = ""
    raw_conf = [v for v in attrs.get(A_CONFIDENTIALITY, []) if _elements(v) or _string(v)]
    if len(raw_conf) > 1:
        raise VihfError("VIHFInvalidAttribute", f"confidentiality-code has {len(raw_conf)} values, one is "
                                                "expected", attribute=A_CONFIDENTIALITY)
    if raw_conf:
        if _elements(raw_conf[0]):
            confidentiality, conf_system = _coded(raw_conf[0], A_CONFIDENTIALITY, "ConfidentialityCode", [])
        else:
            confidentiality, _, conf_system = _string(raw_conf[0]).partition("^")
        if confidentiality not in CONFIDENTIALITY_CODES:
            raise VihfError("VIHFInvalidAttribute", f"confidentiality-code {confidentiality!r} is not one of "
                                                    f"{', '.join(CONFIDENTIALITY_CODES)}",
                            attribute=A_CONFIDENTIALITY)
        if confidentiality != "INVISIBLE_REPRESENTANTS_LEGAUX" or conf_system != OID_CONFIDENTIALITY:
            findings.append(finding("VIHF/confidentiality-code", f"confidentiality-code "
                                    f"{confidentiality}^{conf_system}: the guide only describes "
                                    f"INVISIBLE_REPRESENTANTS_LEGAUX^{OID_CONFIDENTIALITY} (a minor's secret "
                                    "connection)",
                                    fr=f"confidentiality-code {confidentiality}^{conf_system} : le guide ne décrit que INVISIBLE_REPRESENTANTS_LEGAUX^{OID_CONFIDENTIALITY} (connexion secrète d'un mineur)"))

    signed = assertion.find(f"{{{NS_DS}}}Signature") is not None

    unknown = sorted(set(attrs) - _KNOWN_ATTRIBUTES)
    if unknown:
        findings.append(finding("VIHF/Attribute", f"attributes that are not part of the DMP VIHF: "
                                f"{', '.join(unknown)}", "info",
                                fr=f"attributs qui ne font pas partie du VIHF du DMP : {', '.join(unknown)}"))

    return Vihf(
        name_id=name_id, issuer=issuer, version=version, structure_id=_text(attrs, A_STRUCTURE),
        sector=_text(attrs, A_SECTOR), subject_id=_text(attrs, A_SUBJECT_ID), roles=roles,
        authentication=authentication, resource_id=resource_id, patient_ins=ins, patient_ins_oid=oid,
        resource_urn=resource_urn, mode=mode, lps_id=_text(attrs, A_LPS_ID), lps_name=_text(attrs, A_LPS_NAME),
        lps_version=_text(attrs, A_LPS_VERSION), lps_homologation=_text(attrs, A_LPS_HOMOLOGATION),
        confidentiality=confidentiality, signed=signed, findings=tuple(findings),
    )


def _role_findings(roles: tuple[tuple[str, str], ...]) -> list[dict]:
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


def patient_of(vihf: Vihf) -> tuple[str, str]:
    """(INS, INS authority OID) of the patient the VIHF names in its resource-id."""
    return vihf.patient_ins, vihf.patient_ins_oid


# --- the actor -----------------------------------------------------------------------------------------


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


# --- signature -----------------------------------------------------------------------------------------

_C14N_EXC = NS_EXC_C14N
_C14N_EXC_COMMENTS = NS_EXC_C14N + "WithComments"
_ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
_DIGESTS = {
    "http://www.w3.org/2000/09/xmldsig#sha1": hashlib.sha1,
    "http://www.w3.org/2001/04/xmlenc#sha256": hashlib.sha256,
    "http://www.w3.org/2001/04/xmldsig-more#sha384": hashlib.sha384,
    "http://www.w3.org/2001/04/xmlenc#sha512": hashlib.sha512,
}
_SIGNATURES = {
    "http://www.w3.org/2000/09/xmldsig#rsa-sha1": ("rsa", "SHA1"),
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256": ("rsa", "SHA256"),
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384": ("rsa", "SHA384"),
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512": ("rsa", "SHA512"),
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256": ("ec", "SHA256"),
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384": ("ec", "SHA384"),
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512": ("ec", "SHA512"),
}
_MAX_CHAIN = 8


def _c14n(node: etree._Element, algorithm: str | None, prefixes: list[str]) -> bytes:
    if algorithm not in (_C14N_EXC, _C14N_EXC_COMMENTS):
        raise ValueError(f"canonicalization {algorithm} is not exclusive c14n ({_C14N_EXC})")
    return etree.tostring(node, method="c14n", exclusive=True, with_comments=algorithm == _C14N_EXC_COMMENTS,
                          inclusive_ns_prefixes=prefixes or None)


def _prefix_list(method: etree._Element) -> list[str]:
    inclusive = method.find(f"{{{NS_EXC_C14N}}}InclusiveNamespaces")
    return (inclusive.get("PrefixList") or "").split() if inclusive is not None else []


def _b64(text: str | None) -> bytes:
    return base64.b64decode("".join((text or "").split()), validate=True)


def _verify(key, kind: str, algorithm: str, signature: bytes, data: bytes) -> None:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    algorithm = getattr(hashes, algorithm)
    if kind == "rsa" and isinstance(key, rsa.RSAPublicKey):
        key.verify(signature, data, padding.PKCS1v15(), algorithm())
    elif kind == "ec" and isinstance(key, ec.EllipticCurvePublicKey):
        size = (key.curve.key_size + 7) // 8
        if len(signature) != 2 * size:
            raise InvalidSignature("an XML-DSig ECDSA value is r||s of the curve's size")
        r, s = int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
        key.verify(encode_dss_signature(r, s), data, ec.ECDSA(algorithm()))
    else:
        raise InvalidSignature(f"the certificate's key does not fit a {kind} signature")


@functools.lru_cache(maxsize=8)
def _anchors(ca_pem: bytes) -> tuple[x509.Certificate, ...]:
    """The trust anchors of a PEM bundle, parsed once per bundle (the door passes the same bytes each time)."""
    from cryptography import x509

    return tuple(x509.load_pem_x509_certificates(ca_pem))


def _chain_problem(leaf: x509.Certificate, extra: list[x509.Certificate], ca_pem: bytes) -> str:
    from cryptography.exceptions import InvalidSignature

    try:
        anchors = _anchors(bytes(ca_pem))
    except ValueError as exc:
        return f"the CA certificates cannot be read: {exc}"
    current = leaf
    for _ in range(_MAX_CHAIN):
        if current in anchors:
            return ""
        for anchor in anchors:
            try:
                current.verify_directly_issued_by(anchor)
                return ""
            except (ValueError, TypeError, InvalidSignature):
                continue
        for candidate in extra:
            if candidate == current:
                continue
            try:
                current.verify_directly_issued_by(candidate)
            except (ValueError, TypeError, InvalidSignature):
                continue
            current = candidate
            break
        else:
            return f"the signing certificate ({leaf.subject.rfc4514_string()}) does not chain to the trusted CA"
    return "the certificate chain is too long"


def signature_problem(assertion_or_security: etree._Element | None, ca_pem: bytes) -> str:
    """Why the VIHF's enveloped XML signature does not verify, or "" when it does.

    Checked: one ds:Signature child of the Assertion, one Reference whose URI is "#" + the Assertion's ID,
    the transforms enveloped-signature and exclusive c14n (InclusiveNamespaces honoured), the digest
    (SHA-1/256/384/512), the SignatureValue over the exclusive-c14n SignedInfo (RSA PKCS#1 v1.5 or ECDSA)
    with the first X509Certificate of the KeyInfo, and that this certificate is, or chains through the other
    KeyInfo certificates to, one of the CA certificates in `ca_pem` (the trust anchors, PEM, always explicit:
    with none, nothing is trusted; issue 17 point 7). Certificate validity dates and revocation are not
    checked: the bench's clock is virtual and its PKI a test one."""
    try:
        assertion = _assertion(assertion_or_security)
    except VihfError as exc:
        return exc.reason
    signatures = assertion.findall(f"{{{NS_DS}}}Signature")
    if not signatures:
        return "the VIHF is not signed"
    if len(signatures) > 1:
        return "the VIHF holds several signatures"
    sig = signatures[0]
    signed_info = sig.find(f"{{{NS_DS}}}SignedInfo")
    if signed_info is None:
        return "the signature has no SignedInfo"
    references = signed_info.findall(f"{{{NS_DS}}}Reference")
    assertion_id = assertion.get("ID") or ""
    if len(references) != 1:
        return f"the signature has {len(references)} references, one (to the Assertion) is expected"
    reference = references[0]
    if not assertion_id or reference.get("URI") != "#" + assertion_id:
        return f"the signature's reference {reference.get('URI')!r} is not the Assertion (#{assertion_id})"
    transforms = reference.findall(f"{{{NS_DS}}}Transforms/{{{NS_DS}}}Transform")
    algorithms = [t.get("Algorithm") for t in transforms]
    if _ENVELOPED not in algorithms:
        return "the reference lacks the enveloped-signature transform"
    c14n_transforms = [t for t in transforms if t.get("Algorithm") != _ENVELOPED]
    if len(c14n_transforms) > 1:
        return f"unexpected transforms: {', '.join(a or '?' for a in algorithms)}"
    c14n_algorithm = c14n_transforms[0].get("Algorithm") if c14n_transforms else _C14N_EXC
    prefixes = _prefix_list(c14n_transforms[0]) if c14n_transforms else []
    digest_method = reference.find(f"{{{NS_DS}}}DigestMethod")
    digest = _DIGESTS.get(digest_method.get("Algorithm") if digest_method is not None else "")
    if digest is None:
        return "the reference's digest method is missing or not supported"
    method = signed_info.find(f"{{{NS_DS}}}SignatureMethod")
    kind_alg = _SIGNATURES.get(method.get("Algorithm") if method is not None else "")
    if kind_alg is None:
        return "the signature method is missing or not supported"
    canon = signed_info.find(f"{{{NS_DS}}}CanonicalizationMethod")
    if canon is None:
        return "the SignedInfo has no CanonicalizationMethod"

    from cryptography import x509
    from cryptography.exceptions import InvalidSignature

    try:
        # Enveloped transform: the Assertion without its Signature, canonicalized on its own.
        body = copy.deepcopy(assertion)
        body.remove(body.find(f"{{{NS_DS}}}Signature"))
        expected_digest = _b64(reference.findtext(f"{{{NS_DS}}}DigestValue"))
        if digest(_c14n(body, c14n_algorithm, prefixes)).digest() != expected_digest:
            return "the Assertion's digest does not match the signature's reference (the token was altered)"
        signed_bytes = _c14n(signed_info, canon.get("Algorithm"), _prefix_list(canon))
        value = _b64(sig.findtext(f"{{{NS_DS}}}SignatureValue"))
        certificates = [x509.load_der_x509_certificate(_b64(el.text))
                        for el in sig.iterfind(f"{{{NS_DS}}}KeyInfo/{{{NS_DS}}}X509Data/{{{NS_DS}}}X509Certificate")]
    except (ValueError, binascii.Error) as exc:
        return f"the signature cannot be read: {exc}"
    if not certificates:
        return "the signature's KeyInfo carries no X509Certificate"
    try:
        _verify(certificates[0].public_key(), kind_alg[0], kind_alg[1], value, signed_bytes)
    except InvalidSignature:
        return "the SignatureValue does not verify with the signing certificate"
    if not ca_pem or not ca_pem.strip():
        return "no trust anchor is configured: no VIHF signature can be trusted"
    return _chain_problem(certificates[0], certificates[1:], ca_pem)


def check_signature(assertion_or_security: etree._Element | None, ca_pem: bytes) -> bool:
    """Whether the VIHF's enveloped XML signature verifies (see `signature_problem` for what is checked and
    for the reason when it does not). The door answers DMPInvalidCertificate when this is False."""
    return not signature_problem(assertion_or_security, ca_pem)


def signer_findings(assertion_or_security: etree._Element | None, vihf: Vihf) -> list[dict]:
    """Findings on who signed a VIHF whose signature verified: the VIHF table has it signed with "le certificat
    de cachet de la structure de soins" and its Issuer be "DN du certificat de cachet"
    [trans-cda-r2/mapping.md, rows //Assertion/ds:Signature and //Assertion/Issuer]. A seal certificate whose
    OU (the IDNST, as in the ANS example VIHF_INDIRECTE_signed.xml and in IGC Santé ORG certificates) is not
    the Identifiant_Structure is a warning; an Issuer that is not the certificate's DN an info."""
    from cryptography import x509

    try:
        assertion = _assertion(assertion_or_security)
        element = assertion.find(f"{{{NS_DS}}}Signature/{{{NS_DS}}}KeyInfo/{{{NS_DS}}}X509Data/"
                                 f"{{{NS_DS}}}X509Certificate")
        cert = x509.load_der_x509_certificate(_b64(element.text)) if element is not None else None
    except (VihfError, ValueError, binascii.Error):
        return []
    if cert is None:
        return []
    out: list[dict] = []
    units = [str(a.value) for a in cert.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATIONAL_UNIT_NAME)]
    if units and vihf.structure_id and vihf.structure_id not in units:
        out.append(finding("VIHF/Signature", f"signed by the seal certificate of OU={', '.join(units)}, not of the "
                           f"VIHF's Identifiant_Structure {vihf.structure_id} (mapping.md: the structure's seal "
                           "certificate signs)",
                           fr=f"signé par le certificat cachet de OU={', '.join(units)}, et non de l'Identifiant_Structure {vihf.structure_id} du VIHF (mapping.md : c'est le certificat cachet de la structure qui signe)"))

    def norm(dn: str) -> str:
        return ",".join(part.strip().lower() for part in dn.split(","))

    if norm(vihf.issuer) != norm(cert.subject.rfc4514_string()):
        out.append(finding("VIHF/Issuer", f"Issuer {vihf.issuer!r} is not the seal certificate's DN "
                           f"{cert.subject.rfc4514_string()!r} (mapping.md, row //Assertion/Issuer)", "info",
                           fr=f"l'Issuer {vihf.issuer!r} n'est pas le DN du certificat cachet {cert.subject.rfc4514_string()!r} (mapping.md, ligne //Assertion/Issuer)"))
    return out
