"""Reading a VIHF into a `Vihf`, one attribute group at a time (the required ones, the version, the
authentication mode, the roles, the patient, the access mode, the confidentiality code); see the package's
docstring for the choices made."""

from __future__ import annotations

from lxml import etree

from mockbench.formats.findings import finding
from mockbench.world import identity
from mockbench.world.model import ACCESS_MODES, CONFIDENTIALITY_CODES

from .roles import role_findings
from .token import (
    _INS_OIDS,
    _KNOWN_ATTRIBUTES,
    _X509_SUBJECT_NAME,
    A_AUTHENTICATION,
    A_AUTHENTICATION_LOWER,
    A_CONFIDENTIALITY,
    A_LPS_HOMOLOGATION,
    A_LPS_ID,
    A_LPS_NAME,
    A_LPS_VERSION,
    A_PURPOSE,
    A_RESOURCE_ID,
    A_RESOURCE_URN,
    A_ROLE,
    A_SECTOR,
    A_STRUCTURE,
    A_SUBJECT_ID,
    A_VERSION,
    AUTHENTICATION_MODES,
    NS_DS,
    NS_HL7,
    NS_SAML,
    OID_ACCESS_MODE,
    OID_CONFIDENTIALITY,
    REQUIRED_ATTRIBUTES,
    RESOURCE_URN,
    VIHF_VERSIONS,
    Vihf,
    VihfError,
    _assertion,
    _elements,
    _string,
)


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
    names the first one, its reason lists them all), VIHFInvalidAttribute (a value out of its value set).
    Each attribute group is read by its own function, in the order below (the order of the findings)."""
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
    auth_name = _authentication_name(attrs)
    _require(attrs, issuer, name_id, auth_name)
    findings += _issuer_findings(issuer_el, name_id)
    version = _version(attrs, findings)
    authentication = _authentication(attrs, auth_name, findings)
    # Roles: profession, specialty, or AUTOMATE for an automated process.
    roles = tuple(_coded(v, A_ROLE, "Role", findings) for v in attrs[A_ROLE] if _elements(v) or
                  _string(v))
    findings.extend(role_findings(roles))
    resource_id, ins, oid = _patient(attrs, findings)
    resource_urn = _text(attrs, A_RESOURCE_URN)
    if resource_urn != RESOURCE_URN:
        raise VihfError("VIHFInvalidAttribute", f"Ressource_URN is {resource_urn!r}, expected {RESOURCE_URN}",
                        attribute=A_RESOURCE_URN)
    mode = _access_mode(attrs, findings)
    confidentiality = _confidentiality(attrs, findings)
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


def _authentication_name(attrs: dict[str, list[etree._Element]]) -> str:
    """Authentification_Mode under the spelling given (both spellings are read; the guide's when both)."""
    upper = _has_value(attrs.get(A_AUTHENTICATION, []))
    lower = _has_value(attrs.get(A_AUTHENTICATION_LOWER, []))
    return A_AUTHENTICATION_LOWER if lower and not upper else A_AUTHENTICATION


def _require(attrs: dict[str, list[etree._Element]], issuer: str, name_id: str, auth_name: str) -> None:
    """VIHFMissingAttribute naming the first required element or attribute absent, listing the others."""
    missing = [n for n, present in (("Issuer", bool(issuer)), ("NameID", bool(name_id))) if not present]
    for name in REQUIRED_ATTRIBUTES:
        if not _has_value(attrs.get(auth_name if name == A_AUTHENTICATION else name, [])):
            missing.append(name)
    if missing:
        also = f" (also missing: {', '.join(missing[1:])})" if len(missing) > 1 else ""
        raise VihfError("VIHFMissingAttribute", f"{missing[0]} is missing from the VIHF{also}",
                        attribute=missing[0])


def _issuer_findings(issuer_el: etree._Element, name_id: str) -> list[dict]:
    findings = []
    if issuer_el.get("Format") not in (None, _X509_SUBJECT_NAME):
        findings.append(finding("VIHF/Issuer", f"Issuer Format is {issuer_el.get('Format')}, the VIHF uses "
                                f"{_X509_SUBJECT_NAME}", "info",
                                fr=f"le Format de l'Issuer est {issuer_el.get('Format')}, le VIHF utilise {_X509_SUBJECT_NAME}"))
    if not identity.is_valid_idnps(name_id):
        findings.append(finding("VIHF/NameID", f"NameID {name_id} is not a valid IDNPS (8+RPPS, 0+ADELI, "
                                "3 or 5 + a local id, with its check digit)",
                                fr=f"le NameID {name_id} n'est pas un IDNPS valide (8+RPPS, 0+ADELI, 3 ou 5 + un identifiant local, avec sa clé de contrôle)"))
    return findings


def _version(attrs: dict[str, list[etree._Element]], findings: list[dict]) -> str:
    version = _text(attrs, A_VERSION)
    if version not in VIHF_VERSIONS:
        raise VihfError("VIHFInvalidAttribute", f"VIHF_Version is {version!r}, the DMP accepts "
                                                f"{' or '.join(VIHF_VERSIONS)}", attribute=A_VERSION)
    findings.append(finding("VIHF/VIHF_Version", f"VIHF {version}", "info", fr=f"VIHF {version}"))
    return version


def _authentication(attrs: dict[str, list[etree._Element]], auth_name: str, findings: list[dict]) -> str:
    """The authentication mode; both spellings with different values are refused, the ANS examples'
    lower-case one is noted."""
    authentication = _text(attrs, auth_name)
    upper = _has_value(attrs.get(A_AUTHENTICATION, []))
    lower = _has_value(attrs.get(A_AUTHENTICATION_LOWER, []))
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
    return authentication


def _patient(attrs: dict[str, list[etree._Element]], findings: list[dict]) -> tuple[str, str, str]:
    """(resource-id as given, INS, INS authority OID) of the patient."""
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
    return resource_id, ins, oid


def _access_mode(attrs: dict[str, list[etree._Element]], findings: list[dict]) -> str:
    """The access mode (purposeofuse): normal, bris_de_glace or centre_15."""
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
    return mode


def _confidentiality(attrs: dict[str, list[etree._Element]], findings: list[dict]) -> str:
    """The optional confidentiality code (a minor's secret connection), "" when absent."""
    raw_conf = [v for v in attrs.get(A_CONFIDENTIALITY, []) if _elements(v) or _string(v)]
    if len(raw_conf) > 1:
        raise VihfError("VIHFInvalidAttribute", f"confidentiality-code has {len(raw_conf)} values, one is "
                                                "expected", attribute=A_CONFIDENTIALITY)
    if not raw_conf:
        return ""
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
    return confidentiality


def patient_of(vihf: Vihf) -> tuple[str, str]:
    """(INS, INS authority OID) of the patient the VIHF names in its resource-id."""
    return vihf.patient_ins, vihf.patient_ins_oid

