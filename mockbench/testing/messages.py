"""Builders for the messages a DPI's tests send to the bench, so that a vendor need not copy them from the
bench's own tests (issue 18 point 8). Each takes the world's people as the control API gives them
(`BenchClient.patient(id)`, `GET /_bench/professionals`, `GET /_bench/structures`: dicts with `ins`,
`ins_oid`, `family_name`, `given_name`, `birth_date`, `sex`; `idnps`; `idnst`, `finess`) and returns bytes or
an lxml element ready for a real client:

    from mockbench.testing import messages as m

    patient = mockbench.client.patient("alice")
    pro = next(p for p in mockbench.client.call("GET", "/professionals") if p["id"] == "dr_a")
    ack = m.send_mllp(("127.0.0.1", mockbench.ports["mllp"]), m.mdm("T02", patient, pro, "1.2.250.1.999.1"))

    package = m.xdm_package(patient, pro, "1.2.250.1.999.2")
    smtplib.SMTP(...).sendmail(sender, [to], m.xdm_mail(patient, package, sender=sender, to=[to]))

    security = m.vihf(pro, structure["idnst"], patient, signer=mockbench.bench)   # signed by the bench's PKI
    body, content = m.provide_and_register(patient, pro, "1.2.250.1.999.3", m.cda(patient, pro, "1.2.250.1.999.3"))
    requests.post(mockbench.url + m.DMP_SERVICES + "/repository", data=m.soap_envelope(body, security,
                  m.ACTIONS["TD2.1"]), headers={"Content-Type": "application/soap+xml"})

Shapes follow the ANS texts the bench checks them against: the HL7 messages trans-cda-r2/profils-messages.md
("Transmission de documents CDA en HL7v2"), the MetaDMPMSS values regles-gestion-mssante.md, the ADT's ZFA
PAM.fr, the XDM mail DOMAIN.md section 3 and the Référentiel socle MSSanté #2 (ECO.2.4.1-2.4.3), the VIHF
trans-cda-r2/mapping.md ("Mapping VIHF pour le DMP"), the XDS bodies IHE ITI TF-2 (ITI-18, 41, 43, 57).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import socket
import uuid
from typing import Any

from lxml import etree

from ..formats.cda import CdaError, minimal_cda, read_cda_header
from ..formats.mime import xdm_mail as _xdm_mail
from ..formats.xdm import ans_subject, write_package

__all__ = ["ACTIONS", "DMP_SERVICES", "META", "adt_consent", "cda", "existence_test", "find_documents", "mdm",
           "mllp_frame", "oru", "provide_and_register", "retrieve", "send_mllp", "soap_envelope", "update_metadata",
           "update_status", "vihf", "xdm_mail", "xdm_package"]

# -- CDA --------------------------------------------------------------------------------------------------

def cda(patient: dict, author: dict, unique_id: str, *, text: str = "Examen normal.", type_code: str = "11488-4",
        title: str = "Compte rendu de consultation", effective_time: str = "2026-11-20T10:00:00Z",
        facility_type: str = "SA01", practice_setting: str = "ETABLISSEMENT", service_start: str | None = None,
        service_stop: str | None = None, language: str = "fr-FR") -> bytes:
    """A minimal CDA R2 document for this patient, written by `author` (a professional with `idnps`), whose
    header gives every XDS metadatum a PFI derives from it (trans-cda-r2/mapping.md, Mapping XDS, Fiche):
    the healthcareFacilityTypeCode (encompassingEncounter, JDV_J02), the practiceSettingCode (serviceEvent's
    performer, JDV_J04), the serviceStart/StopTime (the effectiveTime unless given), the languageCode and a
    legalAuthenticator (the author); the classCode follows from `type_code` (ASS_X04)."""
    return minimal_cda(unique_id=unique_id, ins=patient["ins"], ins_oid=patient["ins_oid"], type_code=type_code,
                       title=title, author_idnps=author["idnps"], author_family=author["family_name"],
                       author_given=author["given_name"], patient_family=patient["family_name"],
                       patient_given=patient["given_name"], birth_date=patient["birth_date"], sex=patient["sex"],
                       effective_time=effective_time, text=text, facility_type=facility_type,
                       practice_setting=practice_setting, service_start=service_start, service_stop=service_stop,
                       language=language)


# -- HL7 v2 (the PFI door) ----------------------------------------------------------------------------------

META = ("MASQUE_PS", "INVISIBLE_PATIENT", "INVISIBLE_REP_LEGAUX", "CONNEXION_SECRETE", "MODIF_CONF_CODE", "DESTDMP",
        "DESTMSSANTEPS", "DESTMSSANTEPAT", "ACK_RECEPTION", "ACK_LECTURE_MSS")
"""The MetaDMPMSS OBX codes, in the guide's order."""
EVENTS = {"T02": ("NW", "F"), "T10": ("RO", "C"), "T04": ("CA", "D")}
"""MDM event -> (ORC-1, OBX-11) under MSH-21 2.1^CISIS_CDA_HL7_V2."""


