"""The conformance advisor through the DMP door: a DPI's real SOAP exchanges (zeep), then GET /_bench/findings."""

import pytest
import zeep
from kit.dmp import cda, find_documents, provide_and_register, retrieve, update_status, vihf
from lxml import etree
from zeep.plugins import HistoryPlugin

RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
APPROVED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
DELETED = "urn:asip:ci-sis:2010:StatusType:Deleted"


class Dpi:
    """A DPI's DMP client: zeep on the bench's own WSDLs, as dr_a of the CHU for alice."""

    def __init__(self, dmp_world) -> None:
        url = dmp_world["url"]
        self.patient, self.pro = dmp_world["patient"], dmp_world["pros"]["dr_a"]
        self.security = vihf(self.pro, dmp_world["structures"]["chu"]["idnst"], self.patient,
                             signer=dmp_world["bench"])
        self.history = HistoryPlugin()
        self.repository = zeep.Client(f"{url}/repository?wsdl", plugins=[self.history])
        self.registry = zeep.Client(f"{url}/registry?wsdl", plugins=[self.history])

    def _call(self, client, operation: str, body: etree._Element) -> etree._Element:
        getattr(client.service, operation)(_value_1=list(body), _attr_1=dict(body.attrib), _soapheaders=[self.security])
        envelope = self.history.last_received["envelope"]
        return envelope.find("{http://www.w3.org/2003/05/soap-envelope}Body")[0]

    def feed(self, uid: str) -> None:
        body, _ = provide_and_register(self.patient, self.pro, uid, cda(self.patient, self.pro, uid))
        assert self._call(self.repository, "ProvideAndRegisterDocumentSet-b", body).get("status").endswith(":Success")

    def find(self) -> list[etree._Element]:
        return self._call(self.registry, "RegistryStoredQuery", find_documents(self.patient)).findall(
            f".//{{{RIM}}}ExtrinsicObject")

    def read(self, uid: str) -> None:
        self.repository.service.RetrieveDocumentSet(_value_1=list(retrieve(uid)), _soapheaders=[self.security])

    def delete(self, entry_uuid: str) -> None:
        self._call(self.registry, "UpdateDocumentSet", update_status(self.patient, entry_uuid, APPROVED, DELETED))


def advised(entry: dict) -> list[str]:
    """The advisor's rules on an entry (the unsigned test VIHF has its own finding)."""
    return [f["rule"] for f in entry["findings"] if not f["rule"].startswith("VIHF/")]


def seqs(bench, operation: str) -> list[int]:
    return [e["seq"] for e in bench.client.journal(channel="dmp", operation=operation)]


def by_rule(bench, rule: str) -> list[dict]:
    return [f for f in bench.client.call("GET", "/findings") if f["rule"] == rule]


def test_search_at_once_after_feeding_is_ex_3_1_2030(dmp_world):
    bench, dpi = dmp_world["bench"], Dpi(dmp_world)
    dpi.feed("1.2.250.1.999.20.1")
    dpi.find()                                   # at once, as a DPI refreshing its list by itself
    (td21,), (td31,) = seqs(bench, "TD2.1"), seqs(bench, "TD3.1")
    (group,) = by_rule(bench, "EX_3.1-2030")
    assert group["entries"] == [td21, td31]
    assert group["severity"] == "warning" and "after its own TD2.1" in group["message"]
    (entry,) = bench.client.journal(channel="dmp", operation="TD3.1")
    assert advised(entry) == ["EX_3.1-2030"]     # on the entry too, for the steps


def test_search_after_the_user_waited_is_fine(dmp_world):
    bench, dpi = dmp_world["bench"], Dpi(dmp_world)
    dpi.feed("1.2.250.1.999.20.2")
    bench.client.advance("2m")                   # the user opens the record later
    dpi.find()
    assert by_rule(bench, "EX_3.1-2030") == []


def test_reading_a_deleted_document_and_the_traces(dmp_world):
    bench, dpi = dmp_world["bench"], Dpi(dmp_world)
    uid = "1.2.250.1.999.20.3"
    dpi.feed(uid)
    bench.client.advance("1m")
    (entry,) = dpi.find()
    dpi.read(uid)
    dpi.delete(entry.get("id"))
    dpi.read(uid)                                # the DPI kept offering the deleted document
    reads = bench.client.journal(channel="dmp", operation="TD3.2")
    assert [(e["verdict"], advised(e)) for e in reads] == [
        ("accepted", []), ("refused", ["DMP/TD3.3c"])]
    (gone,) = by_rule(bench, "DMP/TD3.3c")
    assert gone["entries"] == [reads[1]["seq"]] and f"{uid}, deleted from alice's DMP" in gone["message"]
    traces = by_rule(bench, "DMP/CONF.14")
    assert [t["severity"] for t in traces] == ["info"]
    assert traces[0]["message"].startswith("alice: the DPI must be able to show 4 access traces")
    assert "1 alimentation, 1 consultation, 1 suppression, 1 telechargement" in traces[0]["message"]


def test_reading_a_document_masked_to_the_reader(dmp_world):
    bench, dpi = dmp_world["bench"], Dpi(dmp_world)
    (masked,) = [d for d in bench.client.documents("alice") if d["id"] == "cr_masque"]
    dpi.read(masked["unique_id"])                # dr_b's document, masked to dr_a
    (entry,) = bench.client.journal(channel="dmp", operation="TD3.2")
    assert (entry["verdict"], entry["code"], advised(entry)) == ("refused", "DMPDocumentMasked", ["DMP/TD3.3c"])
    assert "masked to professionals" in entry["findings"][-1]["message"]


@pytest.mark.parametrize("consent", ["INC", "IC"])
def test_consultation_against_zfa_consent(dmp_world, consent):
    bench, dpi = dmp_world["bench"], Dpi(dmp_world)
    bench.client.actions({"set_consent": {"patient": "alice", "consultation": consent}})
    dpi.find()
    found = by_rule(bench, "DMP/CONSENT")
    assert [f["entries"] for f in found] == ([seqs(bench, "TD3.1")] if consent == "INC" else [])
