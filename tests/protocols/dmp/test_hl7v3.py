"""The wire format of TD0.2, TD0.3, TD0.4 and TD1.6 (mockbench.protocols.dmp.hl7v3): every corpus request
parses to the values stated here; every answer rendered from the corpus example's facts holds every element,
attribute and text of the corpus answer (bar the message's own id, time and the telecoms the world does not
keep); the closed / absent / INTERDIT / EXPIRE variants and the refusals show what tells them apart."""

from collections import Counter
from pathlib import Path

import pytest
from lxml import etree

from mockbench.formats.xml import parse_xml
from mockbench.protocols.dmp import hl7v3
from mockbench.protocols.dmp.hl7v3 import (
    II,
    ExistenceFacts,
    ExistenceRequest,
    ListedAuthorization,
    ListedPatient,
    PatientData,
    Td0Error,
)

SOAP = "http://www.w3.org/2003/05/soap-envelope"
WSA = "http://www.w3.org/2005/08/addressing"
H = {"h": hl7v3.NS_HL7}
NOW = "2021-06-01T12:53:05.000Z"
REQUEST_ID = II("1.3.6.1.4.1.48364.1.1", "1633a409-3d61-4869-aed8-74d92ae20272")
QUERY_ID = II("1.3.6.1.4.1.48364.2", "87d5fd8f-72b2-43bf-938c-0402bf850d25")
INS_C = II("1.2.250.1.213.1.4.2", "1197854176879056415520")


def envelope(corpus: Path, name: str) -> etree._Element:
    return parse_xml((corpus / "dmp-wire" / name).read_bytes())


def body_of(root: etree._Element) -> etree._Element:
    return next(c for c in root.find(f"{{{SOAP}}}Body") if isinstance(c.tag, str))


def action_of(root: etree._Element) -> str:
    return root.find(f"{{{SOAP}}}Header/{{{WSA}}}Action").text.strip()


def signature(root: etree._Element, skip: tuple[str, ...] = ()) -> Counter:
    """Every element as (path of QNames, attributes, text), the paths in `skip` (and what is under them)
    left out."""
    out: Counter = Counter()

    def walk(el: etree._Element, path: str) -> None:
        here = f"{path}/{el.tag}"
        if any(here.endswith(s) or f"{s}/" in here for s in skip):
            return
        out[(here, tuple(sorted(el.attrib.items())), (el.text or "").strip())] += 1
        for child in el:
            if isinstance(child.tag, str):
                walk(child, here)

    walk(root, "")
    return out


def h(tag: str) -> str:
    return f"{{{hl7v3.NS_HL7}}}{tag}"


def td02_request() -> ExistenceRequest:
    return ExistenceRequest(message_id=REQUEST_ID, ins="207058575627097", ins_oid="1.2.250.1.213.1.4.10",
                            query_id=QUERY_ID, sender_device="1.3.6.1.4.1.48364", sender_name="LPS GIE-SV",
                            receiver_device="1.2.250.1.213.4.1.1.1", receiver_name="DMP")


def corpus_facts(**changes) -> ExistenceFacts:
    facts = dict(dmp_state="active", authorization="VALIDE", internet_account=True, attached_ens=False,
                 treating_doctor=True,
                 patient=PatientData(family="patb-quatre", given="LAURENCE", birth_date="1907-05-25", sex="M",
                                     prefix="M", other_ids=[INS_C]))
    facts.update(changes)
    return ExistenceFacts(**facts)


def render(facts: ExistenceFacts) -> etree._Element:
    return hl7v3.render_existence(td02_request(), facts, message_id="0cc7f660-e7b5-4131-aee3-5ad75c0b32f2",
                                  now=NOW)


def authorization(root: etree._Element) -> etree._Element:
    (value,) = root.xpath("h:attentionLine[h:keyWordText/@code='AUTORISATION']/h:value", namespaces=H)
    return value


def observation(root: etree._Element, code: str) -> str | None:
    values = root.xpath(f".//h:administrativeObservation[h:code/@code='{code}']/h:value/@value", namespaces=H)
    return values[0] if values else None