def table_defaults(flags: dict) -> dict:
    """The values trans-cda-r2/regles-gestion-mssante.md requires with the MSSanté exchange the flags ask for,
    unless set: to professionals only, INVISIBLE_PATIENT Y; to the patient only, DESTDMP N."""
    ps, pat = flags.get("DESTMSSANTEPS") == "Y", flags.get("DESTMSSANTEPAT") == "Y"
    if ps and not pat:
        return {"INVISIBLE_PATIENT": "Y"}
    if pat and not ps:
        return {"DESTDMP": "N"}
    return {}


def _pid(patient: dict) -> str:
    birth = patient["birth_date"].replace("-", "")
    return (f"PID|||{patient['ins']}^^^ASIP-SANTE-INS-NIR&{patient['ins_oid']}&ISO^INS||{patient['family_name']}^"
            f"{patient['given_name']}^^^^^L||{birth}|{patient['sex']}")


def _sender(author: dict, finess: str | None, org_type: str = "FINEG") -> str:
    org = f"CHU^^^^^ASIP-SANTE-ST&1.2.250.1.71.4.2.2&ISO^{org_type}^^^{finess}" if finess is not None else "CHU"
    return (f"PRT||UC||SB^^participation|{author['idnps']}^{author['family_name']}^{author['given_name']}^^^^^^"
            f"ASIP-SANTE-PS&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS|||{org}")


def mdm(event: str, patient: dict, author: dict, unique_id: str, *, finess: str | None = None, parent_id: str = "",
        control_id: str = "1", flags: dict | None = None, recipients: tuple[str, ...] = ("dr.b@chu.mssante.fr",),
        document: bytes | None = None, org_type: str = "FINEG", type_code: str | None = None) -> bytes:
    """An MDM^T02 (new), T10 (replacement of `parent_id`) or T04 (deletion), HL7 2.6, MSH-21
    2.1^CISIS_CDA_HL7_V2, the CDA in base64 in OBX 1, the sender in PRT SB (its geographic FINESS in PRT-8
    when `finess` is given), the recipients in PRT RCT and the MetaDMPMSS OBX: DESTDMP Y and every other N
    unless `flags` says otherwise (`{"DESTMSSANTEPS": "Y"}`). `document` defaults to `cda(...)`. The type
    (OBR-4, TXA-2, OBX-3) is `type_code`, by default the CDA's code (11488-4 if the document is no CDA)."""
    orc, status = EVENTS[event]
    values = {code: "N" for code in META} | {"DESTDMP": "Y"} | table_defaults(flags or {}) | (flags or {})
    content = document if document is not None else cda(patient, author, unique_id)
    try:
        header = read_cda_header(content)
        code, title = header.type_code, header.title
    except CdaError:
        code, title = None, None
    type_code = type_code or code or "11488-4"
    label = "CR de consultation" if type_code == "11488-4" else "".join(" " if c in "^|~\\&" else c for c in title or type_code)
    lines = [
        f"MSH|^~\\&|DPI|CHU|PFI|CHU|20261120100000||MDM^{event}^MDM_T02|{control_id}|P|2.6|||||FRA|UNICODE UTF-8|||"
        "2.1^CISIS_CDA_HL7_V2",
        "EVN||20261120100000", _pid(patient), "PV1|1|I", f"ORC|{orc}|", f"OBR|1|||{type_code}^{label}^LN",
        f"TXA|1|{type_code}|TEXT|20261120100000||||||||{unique_id}^CHU|{parent_id}{'^CHU' if parent_id else ''}"
        f"||||AU|||||{author['idnps']}",
        f"OBX|1|ED|{type_code}^{label}^LN||^text^XML^Base64^{base64.b64encode(content).decode()}||||||{status}",
        _sender(author, finess, org_type),
        *[f"PRT||UC||RCT^^participation|||||||||||^NET^X.400^{r}" for r in recipients],
        *[f"OBX|{i}|CWE|{code}^{code}^MetaDMPMSS||{values[code]}^^expandedYes-NoIndicator||||||F"
          for i, code in enumerate(META, start=2)],
    ]
    return ("\r".join(lines) + "\r").encode("utf-8")


