"""The DMP's WS-Addressing Actions, written once: the door routes requests and words its answers with them,
and the WSDL declares them. Values as the corpus requests and answers carry them (`dmp-wire/`)."""

from __future__ import annotations

# XDS.b: ITI-41 (TD2.1), ITI-18 (TD3.1), ITI-43 (TD3.2), ITI-57 (TD3.3).
ACTION_TD21_REQUEST = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"
ACTION_TD21_RESPONSE = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-bResponse"
ACTION_TD31_REQUEST = "urn:ihe:iti:2007:RegistryStoredQuery"
ACTION_TD31_RESPONSE = "urn:ihe:iti:2007:RegistryStoredQueryResponse"
ACTION_TD32_REQUEST = "urn:ihe:iti:2007:RetrieveDocumentSet"
ACTION_TD32_RESPONSE = "urn:ihe:iti:2007:RetrieveDocumentSetResponse"
ACTION_TD33_REQUEST = "urn:ihe:iti:2010:UpdateDocumentSet"
# sic: the DMP's own ITI-57 answers have the hyphen (TD3.3c/d_response.xml); the WSDL declares IHE's name.
ACTION_TD33_RESPONSE = "urn:ihe:iti:2010:UpdateDocumentSet-Response"
ACTION_ITI57_RESPONSE = "urn:ihe:iti:2010:UpdateDocumentSetResponse"

# HL7v3 and the DMP's own services: TD0.2 (and TD1.3a), TD0.3, TD0.4, TD1.6.
ACTION_TD02_REQUEST = "urn:hl7-org:v3:PRPA_IN201307UV02"
ACTION_TD02_RESPONSE = "urn:hl7-org:v3:PRPA_IN201308UV02"
ACTION_TD03_REQUEST = "urn:si-dmp-habilitations:HabilitationsEndPoint:setAuthorization"
ACTION_TD03_RESPONSE = "urn:si-dmp-habilitations:HabilitationsEndPoint:setAuthorizationResponse"
ACTION_TD04_REQUEST = "urn:si-dmp-patients:PatientSpecificEndPoint:patientList"
ACTION_TD04_RESPONSE = "urn:si-dmp-patients:PatientSpecificEndPoint:patientListResponse"
ACTION_TD16_REQUEST = "urn:si-dmp-habilitations:HabilitationsEndPoint:listAuthorizationByPatient"
ACTION_TD16_RESPONSE = "urn:si-dmp-habilitations:HabilitationsEndPoint:listAuthorizationByPatientResponse"
# The C# kit's Habilitations.wsdl declares these soapActions: a client generated from it may send them.
ACTION_TD03_KIT = "urn:hl7-org:v3:setAuthorization"
ACTION_TD16_KIT = "urn:hl7-org:v3:listAuthorizationByPatient"
