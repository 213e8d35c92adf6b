"""The VIHF: the SAML 2.0 Assertion that every DMP request carries in its wsse:Security header.

`parse_vihf` reads it into a `Vihf` (or raises `VihfError` with a stable, DMP-style subcode that the door
maps to a SOAP 1.2 Fault, Sender); `actor_for` turns it into the world's `Actor`; `check_signature` /
`signature_problem` verify its enveloped XML signature. Nothing here touches the SOAP envelope: the door
hands over the wsse:Security element (or None), already parsed by `mockbench.formats.xml.parse_xml`. One module per job: `token` (the vocabulary, `Vihf`,
`VihfError`, finding the Assertion), `parse` (reading it), `roles` (the role rows, as findings), `actor` (the
world's actor), `signature` (the XML signature and its signer).

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

from .actor import actor_for
from .parse import parse_vihf, patient_of
from .signature import check_signature, signature_problem, signer_findings
from .token import (
    AUTHENTICATION_MODES,
    NS_DS,
    NS_SAML,
    NS_WSSE,
    OPTIONAL_ATTRIBUTES,
    REQUIRED_ATTRIBUTES,
    SUBCODES,
    Vihf,
    VihfError,
)

__all__ = [
    "NS_DS",
    "NS_SAML",
    "NS_WSSE",
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
