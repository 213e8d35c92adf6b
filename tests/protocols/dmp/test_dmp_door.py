"""The DMP door through zeep, loading the bench's own WSDLs, over real sockets; and MTOM, faults and the
scenarios it serves."""

import hashlib

import pytest
import requests
import zeep
from kit.dmp import cda, find_documents, provide_and_register, retrieve, update_status, vihf
from lxml import etree
from zeep.plugins import HistoryPlugin

RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
RS = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
XDS_B = "urn:ihe:iti:xds-b:2007"
APPROVED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
DELETED = "urn:asip:ci-sis:2010:StatusType:Deleted"


def client(url: str, service: str) -> tuple[zeep.Client, HistoryPlugin]:
    history = HistoryPlugin()
    return zeep.Client(f"{url}/{service}?wsdl", plugins=[history]), history


def answer(history: HistoryPlugin) -> etree._Element:
    """The body's first element of the last answer zeep received."""
    envelope = history.last_received["envelope"]
    return envelope.find("{http://www.w3.org/2003/05/soap-envelope}Body")[0]


def call(zclient, history, operation: str, body: etree._Element, security: etree._Element):
    getattr(zclient.service, operation)(_value_1=list(body), _attr_1=dict(body.attrib), _soapheaders=[security])
    return answer(history)


def entries(response: etree._Element) -> list[etree._Element]:
    return response.findall(f".//{{{RIM}}}ExtrinsicObject")


def unique_id_of(extrinsic: etree._Element) -> str:
    for ext in extrinsic.findall(f"{{{RIM}}}ExternalIdentifier"):
        if ext.get("identificationScheme") == "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab":
            return ext.get("value")
    raise AssertionError("no uniqueId")


def test_feed_find_read_delete_with_zeep(dmp_world):
    url, patient, dr_a = dmp_world["url"], dmp_world["patient"], dmp_world["pros"]["dr_a"]
    security = vihf(dr_a, dmp_world["structures"]["chu"]["idnst"], patient, signer=dmp_world["bench"])
    repository, repo_history = client(url, "repository")
    registry, reg_history = client(url, "registry")
    uid = "1.2.250.1.999.10.1"
    body, content = provide_and_register(patient, dr_a, uid, cda(patient, dr_a, uid))
    response = call(repository, repo_history, "ProvideAndRegisterDocumentSet-b", body, security)
    assert response.get("status") == "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"

    found = call(registry, reg_history, "RegistryStoredQuery", find_documents(patient), security)
    uids = [unique_id_of(e) for e in entries(found)]
    assert uids == [uid]                       # the masked document of dr_b is not shown to dr_a
    entry_uuid = entries(found)[0].get("id")

    repository.service.RetrieveDocumentSet(_value_1=list(retrieve(uid)), _soapheaders=[security])
    raw = repo_history.last_received["http_headers"]
    assert "multipart/related" in raw["Content-Type"]

    response = call(registry, reg_history, "UpdateDocumentSet", update_status(patient, entry_uuid, APPROVED, DELETED),
                    security)
    assert response.get("status").endswith(":Success")
    found = call(registry, reg_history, "RegistryStoredQuery", find_documents(patient), security)
    assert entries(found) == []
    repository.service.RetrieveDocumentSet(_value_1=list(retrieve(uid)), _soapheaders=[security])
    refused = answer(repo_history)
    assert refused.find(f"{{{RS}}}RegistryResponse").get("status").endswith(":Failure")
    assert refused.find(f".//{{{RS}}}RegistryError").get("errorCode") == "DMPDocumentDeleted"
    journal = [(e["operation"], e["verdict"]) for e in dmp_world["bench"].client.journal(channel="dmp")]
    assert journal == [("WSDL", "accepted"), ("WSDL", "accepted"), ("TD2.1", "accepted"), ("TD3.1", "accepted"),
                       ("TD3.2", "accepted"), ("TD3.3c", "accepted"), ("TD3.1", "accepted"), ("TD3.2", "refused")]
    traces = [t["action"] for t in dmp_world["bench"].client.traces("alice") if t["document"] in (uid, None)]
    assert traces[-5:] == ["alimentation", "consultation", "telechargement", "suppression", "consultation"]
    docs = {d["unique_id"]: d for d in dmp_world["bench"].client.documents("alice")}
    assert docs[uid]["status"] == "deleted" and docs[uid]["hash"] == hashlib.sha1(content).hexdigest().upper()


def post(url: str, body: etree._Element, security: etree._Element, action: str) -> requests.Response:
    envelope = f"""<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope"
 xmlns:wsa="http://www.w3.org/2005/08/addressing"><soap:Header><wsa:Action>{action}</wsa:Action>
<wsa:MessageID>urn:uuid:00000000-0000-4000-8000-000000000001</wsa:MessageID>
{etree.tostring(security).decode()}</soap:Header><soap:Body>{etree.tostring(body).decode()}</soap:Body></soap:Envelope>"""
    return requests.post(url, data=envelope.encode(), headers={"Content-Type": "application/soap+xml"}, timeout=10)