# Corpus requests --------------------------------------------------------------------------------------
def test_td02_corpus_request(corpus):
    root = envelope(corpus, "TD0.2_request.xml")
    assert action_of(root) == hl7v3.ACTION_TD02_REQUEST
    body = body_of(root)
    assert hl7v3.reason_code(body) == "TEST_EXST"
    assert hl7v3.parse_existence(body) == td02_request()


def test_td03_corpus_request(corpus):
    root = envelope(corpus, "TD0.3_request.xml")
    assert hl7v3.REQUEST_ACTIONS[action_of(root)] == "TD0.3"
    assert hl7v3.parse_set_authorization(body_of(root)) == hl7v3.SetAuthorizationRequest(action="AJOUT")


def test_td04_corpus_request(corpus):
    root = envelope(corpus, "TD0.4_request.xml")
    assert hl7v3.REQUEST_ACTIONS[action_of(root)] == "TD0.4"
    req = hl7v3.parse_patient_list(body_of(root))
    assert (req.date_type, req.date_from, req.date_to, req.ps_owner_id, req.start_date_raw) == (
        "LASTDOC", "2010-10-10T20:20:10Z", None, None, "20101010202010")


def test_td16_corpus_request(corpus):
    root = envelope(corpus, "TD1.6_request.xml")
    assert hl7v3.REQUEST_ACTIONS[action_of(root)] == "TD1.6"
    req = hl7v3.parse_list_authorizations(body_of(root))
    assert req.mode == "TOUTE" and req.statuses == {"VALIDE", "INTERDIT"}


# Corpus answers ---------------------------------------------------------------------------------------
def test_td02_answer_matches_the_corpus(corpus):
    expected_root = envelope(corpus, "TD0.2_response.xml")
    assert action_of(expected_root) == hl7v3.ACTION_TD02_RESPONSE
    expected = body_of(expected_root)
    request = hl7v3.parse_existence(body_of(envelope(corpus, "TD0.2_request.xml")))
    ours = hl7v3.render_existence(request, corpus_facts(), message_id="m-1", now=NOW)
    assert ours.tag == expected.tag == h("PRPA_IN201308UV02")
    skip = (h("PRPA_IN201308UV02") + "/" + h("id"), h("creationTime"), h("telecom"))
    missing = signature(expected, skip) - signature(ours, skip)
    assert not missing, missing
    # what ours adds: the oppositions (as TD1.3a carries them), nothing else
    extra = signature(ours, skip) - signature(expected, skip)
    assert {dict(attrs).get("code") for path, attrs, _ in extra if path.endswith(h("code"))} == {
        "OPPOSITION_BRIS_DE_GLACE", "OPPOSITION_ACCES_URGENCE"}
    assert ours.find(h("acknowledgement")).get("typeCode") == "AA"
    assert authorization(ours).get("code") == "VALIDE"
    assert ours.find(h("id")).get("root") == "m-1"
    assert ours.find(h("creationTime")).get("value") == "20210601125305"


def test_td03_answer_matches_the_corpus(corpus):
    expected_root = envelope(corpus, "TD0.3_response.xml")
    assert action_of(expected_root) == hl7v3.ACTION_TD03_RESPONSE
    ours = hl7v3.render_status(context="Autorisation déjà présente aucune action effectuée")
    assert signature(ours) == signature(body_of(expected_root))
    bare = hl7v3.render_status("DMPOk")
    assert [e.tag.split("}")[1] for e in bare.iter()] == ["setAuthorizationResponse", "output", "status"]


def test_td04_answer_matches_the_corpus(corpus):
    expected_root = envelope(corpus, "TD0.4_response.xml")
    assert action_of(expected_root) == hl7v3.ACTION_TD04_RESPONSE
    patients = [
        ListedPatient(ins="153078987658513", ins_oid="1.2.250.1.213.1.4.10", family="PAT-TROIS",
                      given="DOMINIQUE", birth_date="1979-03-28", sex="F", last_authorization="20210601094105",
                      last_document="2021-05-25T13:47:35Z", last_update="2021-05-25T13:47:38.000Z",
                      other_ids=[II("1.2.250.1.213.1.4.2", "0740724093302701701806")]),
        ListedPatient(ins="207058575627097", ins_oid="1.2.250.1.213.1.4.10", family="patb-quatre",
                      given="LAURENCE", birth_date="1907-05-25", sex="M", last_authorization="20210521101631",
                      last_document="20210521101631", last_update="20210506124503", treating_doctor=True,
                      other_ids=[INS_C]),
    ]
    ours = hl7v3.render_patient_list(patients)
    assert signature(ours) == signature(body_of(expected_root))
    empty = hl7v3.render_patient_list([])
    assert [e.tag.split("}")[1] for e in empty.iter()] == ["patientListResponse", "output", "status"]


