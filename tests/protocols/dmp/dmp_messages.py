"""Builders for the DMP door's tests: a VIHF for a professional of the world, and XDS request bodies shaped
like the ANS examples."""

import base64
import hashlib
import uuid

from lxml import etree

from mockbench.formats.cda import minimal_cda
from mockbench.testing import sign_vihf

SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
HL7 = "urn:hl7-org:v3"
RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
LCM = "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"
QUERY = "urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0"
XDS_B = "urn:ihe:iti:xds-b:2007"


def vihf(pro: dict, structure_idnst: str, patient: dict, *, signer, mode: str = "normal",
         authentication: str = "INDIRECTE_RENFORCEE", secret: bool = False) -> etree._Element:
    """A wsse:Security holding a VIHF 3.0 for this professional, structure and patient, signed by the
    structure's seal certificate of `signer`'s PKI (a running bench, through `mockbench.testing.sign_vihf`,
    as a vendor's tests would), or unsigned when `signer` is None (the DMP refuses it: DMPInvalidCertificate,
    unless the bench is lenient)."""
    def attr(name: str, value: str | None = None, element: etree._Element | None = None) -> str:
        if element is not None:
            inner = etree.tostring(element).decode()
        else:
            inner = '<xs:string xmlns:xs="x"/>' if value is None else value
        if element is None:
            return (f'<saml2:Attribute Name="{name}"><saml2:AttributeValue xmlns:xs="http://www.w3.org/2001/XMLSchema"'
                    f' xsi:type="xs:string">{inner}</saml2:AttributeValue></saml2:Attribute>')
        return f'<saml2:Attribute Name="{name}"><saml2:AttributeValue>{inner}</saml2:AttributeValue></saml2:Attribute>'

    def ce(tag: str, code: str, system: str) -> etree._Element:
        el = etree.Element(f"{{{HL7}}}{tag}", nsmap={None: HL7, "xsi": XSI})
        el.set("code", code)
        el.set("codeSystem", system)
        el.set(f"{{{XSI}}}type", "CE")
        return el

    profession = pro.get("profession", "10")
    # trans-cda-r2/mapping.md, VIHF table: a second role for doctors (TRE_R01) and pharmacists (TRE_G05)
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
        attr("urn:oasis:names:tc:xspa:1.0:subject:purposeofuse", element=ce("PurposeOfUse", mode,
                                                                             "1.2.250.1.213.1.1.4.248")),
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
    security = etree.fromstring(xml.replace('<xs:string xmlns:xs="x"/>', ""))
    return security if signer is None else sign_vihf(security, signer)


def cda(patient: dict, pro: dict, unique_id: str, *, text: str = "Examen normal.") -> bytes:
    return minimal_cda(unique_id=unique_id, ins=patient["ins"], ins_oid=patient["ins_oid"], type_code="11488-4",
                       title="Compte rendu de consultation", author_idnps=pro["idnps"],
                       author_family=pro["family_name"], author_given=pro["given_name"],
                       patient_family=patient["family_name"], patient_given=patient["given_name"],
                       birth_date=patient["birth_date"], sex=patient["sex"], effective_time="2026-11-20T10:00:00Z",
                       text=text)


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


