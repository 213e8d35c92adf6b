"""Every XDM package of the corpus (`xdm/*.zip`, ansforge/interop-exemples-xdm) fed to the DMP door as an
ITI-41 (TD2.1) and read back by ITI-43 (TD3.2), byte for byte; then the versioned Microbiologie series.

How a package becomes a request: its IHE_XDM/SUBSET01/METADATA.XML (an lcm:SubmitObjectsRequest) goes,
unchanged, into an xdsb:ProvideAndRegisterDocumentSetRequest, with one xdsb:Document per ExtrinsicObject
(id = the ExtrinsicObject's id) holding, in base64, the file its URI slot names (DOC0001.XML when it has
none). The world, loaded first, holds the package's patient (the INS and OID of the entry's patientId), a
professional for each IDNPS in its authorPerson slots (`check_digits: false`) and a structure the patient
authorized; the VIHF is kit.dmp.vihf's, for the first author and that patient.

The CNAM-HR packages' author is `518003502400041/1.2.250.1.215.1.2` (an organisation, with a "/"): the world
holds a professional with IDNPS 518003502400041 (the part before the "/"), who sends; the entry's author is
not a professional of the world, so the door records the sender as author, with a finding.

Refused, with the reason: REFUSED below.
"""

import base64
import email
import email.policy
import hashlib
import os
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path

from kit.dmp import find_documents, retrieve, update_status, vihf
from lxml import etree

from mockbench.world import identity

SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
RS = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
XDS_B = "urn:ihe:iti:xds-b:2007"
XOP = "http://www.w3.org/2004/08/xop/include"
SUCCESS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
APPROVED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
DELETED = "urn:asip:ci-sis:2010:StatusType:Deleted"
ENTRY_PATIENT_ID = "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427"
ENTRY_UNIQUE_ID = "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab"
ITI41 = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"
ITI43 = "urn:ihe:iti:2007:RetrieveDocumentSet"
ITI57 = "urn:ihe:iti:2010:UpdateDocumentSet"
SERIES = "BIO-CR-BIO_2024.01_Microbiologie"

# package -> (the door's answer, why)
REFUSED = {
    "SDM-MR_2025.01_nouveau-ne": (
        "VIHFInvalidAttribute",
        "the newborn's INS 224027511583555 has a wrong NIR key (97 - 2240275115835 mod 97 = 12, not 55): the "
        "world cannot hold that patient (SCENARIO_INVALID) and the VIHF resource-id carrying it is refused "
        "with a SOAP Fault before the metadata are read"),
}
# What every package of the corpus does, accepted by the door and noted in the journal: classifications and
# external identifiers nested in an object but naming another one (mostly the SubmissionSet, or a uuid of
# no object), and a contentTypeCode taken from the facility types (1.2.250.1.71.4.2.4).
QUIRKS = {"DMP/XDS-CLASSIFIED-OBJECT", "DMP/XDS-REGISTRY-OBJECT", "DMP/XDS-CONTENT-TYPE"}


@dataclass
class Package:
    name: str
    metadata: etree._Element            # the lcm:SubmitObjectsRequest
    documents: dict[str, bytes]         # ExtrinsicObject id -> its file's bytes
    ins: str
    ins_oid: str
    authors: list[str]                  # authorPerson IDNPS, before any "/"

    def entries(self) -> list[etree._Element]:
        return list(self.metadata.iter(f"{{{RIM}}}ExtrinsicObject"))

    def unique_id(self, entry: etree._Element) -> str:
        return next(e.get("value") for e in entry.iterfind(f"{{{RIM}}}ExternalIdentifier")
                    if e.get("identificationScheme") == ENTRY_UNIQUE_ID)


def slot(element: etree._Element, name: str) -> list[str]:
    return [v.text for s in element.iterfind(f"{{{RIM}}}Slot") if s.get("name") == name
            for v in s.iter(f"{{{RIM}}}Value")]


def read_package(path: Path) -> Package:
    with zipfile.ZipFile(path) as zf:
        metadata = etree.fromstring(zf.read("IHE_XDM/SUBSET01/METADATA.XML"))
        documents = {}
        for number, entry in enumerate(metadata.iter(f"{{{RIM}}}ExtrinsicObject"), 1):
            uri = (slot(entry, "URI") or [f"DOC{number:04d}.XML"])[0]
            documents[entry.get("id")] = zf.read(f"IHE_XDM/SUBSET01/{uri}")
    patient_id = next(e.get("value") for e in metadata.iter(f"{{{RIM}}}ExternalIdentifier")
                      if e.get("identificationScheme") == ENTRY_PATIENT_ID)
    ins, oid = patient_id.split("^")[0], patient_id.split("&")[1]
    authors = []
    for s in metadata.iter(f"{{{RIM}}}Slot"):
        if s.get("name") == "authorPerson":
            for value in s.iter(f"{{{RIM}}}Value"):
                idnps = value.text.split("^")[0].split("/")[0]
                if idnps not in authors:
                    authors.append(idnps)
    return Package(path.stem, metadata, documents, ins, oid, authors)