def test_td16_answer_matches_the_corpus(corpus):
    expected_root = envelope(corpus, "TD1.6_response.xml")
    assert action_of(expected_root) == hl7v3.ACTION_TD16_RESPONSE
    item = ListedAuthorization(professional_idnps="899900063480", family="LIBRE", given="MAX", status="VALIDE",
                               since="2021-06-01T13:58:04Z", last_action="20210601140606",
                               specialty_code="G15_10/SM26",
                               specialty_label="Médecin - Qualifié en Médecine générale (SM)")
    ours = hl7v3.render_authorization_list([item])
    assert signature(ours) == signature(body_of(expected_root))


def test_rendered_answers_serialize_and_parse_back():
    for el in (render(corpus_facts()), hl7v3.render_status(), hl7v3.render_patient_list([]),
               hl7v3.render_authorization_list([])):
        again = parse_xml(etree.tostring(el, encoding="UTF-8", xml_declaration=True))
        assert signature(again) == signature(el)


# TD0.2 variants ---------------------------------------------------------------------------------------
def test_td02_active_with_oppositions_and_observations():
    root = render(corpus_facts(oppositions=["OPPOSITION_ACCES_URGENCE"], internet_account=False,
                               attached_ens=True, treating_doctor=False))
    assert observation(root, "OPPOSITION_ACCES_URGENCE") == "true"
    assert observation(root, "OPPOSITION_BRIS_DE_GLACE") == "false"
    assert observation(root, "COMPTE_INTERNET_OUVERT") == "false"
    assert observation(root, "RATTACHEMENT_ENS") == "true"
    assert root.xpath("h:attentionLine[h:keyWordText/@code='STATUT_MT']/h:value/@value", namespaces=H) == ["false"]
    patient = root.find(".//" + h("patient"))
    assert patient.find(h("statusCode")).get("code") == "active"
    assert [(i.get("root"), i.get("extension")) for i in patient.findall(h("id"))] == [
        (INS_C.root, INS_C.extension), ("1.2.250.1.213.1.4.10", "207058575627097")]
    assert root.xpath(".//h:administrativeObservation/h:code[@codeSystem='1.2.250.1.213.4.1.2.4']",
                      namespaces=H) == []


def test_td02_patient_as_a_mapping():
    facts = ExistenceFacts(dmp_state="active", authorization="VALIDE",
                           patient={"family": "DUPONT", "given": "ANNE", "birth_date": "1980-02-03", "sex": "F"})
    assert facts.patient == PatientData("DUPONT", "ANNE", "1980-02-03", "F")
    root = render(facts)
    name = root.find(".//" + h("patientPerson") + "/" + h("name"))
    assert [(e.tag.split("}")[1], e.text) for e in name] == [("prefix", "MME"), ("given", "ANNE"),
                                                              ("family", "DUPONT")]
    assert root.find(".//" + h("birthTime")).get("value") == "19800203"
    assert [i.get("extension") for i in root.iterfind(".//" + h("patient") + "/" + h("id"))] == ["207058575627097"]


def test_td02_closed_dmp():
    root = render(corpus_facts(dmp_state="closed", closed_at="2024-03-01T10:00:00.000Z",
                               close_reason="FERMETURE_DEMANDE_PATIENT"))
    assert root.find(h("acknowledgement")).get("typeCode") == "AA"
    assert root.find(".//" + h("patient") + "/" + h("statusCode")).get("code") == "terminated"
    (closure,) = root.xpath(".//h:administrativeObservation[h:code/@codeSystem='1.2.250.1.213.4.1.2.4']",
                            namespaces=H)
    assert closure.find(h("code")).get("code") == "FERMETURE_DEMANDE_PATIENT"
    assert closure.find(h("effectiveTime")).get("value") == "20240301100000"
    assert closure.find(h("text")) is None
    assert root.find(".//" + h("queryResponseCode")).get("code") == "OK"
    # a reason in words: the default motive, the words as text
    words = render(corpus_facts(dmp_state="closed", closed_at="2024-03-01T10:00:00Z", close_reason="déménagement"))
    (closure,) = words.xpath(".//h:administrativeObservation[h:code/@codeSystem='1.2.250.1.213.4.1.2.4']",
                             namespaces=H)
    assert closure.find(h("code")).get("code") == "FERMETURE_DEMANDE_PATIENT"
    assert closure.find(h("text")).text == "déménagement"


