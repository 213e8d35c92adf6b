"""The DMP's access rules through zeep (the bench's own WSDLs) and raw SOAP, over real sockets: who may feed,
replace, delete, mask and consult, and what the registry answers to an RPLC naming no entry. Each test names
the text it enforces (/work/shared/corpus/specs/, IHE ITI TF)."""

from __future__ import annotations

import re
import uuid

import pytest
import requests
import zeep
from kit.dmp import (
    cda,
    find_documents,
    provide_and_register,
    retrieve,
    update_metadata,
    update_status,
    vihf,
)
from lxml import etree
from zeep.plugins import HistoryPlugin

RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
RS = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
QUERY = "urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
APPROVED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
DELETED = "urn:asip:ci-sis:2010:StatusType:Deleted"
SUCCESS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
FAILURE = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure"
UNIQUE_ID_SCHEME = "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab"

WORLD = """\
id: dmp-access-rules
title: Règles d'accès du DMP
seed: 14
world:
  structures: [{id: chu, name: CHU de Test}, {id: clinique, name: Clinique du Parc}]
  professionals:
    - {id: dr_a, family_name: MARTIN, given_name: Jeanne, structure: chu}
    - {id: dr_b, family_name: PETIT, given_name: Paul, structure: chu}
    - {id: dr_c, family_name: ROUX, given_name: Claire, structure: clinique}
    - {id: dr_bloque, family_name: NOIR, given_name: Marc, structure: chu}
    - {id: dr_bloque_sans, family_name: GRIS, given_name: Luc, structure: clinique}
  patients:
    - id: alice
      sex: F
      family_name: DURAND
      given_name: Alice
      birth_date: "1980-05-04"
      authorizations:
        - {structure: chu}
        - {professional: dr_bloque, status: INTERDIT}
        - {professional: dr_bloque_sans, status: INTERDIT}
      documents:
        - {id: cr_a, author: dr_a}
"""


@pytest.fixture
def dmp(mockbench):
    mockbench.client.load_yaml(WORLD)
    pros = {p["id"]: p for p in mockbench.client.call("GET", "/professionals")}
    structures = {s["id"]: s for s in mockbench.client.call("GET", "/structures")}
    return Dmp(mockbench, mockbench.client.patient("alice"), pros, structures)