def oru(patient: dict, author: dict, documents: list[bytes], *, finess: str | None = None, control_id: str = "ORU1",
        action: str = "F", flags: dict | None = None, recipients: tuple[str, ...] = ()) -> bytes:
    """An ORU^R01 (HL7 2.5) with one OBSERVATION group per document (the guide's examples carry a CDA N1 and
    a CDA N3), OBX-11 `action` (F new, C replacement, D deletion), the sender's PRT after the first document
    and the MetaDMPMSS OBX."""
    orc = {"F": "NW", "C": "RO", "D": "CA"}[action]
    meta = {c: "N" for c in META[:8]} | {"DESTDMP": "Y"} | table_defaults(flags or {}) | (flags or {})
    lines = [
        f"MSH|^~\\&|SIL|LABO|PFI|CHU|20261120100000||ORU^R01^ORU_R01|{control_id}|P|2.5|||||FRA|UNICODE UTF-8|||"
        "2.1^CISIS_CDA_HL7_V2",
        _pid(patient), "PV1|1|I", f"ORC|{orc}|", "OBR|1|||11502-2^CR d'examens biologiques^LN",
    ]
    for i, doc in enumerate(documents, start=1):
        lines.append(f"OBX|{i}|ED|11502-2^CR d'examens biologiques^LN||^TEXT^XML^Base64^"
                     f"{base64.b64encode(doc).decode()}||||||{action}")
        if i == 1:
            lines.append(_sender(author, finess))
            lines += [f"PRT||UC||RCT^^participation|||||||||||^^X.400^{r}" for r in recipients]
    lines += [f"OBX|{len(documents) + i}|CE|{code}^{code}^MetaDMPMSS||{value}^^expandedYes-NoIndicator||||||F"
              for i, (code, value) in enumerate(meta.items(), start=1)]
    return ("\r".join(lines) + "\r").encode("utf-8")


def adt_consent(patient: dict, *, feeding: str = "INO", consultation: str = "IC", event: str = "A01",
                control_id: str = "ADT1") -> bytes:
    """A PAM.fr ADT (HL7 2.5) whose ZFA records the patient's DMP consent at the hospital: ZFA-9 `feeding`
    (INO no opposition, IO opposition, NA) and ZFA-11 `consultation` (IC consent, INC refusal, NA)."""
    lines = [
        f"MSH|^~\\&|GAM|CHU|PFI|CHU|20261120100000||ADT^{event}^ADT_A01|{control_id}|P|2.5|||||FRA|UNICODE UTF-8",
        "EVN||20261120100000", _pid(patient), "PV1|1|I",
        f"ZFA|ACTIF|20261120100000|||||||{feeding}|20261120100000|{consultation}|20261120100000",
    ]
    return ("\r".join(lines) + "\r").encode("utf-8")


def mllp_frame(message: bytes) -> bytes:
    """The message in an MLLP block (VT ... FS CR)."""
    return b"\x0b" + message + b"\x1c\r"


def send_mllp(address: tuple[str, int], message: bytes, *, timeout: float = 10) -> bytes:
    """Send one message over MLLP and return the ACK's bytes, without its framing."""
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(mllp_frame(message))
        data = b""
        while not data.endswith(b"\x1c\r"):
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"the connection closed before a whole ACK came back ({len(data)} bytes)")
            data += chunk
    return data.strip(b"\x0b").removesuffix(b"\x1c\r")


# -- MSSanté: the XDM mail -----------------------------------------------------------------------------