def test_td02_absent_dmp():
    root = render(ExistenceFacts(dmp_state="absent", authorization="VALIDE"))
    assert root.find(h("acknowledgement")).get("typeCode") == "AA"
    assert root.find(h("acknowledgement") + "/" + h("targetMessage") + "/" + h("id")).get("extension") == \
        REQUEST_ID.extension
    assert authorization(root).get("code") == "NON_EXISTE"
    assert root.xpath("h:attentionLine[h:keyWordText/@code='STATUT_MT']", namespaces=H) == []
    cap = root.find(h("controlActProcess"))
    assert cap.find(h("subject")) is None
    assert cap.find(h("reasonCode")).get("code") == "TEST_EXST"
    assert cap.find(h("queryAck") + "/" + h("queryResponseCode")).get("code") == "NF"
    assert cap.find(h("queryAck") + "/" + h("queryId")).get("extension") == QUERY_ID.extension


@pytest.mark.parametrize("status, reason", [("INTERDIT", "bloqué par le patient"), ("EXPIRE", None),
                                            ("NON_EXISTE", None), ("VALIDE", None)])
def test_td02_authorization_values(status, reason):
    root = render(corpus_facts(authorization=status, authorization_reason=reason))
    value = authorization(root)
    assert (value.get("code"), value.get("codeSystem"), value.get(f"{{{hl7v3.NS_XSI}}}type")) == (
        status, "1.2.250.1.213.4.1.2.6.2", "CV")
    text = value.find(h("originalText"))
    assert (text.text if text is not None else None) == reason
    assert root.find(".//" + h("patient")) is not None


def test_td02_error_answer():
    root = hl7v3.render_existence_error(td02_request(), "DMPAccessRefused", "accès refusé", message_id="m-2",
                                        now="20240101120000")
    ack = root.find(h("acknowledgement"))
    assert ack.get("typeCode") == "AE"
    assert ack.find(h("targetMessage") + "/" + h("id")).get("root") == REQUEST_ID.root
    detail = ack.find(h("acknowledgementDetail"))
    assert (detail.get("typeCode"), detail.find(h("code")).get("code"), detail.find(h("text")).text) == (
        "E", "DMPAccessRefused", "accès refusé")
    assert root.find(h("attentionLine")) is None
    assert root.find(h("controlActProcess") + "/" + h("subject")) is None
    assert root.find(".//" + h("queryResponseCode")).get("code") == "AE"
    assert root.find(h("creationTime")).get("value") == "20240101120000"
    # without a request (it could not be read): no targetMessage, the client's device unknown
    bare = hl7v3.render_existence_error(None, "DMPInvalidRequest", "x", message_id="m-3", now=NOW)
    assert bare.find(h("acknowledgement") + "/" + h("targetMessage")) is None
    assert bare.find(h("receiver") + "/" + h("device") + "/" + h("id")).get("nullFlavor") == "UNK"


def test_td02_render_refuses_inconsistent_facts():
    with pytest.raises(ValueError, match="dmp_state"):
        render(corpus_facts(dmp_state="FERME"))
    with pytest.raises(ValueError, match="authorization"):
        render(corpus_facts(authorization="OK"))
    with pytest.raises(ValueError, match="patient"):
        render(corpus_facts(patient=None))
    with pytest.raises(ValueError, match="opposition"):
        render(corpus_facts(oppositions=["OPPOSITION_TOTALE"]))