def world(package: Package) -> str:
    pros = "\n".join(f'    - {{id: author{i}, idnps: "{idnps}", check_digits: false, family_name: AUTEUR{i}, '
                     f"given_name: Test, structure: lab}}" for i, idnps in enumerate(package.authors))
    patient = ""
    if identity.is_valid_nir(package.ins):
        patient = (f'  patients:\n    - {{id: p, ins: "{package.ins}", ins_oid: "{package.ins_oid}", sex: F, '
                   'birth_date: "1979-03-28", authorizations: [{structure: lab}]}\n')
    scenario_id = "xdm-" + package.name.lower().replace("_", "-").replace(".", "-")
    return (f"id: {scenario_id}\ntitle: {package.name}\nseed: 5\n"
            f"world:\n  structures: [{{id: lab, name: Laboratoire}}]\n  professionals:\n{pros}\n{patient}")


def envelope(body: bytes, security: etree._Element, action: str) -> bytes:
    head = (f'<soap:Envelope xmlns:soap="{SOAP12}" xmlns:wsa="http://www.w3.org/2005/08/addressing">'
            f"<soap:Header><wsa:Action>{action}</wsa:Action>"
            f"<wsa:MessageID>urn:uuid:{uuid.uuid4()}</wsa:MessageID>")
    return (head.encode() + etree.tostring(security) + b"</soap:Header><soap:Body>" + body
            + b"</soap:Body></soap:Envelope>")


def provide_and_register(package: Package, *, extra: list[etree._Element] = ()) -> bytes:
    """The package as an ITI-41 body; `extra` objects are appended to its RegistryObjectList."""
    request = etree.Element(f"{{{XDS_B}}}ProvideAndRegisterDocumentSetRequest", nsmap={"xdsb": XDS_B})
    metadata = etree.fromstring(etree.tostring(package.metadata))
    metadata.find(f"{{{RIM}}}RegistryObjectList").extend(extra)
    request.append(metadata)
    for entry_id, content in package.documents.items():
        document = etree.SubElement(request, f"{{{XDS_B}}}Document", id=entry_id)
        document.text = base64.b64encode(content).decode()
    return etree.tostring(request)


class Door:
    """The bench's DMP door called in process, as one professional for one patient."""

    def __init__(self, mockbench, package: Package) -> None:
        self.bench = mockbench.bench
        self.security = vihf({"idnps": package.authors[0], "family_name": "AUTEUR0", "given_name": "Test"},
                             "lab", {"ins": package.ins, "ins_oid": package.ins_oid}, signer=mockbench)

    def call(self, service: str, action: str, body: bytes) -> tuple[int, str, bytes]:
        return self.bench.dmp.handle(service, "application/soap+xml", envelope(body, self.security, action))

    def retrieve(self, unique_id: str) -> tuple[etree._Element, dict[str, bytes]]:
        status, content_type, payload = self.call("repository", ITI43, etree.tostring(retrieve(unique_id)))
        assert status == 200 and content_type.startswith("multipart/related")
        message = email.message_from_bytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + payload,
                                           policy=email.policy.compat32)
        root, *others = message.get_payload()
        attachments = {(p["Content-ID"] or "").strip("<>"): p.get_payload(decode=True) for p in others}
        return body_of(root.get_payload(decode=True)), attachments


def body_of(xml: bytes) -> etree._Element:
    return etree.fromstring(xml).find(f"{{{SOAP12}}}Body")[0]


def pytest_generate_tests(metafunc):
    """One test per package of the corpus; without MOCKBENCH_CORPUS, one, which the `corpus` fixture skips."""
    if "package_name" in metafunc.fixturenames:
        root = os.environ.get("MOCKBENCH_CORPUS")
        names = sorted(p.stem for p in (Path(root) / "xdm").glob("*.zip")) if root else ["(no corpus)"]
        metafunc.parametrize("package_name", names)