def xdm_package(patient: dict, author: dict, unique_id: str, *, document: bytes | None = None,
                action: str | None = None, type_code: str = "11488-4", title: str = "Compte rendu de consultation",
                source_id: str = "1.2.250.1.999") -> bytes:
    """An IHE_XDM.ZIP holding one CDA (`document`, by default `cda(...)`) and its METADATA.XML; `action`
    C or D marks a replacement or a deletion (the PFI's own mails carry the same)."""
    content = document if document is not None else cda(patient, author, unique_id, type_code=type_code, title=title)
    cx = f"{patient['ins']}^^^&{patient['ins_oid']}&ISO^NH"
    meta = {"unique_id": unique_id, "mime_type": "text/xml", "title": title, "type_code": type_code,
            "format_code": "urn:asip:ci-sis:2010", "source_patient_id": cx}
    return write_package([("DOC0001.XML", content, meta)],
                         submission_set={"unique_id": f"2.25.{uuid.uuid4().int}", "source_id": source_id,
                                         "content_type": "04"},
                         patient_id=cx, action=action)


def xdm_mail(patient: dict, package: bytes, *, sender: str, to: list[str], label: str = "Compte rendu",
             type_code: str = "11488-4", qualified_ins: bool = True, ask_mdn: bool = False,
             software: str = "MOCKBENCH-TEST", subject: str | None = None) -> bytes:
    """An MSSanté mail carrying `package` as IHE_XDM.ZIP, with the subject the guide's example writes
    (`XDM/1.0/DDM+<label> <NOM> <PRÉNOM> <JJ/MM/AAAA>`) and the fields the Référentiel socle MSSanté #2
    requires of a client (ECO.2.4.1-2.4.3: X-MSS-CODECDA, X-MSS-INS O for a qualified INS, X-MSS-NIL);
    `ask_mdn` adds Disposition-Notification-To (the sender)."""
    subject = subject or ans_subject(label, patient["family_name"], patient["given_name"], patient["birth_date"])
    headers = {"X-MSS-CODECDA": type_code, "X-MSS-INS": "O" if qualified_ins else "N", "X-MSS-NIL": software}
    return _xdm_mail(sender=sender, to=list(to), subject=subject, package=package,
                     disposition_notification_to=sender if ask_mdn else None,
                     domain=sender.rpartition("@")[2] or "mockbench.invalid", extra_headers=headers)


# -- DMP: the SOAP envelope and its VIHF ---------------------------------------------------------------

SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSA = "http://www.w3.org/2005/08/addressing"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
HL7 = "urn:hl7-org:v3"
RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
LCM = "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"
QUERY = "urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0"
XDS_B = "urn:ihe:iti:xds-b:2007"
CONFIDENTIALITY_SCHEME = "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f"

DMP_SERVICES = "/si-dmp-server/v2/services"
"""The DMP door's services under the bench's URL: `registry` (TD3.1, TD3.3), `repository` (TD2.1, TD3.2)..."""
ACTIONS = {
    "TD2.1": "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b",
    "TD3.1": "urn:ihe:iti:2007:RegistryStoredQuery",
    "TD3.2": "urn:ihe:iti:2007:RetrieveDocumentSet",
    "TD3.3": "urn:ihe:iti:2010:UpdateDocumentSet",
}
"""The WS-Addressing Action of the XDS transactions (IHE ITI-41, 18, 43, 57)."""