def provide_and_register(patient: dict, pro: dict, unique_id: str, content: bytes, *, replaces_entry: str = "",
                         confidentiality: tuple[str, ...] = ("N",), with_hash: bool = True,
                         inline: bool = True) -> tuple[etree._Element, bytes]:
    """An ITI-41 body (document inline in base64) and the document bytes."""
    cx = f"{patient['ins']}^^^&amp;{patient['ins_oid']}&amp;ISO^NH"
    doc, ss = "Document01", "SubmissionSet01"
    conf = "".join(_classification("f4f85eac-e6cb-4883-b524-f2705394840f", doc, c,
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
<rim:RegistryPackage id="{ss}" objectType="urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd">
{_slot("submissionTime", "20261120100000")}
{_classification("aa543740-bdda-424e-8c96-df4873be8500", ss, "04", "1.2.250.1.213.2.2")}
{_external("96fdda7c-d067-4183-912e-bf5ee74998a8", ss, "1.2.250.1.999.9." + str(uuid.uuid4().int % 10**9), "XDSSubmissionSet.uniqueId")}
{_external("554ac39e-e3fe-47fe-b233-965d2a147832", ss, "1.2.250.1.999", "XDSSubmissionSet.sourceId")}
{_external("6b5aea1a-874d-4603-a4bc-96a0a7b38446", ss, cx, "XDSSubmissionSet.patientId")}
</rim:RegistryPackage>
<rim:Classification classificationNode="urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd" classifiedObject="{ss}" id="urn:uuid:{uuid.uuid4()}"/>
<rim:Association associationType="urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember" id="urn:uuid:{uuid.uuid4()}" sourceObject="{ss}" targetObject="{doc}">{_slot("SubmissionSetStatus", "Original")}</rim:Association>
{association}
</rim:RegistryObjectList></lcm:SubmitObjectsRequest>
<xdsb:Document id="{doc}">{base64.b64encode(content).decode() if inline else ""}</xdsb:Document>
</xdsb:ProvideAndRegisterDocumentSetRequest>"""
    return etree.fromstring(body.encode()), content


def find_documents(patient: dict, *, statuses: tuple[str, ...] = ("urn:oasis:names:tc:ebxml-regrep:StatusType:Approved",),
                   return_type: str = "LeafClass") -> etree._Element:
    status_values = ",".join(f"'{s}'" for s in statuses)
    return etree.fromstring(f"""<query:AdhocQueryRequest xmlns:query="{QUERY}" xmlns:rim="{RIM}">
<query:ResponseOption returnComposedObjects="true" returnType="{return_type}"/>
<rim:AdhocQuery id="urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d">
{_slot("$XDSDocumentEntryPatientId", f"'{patient['ins']}^^^&amp;{patient['ins_oid']}&amp;ISO^NH'")}
{_slot("$XDSDocumentEntryStatus", f"({status_values})")}
</rim:AdhocQuery></query:AdhocQueryRequest>""".encode())


def retrieve(unique_id: str, repository: str = "1.2.250.1.213.4.1.1.1.2") -> etree._Element:
    return etree.fromstring(f"""<xdsb:RetrieveDocumentSetRequest xmlns:xdsb="{XDS_B}"><xdsb:DocumentRequest>
<xdsb:RepositoryUniqueId>{repository}</xdsb:RepositoryUniqueId>
<xdsb:DocumentUniqueId>{unique_id}</xdsb:DocumentUniqueId>
</xdsb:DocumentRequest></xdsb:RetrieveDocumentSetRequest>""".encode())


def update_status(patient: dict, entry_uuid: str, original: str, new: str) -> etree._Element:
    cx = f"{patient['ins']}^^^&amp;{patient['ins_oid']}&amp;ISO^NH"
    ss = "SubmissionSet01"
    return etree.fromstring(f"""<lcm:SubmitObjectsRequest xmlns:lcm="{LCM}" xmlns:rim="{RIM}"><rim:RegistryObjectList>
<rim:RegistryPackage id="{ss}" objectType="urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd">
{_slot("submissionTime", "20261120100000")}
{_classification("aa543740-bdda-424e-8c96-df4873be8500", ss, "04", "1.2.250.1.213.2.2")}
{_external("96fdda7c-d067-4183-912e-bf5ee74998a8", ss, "1.2.250.1.999.8." + str(uuid.uuid4().int % 10**9), "XDSSubmissionSet.uniqueId")}
{_external("554ac39e-e3fe-47fe-b233-965d2a147832", ss, "1.2.250.1.999", "XDSSubmissionSet.sourceId")}
{_external("6b5aea1a-874d-4603-a4bc-96a0a7b38446", ss, cx, "XDSSubmissionSet.patientId")}
</rim:RegistryPackage>
<rim:Classification classificationNode="urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd" classifiedObject="{ss}" id="urn:uuid:{uuid.uuid4()}"/>
<rim:Association associationType="urn:ihe:iti:2010:AssociationType:UpdateAvailabilityStatus" id="urn:uuid:{uuid.uuid4()}" sourceObject="{ss}" targetObject="{entry_uuid}">
{_slot("OriginalStatus", original)}{_slot("NewStatus", new)}
</rim:Association>
</rim:RegistryObjectList></lcm:SubmitObjectsRequest>""".encode())


WORLD = """\
id: dmp-test
title: Essai DMP
seed: 9
world:
  structures: [{id: chu, name: CHU de Test}, {id: clinique, name: Clinique}]
  professionals:
    - {id: dr_a, family_name: MARTIN, given_name: Jeanne, structure: chu}
    - {id: dr_b, family_name: PETIT, given_name: Paul, structure: chu}
    - {id: dr_c, family_name: ROUX, given_name: Claire, structure: clinique}
  patients:
    - id: alice
      sex: F
      family_name: DURAND
      given_name: Alice
      birth_date: "1980-05-04"
      authorizations: [{structure: chu}]
      documents:
        - {id: cr_masque, author: dr_b, confidentiality: [MASQUE_PS]}
"""


CONFIDENTIALITY_SCHEME = "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f"


def update_metadata(patient: dict, extrinsic: etree._Element, previous_version: str,
                    confidentiality: tuple[str, ...]) -> etree._Element:
    """ITI-57 metadata update, as a DPI builds it from the entry a TD3.1 returned: the same lid, a new id, the
    confidentiality codes replaced, a HasMember carrying PreviousVersion."""
    import copy
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