# Malformed requests -----------------------------------------------------------------------------------
TD02 = """<PRPA_IN201307UV02 xmlns="urn:hl7-org:v3" ITSVersion="XML_1.0">
  <id root="1.2.3" extension="x-1"/>
  <controlActProcess classCode="CACT" moodCode="EVN">
    {reason}
    <queryByParameter><queryId root="1.2.3.4" extension="q-1"/><parameterList>
      {patient}
    </parameterList></queryByParameter>
  </controlActProcess>
</PRPA_IN201307UV02>"""
REASON = '<reasonCode code="{code}" codeSystem="1.2.250.1.213.1.1.4.11"/>'
PATIENT = '<patientIdentifier><value {attrs}/></patientIdentifier>'


def td02(reason: str = REASON.format(code="TEST_EXST"),
         patient: str = PATIENT.format(attrs='root="1.2.250.1.213.1.4.8" extension="277076322082910"')):
    return etree.fromstring(TD02.format(reason=reason, patient=patient))


def test_td02_minimal_request():
    req = hl7v3.parse_existence(td02())
    assert (req.ins, req.ins_oid, req.message_id, req.query_id, req.sender_device) == (
        "277076322082910", "1.2.250.1.213.1.4.8", II("1.2.3", "x-1"), II("1.2.3.4", "q-1"), None)


@pytest.mark.parametrize("patient, field", [
    ("", "patientIdentifier/value@extension"),
    (PATIENT.format(attrs='root="1.2.250.1.213.1.4.8"'), "@extension"),
    (PATIENT.format(attrs='root="" extension="277076322082910"'), "@root"),
])
def test_td02_missing_patient_id(patient, field):
    with pytest.raises(Td0Error) as err:
        hl7v3.parse_existence(td02(patient=patient))
    assert err.value.subcode == "DMPMissingPatientId"
    assert field in err.value.reason


def test_td02_wrong_reason_code_and_root():
    body = td02(reason=REASON.format(code="CNSLT_DATA"))
    assert hl7v3.reason_code(body) == "CNSLT_DATA"
    with pytest.raises(Td0Error, match="reasonCode") as err:
        hl7v3.parse_existence(body)
    assert err.value.subcode == "DMPInvalidRequest"
    with pytest.raises(Td0Error, match="reasonCode is missing"):
        hl7v3.parse_existence(td02(reason=""))
    with pytest.raises(Td0Error, match="PRPA_IN201307UV02") as err:
        hl7v3.parse_existence(etree.fromstring('<PRPA_IN201305UV02 xmlns="urn:hl7-org:v3"/>'))
    assert err.value.subcode == "DMPInvalidRequest"
    with pytest.raises(Td0Error, match="controlActProcess"):
        hl7v3.parse_existence(etree.fromstring('<PRPA_IN201307UV02 xmlns="urn:hl7-org:v3"><id root="1"/>'
                                               '</PRPA_IN201307UV02>'))


def setauth(inner: str) -> etree._Element:
    return etree.fromstring(f'<setAuthorization xmlns="urn:si-dmp-habilitations">{inner}</setAuthorization>')


def test_td03_actions():
    assert hl7v3.parse_set_authorization(setauth("<action>SUPPRESSION</action>")).action == "SUPPRESSION"
    # unqualified children (elementFormDefault unqualified) are read too
    unq = etree.fromstring('<h:setAuthorization xmlns:h="urn:si-dmp-habilitations"><action>AJOUT</action>'
                           '<role>MEDECIN_TRAITANT</role></h:setAuthorization>')
    assert hl7v3.parse_set_authorization(unq) == hl7v3.SetAuthorizationRequest("AJOUT", "MEDECIN_TRAITANT")


@pytest.mark.parametrize("inner, subcode, phrase", [
    ("<action>MODIFICATION</action>", "DMPInvalidAction", "setAuthorization/action: 'MODIFICATION'"),
    ("", "DMPInvalidAction", "setAuthorization/action is missing"),
    ("<action> </action>", "DMPInvalidAction", "setAuthorization/action is missing"),
    ("<action>AJOUT</action><role>PATRON</role>", "DMPInvalidRequest", "setAuthorization/role"),
])
def test_td03_malformed(inner, subcode, phrase):
    with pytest.raises(Td0Error) as err:
        hl7v3.parse_set_authorization(setauth(inner))
    assert err.value.subcode == subcode and phrase in err.value.reason


def test_td03_wrong_body():
    with pytest.raises(Td0Error, match="setAuthorization"):
        hl7v3.parse_set_authorization(etree.fromstring('<listAuthorizationByPatient '
                                                       'xmlns="urn:si-dmp-habilitations"/>'))
    with pytest.raises(Td0Error, match="no setAuthorization"):
        hl7v3.parse_set_authorization(None)


