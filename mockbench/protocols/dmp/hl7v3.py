"""The wire format of the DMP's non-XDS transactions: TD0.2 (HL7v3 PRPA_IN201307UV02 -> PRPA_IN201308UV02,
reasonCode TEST_EXST), TD0.3 (setAuthorization, urn:si-dmp-habilitations), TD0.4 (patientList,
urn:si-dmp-patients) and TD1.6 (listAuthorizationByPatient, urn:si-dmp-habilitations).

Pure functions: each `parse_*` takes the first element child of the soap:Body (an lxml Element) and returns
plain data, or raises `Td0Error` (subcode, reason naming the field); each `render_*` takes plain data and
returns the lxml Element that goes into the answer's soap:Body. The door owns the envelope, the WS-Addressing
headers (the `ACTION_*` constants), the VIHF and the world.

Shapes follow the ANS/GIE "DMP LPS" examples (DOMAIN.md [EX], `dmp-wire/TD0.2_*`, `TD0.3_*`, `TD0.4_*`,
`TD1.6_*`) and the WSDL of the ANS C# kit (Habilitations.wsdl 1.0.0, PatientsSpecific.wsdl 1.0.2), which
gives the optional fields the examples leave out (TD0.3 `role`, TD0.4 `psOwnerId`, TD1.6 `mode` ACTIVE |
INTERDITE | TOUTE). Elements of the habilitations / patients namespaces are read qualified (the WSDL says
form="qualified") and also unqualified; HL7v3 elements in urn:hl7-org:v3 or unqualified.

Who the patient is, per TD: TD0.2 carries the INS in the body
(`controlActProcess/queryByParameter/parameterList/patientIdentifier/value@root@extension`); TD0.3 and TD1.6
carry none: the patient is the VIHF's `resource-id` attribute; TD0.4 names no patient (it lists the DMPs the
VIHF's professional is authorized on; `psOwnerId`, when sent, names that professional).

TD0.2 answer (the corpus shows an active DMP with a VALIDE authorization); the rest is chosen here, INF:
- AUTORISATION: `attentionLine keyWordText AUTORISATION (1.2.250.1.213.4.1.2.6.1)`, `value xsi:type=CV`
  VALIDE | INTERDIT | EXPIRE | NON_EXISTE (1.2.250.1.213.4.1.2.6.2). A reason (an INTERDIT's, or any the
  world gives) travels as the CV's `originalText`: plain HL7 datatypes, no invented keyword, and a client
  that reads `value/@code` sees nothing new. `STATUT_MT` (1.2.250.1.213.4.1.2.6.3, BL) follows it, as in
  the corpus.
- ACTIF: the corpus shape: patient `statusCode active`, observations COMPTE_INTERNET_OUVERT
  (1.2.250.1.213.4.1.2.9) and RATTACHEMENT_ENS (1.2.250.1.213.4.1.2.3), then both oppositions
  OPPOSITION_BRIS_DE_GLACE / OPPOSITION_ACCES_URGENCE (1.2.250.1.213.4.1.2.3) valued true or false, as the
  TD1.3a answer carries them.
- FERME: the same answer (AA, queryResponseCode OK, the patient) with patient `statusCode terminated` (the
  code TD1.4 sends to close a DMP and gets back) and one more observation for the closure, shaped after
  TD1.4's `reasonOf/detectedIssueEvent`: `code` = the motive (1.2.250.1.213.4.1.2.4; the world's
  close_reason when it is a code such as FERMETURE_DEMANDE_PATIENT, else FERMETURE_DEMANDE_PATIENT),
  `text` = the reason in words (when the world's reason is not a code), `effectiveTime` = the closing date.
- INEXISTANT: acknowledgement AA (the query worked), no `subject` at all, and
  `queryAck/queryResponseCode NF` (HL7v3's "no information found"); AUTORISATION is NON_EXISTE whatever
  the facts say. An INS the bench does not know is answered the same way (the real DMP answers INEXISTANT
  for a NIR without a DMP).
- A refusal (`render_existence_error`): acknowledgement AE with
  `acknowledgementDetail typeCode=E` (code, text), no attentionLine, no subject, queryResponseCode AE.

Times: the wire carries HL7 TS `YYYYMMDDHHMMSS`; the world gives ISO 8601 (UTC). Renderers take either and
write UTC digits; parsers return ISO 8601 with a Z (the wire's digits read as UTC).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from lxml import etree

from ...formats.times import hl7_ts, iso_from_ts  # HL7 times written once; re-exported
from .actions import (  # re-exported
    ACTION_TD02_REQUEST,
    ACTION_TD02_RESPONSE,
    ACTION_TD03_KIT,
    ACTION_TD03_REQUEST,
    ACTION_TD03_RESPONSE,
    ACTION_TD04_REQUEST,
    ACTION_TD04_RESPONSE,
    ACTION_TD16_KIT,
    ACTION_TD16_REQUEST,
    ACTION_TD16_RESPONSE,
)

__all__ = (
    "ACTION_TD02_REQUEST", "ACTION_TD02_RESPONSE", "ACTION_TD03_REQUEST", "ACTION_TD03_RESPONSE",
    "ACTION_TD04_REQUEST", "ACTION_TD04_RESPONSE", "ACTION_TD16_REQUEST", "ACTION_TD16_RESPONSE",
    "REQUEST_ACTIONS", "NS_HL7", "NS_HABILITATIONS", "NS_PATIENTS", "MODE_STATUSES",
    "Td0Error", "II", "ExistenceRequest", "PatientData", "ExistenceFacts", "SetAuthorizationRequest",
    "PatientListRequest", "ListedPatient", "ListAuthorizationsRequest", "ListedAuthorization",
    "reason_code", "parse_existence", "render_existence", "render_existence_error",
    "parse_set_authorization", "render_status", "parse_patient_list", "render_patient_list",
    "parse_list_authorizations", "render_authorization_list", "hl7_ts", "iso_from_ts",
)

NS_HL7 = "urn:hl7-org:v3"
NS_HABILITATIONS = "urn:si-dmp-habilitations"
NS_PATIENTS = "urn:si-dmp-patients"
NS_XSI = "http://www.w3.org/2001/XMLSchema-instance"
NS_GDP = "asip:ci-sis:gdp:2010"      # declared on the corpus TD0.2 answer's root (unused there)
_XSI_TYPE = f"{{{NS_XSI}}}type"

# Request Action -> TD. The C# kit's Habilitations.wsdl declares soapAction urn:hl7-org:v3:setAuthorization
# and urn:hl7-org:v3:listAuthorizationByPatient: a client generated from it may send those.
# PRPA_IN201307UV02 is also TD1.3a (reasonCode CNSLT_DATA): route it with `reason_code`.
REQUEST_ACTIONS = MappingProxyType({
    ACTION_TD02_REQUEST: "TD0.2",
    ACTION_TD03_REQUEST: "TD0.3",
    ACTION_TD03_KIT: "TD0.3",
    ACTION_TD04_REQUEST: "TD0.4",
    ACTION_TD16_REQUEST: "TD1.6",
    ACTION_TD16_KIT: "TD1.6",
})

# Code systems
OID_REASON = "1.2.250.1.213.1.1.4.11"           # controlActProcess reasonCode (TEST_EXST, CNSLT_DATA, FERM...)
OID_ATTENTION_KEY = "1.2.250.1.213.4.1.2.6.1"   # attentionLine AUTORISATION
OID_AUTHORIZATION = "1.2.250.1.213.4.1.2.6.2"   # its values
OID_TREATING_DOCTOR_KEY = "1.2.250.1.213.4.1.2.6.3"
OID_INTERNET_ACCOUNT = "1.2.250.1.213.4.1.2.9"
OID_PATIENT_OBSERVATION = "1.2.250.1.213.4.1.2.3"  # RATTACHEMENT_ENS, oppositions
OID_CLOSURE = "1.2.250.1.213.4.1.2.4"           # closure motives (FERMETURE_DEMANDE_PATIENT)
OID_INTERACTION = "2.16.840.1.113883.1.6"
OID_DMP = "1.2.250.1.213.4.1.1.1"               # the DMP's device and custodian id
OID_IDNPS = "1.2.250.1.71.4.2.1"
OID_IDNST = "1.2.250.1.71.4.2.2"

TEST_EXST = "TEST_EXST"
TEST_EXST_LABEL = "Test d'existence de dossier"
DMP_STATES = ("active", "closed", "absent")
AUTHORIZATION_STATUSES = ("VALIDE", "INTERDIT", "EXPIRE", "NON_EXISTE")
SET_ACTIONS = ("AJOUT", "SUPPRESSION")
SET_ROLES = ("MEDECIN_TRAITANT",)
DATE_TYPES = ("LASTAUTORIZATION", "LASTDOC")
LIST_MODES = ("ACTIVE", "INTERDITE", "TOUTE")
# TD1.6 mode -> the authorization statuses it lists; and the wire mode of a listed status.
MODE_STATUSES = MappingProxyType({
    "ACTIVE": frozenset({"VALIDE"}),
    "INTERDITE": frozenset({"INTERDIT"}),
    "TOUTE": frozenset({"VALIDE", "INTERDIT"}),
})
_WIRE_MODE = MappingProxyType({"VALIDE": "ACTIVE", "INTERDIT": "INTERDITE"})
_OPPOSITIONS = (
    ("OPPOSITION_BRIS_DE_GLACE", "opposition au mode bris de glace"),
    ("OPPOSITION_ACCES_URGENCE", "opposition à l'accès au mode urgence"),
)
DEFAULT_CLOSE_MOTIVE = "FERMETURE_DEMANDE_PATIENT"
_CODE = re.compile(r"[A-Z][A-Z0-9_]*")
_PREFIX_BY_SEX = MappingProxyType({"M": "M", "F": "MME"})


class Td0Error(Exception):
    """A malformed request. `subcode` is the SOAP Fault subcode the door answers with (DMPInvalidRequest,
    DMPMissingPatientId, DMPInvalidAction...); `reason` names the field at fault."""

    def __init__(self, subcode: str, reason: str) -> None:
        super().__init__(f"{subcode}: {reason}")
        self.subcode = subcode
        self.reason = reason


@dataclass(frozen=True)
class II:
    """An HL7v3 instance identifier."""

    root: str
    extension: str | None = None


# TD0.2 --------------------------------------------------------------------------------------------------
@dataclass
class ExistenceRequest:
    message_id: II                      # the request's id (root, extension): echoed in targetMessage
    ins: str                            # patientIdentifier/value@extension
    ins_oid: str                        # patientIdentifier/value@root
    reason_code: str = TEST_EXST
    query_id: II | None = None          # queryByParameter/queryId: echoed in queryAck
    sender_device: str | None = None    # the client's device id root (the answer's receiver)
    sender_name: str | None = None
    receiver_device: str | None = None  # the DMP's device id root (the answer's sender)
    receiver_name: str | None = None


@dataclass
class PatientData:
    family: str
    given: str
    birth_date: str                     # YYYY-MM-DD
    sex: str                            # M | F | U
    prefix: str | None = None           # civility; from sex when None (M -> M, F -> MME)
    other_ids: list[II] = field(default_factory=list)  # e.g. a legacy INS-C (1.2.250.1.213.1.4.2), listed first


@dataclass
class ExistenceFacts:
    dmp_state: str                      # active | closed | absent
    closed_at: str | None = None        # ISO 8601
    close_reason: str | None = None     # a motive code (FERMETURE_DEMANDE_PATIENT) or words
    authorization: str = "NON_EXISTE"   # VALIDE | INTERDIT | EXPIRE | NON_EXISTE
    authorization_reason: str | None = None
    oppositions: list[str] = field(default_factory=list)
    internet_account: bool = False
    attached_ens: bool = False
    patient: PatientData | None = None  # a mapping of PatientData's fields is taken too
    treating_doctor: bool = False       # attentionLine STATUT_MT

    def __post_init__(self) -> None:
        if isinstance(self.patient, Mapping):
            self.patient = PatientData(**self.patient)


def reason_code(body: etree._Element) -> str | None:
    """The controlActProcess reasonCode of a PRPA_IN201307UV02 (TEST_EXST for TD0.2, CNSLT_DATA for TD1.3a),
    for the door to route; None when there is none."""
    cap = _child(body, "controlActProcess", NS_HL7)
    rc = _child(cap, "reasonCode", NS_HL7) if cap is not None else None
    return (rc.get("code") or None) if rc is not None else None


def parse_existence(body: etree._Element) -> ExistenceRequest:
    _require_root(body, NS_HL7, "PRPA_IN201307UV02")
    ident = _child(body, "id", NS_HL7)
    if ident is None or not ident.get("root"):
        raise Td0Error("DMPInvalidRequest", "PRPA_IN201307UV02/id: the message has no id (root)")
    cap = _child(body, "controlActProcess", NS_HL7)
    if cap is None:
        raise Td0Error("DMPInvalidRequest", "PRPA_IN201307UV02/controlActProcess is missing")
    code = reason_code(body)
    if code != TEST_EXST:
        raise Td0Error("DMPInvalidRequest", f"controlActProcess/reasonCode: {code!r} is not {TEST_EXST}"
                       if code else f"controlActProcess/reasonCode is missing (TD0.2 sends {TEST_EXST})")
    query = _child(cap, "queryByParameter", NS_HL7)
    value = _path(query, ("parameterList", "patientIdentifier", "value"), NS_HL7)
    ins = (value.get("extension") or "").strip() if value is not None else ""
    oid = (value.get("root") or "").strip() if value is not None else ""
    where = "queryByParameter/parameterList/patientIdentifier/value"
    if not ins:
        raise Td0Error("DMPMissingPatientId", f"{where}@extension: no patient INS")
    if not oid:
        raise Td0Error("DMPMissingPatientId", f"{where}@root: the INS has no OID")
    qid = _child(query, "queryId", NS_HL7)
    sender = _path(body, ("sender", "device"), NS_HL7)
    receiver = _path(body, ("receiver", "device"), NS_HL7)
    return ExistenceRequest(
        message_id=II(ident.get("root"), ident.get("extension")), ins=ins, ins_oid=oid, reason_code=code,
        query_id=II(qid.get("root"), qid.get("extension")) if qid is not None and qid.get("root") else None,
        sender_device=_device_id(sender), sender_name=_device_name(sender),
        receiver_device=_device_id(receiver), receiver_name=_device_name(receiver))


def render_existence(request: ExistenceRequest, facts: ExistenceFacts, *, message_id: str,
                     now: str) -> etree._Element:
    """The PRPA_IN201308UV02 answering a TD0.2 (see the module docstring for FERME / INEXISTANT)."""
    if facts.dmp_state not in DMP_STATES:
        raise ValueError(f"dmp_state must be one of {', '.join(DMP_STATES)}, not {facts.dmp_state!r}")
    if facts.authorization not in AUTHORIZATION_STATUSES:
        raise ValueError(f"authorization must be one of {', '.join(AUTHORIZATION_STATUSES)}")
    bad = [o for o in facts.oppositions if o not in dict(_OPPOSITIONS)]
    if bad:
        raise ValueError(f"unknown opposition {bad[0]!r}")
    absent = facts.dmp_state == "absent"
    if not absent and facts.patient is None:
        raise ValueError("an active or closed DMP is answered with its patient")
    root = _message_head(request, message_id, now)
    authorization = "NON_EXISTE" if absent else facts.authorization
    line = _sub(root, "attentionLine")
    _sub(line, "keyWordText", code="AUTORISATION", codeSystem=OID_ATTENTION_KEY)
    value = _sub(line, "value", code=authorization, codeSystem=OID_AUTHORIZATION)
    value.set(_XSI_TYPE, "CV")
    if facts.authorization_reason and not absent:
        _sub(value, "originalText").text = facts.authorization_reason
    if not absent:
        line = _sub(root, "attentionLine")
        _sub(line, "keyWordText", code="STATUT_MT", codeSystem=OID_TREATING_DOCTOR_KEY)
        _bl(line, "value", facts.treating_doctor)
    _acknowledgement(root, request, "AA")
    cap = _control_act(root, request)
    if not absent:
        _registration(cap, request, facts)
    _query_ack(cap, request, "NF" if absent else "OK")
    return root


def render_existence_error(request: ExistenceRequest | None, code: str, text: str, *, message_id: str,
                           now: str) -> etree._Element:
    """A PRPA_IN201308UV02 refusing a TD0.2: acknowledgement AE with its acknowledgementDetail."""
    root = _message_head(request, message_id, now)
    ack = _acknowledgement(root, request, "AE")
    detail = _sub(ack, "acknowledgementDetail", typeCode="E")
    _sub(detail, "code", code=code)
    _sub(detail, "text").text = text
    cap = _control_act(root, request)
    _query_ack(cap, request, "AE")
    return root


def _message_head(request: ExistenceRequest | None, message_id: str, now: str) -> etree._Element:
    root = etree.Element(_q("PRPA_IN201308UV02"), nsmap={None: NS_HL7, "ns2": NS_GDP, "xsi": NS_XSI})
    root.set("ITSVersion", "XML_1.0")
    _sub(root, "id", root=message_id)
    _sub(root, "creationTime", value=hl7_ts(now))
    _sub(root, "interactionId", extension="PRPA_IN201308UV02", root=OID_INTERACTION)
    _sub(root, "processingCode", code="P")
    _sub(root, "processingModeCode", code="T")
    _sub(root, "acceptAckCode", code="NE")
    client_id = request.sender_device if request else None
    client_name = request.sender_name if request else None
    _device(root, "receiver", "RCV", client_id, client_name)
    dmp_id = (request.receiver_device if request else None) or OID_DMP
    _device(root, "sender", "SND", dmp_id, (request.receiver_name if request else None) or "DMP")
    return root


def _device(parent: etree._Element, tag: str, type_code: str, ident: str | None, name: str | None) -> None:
    device = _sub(_sub(parent, tag, typeCode=type_code), "device", classCode="DEV", determinerCode="INSTANCE")
    if ident:
        _sub(device, "id", root=ident)
    else:
        _sub(device, "id", nullFlavor="UNK")
    if name:
        _sub(device, "softwareName").text = name


def _acknowledgement(root: etree._Element, request: ExistenceRequest | None, type_code: str) -> etree._Element:
    ack = _sub(root, "acknowledgement", typeCode=type_code)
    if request is not None:
        _ii(_sub(ack, "targetMessage"), "id", request.message_id)
    return ack


def _control_act(root: etree._Element, request: ExistenceRequest | None) -> etree._Element:
    cap = _sub(root, "controlActProcess", classCode="CACT", moodCode="EVN")
    _sub(cap, "reasonCode", code=TEST_EXST, codeSystem=OID_REASON, displayName=TEST_EXST_LABEL)
    return cap


def _query_ack(cap: etree._Element, request: ExistenceRequest | None, code: str) -> None:
    qa = _sub(cap, "queryAck")
    if request is not None and request.query_id is not None:
        _ii(qa, "queryId", request.query_id)
    _sub(qa, "queryResponseCode", code=code)


def _registration(cap: etree._Element, request: ExistenceRequest, facts: ExistenceFacts) -> None:
    person_data = facts.patient
    assert person_data is not None
    event = _sub(_sub(cap, "subject", contextConductionInd="false", typeCode="SUBJ"), "registrationEvent",
                 classCode="REG", moodCode="EVN")
    _sub(event, "statusCode", code="completed")
    patient = _sub(_sub(event, "subject1", typeCode="SBJ"), "patient", classCode="PAT")
    for other in person_data.other_ids:
        _ii(patient, "id", other)
    _ii(patient, "id", II(request.ins_oid, request.ins))
    _sub(patient, "statusCode", code="active" if facts.dmp_state == "active" else "terminated")
    person = _sub(patient, "patientPerson", classCode="PSN", determinerCode="INSTANCE")
    name = _sub(person, "name")
    prefix = person_data.prefix if person_data.prefix is not None else _PREFIX_BY_SEX.get(person_data.sex)
    if prefix:
        _sub(name, "prefix").text = prefix
    _sub(name, "given").text = person_data.given
    _sub(name, "family", qualifier="SP").text = person_data.family
    _sub(person, "administrativeGenderCode", code=person_data.sex or "U")
    _sub(person, "birthTime", value=person_data.birth_date.replace("-", ""))
    _observation(patient, "COMPTE_INTERNET_OUVERT", OID_INTERNET_ACCOUNT, None, facts.internet_account)
    _observation(patient, "RATTACHEMENT_ENS", OID_PATIENT_OBSERVATION,
                 "information de rattachement du DMP à un ENS", facts.attached_ens)
    for code, label in _OPPOSITIONS:
        _observation(patient, code, OID_PATIENT_OBSERVATION, label, code in facts.oppositions)
    if facts.dmp_state == "closed":
        reason = (facts.close_reason or "").strip()
        is_code = bool(_CODE.fullmatch(reason))
        obs = _sub(_sub(patient, "subjectOf", typeCode="SBJ"), "administrativeObservation",
                   classCode="OBS", moodCode="EVN")
        _sub(obs, "code", code=reason if is_code else DEFAULT_CLOSE_MOTIVE, codeSystem=OID_CLOSURE)
        if reason and not is_code:
            _sub(obs, "text").text = reason
        if facts.closed_at:
            _sub(obs, "effectiveTime", value=hl7_ts(facts.closed_at))
    custodian = _sub(event, "custodian", typeCode="CST")
    _sub(_sub(custodian, "assignedEntity", classCode="ASSIGNED"), "id", root=OID_DMP)


def _observation(patient: etree._Element, code: str, system: str, label: str | None, value: bool) -> None:
    obs = _sub(_sub(patient, "subjectOf", typeCode="SBJ"), "administrativeObservation", classCode="OBS",
               moodCode="EVN")
    attrs = {"code": code, "codeSystem": system}
    if label:
        attrs["displayName"] = label
    _sub(obs, "code", **attrs)
    _bl(obs, "value", value)


def _bl(parent: etree._Element, tag: str, value: bool) -> None:
    el = _sub(parent, tag, value="true" if value else "false")
    el.set(_XSI_TYPE, "BL")


def _ii(parent: etree._Element, tag: str, ident: II) -> etree._Element:
    attrs = {"root": ident.root}
    if ident.extension is not None:
        attrs = {"extension": ident.extension, "root": ident.root}
    return _sub(parent, tag, **attrs)


def _sub(parent: etree._Element, tag: str, **attrs: str) -> etree._Element:
    return etree.SubElement(parent, _q(tag, etree.QName(parent).namespace), attrs)


def _q(tag: str, namespace: str | None = NS_HL7) -> str:
    return f"{{{namespace}}}{tag}" if namespace else tag


# TD0.3 --------------------------------------------------------------------------------------------------
@dataclass
class SetAuthorizationRequest:
    action: str                         # AJOUT | SUPPRESSION
    role: str | None = None             # MEDECIN_TRAITANT (WSDL roleType), when sent


def parse_set_authorization(body: etree._Element) -> SetAuthorizationRequest:
    _require_root(body, NS_HABILITATIONS, "setAuthorization")
    action_el = _child(body, "action", NS_HABILITATIONS)
    action = _text(action_el)
    if not action:
        raise Td0Error("DMPInvalidAction", f"setAuthorization/action is missing ({' or '.join(SET_ACTIONS)})")
    if action not in SET_ACTIONS:
        raise Td0Error("DMPInvalidAction", f"setAuthorization/action: {action!r} is not "
                       f"{' or '.join(SET_ACTIONS)}")
    role_el = _child(body, "role", NS_HABILITATIONS)
    role = _text(role_el) or None
    if role is not None and role not in SET_ROLES:
        raise Td0Error("DMPInvalidRequest", f"setAuthorization/role: {role!r} is not {' or '.join(SET_ROLES)}")
    return SetAuthorizationRequest(action=action, role=role)


def render_status(status: str = "DMPOk", *, tag: str = "setAuthorizationResponse",
                  namespace: str = NS_HABILITATIONS, context: str | None = None) -> etree._Element:
    """`<tag><output><status/>[<context/>]</output></tag>` in `namespace` (the WebServiceResponse of the
    habilitations and patients services), as the corpus TD0.3 answer."""
    root = etree.Element(_q(tag, namespace), nsmap={"ns1": namespace})
    output = _sub(root, "output")
    _sub(output, "status").text = status
    if context is not None:
        _sub(output, "context").text = context or None
    return root


# TD0.4 --------------------------------------------------------------------------------------------------
@dataclass
class PatientListRequest:
    date_type: str | None               # LASTAUTORIZATION | LASTDOC, when sent
    date_from: str | None               # startDate, as ISO 8601 (UTC), when sent
    date_to: str | None = None          # the WSDL (1.0.2) has no end date: always None
    ps_owner_id: str | None = None      # psOwnerId, when sent
    start_date_raw: str | None = None   # startDate as the wire carried it


@dataclass
class ListedPatient:
    ins: str
    ins_oid: str
    family: str
    given: str
    birth_date: str                     # YYYY-MM-DD
    sex: str                            # not carried by patientlistData (kept for the door's use)
    last_authorization: str | None      # -> lastAccessDate (INF)
    last_document: str | None           # -> lastAddDate, and lastUpdateDate unless last_update is given
    last_update: str | None = None
    treating_doctor: bool = False       # -> MT
    message: bool = False               # -> message
    other_ids: list[II] = field(default_factory=list)  # listed before the INS, as the corpus does (INS-C)


def parse_patient_list(body: etree._Element) -> PatientListRequest:
    _require_root(body, NS_PATIENTS, "patientList")
    date_type = _text(_child(body, "dateType", NS_PATIENTS)) or None
    if date_type is not None and date_type not in DATE_TYPES:
        raise Td0Error("DMPInvalidRequest", f"patientList/dateType: {date_type!r} is not "
                       f"{' or '.join(DATE_TYPES)}")
    raw = _text(_child(body, "startDate", NS_PATIENTS)) or None
    date_from = None
    if raw is not None:
        try:
            date_from = iso_from_ts(raw)
        except ValueError:
            raise Td0Error("DMPInvalidRequest", f"patientList/startDate: {raw!r} is not a date "
                           "(YYYYMMDD[HHMM[SS]])") from None
    owner = _text(_child(body, "psOwnerId", NS_PATIENTS)) or None
    return PatientListRequest(date_type=date_type, date_from=date_from, ps_owner_id=owner, start_date_raw=raw)


def render_patient_list(patients: Sequence[ListedPatient], *, status: str = "DMPOk",
                        context: str | None = None) -> etree._Element:
    root = etree.Element(_q("patientListResponse", NS_PATIENTS), nsmap={"ns1": NS_PATIENTS})
    output = _sub(root, "output")
    for p in patients:
        data = _sub(output, "patientlistData")
        for ident in [*p.other_ids, II(p.ins_oid, p.ins)]:
            pid = _sub(data, "patientIdentifier")
            _sub(pid, "nationalId").text = ident.extension
            _sub(pid, "nationalIdType").text = ident.root
        _sub(data, "lastName").text = p.family
        _sub(data, "firstName").text = p.given
        _sub(data, "dateOfBirth").text = p.birth_date.replace("-", "")
        _sub(data, "MT").text = "true" if p.treating_doctor else "false"
        _sub(data, "message").text = "true" if p.message else "false"
        for tag, value in (("lastAccessDate", p.last_authorization),
                           ("lastUpdateDate", p.last_update or p.last_document),
                           ("lastAddDate", p.last_document)):
            if value:
                _sub(data, tag).text = hl7_ts(value)
    _sub(output, "status").text = status
    if context is not None:
        _sub(output, "context").text = context or None
    return root


# TD1.6 --------------------------------------------------------------------------------------------------
@dataclass
class ListAuthorizationsRequest:
    mode: str = "TOUTE"                 # ACTIVE | INTERDITE | TOUTE (TOUTE when not sent, INF)

    @property
    def statuses(self) -> frozenset[str]:
        """The authorization statuses this mode lists."""
        return MODE_STATUSES[self.mode]


@dataclass
class ListedAuthorization:
    professional_idnps: str             # empty for a structure's authorization (then `structure` names it)
    family: str
    given: str
    status: str                         # VALIDE -> mode ACTIVE, INTERDIT -> INTERDITE; others are not listed
    since: str | None                   # -> startOfAuthorization
    until: str | None = None            # not carried by the WSDL
    structure: str | None = None        # the structure id; the listed subject when there is no IDNPS
    last_action: str | None = None      # -> lastActionDate (since, when None)
    specialty_code: str | None = None   # -> codeSpeciality, e.g. G15_10/SM26
    specialty_label: str | None = None  # -> libSpeciality
    specific_rights: list[str] = field(default_factory=list)  # -> specificRight (MEDECIN_TRAITANT)


def parse_list_authorizations(body: etree._Element) -> ListAuthorizationsRequest:
    _require_root(body, NS_HABILITATIONS, "listAuthorizationByPatient")
    mode = _text(_child(body, "mode", NS_HABILITATIONS)) or "TOUTE"
    if mode not in LIST_MODES:
        raise Td0Error("DMPInvalidRequest", f"listAuthorizationByPatient/mode: {mode!r} is not "
                       f"{', '.join(LIST_MODES)}")
    return ListAuthorizationsRequest(mode=mode)


def render_authorization_list(items: Sequence[ListedAuthorization], *, status: str = "DMPOk",
                              context: str = "") -> etree._Element:
    """The listAuthorizationByPatientResponse. Items neither VALIDE nor INTERDIT (an expired or withdrawn
    authorization) have no wire mode and are left out."""
    root = etree.Element(_q("listAuthorizationByPatientResponse", NS_HABILITATIONS),
                         nsmap={"ns1": NS_HABILITATIONS})
    output = _sub(root, "output")
    for item in items:
        mode = _WIRE_MODE.get(item.status)
        if mode is None:
            continue
        entry = _sub(output, "listOfAuthorizationByPatient")
        if item.professional_idnps:
            _sub(entry, "nationalId").text = item.professional_idnps
            _sub(entry, "nationalIdType").text = OID_IDNPS
        else:
            _sub(entry, "nationalId").text = item.structure or ""
            _sub(entry, "nationalIdType").text = OID_IDNST
        if item.given:
            _sub(entry, "firstName").text = item.given
        if item.family:
            _sub(entry, "lastName").text = item.family
        if item.specialty_code:
            _sub(entry, "codeSpeciality").text = item.specialty_code
        if item.specialty_label:
            _sub(entry, "libSpeciality").text = item.specialty_label
        if item.since:
            _sub(entry, "startOfAuthorization").text = hl7_ts(item.since)
        last = item.last_action or item.since
        if last:
            _sub(entry, "lastActionDate").text = hl7_ts(last)
        _sub(entry, "mode").text = mode
        for right in item.specific_rights:
            _sub(entry, "specificRight").text = right
    _sub(output, "status").text = status
    _sub(output, "context").text = context or None
    return root


# Reading ------------------------------------------------------------------------------------------------
def _require_root(body: etree._Element | None, namespace: str, name: str) -> None:
    if body is None or not isinstance(body.tag, str):
        raise Td0Error("DMPInvalidRequest", f"the soap:Body carries no {name}")
    qname = etree.QName(body)
    if qname.localname != name or qname.namespace not in (namespace, None):
        raise Td0Error("DMPInvalidRequest", f"the soap:Body carries {{{qname.namespace or ''}}}"
                       f"{qname.localname}, not {{{namespace}}}{name}")


def _child(parent: etree._Element | None, name: str, namespace: str) -> etree._Element | None:
    if parent is None:
        return None
    for child in parent:
        if isinstance(child.tag, str):
            q = etree.QName(child)
            if q.localname == name and q.namespace in (namespace, None):
                return child
    return None


def _path(parent: etree._Element | None, names: Sequence[str], namespace: str) -> etree._Element | None:
    for name in names:
        parent = _child(parent, name, namespace)
    return parent


def _text(el: etree._Element | None) -> str:
    return (el.text or "").strip() if el is not None else ""


def _device_id(device: etree._Element | None) -> str | None:
    ident = _child(device, "id", NS_HL7)
    return (ident.get("root") or None) if ident is not None else None


def _device_name(device: etree._Element | None) -> str | None:
    return _text(_child(device, "softwareName", NS_HL7)) or None