def vihf(pro: dict, structure_idnst: str, patient: dict, *, signer: Any, mode: str = "normal",
         authentication: str = "INDIRECTE_RENFORCEE", secret: bool = False) -> etree._Element:
    """A wsse:Security holding a VIHF 3.0 for this professional (`idnps`, `profession`), structure and
    patient (trans-cda-r2/mapping.md, "Mapping VIHF pour le DMP"), signed by the structure's seal certificate
    of `signer`'s PKI: a Bench, a running bench's state folder or its `pki` folder (see `sign_vihf`); None
    leaves it unsigned (the DMP refuses it: DMPInvalidCertificate). `mode` is the PurposeOfUse (normal,
    bris_de_glace, centre_15); `secret` asks for a minor's secret connection."""
    def attr(name: str, value: str | None = None, element: etree._Element | None = None) -> str:
        if element is not None:
            return (f'<saml2:Attribute Name="{name}"><saml2:AttributeValue>{etree.tostring(element).decode()}'
                    "</saml2:AttributeValue></saml2:Attribute>")
        return (f'<saml2:Attribute Name="{name}"><saml2:AttributeValue xmlns:xs="http://www.w3.org/2001/XMLSchema"'
                f' xsi:type="xs:string">{value or ""}</saml2:AttributeValue></saml2:Attribute>')

    def ce(tag: str, code: str, system: str) -> etree._Element:
        el = etree.Element(f"{{{HL7}}}{tag}", nsmap={None: HL7, "xsi": XSI})
        el.set("code", code)
        el.set("codeSystem", system)
        el.set(f"{{{XSI}}}type", "CE")
        return el

    profession = pro.get("profession", "10")
    # mapping.md, VIHF table: a second role for doctors (TRE_R01) and pharmacists (TRE_G05)
    second = {"10": ("SM26", "1.2.250.1.71.4.2.5"), "21": ("A", "1.2.250.1.71.4.2.6")}.get(profession)
    roles = [ce("Role", profession, "1.2.250.1.71.1.2.7"), *([ce("Role", *second)] if second else [])]
    attributes = [
        attr("Identifiant_Structure", structure_idnst),
        attr("Secteur_Activite", "SA01^1.2.250.1.71.4.2.4"),
        '<saml2:Attribute Name="urn:oasis:names:tc:xacml:2.0:subject:role">'
        + "".join(f"<saml2:AttributeValue>{etree.tostring(r).decode()}</saml2:AttributeValue>" for r in roles)
        + "</saml2:Attribute>",
        attr("VIHF_Version", "3.0"),
        attr("Authentification_Mode", authentication),
        attr("urn:oasis:names:tc:xacml:2.0:resource:resource-id",
             f"{patient['ins']}^^^&amp;{patient['ins_oid']}&amp;ISO^NH"),
        attr("Ressource_URN", "urn:dmp"),
        attr("urn:oasis:names:tc:xspa:1.0:subject:purposeofuse",
             element=ce("PurposeOfUse", mode, "1.2.250.1.213.1.1.4.248")),
        attr("LPS_ID", "MOCKBENCH-TESTS"), attr("LPS_Nom", "tests"), attr("LPS_Version", "1"),
        attr("LPS_ID_HOMOLOGATION_DMP", "HOMOLOGATION-TEST"),
    ]
    if secret:
        attributes.append(attr("urn:oasis:names:tc:xspa:1.0:resource:patient:hl7:confidentiality-code",
                               "INVISIBLE_REPRESENTANTS_LEGAUX^1.2.250.1.213.1.1.4.13"))
    xml = (f'<wsse:Security xmlns:wsse="{WSSE}"><saml2:Assertion xmlns:saml2="{SAML}" xmlns:xsi="{XSI}" '
           f'ID="_{uuid.uuid4()}" IssueInstant="2026-11-20T10:00:00Z" Version="2.0">'
           '<saml2:Issuer Format="urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName">CN=DPI,O=TEST,C=FR'
           f'</saml2:Issuer><saml2:Subject><saml2:NameID>{pro["idnps"]}</saml2:NameID></saml2:Subject>'
           '<saml2:AuthnStatement AuthnInstant="2026-11-20T10:00:00Z"><saml2:AuthnContext><saml2:AuthnContextClassRef>'
           "urn:oasis:names:tc:SAML:2.0:ac:classes:SmartcardPKI</saml2:AuthnContextClassRef></saml2:AuthnContext>"
           f'</saml2:AuthnStatement><saml2:AttributeStatement>{"".join(attributes)}</saml2:AttributeStatement>'
           "</saml2:Assertion></wsse:Security>")
    security = etree.fromstring(xml)
    if signer is None:
        return security
    from .vihf import sign_vihf  # cryptography: imported on use

    return sign_vihf(security, signer)


def soap_envelope(body: etree._Element, security: etree._Element | None, action: str, *,
                  message_id: str | None = None) -> bytes:
    """A SOAP 1.2 envelope with the WS-Addressing Action and MessageID the DMP requires (a fresh
    urn:uuid: unless given) and the VIHF's wsse:Security in its header. Post it with
    `Content-Type: application/soap+xml`."""
    security_xml = etree.tostring(security).decode() if security is not None else ""
    return (f'<soap:Envelope xmlns:soap="{SOAP12}" xmlns:wsa="{WSA}"><soap:Header>'
            f"<wsa:Action>{action}</wsa:Action><wsa:MessageID>{message_id or f'urn:uuid:{uuid.uuid4()}'}"
            f"</wsa:MessageID>{security_xml}</soap:Header><soap:Body>{etree.tostring(body).decode()}</soap:Body>"
            "</soap:Envelope>").encode()