def test_retrieve_answers_mtom_with_the_bytes_fed(dmp_world):
    url, patient, dr_a = dmp_world["url"], dmp_world["patient"], dmp_world["pros"]["dr_a"]
    security = vihf(dr_a, dmp_world["structures"]["chu"]["idnst"], patient, signer=dmp_world["bench"])
    uid = "1.2.250.1.999.11.1"
    body, content = provide_and_register(patient, dr_a, uid, cda(patient, dr_a, uid, text="é" * 5000))
    assert post(f"{url}/repository", body, security, "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b").ok
    response = post(f"{url}/repository", retrieve(uid), security, "urn:ihe:iti:2007:RetrieveDocumentSet")
    assert response.headers["Content-Type"].startswith("multipart/related")
    assert content in response.content
    unknown = post(f"{url}/repository", retrieve("urn:uuid:not-a-unique-id"), security,
                   "urn:ihe:iti:2007:RetrieveDocumentSet")
    assert unknown.headers["Content-Type"].startswith("multipart/related")   # MTOM even for errors
    assert b"XDSDocumentUniqueIdError" in unknown.content


@pytest.mark.parametrize("who,code", [("dr_c", "DMPAuthorizationMissing"), ("stranger", "VIHFUnknownProfessional")])
def test_refusals_are_registry_errors_or_faults(dmp_world, who, code):
    url, patient = dmp_world["url"], dmp_world["patient"]
    pro = dmp_world["pros"].get(who) or {"idnps": "810000000009", "family_name": "X", "given_name": "Y"}
    security = vihf(pro, dmp_world["structures"]["clinique"]["idnst"], patient, signer=dmp_world["bench"])
    response = post(f"{url}/registry", find_documents(patient), security, "urn:ihe:iti:2007:RegistryStoredQuery")
    assert code.encode() in response.content
    last = dmp_world["bench"].client.journal(channel="dmp")[-1]
    assert last["verdict"] == "refused"


def test_wrong_action_and_malformed_xml_get_faults(dmp_world):
    url = dmp_world["url"]
    bad = requests.post(f"{url}/registry", data=b"<not-xml", headers={"Content-Type": "application/soap+xml"},
                        timeout=10)
    assert bad.status_code == 400 and b"Fault" in bad.content
    xxe = (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
           b'<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope"><soap:Body>&e;</soap:Body>'
           b"</soap:Envelope>")
    refused = requests.post(f"{url}/registry", data=xxe, headers={"Content-Type": "application/soap+xml"}, timeout=10)
    assert refused.status_code == 400 and b"root:" not in refused.content
    assert requests.get(f"{url}/registry?wsdl", timeout=10).ok


def test_routing_errors_under_the_dmp_prefix_are_soap_faults(dmp_world):
    base = dmp_world["bench"].url
    missing = requests.post(f"{base}/si-dmp-server/v2/nothing", data=b"x", timeout=10)
    assert missing.status_code == 404 and b"DMPNotFound" in missing.content and b"Envelope" in missing.content
    wrong = requests.put(f"{dmp_world['url']}/registry", data=b"x", timeout=10)
    assert wrong.status_code == 405 and b"DMPMethodNotAllowed" in wrong.content