def patient_list(inner: str) -> etree._Element:
    return etree.fromstring(f'<patientList xmlns="urn:si-dmp-patients">{inner}</patientList>')


def test_td04_requests():
    req = hl7v3.parse_patient_list(patient_list("<startDate>20240102</startDate><dateType>LASTAUTORIZATION"
                                                "</dateType><psOwnerId>899900063480</psOwnerId>"))
    assert (req.date_type, req.date_from, req.ps_owner_id) == ("LASTAUTORIZATION", "2024-01-02T00:00:00Z",
                                                               "899900063480")
    empty = hl7v3.parse_patient_list(patient_list(""))
    assert (empty.date_type, empty.date_from, empty.date_to) == (None, None, None)
    with pytest.raises(Td0Error, match="dateType: 'LASTSEEN'"):
        hl7v3.parse_patient_list(patient_list("<dateType>LASTSEEN</dateType>"))
    with pytest.raises(Td0Error, match="startDate: '2024-01-02'") as err:
        hl7v3.parse_patient_list(patient_list("<startDate>2024-01-02</startDate>"))
    assert err.value.subcode == "DMPInvalidRequest"


def list_auth(inner: str) -> etree._Element:
    return etree.fromstring(f'<listAuthorizationByPatient xmlns="urn:si-dmp-habilitations">{inner}'
                            '</listAuthorizationByPatient>')


def test_td16_requests_and_list():
    assert hl7v3.parse_list_authorizations(list_auth("")).mode == "TOUTE"
    assert hl7v3.parse_list_authorizations(list_auth("<mode>INTERDITE</mode>")).statuses == {"INTERDIT"}
    with pytest.raises(Td0Error, match="mode: 'TOUS'"):
        hl7v3.parse_list_authorizations(list_auth("<mode>TOUS</mode>"))
    items = [
        ListedAuthorization("810000000001", "DUPONT", "JEAN", "INTERDIT", "2024-01-01T00:00:00Z"),
        ListedAuthorization("810000000002", "MARTIN", "ANNE", "EXPIRE", "2023-01-01T00:00:00Z"),
        ListedAuthorization("", "", "", "VALIDE", "2024-02-01T08:00:00Z", structure="1750000001"),
    ]
    root = hl7v3.render_authorization_list(items)
    ns = {"a": hl7v3.NS_HABILITATIONS}
    entries = root.findall("a:output/a:listOfAuthorizationByPatient", ns)
    assert [(e.findtext("a:nationalId", namespaces=ns), e.findtext("a:nationalIdType", namespaces=ns),
             e.findtext("a:mode", namespaces=ns)) for e in entries] == [
        ("810000000001", "1.2.250.1.71.4.2.1", "INTERDITE"), ("1750000001", "1.2.250.1.71.4.2.2", "ACTIVE")]
    assert entries[0].findtext("a:startOfAuthorization", namespaces=ns) == "20240101000000"
    assert entries[0].findtext("a:lastActionDate", namespaces=ns) == "20240101000000"
    assert root.findtext("a:output/a:status", namespaces=ns) == "DMPOk"


def test_times():
    assert hl7v3.hl7_ts("2024-03-01T10:00:00.123Z") == "20240301100000"
    assert hl7v3.hl7_ts("2024-03-01T11:00:00+01:00") == "20240301100000"
    assert hl7v3.hl7_ts("20240301") == "20240301"
    assert hl7v3.iso_from_ts("202403011000") == "2024-03-01T10:00:00Z"
    with pytest.raises(ValueError):
        hl7v3.iso_from_ts("2024")


def test_actions():
    assert hl7v3.ACTION_TD02_RESPONSE == "urn:hl7-org:v3:PRPA_IN201308UV02"
    assert hl7v3.REQUEST_ACTIONS["urn:hl7-org:v3:PRPA_IN201307UV02"] == "TD0.2"
    assert hl7v3.REQUEST_ACTIONS["urn:hl7-org:v3:setAuthorization"] == "TD0.3"
    with pytest.raises(TypeError):
        hl7v3.REQUEST_ACTIONS["x"] = "y"