class Dmp:
    """The bench's DMP as a DPI sees it: zeep clients on the registry and the repository, one VIHF per call."""

    def __init__(self, bench, patient: dict, pros: dict, structures: dict) -> None:
        self.bench, self.patient, self.pros, self.structures = bench, patient, pros, structures
        self.url = bench.url + "/si-dmp-server/v2/services"
        self.history = HistoryPlugin()
        self.registry = zeep.Client(f"{self.url}/registry?wsdl", plugins=[self.history])
        self.repository = zeep.Client(f"{self.url}/repository?wsdl", plugins=[self.history])

    def security(self, who: str, authentication: str = "INDIRECTE_RENFORCEE") -> etree._Element:
        pro = self.pros[who]
        return vihf(pro, self.structures[pro["structure"]]["idnst"], self.patient, authentication=authentication,
                    signer=self.bench)

    def call(self, client: zeep.Client, operation: str, body: etree._Element, who: str,
             authentication: str = "INDIRECTE_RENFORCEE") -> etree._Element:
        getattr(client.service, operation)(_value_1=list(body), _attr_1=dict(body.attrib),
                                           _soapheaders=[self.security(who, authentication)])
        return self.history.last_received["envelope"].find(f"{{{SOAP12}}}Body")[0]

    def feed(self, who: str, unique_id: str, *, replaces: str = "") -> etree._Element:
        pro = self.pros[who]
        body, _ = provide_and_register(self.patient, pro, unique_id, cda(self.patient, pro, unique_id),
                                       replaces_entry=replaces)
        return self.call(self.repository, "ProvideAndRegisterDocumentSet-b", body, who)

    def find(self, who: str) -> etree._Element:
        return self.call(self.registry, "RegistryStoredQuery", find_documents(self.patient), who)

    def get(self, who: str, *unique_ids: str) -> etree._Element:
        values = ",".join(f"'{u}'" for u in unique_ids)
        body = etree.fromstring(f"""<query:AdhocQueryRequest xmlns:query="{QUERY}" xmlns:rim="{RIM}">
<query:ResponseOption returnComposedObjects="true" returnType="ObjectRef"/>
<rim:AdhocQuery id="urn:uuid:5c4f972b-d56b-40ac-a5fc-c8ca9b40b9d4">
<rim:Slot name="$XDSDocumentEntryPatientId"><rim:ValueList><rim:Value>'{self.patient['ins']}^^^&amp;{
            self.patient['ins_oid']}&amp;ISO^NH'</rim:Value></rim:ValueList></rim:Slot>
<rim:Slot name="$XDSDocumentEntryUniqueId"><rim:ValueList><rim:Value>({values})</rim:Value></rim:ValueList></rim:Slot>
</rim:AdhocQuery></query:AdhocQueryRequest>""".encode())
        return self.call(self.registry, "RegistryStoredQuery", body, who)

    def delete(self, who: str, entry_uuid: str, authentication: str = "INDIRECTE_RENFORCEE") -> etree._Element:
        return self.call(self.registry, "UpdateDocumentSet", update_status(self.patient, entry_uuid, APPROVED,
                                                                           DELETED), who, authentication)

    def retrieve(self, who: str, unique_id: str) -> etree._Element:
        """TD3.2 in raw SOAP (its answer is MTOM): the answer's body element."""
        envelope = f"""<soap:Envelope xmlns:soap="{SOAP12}" xmlns:wsa="http://www.w3.org/2005/08/addressing">
<soap:Header><wsa:Action>urn:ihe:iti:2007:RetrieveDocumentSet</wsa:Action>
<wsa:MessageID>urn:uuid:{uuid.uuid4()}</wsa:MessageID>{etree.tostring(self.security(who)).decode()}</soap:Header>
<soap:Body>{etree.tostring(retrieve(unique_id)).decode()}</soap:Body></soap:Envelope>"""
        response = requests.post(f"{self.url}/repository", data=envelope.encode(), timeout=10,
                                 headers={"Content-Type": "application/soap+xml"})
        assert response.status_code == 200, response.text
        return etree.fromstring(root_part(response.headers["Content-Type"], response.content)).find(
            f"{{{SOAP12}}}Body")[0]

    def last(self) -> dict:
        return self.bench.client.journal(channel="dmp")[-1]

    def doc(self, unique_id: str) -> dict:
        return next(d for d in self.bench.client.documents("alice") if d["unique_id"] == unique_id)


def root_part(content_type: str, payload: bytes) -> bytes:
    """The root part (the SOAP envelope) of an MTOM answer."""
    boundary = re.search(r'boundary="?([^";]+)"?', content_type).group(1).encode()
    return payload.split(b"--" + boundary)[1].split(b"\r\n\r\n", 1)[1].rstrip(b"\r\n")


def status_and_codes(response: etree._Element) -> tuple[str, list[str]]:
    holder = response if response.get("status") else response.find(f"{{{RS}}}RegistryResponse")
    return holder.get("status"), [e.get("errorCode") for e in response.iter(f"{{{RS}}}RegistryError")]


def context(response: etree._Element) -> str:
    return " ".join(e.get("codeContext") or "" for e in response.iter(f"{{{RS}}}RegistryError"))


def entry_uuids(response: etree._Element) -> list[str]:
    return [e.get("id") for e in response.iter(f"{{{RIM}}}ObjectRef", f"{{{RIM}}}ExtrinsicObject")]


def test_feeding_replacing_and_deleting_need_no_authorization(dmp):
    """specs/pdsm4dmp/transaction_td02.md NB2 (authorizations are used only to consult a DMP),
    transaction_td3.3c.md NB1 (no authorization needed to delete with the feeding profile) and
    transaction_td3.1b.md (TD3.1b needs one "sauf si le LPS implémente le profil Alimentation"): dr_c's clinic
    has no authorization on Alice's DMP; it feeds, finds its own entry by unique id, replaces and deletes it,
    while searching (TD3.1a) and reading (TD3.2) stay refused."""
    assert status_and_codes(dmp.feed("dr_c", "1.2.250.1.999.14.1")) == (SUCCESS, [])
    assert (dmp.last()["operation"], dmp.last()["verdict"]) == ("TD2.1", "accepted")

    found = dmp.get("dr_c", "1.2.250.1.999.14.1", dmp.doc("1.2.250.1.999.14.1")["unique_id"],
                    next(d["unique_id"] for d in dmp.bench.client.documents("alice") if d["id"] == "cr_a"))
    assert status_and_codes(found) == (SUCCESS, [])
    assert entry_uuids(found) == [dmp.doc("1.2.250.1.999.14.1")["entry_uuid"]]   # its own entry only
    assert dmp.last()["operation"] == "TD3.1b"

    replaced = dmp.feed("dr_c", "1.2.250.1.999.14.2", replaces=entry_uuids(found)[0])
    assert status_and_codes(replaced) == (SUCCESS, [])
    deleted = dmp.delete("dr_c", dmp.doc("1.2.250.1.999.14.2")["entry_uuid"])
    assert status_and_codes(deleted) == (SUCCESS, []) and dmp.last()["operation"] == "TD3.3c"
    history = {d["unique_id"]: d["status"] for d in dmp.bench.client.documents("alice", history=True)}
    assert (history["1.2.250.1.999.14.1"], history["1.2.250.1.999.14.2"]) == ("deprecated", "deleted")

    searched = dmp.find("dr_c")
    assert status_and_codes(searched) == (FAILURE, ["DMPAuthorizationMissing"])
    assert (dmp.last()["operation"], dmp.last()["verdict"], dmp.last()["code"]) == (
        "TD3.1", "refused", "AUTHORIZATION_MISSING")
    read = dmp.retrieve("dr_c", "1.2.250.1.999.14.1")
    assert [e.get("errorCode") for e in read.iter(f"{{{RS}}}RegistryError")] == ["DMPAuthorizationMissing"]


