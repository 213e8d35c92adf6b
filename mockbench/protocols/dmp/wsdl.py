"""The WSDL of each DMP service, written for this project: the real operations, Actions and namespaces,
SOAP 1.2 document/literal. Message bodies are declared as open content (xs:any) in their real namespaces,
so that a client built from the WSDL (zeep) sends and receives the IHE and HL7v3 elements as they are,
without this project shipping the OASIS ebRIM and HL7v3 schemas."""

from __future__ import annotations

from ...formats.xml import quoteattr
from . import actions as wsa

# service -> [(operation, request element (ns, name), response element (ns, name), Action, response Action)]
RIM_Q = "urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0"
RIM_RS = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
RIM_LCM = "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"
XDS_B = "urn:ihe:iti:xds-b:2007"
HL7 = "urn:hl7-org:v3"
HAB = "urn:si-dmp-habilitations"
PAT = "urn:si-dmp-patients"

OPERATIONS = {
    "registry": [
        ("RegistryStoredQuery", (RIM_Q, "AdhocQueryRequest"), (RIM_Q, "AdhocQueryResponse"),
         wsa.ACTION_TD31_REQUEST, wsa.ACTION_TD31_RESPONSE),
        ("UpdateDocumentSet", (RIM_LCM, "SubmitObjectsRequest"), (RIM_RS, "RegistryResponse"),
         wsa.ACTION_TD33_REQUEST, wsa.ACTION_ITI57_RESPONSE),
    ],
    "repository": [
        ("ProvideAndRegisterDocumentSet-b", (XDS_B, "ProvideAndRegisterDocumentSetRequest"), (RIM_RS, "RegistryResponse"),
         wsa.ACTION_TD21_REQUEST, wsa.ACTION_TD21_RESPONSE),
        ("RetrieveDocumentSet", (XDS_B, "RetrieveDocumentSetRequest"), (XDS_B, "RetrieveDocumentSetResponse"),
         wsa.ACTION_TD32_REQUEST, wsa.ACTION_TD32_RESPONSE),
    ],
    "patients": [
        ("PRPA_IN201307UV02", (HL7, "PRPA_IN201307UV02"), (HL7, "PRPA_IN201308UV02"),
         wsa.ACTION_TD02_REQUEST, wsa.ACTION_TD02_RESPONSE),
    ],
    "habilitations": [
        ("setAuthorization", (HAB, "setAuthorization"), (HAB, "setAuthorizationResponse"),
         wsa.ACTION_TD03_REQUEST, wsa.ACTION_TD03_RESPONSE),
        ("listAuthorizationByPatient", (HAB, "listAuthorizationByPatient"), (HAB, "listAuthorizationByPatientResponse"),
         wsa.ACTION_TD16_REQUEST, wsa.ACTION_TD16_RESPONSE),
    ],
    "patientsSpecific": [
        ("patientList", (PAT, "patientList"), (PAT, "patientListResponse"),
         wsa.ACTION_TD04_REQUEST, wsa.ACTION_TD04_RESPONSE),
    ],
}


def _schema(namespace: str, names: list[str]) -> str:
    elements = "".join(
        f'<xs:element name="{n}"><xs:complexType><xs:sequence>'
        '<xs:any namespace="##any" processContents="lax" minOccurs="0" maxOccurs="unbounded"/>'
        '</xs:sequence><xs:anyAttribute namespace="##any" processContents="lax"/></xs:complexType></xs:element>'
        for n in sorted(set(names)))
    return (f'<xs:schema targetNamespace="{namespace}" elementFormDefault="qualified" '
            f'xmlns:xs="http://www.w3.org/2001/XMLSchema">{elements}</xs:schema>')


def wsdl_for(service: str, address: str) -> str:
    ops = OPERATIONS[service]
    namespaces: dict[str, list[str]] = {}
    for _, req, resp, _, _ in ops:
        for ns, name in (req, resp):
            namespaces.setdefault(ns, []).append(name)
    prefixes = {ns: f"b{i}" for i, ns in enumerate(namespaces)}
    xmlns = " ".join(f'xmlns:{p}="{ns}"' for ns, p in prefixes.items())
    tns = f"urn:mockbench:dmp:{service}"
    types = "".join(_schema(ns, names) for ns, names in namespaces.items())
    messages = "".join(
        f'<wsdl:message name="{op}_in"><wsdl:part name="body" element="{prefixes[req[0]]}:{req[1]}"/></wsdl:message>'
        f'<wsdl:message name="{op}_out"><wsdl:part name="body" element="{prefixes[resp[0]]}:{resp[1]}"/>'
        "</wsdl:message>" for op, req, resp, _, _ in ops)
    port_ops = "".join(
        f'<wsdl:operation name="{op}"><wsdl:input message="tns:{op}_in" wsam:Action={quoteattr(a)}/>'
        f'<wsdl:output message="tns:{op}_out" wsam:Action={quoteattr(ra)}/></wsdl:operation>'
        for op, _, _, a, ra in ops)
    binding_ops = "".join(
        f'<wsdl:operation name="{op}"><soap12:operation soapAction={quoteattr(a)} style="document"/>'
        '<wsdl:input><soap12:body use="literal"/></wsdl:input><wsdl:output><soap12:body use="literal"/>'
        "</wsdl:output></wsdl:operation>" for op, _, _, a, _ in ops)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<wsdl:definitions name="{service}" targetNamespace="{tns}" xmlns:tns="{tns}" {xmlns}
    xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/" xmlns:soap12="http://schemas.xmlsoap.org/wsdl/soap12/"
    xmlns:wsam="http://www.w3.org/2007/05/addressing/metadata" xmlns:wsaw="http://www.w3.org/2006/05/addressing/wsdl">
  <wsdl:documentation>mockbench: the DMP's {service} service (SOAP 1.2, WS-Addressing; VIHF in wsse:Security;
  ITI-41 and ITI-43 in MTOM/XOP). Written for mockbench, not the DMP's own WSDL.</wsdl:documentation>
  <wsdl:types>{types}</wsdl:types>
  {messages}
  <wsdl:portType name="{service}PortType">{port_ops}</wsdl:portType>
  <wsdl:binding name="{service}Binding" type="tns:{service}PortType">
    <soap12:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/>
    <wsaw:UsingAddressing xmlns:wsdl11="http://schemas.xmlsoap.org/wsdl/" wsdl11:required="true"/>
    {binding_ops}
  </wsdl:binding>
  <wsdl:service name="{service}">
    <wsdl:port name="{service}Port" binding="tns:{service}Binding"><soap12:address location={quoteattr(address)}/></wsdl:port>
  </wsdl:service>
</wsdl:definitions>
"""