def _slot(name: str, *values: str) -> str:
    return f'<rim:Slot name="{name}"><rim:ValueList>' + "".join(f"<rim:Value>{v}</rim:Value>" for v in values) + \
        "</rim:ValueList></rim:Slot>"


def _classification(scheme: str, obj: str, code: str, system: str, name: str = "x") -> str:
    return (f'<rim:Classification classificationScheme="urn:uuid:{scheme}" classifiedObject="{obj}" '
            f'id="urn:uuid:{uuid.uuid4()}" nodeRepresentation="{code}">{_slot("codingScheme", system)}'
            f'<rim:Name><rim:LocalizedString value="{name}"/></rim:Name></rim:Classification>')


def _external(scheme: str, obj: str, value: str, name: str) -> str:
    return (f'<rim:ExternalIdentifier id="urn:uuid:{uuid.uuid4()}" identificationScheme="urn:uuid:{scheme}" '
            f'registryObject="{obj}" value="{value}"><rim:Name><rim:LocalizedString value="{name}"/></rim:Name>'
            "</rim:ExternalIdentifier>")


def _submission_set(ss: str, cx: str, prefix: str) -> str:
    return f"""<rim:RegistryPackage id="{ss}" objectType="urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd">
{_slot("submissionTime", "20261120100000")}
{_classification("aa543740-bdda-424e-8c96-df4873be8500", ss, "04", "1.2.250.1.213.2.2")}
{_external("96fdda7c-d067-4183-912e-bf5ee74998a8", ss, prefix + str(uuid.uuid4().int % 10**9), "XDSSubmissionSet.uniqueId")}
{_external("554ac39e-e3fe-47fe-b233-965d2a147832", ss, "1.2.250.1.999", "XDSSubmissionSet.sourceId")}
{_external("6b5aea1a-874d-4603-a4bc-96a0a7b38446", ss, cx, "XDSSubmissionSet.patientId")}
</rim:RegistryPackage>
<rim:Classification classificationNode="urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd" classifiedObject="{ss}" id="urn:uuid:{uuid.uuid4()}"/>"""


def provide_and_register(patient: dict, pro: dict, unique_id: str, content: bytes, *, replaces_entry: str = "",
                         confidentiality: tuple[str, ...] = ("N",), with_hash: bool = True,
                         inline: bool = True) -> tuple[etree._Element, bytes]:
    """An ITI-41 ProvideAndRegisterDocumentSetRequest (TD2.1: the document inline in base64; `replaces_entry`,
    an entryUUID, makes it a replacement with an RPLC association) and the document's bytes."""
    cx = f"{patient['ins']}^^^&amp;{patient['ins_oid']}&amp;ISO^NH"
    doc, ss = "Document01", "SubmissionSet01"
    conf = "".join(_classification(CONFIDENTIALITY_SCHEME[9:], doc, c,
                                   "2.16.840.1.113883.5.25" if c == "N" else "1.2.250.1.213.1.1.4.13")
                   for c in confidentiality)
    slots = [_slot("creationTime", "20261120100000"), _slot("languageCode", "fr-FR"),
             _slot("serviceStartTime", "20261120100000"), _slot("serviceStopTime", "20261120100000"),
             _slot("sourcePatientId", cx)]
    if with_hash:
        slots += [_slot("hash", hashlib.sha1(content).hexdigest()), _slot("size", str(len(content)))]
    author = (f'<rim:Classification classificationScheme="urn:uuid:93606bcf-9494-43ec-9b4e-a7748d1a838d" '
              f'classifiedObject="{doc}" id="urn:uuid:{uuid.uuid4()}" nodeRepresentation="">'
              + _slot("authorPerson", f"{pro['idnps']}^{pro['family_name']}^{pro['given_name']}^^^^^^"
                      "&amp;1.2.250.1.71.4.2.1&amp;ISO^D^^^^IDNPS")
              + _slot("authorSpecialty", "SM26^Médecine générale^1.2.250.1.71.4.2.5") + "</rim:Classification>")
    association = ""
    if replaces_entry:
        association = (f'<rim:Association associationType="urn:ihe:iti:2007:AssociationType:RPLC" '
                       f'id="urn:uuid:{uuid.uuid4()}" sourceObject="{doc}" targetObject="{replaces_entry}"/>')
    body = f"""<xdsb:ProvideAndRegisterDocumentSetRequest xmlns:xdsb="{XDS_B}" xmlns:lcm="{LCM}" xmlns:rim="{RIM}">
<lcm:SubmitObjectsRequest><rim:RegistryObjectList>
<rim:ExtrinsicObject id="{doc}" mimeType="text/xml" objectType="urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1">
{"".join(slots)}
<rim:Name><rim:LocalizedString value="Compte rendu de consultation"/></rim:Name>
{author}
{_classification("41a5887f-8865-4c09-adf7-e362475b143a", doc, "10", "1.2.250.1.213.1.1.4.1")}
{conf}
{_classification("a09d5840-386c-46f2-b5ad-9c3699a4309d", doc, "urn:asip:ci-sis:2010", "1.2.250.1.213.1.1.4.2.282")}
{_classification("f33fb8ac-18af-42cc-ae0e-ed0b0bdb91e1", doc, "SA01", "1.2.250.1.71.4.2.4")}
{_classification("cccf5598-8b07-4b77-a05e-ae952c785ead", doc, "ETABLISSEMENT", "1.2.250.1.213.1.1.4.9")}
{_classification("f0306f51-975f-434e-a61c-c59651d33983", doc, "11488-4", "2.16.840.1.113883.6.1")}
{_external("58a6f841-87b3-4a3e-92fd-a8ffeff98427", doc, cx, "XDSDocumentEntry.patientId")}
{_external("2e82c1f6-a085-4c72-9da3-8640a32e42ab", doc, unique_id, "XDSDocumentEntry.uniqueId")}
</rim:ExtrinsicObject>
{_submission_set(ss, cx, "1.2.250.1.999.9.")}
<rim:Association associationType="urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember" id="urn:uuid:{uuid.uuid4()}" sourceObject="{ss}" targetObject="{doc}">{_slot("SubmissionSetStatus", "Original")}</rim:Association>
{association}
</rim:RegistryObjectList></lcm:SubmitObjectsRequest>
<xdsb:Document id="{doc}">{base64.b64encode(content).decode() if inline else ""}</xdsb:Document>
</xdsb:ProvideAndRegisterDocumentSetRequest>"""
    return etree.fromstring(body.encode()), content