def test_every_package_is_fed_and_read_back(mockbench, corpus, package_name):
    package = read_package(corpus / "xdm" / f"{package_name}.zip")
    mockbench.client.load_yaml(world(package))
    door = Door(mockbench, package)
    status, _type, payload = door.call("repository", ITI41, provide_and_register(package))
    entry = mockbench.client.journal(channel="dmp")[-1]
    if package.name in REFUSED:
        code, _why = REFUSED[package.name]
        fault = body_of(payload)
        assert status == 400 and fault.tag == f"{{{SOAP12}}}Fault"
        assert fault.findtext(f"{{{SOAP12}}}Code/{{{SOAP12}}}Subcode/{{{SOAP12}}}Value").endswith(f":{code}")
        assert (entry["verdict"], entry["code"]) == ("refused", code)
        return
    response = body_of(payload)
    assert status == 200 and response.tag == f"{{{RS}}}RegistryResponse"
    assert response.get("status") == SUCCESS, etree.tostring(response)[:1000]
    assert (entry["operation"], entry["verdict"]) == ("TD2.1", "accepted")
    assert QUIRKS <= {f["rule"] for f in entry["findings"]}
    stored = {d["unique_id"]: d for d in mockbench.client.documents("p")}
    for extrinsic in package.entries():
        unique_id, content = package.unique_id(extrinsic), package.documents[extrinsic.get("id")]
        assert stored[unique_id]["hash"] == hashlib.sha1(content).hexdigest().upper()
        got, attachments = door.retrieve(unique_id)
        assert [r.get("status") for r in got.iterfind(f"{{{RS}}}RegistryResponse")] == [SUCCESS]
        [include] = got.iterfind(f".//{{{XDS_B}}}Document/{{{XOP}}}Include")
        assert attachments[include.get("href")[len("cid:"):]] == content, unique_id
    if package.authors[0] == "518003502400041":       # CNAM-HR: the sender stands in for the organisation
        assert any(f["rule"] == "DMP/TD2.1" and "not a professional" in f["message"]
                   for f in entry["findings"])


def test_microbiologie_series_replace_then_delete(mockbench, corpus):
    """V1 fed; V2 fed with an RPLC association to V1's entryUUID, added here (the packages mark the
    replacement only with the slot urn:action:extraMetadataSlot = C); V2_Delete (slot = D) played as TD3.3c
    on V2, an UpdateAvailabilityStatus Approved -> Deleted."""
    v1, v2, v2_delete = (read_package(corpus / "xdm" / f"{SERIES}_{suffix}.zip") for suffix in ("V1", "V2",
                                                                                                "V2_Delete"))
    [e1], [e2], [e3] = v1.entries(), v2.entries(), v2_delete.entries()
    assert (slot(e1, "urn:action:extraMetadataSlot"), slot(e2, "urn:action:extraMetadataSlot"),
            slot(e3, "urn:action:extraMetadataSlot")) == ([], ["C"], ["D"])
    assert v2_delete.unique_id(e3) == v2.unique_id(e2) != v1.unique_id(e1)   # the deletion names V2
    mockbench.client.load_yaml(world(v1))
    door = Door(mockbench, v1)

    status, _type, payload = door.call("repository", ITI41, provide_and_register(v1))
    assert status == 200 and body_of(payload).get("status") == SUCCESS
    [first] = mockbench.client.documents("p")
    assert first["unique_id"] == v1.unique_id(e1)

    rplc = etree.Element(f"{{{RIM}}}Association", associationType="urn:ihe:iti:2007:AssociationType:RPLC",
                         id=f"urn:uuid:{uuid.uuid4()}", sourceObject=e2.get("id"),
                         targetObject=first["entry_uuid"])
    status, _type, payload = door.call("repository", ITI41, provide_and_register(v2, extra=[rplc]))
    assert status == 200 and body_of(payload).get("status") == SUCCESS, payload[-800:]
    current = {d["unique_id"]: d for d in mockbench.client.documents("p")}
    second = current[v2.unique_id(e2)]

    update = update_status({"ins": v1.ins, "ins_oid": v1.ins_oid}, second["entry_uuid"], APPROVED, DELETED)
    status, _type, payload = door.call("registry", ITI57, etree.tostring(update))
    assert status == 200 and body_of(payload).get("status") == SUCCESS, payload[-800:]

    history = mockbench.client.documents("p", history=True)
    assert [d["unique_id"] for d in history] == [v1.unique_id(e1), v2.unique_id(e2)]
    old, new = history
    assert (old["status"], old["replaces"], old["replaced_by"]) == ("deprecated", None, new["id"])
    assert (new["status"], new["replaces"], new["replaced_by"]) == ("deleted", old["id"], None)
    # a replacement is a new document (its own entryUUID and lid), each at its first metadata version
    assert (old["version"], new["version"]) == (1, 1) and new["lid"] != old["lid"]
    assert (old["hash"], new["hash"]) == tuple(hashlib.sha1(p.documents[e.get("id")]).hexdigest().upper()
                                               for p, e in ((v1, e1), (v2, e2)))
    status, _type, payload = door.call("registry", "urn:ihe:iti:2007:RegistryStoredQuery",
                                       etree.tostring(find_documents({"ins": v1.ins, "ins_oid": v1.ins_oid})))
    assert status == 200 and list(body_of(payload).iter(f"{{{RIM}}}ExtrinsicObject")) == []   # none Approved
    journal = [(e["operation"], e["verdict"]) for e in mockbench.client.journal(channel="dmp")]
    assert journal == [("TD2.1", "accepted"), ("TD2.1", "accepted"), ("TD3.3c", "accepted"),
                       ("TD3.1", "accepted")]
