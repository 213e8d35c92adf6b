"""The VIHF's vocabulary (namespaces, attribute names, value sets), what a VIHF says (`Vihf`), the error the
DMP answers it with (`VihfError`), and finding the SAML Assertion in a wsse:Security header."""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from mockbench.world import identity

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