def find_documents(patient: dict, *, statuses: tuple[str, ...] = ("urn:oasis:names:tc:ebxml-regrep:StatusType:Approved",),
                   return_type: str = "LeafClass") -> etree._Element:
    """An ITI-18 FindDocuments query (TD3.1) for the patient's entries of these statuses."""
    status_values = ",".join(f"'{s}'" for s in statuses)
    return etree.fromstring(f"""<query:AdhocQueryRequest xmlns:query="{QUERY}" xmlns:rim="{RIM}">
<query:ResponseOption returnComposedObjects="true" returnType="{return_type}"/>
<rim:AdhocQuery id="urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d">
{_slot("$XDSDocumentEntryPatientId", f"'{patient['ins']}^^^&amp;{patient['ins_oid']}&amp;ISO^NH'")}
{_slot("$XDSDocumentEntryStatus", f"({status_values})")}
</rim:AdhocQuery></query:AdhocQueryRequest>""".encode())


def retrieve(unique_id: str, repository: str = "1.2.250.1.213.4.1.1.1.2") -> etree._Element:
    """An ITI-43 RetrieveDocumentSetRequest (TD3.2) for one document of the DMP's repository."""
    return etree.fromstring(f"""<xdsb:RetrieveDocumentSetRequest xmlns:xdsb="{XDS_B}"><xdsb:DocumentRequest>
<xdsb:RepositoryUniqueId>{repository}</xdsb:RepositoryUniqueId>
<xdsb:DocumentUniqueId>{unique_id}</xdsb:DocumentUniqueId>
</xdsb:DocumentRequest></xdsb:RetrieveDocumentSetRequest>""".encode())