def test_the_https_port_wants_a_client_certificate(tmp_path, dmp_world):
    from mockbench.bench import Bench
    from mockbench.config import Config
    from mockbench.pki import client_context, init_pki
    files = init_pki(tmp_path / "pki")
    with Bench(Config(http_port=0, mllp_port=0, https_port=0, smtp_port=0, imap_port=0, state=tmp_path / "s", tls_dir=tmp_path / "pki")) as b:
        url = f"https://localhost:{b.ports['https']}/si-dmp-server/v2/services/registry"
        envelope = b'<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope"><soap:Body/></soap:Envelope>'
        import urllib.error
        import urllib.request
        anonymous = urllib.request.Request(url, data=envelope, headers={"Content-Type": "application/soap+xml"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(anonymous, context=client_context(files), timeout=10)
        assert refused.value.code == 403 and b"DMPInvalidCertificate" in refused.value.read()
        with pytest.raises(urllib.error.HTTPError) as answered:
            urllib.request.urlopen(anonymous, context=client_context(files, "org-auth-cli"), timeout=10)
        assert answered.value.code == 400 and b"DMPInvalidCertificate" not in answered.value.read()


def test_mask_unmask_and_make_visible_are_new_metadata_versions(dmp_world):
    from kit.dmp import update_metadata
    url, patient, dr_a = dmp_world["url"], dmp_world["patient"], dmp_world["pros"]["dr_a"]
    security = vihf(dr_a, dmp_world["structures"]["chu"]["idnst"], patient, signer=dmp_world["bench"])
    registry, history = client(url, "registry")
    uid = "1.2.250.1.999.12.1"
    body, _ = provide_and_register(patient, dr_a, uid, cda(patient, dr_a, uid), confidentiality=("INVISIBLE_PATIENT",))
    assert post(f"{url}/repository", body, security, "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b").ok

    def current():
        found = call(registry, history, "RegistryStoredQuery", find_documents(patient), security)
        return next(e for e in entries(found) if unique_id_of(e) == uid)

    v1 = current()
    steps = [(("N",), "TD3.3b"),                               # made visible again to the patient
             (("MASQUE_PS",), "TD3.3a"),                       # masked to professionals
             (("N",), "TD3.3a")]                                # unmasked
    for version, (codes, operation) in enumerate(steps, start=1):
        entry = current()
        response = call(registry, history, "UpdateDocumentSet",
                        update_metadata(patient, entry, str(version), codes), security)
        assert response.get("status").endswith(":Success"), etree.tostring(response)
        assert dmp_world["bench"].client.journal(channel="dmp")[-1]["operation"] == operation
    versions = [d for d in dmp_world["bench"].client.documents("alice", history=True) if d["unique_id"] == uid]
    assert [d["version"] for d in versions] == [1, 2, 3, 4]
    assert len({d["lid"] for d in versions}) == 1 and len({d["entry_uuid"] for d in versions}) == 4
    assert versions[-1]["confidentiality"] == ["N"] and v1.get("lid") == versions[0]["lid"]
    # PreviousVersion must name the current version
    stale = call(registry, history, "UpdateDocumentSet", update_metadata(patient, current(), "1", ("MASQUE_PS",)),
                 security)
    assert stale.get("status").endswith(":Failure") and b"XDSMetadataVersionError" in etree.tostring(stale)
    # hiding again from the patient is refused: invisibility is chosen when the document is fed
    hide = call(registry, history, "UpdateDocumentSet",
                update_metadata(patient, current(), "4", ("INVISIBLE_PATIENT",)), security)
    assert hide.get("status").endswith(":Failure") and b"DMPStatusChangeInvalid" in etree.tostring(hide)
    actions = [t["action"] for t in dmp_world["bench"].client.traces("alice") if t["document"] == uid]
    assert actions == ["alimentation", "invisibilisation", "remise_en_visibilite", "masquage", "demasquage"]



def test_td31_answer_is_the_tree_rendering_byte_for_byte(dmp_world):
    """TD3.1's entries are spliced into the envelope as cached bytes: the answer must be the very bytes that
    rendering the whole tree gives (MessageID aside), for LeafClass, ObjectRef and empty answers."""
    from mockbench.formats import ebrim
    from mockbench.protocols.dmp.soap import parse_request, render_response
    from mockbench.protocols.dmp.vihf import actor_for, parse_vihf

    bench = dmp_world["bench"].bench
    url, patient, dr_a = dmp_world["url"], dmp_world["patient"], dmp_world["pros"]["dr_a"]
    security = vihf(dr_a, dmp_world["structures"]["chu"]["idnst"], patient, signer=dmp_world["bench"])
    for i in range(3):
        uid = f"1.2.250.1.999.10.{i}"
        body, _ = provide_and_register(patient, dr_a, uid, cda(patient, dr_a, uid))
        assert post(f"{url}/repository", body, security, "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b").ok
    for return_type, status, expected in (("LeafClass", "approved", 3), ("ObjectRef", "approved", 3),
                                          ("LeafClass", "deprecated", 0)):
        query = find_documents(patient, statuses=(f"urn:oasis:names:tc:ebxml-regrep:StatusType:{status.title()}",),
                               return_type=return_type)
        sent = post(f"{url}/registry", query, security, "urn:ihe:iti:2007:RegistryStoredQuery")
        assert sent.status_code == 200
        request = parse_request("application/soap+xml", sent.request.body, bench.dmp.limits)
        with bench.world.transaction() as tx:
            actor, _ = actor_for(bench.world, tx, parse_vihf(request.security))
            alice = bench.world.directory.patient(tx, "alice")
            docs = bench.world.dmp.find(tx, actor, "alice", statuses=[status], trace=False)
            cx = f"{alice.ins}^^^&{alice.ins_oid}&ISO^NH"
            objects = [ebrim.render_extrinsic_object(d, cx, author_idnps=dr_a["idnps"],
                                                     object_ref=return_type == "ObjectRef") for d in docs]
        assert len(objects) == expected
        message_id = etree.fromstring(sent.content).findtext(".//{http://www.w3.org/2005/08/addressing}MessageID")
        _, want = render_response(request, "urn:ihe:iti:2007:RegistryStoredQueryResponse",
                                  ebrim.render_query_response(objects), message_id=message_id)
        assert sent.content == want