@pytest.mark.parametrize("who", ["dr_bloque", "dr_bloque_sans"])
def test_a_blocked_professional_is_refused_everything(dmp, who):
    """specs/pdsm4dmp/transaction_td02.md NB1: a professional the patient blocked cannot access the DMP, with
    (dr_bloque, of the authorized CHU) or without (dr_bloque_sans) the patient's authorization: no feeding,
    no deletion, no search."""
    cr_a = next(d for d in dmp.bench.client.documents("alice") if d["id"] == "cr_a")
    fed = dmp.feed(who, "1.2.250.1.999.14.3")
    assert status_and_codes(fed) == (FAILURE, ["DMPProfessionalBlocked"])
    assert "NB1" in context(fed)
    assert (dmp.last()["verdict"], dmp.last()["code"]) == ("refused", "PROFESSIONAL_BLOCKED")
    assert status_and_codes(dmp.find(who)) == (FAILURE, ["DMPProfessionalBlocked"])
    assert status_and_codes(dmp.delete(who, cr_a["entry_uuid"])) == (FAILURE, ["DMPProfessionalBlocked"])
    assert "1.2.250.1.999.14.3" not in {d["unique_id"] for d in dmp.bench.client.documents("alice")}
    assert dmp.doc(cr_a["unique_id"])["status"] == "approved"


def test_only_the_author_deletes(dmp):
    """specs/pdsm4dmp/transaction_td3.3c.md NB2: "seul l'auteur du document peut supprimer le document
    (contrôle effectué par le système DMP)". dr_b works in the author's structure and is authorized: refused
    all the same (the "author's organisation" of error 901 is the PFI guide's consumer-side rule)."""
    cr_a = next(d for d in dmp.bench.client.documents("alice") if d["id"] == "cr_a")
    refused = dmp.delete("dr_b", cr_a["entry_uuid"])
    assert status_and_codes(refused) == (FAILURE, ["DMPNotAuthor"])
    assert "only the document's author deletes it" in context(refused)
    assert (dmp.last()["operation"], dmp.last()["code"]) == ("TD3.3c", "NOT_AUTHOR")
    assert dmp.doc(cr_a["unique_id"])["status"] == "approved"
    assert status_and_codes(dmp.delete("dr_a", cr_a["entry_uuid"])) == (SUCCESS, [])
    assert {d["unique_id"]: d["status"] for d in dmp.bench.client.documents("alice")}[cr_a["unique_id"]] == "deleted"