def update_status(patient: dict, entry_uuid: str, original: str, new: str) -> etree._Element:
    """An ITI-57 availability status change (TD3.3: deletion or archiving) of the entry `entry_uuid`."""
    cx = f"{patient['ins']}^^^&amp;{patient['ins_oid']}&amp;ISO^NH"
    ss = "SubmissionSet01"
    return etree.fromstring(f"""<lcm:SubmitObjectsRequest xmlns:lcm="{LCM}" xmlns:rim="{RIM}"><rim:RegistryObjectList>
{_submission_set(ss, cx, "1.2.250.1.999.8.")}
<rim:Association associationType="urn:ihe:iti:2010:AssociationType:UpdateAvailabilityStatus" id="urn:uuid:{uuid.uuid4()}" sourceObject="{ss}" targetObject="{entry_uuid}">
{_slot("OriginalStatus", original)}{_slot("NewStatus", new)}
</rim:Association>
</rim:RegistryObjectList></lcm:SubmitObjectsRequest>""".encode())


def update_metadata(patient: dict, extrinsic: etree._Element, previous_version: str,
                    confidentiality: tuple[str, ...]) -> etree._Element:
    """An ITI-57 metadata update (TD3.3 masking), as a DPI builds it from the entry a TD3.1 returned: the
    same lid, a new id, the confidentiality codes replaced, a HasMember carrying PreviousVersion."""
    entry = copy.deepcopy(extrinsic)
    entry.set("id", "UpdatedEntry01")
    for c in list(entry.findall(f"{{{RIM}}}Classification")):
        if c.get("classificationScheme") == CONFIDENTIALITY_SCHEME:
            entry.remove(c)
    for child in entry.iter():
        if child.get("classifiedObject") or child.get("registryObject"):
            child.set("classifiedObject" if child.get("classifiedObject") else "registryObject", "UpdatedEntry01")
    for code in confidentiality:
        entry.append(etree.fromstring(
            f'<rim:Classification xmlns:rim="{RIM}" classificationScheme="{CONFIDENTIALITY_SCHEME}" '
            f'classifiedObject="UpdatedEntry01" id="urn:uuid:{uuid.uuid4()}" nodeRepresentation="{code}">'
            + _slot("codingScheme", "2.16.840.1.113883.5.25" if code == "N" else "1.2.250.1.213.1.1.4.13")
            + f'<rim:Name><rim:LocalizedString value="{code}"/></rim:Name></rim:Classification>'))
    body = update_status(patient, "urn:uuid:placeholder", "x", "y")
    objects = body.find(f"{{{RIM}}}RegistryObjectList")
    for association in objects.findall(f"{{{RIM}}}Association"):
        objects.remove(association)
    objects.insert(0, entry)
    objects.append(etree.fromstring(
        f'<rim:Association xmlns:rim="{RIM}" associationType="urn:oasis:names:tc:ebxml-regrep:AssociationType:'
        f'HasMember" id="urn:uuid:{uuid.uuid4()}" sourceObject="SubmissionSet01" targetObject="UpdatedEntry01">'
        + _slot("SubmissionSetStatus", "Original") + _slot("PreviousVersion", previous_version)
        + "</rim:Association>"))
    return body


def existence_test(patient: dict) -> etree._Element:
    """A TD0.2 body (PRPA_IN201307UV02, reasonCode TEST_EXST) for this patient, shaped like the ANS example."""
    return etree.fromstring(f"""<PRPA_IN201307UV02 xmlns="{HL7}" ITSVersion="XML_1.0">
<id root="{uuid.uuid4()}"/><creationTime value="20261120100000"/>
<interactionId root="2.16.840.1.113883.1.6" extension="PRPA_IN201307UV02"/>
<processingCode code="P"/><processingModeCode code="T"/><acceptAckCode code="AL"/>
<receiver typeCode="RCV"><device classCode="DEV" determinerCode="INSTANCE"><id root="1.2.250.1.213.4.1.1.1"/>
</device></receiver>
<sender typeCode="SND"><device classCode="DEV" determinerCode="INSTANCE"><id root="1.2.250.1.999"/></device></sender>
<controlActProcess classCode="CACT" moodCode="EVN"><code code="PRPA_TE201307UV02" codeSystem="2.16.840.1.113883.1.6"/>
<reasonCode code="TEST_EXST" codeSystem="1.2.250.1.213.1.1.4.11"/>
<queryByParameter><queryId root="{uuid.uuid4()}"/><statusCode code="new"/><responsePriorityCode code="I"/>
<parameterList><patientIdentifier><value root="{patient['ins_oid']}" extension="{patient['ins']}"/>
<semanticsText>Patient.id</semanticsText></patientIdentifier></parameterList></queryByParameter>
</controlActProcess></PRPA_IN201307UV02>""".encode())