def test_masking_needs_direct_authentication(dmp):
    """specs/trans-cda-r2/def-proc-collab.md (« Demande de remplacement de document(s) »): TD3.3 masking and
    visibility "nécessite une authentification directe"; a VIHF with Authentification_Mode INDIRECTE is refused
    with a RegistryError naming the rule (DMPAccessModeRefused: the pdsm4dmp texts name no DMP code for it),
    DIRECTE and INDIRECTE_RENFORCEE (AIR, transaction_td3.1b.md) are accepted, and an INDIRECTE deletion
    (TD3.3c, what a PFI does) is accepted."""
    cr_a = next(d for d in dmp.bench.client.documents("alice") if d["id"] == "cr_a")
    entry = next(e for e in dmp.find("dr_a").iter(f"{{{RIM}}}ExtrinsicObject") if e.get("id") == cr_a["entry_uuid"])
    body = update_metadata(dmp.patient, entry, "1", ("MASQUE_PS",))
    refused = dmp.call(dmp.registry, "UpdateDocumentSet", body, "dr_a", "INDIRECTE")
    assert status_and_codes(refused) == (FAILURE, ["DMPAccessModeRefused"])
    assert "needs direct authentication" in context(refused) and "RPLC" in context(refused)
    assert (dmp.last()["operation"], dmp.last()["verdict"], dmp.last()["code"]) == (
        "TD3.3", "refused", "ACCESS_MODE_REFUSED")
    assert dmp.doc(cr_a["unique_id"])["confidentiality"] == ["N"]
    for version, (authentication, codes) in enumerate((("DIRECTE", ("MASQUE_PS",)),
                                                        ("INDIRECTE_RENFORCEE", ("N",))), start=1):
        entry = next(e for e in dmp.find("dr_a").iter(f"{{{RIM}}}ExtrinsicObject")
                     if e.get("lid") == cr_a["lid"])
        accepted = dmp.call(dmp.registry, "UpdateDocumentSet",
                            update_metadata(dmp.patient, entry, str(version), codes), "dr_a", authentication)
        assert status_and_codes(accepted) == (SUCCESS, []) and dmp.last()["operation"] == "TD3.3a"
    current = dmp.doc(cr_a["unique_id"])
    assert (current["version"], current["confidentiality"]) == (3, ["N"])
    assert status_and_codes(dmp.delete("dr_a", current["entry_uuid"], "INDIRECTE")) == (SUCCESS, [])


def test_replacing_an_entry_the_registry_does_not_hold(dmp):
    """IHE ITI TF-3 4.2.4.1, Table 4.2.4.1-2: UnresolvedReferenceException, "the recipient cannot resolve an
    entryUUID reference in the transaction" (here the RPLC association's target, ITI TF-2 3.42.4.1.3.5).
    Nothing is fed, and the bench keeps serving."""
    target = f"urn:uuid:{uuid.uuid4()}"
    refused = dmp.feed("dr_a", "1.2.250.1.999.14.9", replaces=target)
    assert status_and_codes(refused) == (FAILURE, ["UnresolvedReferenceException"])
    assert target in context(refused)
    assert (dmp.last()["operation"], dmp.last()["verdict"], dmp.last()["code"]) == (
        "TD2.1", "refused", "UnresolvedReferenceException")
    assert "1.2.250.1.999.14.9" not in {d["unique_id"] for d in dmp.bench.client.documents("alice")}
    assert status_and_codes(dmp.feed("dr_a", "1.2.250.1.999.14.10")) == (SUCCESS, [])


def test_making_visible_needs_direct_authentication(dmp):
    """specs/trans-cda-r2/def-proc-collab.md: TD3.3b (visibility to the patient) in INDIRECTE authentication is
    refused, naming the rule; the same request in DIRECTE authentication makes the document visible."""
    pro, uid = dmp.pros["dr_a"], "1.2.250.1.999.14.20"
    body, _ = provide_and_register(dmp.patient, pro, uid, cda(dmp.patient, pro, uid),
                                   confidentiality=("INVISIBLE_PATIENT",))
    assert status_and_codes(dmp.call(dmp.repository, "ProvideAndRegisterDocumentSet-b", body, "dr_a")) == (
        SUCCESS, [])
    entry = next(e for e in dmp.find("dr_a").iter(f"{{{RIM}}}ExtrinsicObject")
                 if e.get("id") == dmp.doc(uid)["entry_uuid"])
    refused = dmp.call(dmp.registry, "UpdateDocumentSet", update_metadata(dmp.patient, entry, "1", ("N",)),
                       "dr_a", "INDIRECTE")
    assert status_and_codes(refused) == (FAILURE, ["DMPAccessModeRefused"])
    assert "a visibility change (TD3.3b) needs direct authentication" in context(refused)
    assert dmp.doc(uid)["confidentiality"] == ["INVISIBLE_PATIENT"]
    accepted = dmp.call(dmp.registry, "UpdateDocumentSet", update_metadata(dmp.patient, entry, "1", ("N",)),
                        "dr_a", "DIRECTE")
    assert status_and_codes(accepted) == (SUCCESS, []) and dmp.last()["operation"] == "TD3.3b"
    assert dmp.doc(uid)["confidentiality"] == ["N"]
