"""ebRIM / XDS.b metadata of the DMP door: the ANS corpus requests parsed value by value, every XDM
METADATA.XML, the TD3.1 answer's ExtrinsicObjects reproduced from world documents, a round-trip property,
one test per IHE error code, and the answers compared with the corpus's."""

from __future__ import annotations

import copy
import re
import zipfile
from dataclasses import fields
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from mockbench.formats import ebrim
from mockbench.formats.ebrim import LCM, QUERY, RIM, RS, XDS_B
from mockbench.formats.xml import parse_xml
from mockbench.world.clock import Clock, parse_time
from mockbench.world.model import Actor, Document, Patient, Professional, Structure
from mockbench.world.store import Store
from mockbench.world.world import World

INS = "207058575627097"
PATIENT_CX = f"{INS}^^^&1.2.250.1.213.1.4.10&ISO^NH"
IDNPS = "899900063480"
DOCUMENT_FIELDS = {f.name for f in fields(Document)}


# Helpers ----------------------------------------------------------------------------------------------------
def soap_body(path: Path) -> etree._Element:
    """The first element of the SOAP Body of a corpus file (TD2.1 is an MTOM multipart: the envelope is cut
    out of it)."""
    data = path.read_bytes()
    envelope = re.search(rb"<soap:Envelope.*?</soap:Envelope>", data, re.S).group(0)
    root = parse_xml(envelope)
    body = next(c for c in root if etree.QName(c).localname == "Body")
    return body[0]


def wire(corpus: Path, name: str) -> etree._Element:
    return soap_body(corpus / "dmp-wire" / name)


def rim(parent, tag, /, **attrib):
    return etree.SubElement(parent, f"{{{RIM}}}{tag}", {k.rstrip("_"): v for k, v in attrib.items()})


def slot(parent, name, *values):
    s = rim(parent, "Slot", name=name)
    vl = rim(s, "ValueList")
    for v in values:
        rim(vl, "Value").text = v


def submit_objects(
    *eos,
    patient_cx: str = PATIENT_CX,
    associations=(),
    has_member=True,
    content_type=("04", "1.2.250.1.213.2.2"),
) -> etree._Element:
    """A SubmitObjectsRequest around ExtrinsicObjects: a submission set as TD2.1's, one HasMember each."""
    req = etree.Element(f"{{{LCM}}}SubmitObjectsRequest", nsmap={"lcm": LCM, "rim": RIM})
    rol = rim(req, "RegistryObjectList")
    ss = rim(rol, "RegistryPackage", id="SubmissionSet01")
    slot(ss, "submissionTime", "20210604135051")
    c = rim(
        ss,
        "Classification",
        classificationScheme=ebrim.SS_CONTENT_TYPE_CODE,
        classifiedObject="SubmissionSet01",
        id="cla2",
        nodeRepresentation=content_type[0],
    )
    slot(c, "codingScheme", content_type[1])
    rim(
        ss,
        "Classification",
        classificationNode=ebrim.SS_CLASSIFICATION_NODE,
        classifiedObject="SubmissionSet01",
        id="cla3",
    )
    author = rim(
        ss,
        "Classification",
        classificationScheme=ebrim.SS_AUTHOR,
        classifiedObject="SubmissionSet01",
        id="cla1",
        nodeRepresentation="",
    )
    slot(author, "authorPerson", f"{IDNPS}^MAX^LIBRE^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS")
    for i, (scheme, value) in enumerate(
        (
            (ebrim.SS_PATIENT_ID, patient_cx),
            (ebrim.SS_SOURCE_ID, "1.2.250.1.999"),
            (ebrim.SS_UNIQUE_ID, "1.2.250.1.999.1"),
        )
    ):
        rim(
            ss,
            "ExternalIdentifier",
            id=f"ei{i}",
            identificationScheme=scheme,
            registryObject="SubmissionSet01",
            value=value,
        )
    for i, eo in enumerate(eos):
        rol.append(copy.deepcopy(eo))
        if has_member:
            a = rim(
                rol,
                "Association",
                associationType=ebrim.HAS_MEMBER,
                id=f"hm{i}",
                sourceObject="SubmissionSet01",
                targetObject=eo.get("id"),
            )
            slot(a, "SubmissionSetStatus", "Original")
    for i, (kind, source, target, slots) in enumerate(associations):
        a = rim(
            rol, "Association", associationType=kind, id=f"as{i}", sourceObject=source, targetObject=target
        )
        for name, values in slots.items():
            slot(a, name, *values)
    return req


def provide_and_register(*eos, documents=None, **kwargs) -> etree._Element:
    body = etree.Element(f"{{{XDS_B}}}ProvideAndRegisterDocumentSetRequest", nsmap={"xdsb": XDS_B})
    body.append(submit_objects(*eos, **kwargs))
    for did in documents if documents is not None else [eo.get("id") for eo in eos]:
        etree.SubElement(body, f"{{{XDS_B}}}Document", id=did).text = "PENvbnRlbnQvPg=="
    return body


def document(**over) -> Document:
    values = dict(
        id="doc-1",
        unique_id="1.2.250.1.999.1.1.7898.3.1",
        entry_uuid="urn:uuid:7953af1a-ba1c-11eb-816f-0050569e422e",
        lid="urn:uuid:7953af1a-ba1c-11eb-816f-0050569e422e",
        patient="alice",
        type_code="11488-4",
        class_code="10",
        format_code="urn:ihe:iti:xds-sd:pdf:2008",
        practice_setting="ETABLISSEMENT",
        facility_type="SA01",
        mime_type="application/pdf",
        title="Compte rendu",
        creation_time="2024-01-04T15:05:27.000Z",
        service_start="2024-01-04T08:22:00Z",
        service_stop=None,
        confidentiality=["N"],
        author="dr-a",
        author_specialty="G15_10/SM26",
        hash="D88AA33886104183F2BD8184C2033DD802F563C8",
        size=173157,
    )
    values.update(over)
    return Document(**values)


def entry_document(entry: ebrim.DocumentEntry, **over) -> Document:
    """The world Document a door would store for a parsed entry (author kept as the IDNPS)."""
    meta = {k: v for k, v in entry.meta.items() if k in DOCUMENT_FIELDS}
    meta.update(
        id=entry.unique_id,
        entry_uuid=entry.symbolic_id,
        lid=entry.lid or entry.symbolic_id,
        patient="alice",
        version=int(entry.version_info or 1),
        status=ebrim.STATUS_NAMES.get(entry.availability_status or "", "approved"),
    )
    meta.update(over)
    return Document(**meta)


def render(doc: Document, **kwargs) -> etree._Element:
    kwargs.setdefault("author_idnps", IDNPS)
    return ebrim.render_extrinsic_object(doc, PATIENT_CX, **kwargs)


def parse_one(eo: etree._Element, **kwargs) -> ebrim.DocumentEntry:
    submission = ebrim.parse_submit_objects(submit_objects(eo, **kwargs))
    assert len(submission.documents) == 1
    return submission.documents[0]


def codes_of(exc: pytest.ExceptionInfo) -> list[str]:
    return exc.value.codes


def shape(el: etree._Element) -> tuple:
    """Tag, attributes (without the random ids of classifications and identifiers), text and children."""
    attrs = dict(el.attrib)
    if etree.QName(el).localname in ("Classification", "ExternalIdentifier"):
        attrs.pop("id", None)
    return (el.tag, tuple(sorted(attrs.items())), (el.text or "").strip(), tuple(shape(c) for c in el))


def names(el: etree._Element) -> list[str]:
    return [c.tag for c in el if isinstance(c.tag, str)]


def find_rim(el, path):
    return el.find(path.replace("rim:", f"{{{RIM}}}"))


# The corpus: TD2.1 ------------------------------------------------------------------------------------------
def test_td21_provide_and_register(corpus):
    sub = ebrim.parse_provide_and_register(wire(corpus, "TD2.1_request.xml"))
    ss = sub.submission_set
    assert (ss["id"], ss["uniqueId"], ss["sourceId"]) == (
        "SubmissionSet01",
        "1.2.250.1.999.1.1.7898.1.1622814651504",
        "1.2.250.1.999.1.1.7898",
    )
    assert ss["patient_id"] == f"{PATIENT_CX}^^20100907"
    assert (ss["patient_ins"], ss["patient_oid"]) == (INS, "1.2.250.1.213.1.4.10")
    assert ss["submission_time"] == "2021-06-04T13:50:51Z"
    assert (ss["content_type"], ss["content_type_scheme"], ss["content_type_name"]) == (
        "04",
        "1.2.250.1.213.2.2",
        "Hospitalisation de jour",
    )
    assert ss["author"] == IDNPS
    assert (ss["title"], ss["comments"]) == ("lot du document originel", "Compte rendu test")

    doc, sig = sub.documents
    assert (doc.symbolic_id, doc.unique_id, doc.document_ref) == (
        "DocumentME2",
        "1.2.250.1.999.1.1.7898.3.1622814651504",
        "documentME2",
    )
    assert (doc.patient_ins, doc.patient_oid, doc.lid, doc.version_info, doc.availability_status) == (
        INS,
        "1.2.250.1.213.1.4.10",
        None,
        None,
        None,
    )
    assert doc.author_structure_idnst == "499900063480001"
    extra = doc.meta.pop("extra")
    assert doc.meta == {
        "unique_id": "1.2.250.1.999.1.1.7898.3.1622814651504",
        "mime_type": "text/xml",
        "creation_time": "2010-03-19T19:45:35Z",
        "service_start": "2010-03-19T18:32:44Z",
        "service_stop": "2010-03-19T18:33:44Z",
        "language": "fr-FR",
        "title": "Document 1",
        "class_code": "10",
        "type_code": "27899-4",
        "type_system": "2.16.840.1.113883.6.1",
        "format_code": "urn:ihe:iti:xds-sd:text:2008",
        "facility_type": "SA01",
        "practice_setting": "ETABLISSEMENT",
        "confidentiality": ["N"],
        "author": IDNPS,
        "author_specialty": "G15_10/SM26",
        "content_type": "04",
    }
    assert set(doc.meta) <= DOCUMENT_FIELDS
    assert extra["sourcePatientId"] == "0456789999^^^&1.2.250.1.999.1.1.7898.2&ISO^PI"
    assert extra["sourcePatientInfo"] == ["PID-5|patb-quatre^LAURENCE^^^^^L", "PID-7|19070525", "PID-8|F"]
    assert extra["legalAuthenticator"] == f"{IDNPS}^MAX^LIBRE^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS"
    assert extra["description"] == "commentaire sur document"
    assert extra["authors"] == [
        {
            "authorPerson": [f"{IDNPS}^MAX^LIBRE^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS"],
            "authorSpecialty": [
                "G15_10/SM26^Médecin - Qualifié en Médecine Générale (SM)^1.2.250.1.213.1.1.4.5"
            ],
            "authorInstitution": ["CABINET DR LIBRE^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^499900063480001"],
        }
    ]
    assert extra["codingSchemes"] == {
        "class_code": "1.2.250.1.213.1.1.4.1",
        "format_code": "1.3.6.1.4.1.19376.1.2.3",
        "facility_type": "1.2.250.1.71.4.2.4",
        "practice_setting": "1.2.250.1.213.1.1.4.9",
    }
    assert extra["displayNames"]["type_code"] == "CR d'acte diagnostique (autre)"

    # The XAdES signature: IHE DSG codes, N + MASQUE_PS + INVISIBLE_PATIENT, an eventCode "Source".
    assert (sig.symbolic_id, sig.document_ref, sig.unique_id) == (
        "Signature01",
        "Signature01",
        "1.2.250.1.999.1.1.7898.4.1622814651504",
    )
    assert {
        k: sig.meta[k]
        for k in (
            "class_code",
            "type_code",
            "type_system",
            "format_code",
            "language",
            "confidentiality",
            "title",
        )
    } == {
        "class_code": "urn:oid:1.3.6.1.4.1.19376.1.2.1.1.1",
        "type_code": "E1762",
        "type_system": "ASTM",
        "format_code": "http://www.w3.org/2000/09/xmldsig#",
        "language": "art",
        "confidentiality": ["N", "MASQUE_PS", "INVISIBLE_PATIENT"],
        "title": "Source",
    }
    assert sig.meta["extra"]["eventCodeList"] == [
        {"code": "1.2.840.10065.1.12.1.14", "scheme": "1.2.840.10065.1.12", "name": "Source"}
    ]
    assert sig.meta["extra"]["sourcePatientId"] == f"{PATIENT_CX}^^20100907"

    assert [(a.type, a.source, a.target, a.slots) for a in sub.associations] == [
        (ebrim.HAS_MEMBER, "SubmissionSet01", "DocumentME2", {"SubmissionSetStatus": ["Original"]}),
        (ebrim.HAS_MEMBER, "SubmissionSet01", "Signature01", {"SubmissionSetStatus": ["Original"]}),
        (
            "urn:ihe:iti:2007:AssociationType:signs",
            "Signature01",
            "SubmissionSet01",
            {"SubmissionSetStatus": ["Original"]},
        ),
    ]
    assert sub.signatures() == ["Signature01"]
    assert sub.replacements() == []
    hrefs = {e.symbolic_id: sub.document_element(e)[0].get("href") for e in sub.documents}
    assert hrefs == {
        "DocumentME2": "cid:WS_DMP_TD2.1-DocumentME2.xml",
        "Signature01": "cid:WS_DMP_TD2.1-SignatureXades.xml",
    }
    assert [f["rule"] for f in sub.findings] == ["DMP/XDS-DOCUMENT-ID"]


def test_td21_document_into_the_world_then_found_by_td31(corpus, tmp_path):
    """The parsed meta is what world.dmp.submit takes (the author mapped to a world id); the TD3.1 query's
    filters are what world.dmp.find takes; the signature, fed as a document, meets EX_2.1-1050."""
    sub = ebrim.parse_provide_and_register(wire(corpus, "TD2.1_request.xml"))
    query = ebrim.parse_stored_query(wire(corpus, "TD3.1_request.xml"))
    store = Store(tmp_path / "w.db")
    try:
        world = World(store, Clock(real=lambda: 1_750_000_000.0))
        with world.transaction() as tx:
            world.directory.add_structure(
                tx, Structure(id="cab", finess="750000010", name="CABINET DR LIBRE")
            )
            world.directory.add_professional(
                tx,
                Professional(
                    id="dr-libre", idnps=IDNPS, family_name="MAX", given_name="LIBRE", structure="cab"
                ),
                check_digits=False,
            )
            world.directory.add_patient(
                tx,
                Patient(id="p", ins=INS, family_name="X", given_name="Y", birth_date="1907-05-25", sex="F"),
            )
            world.dmp.set_authorization(tx, Actor.system(), "p", status="VALIDE", structure="cab")
        actor = Actor(kind="professional", id="dr-libre", structure="cab")
        content = (corpus / "dmp-wire" / "TD2.1_document.xml").read_bytes()
        entry, signature = sub.documents
        with world.transaction() as tx:
            meta = dict(entry.meta, author=world.directory.professional(tx, entry.meta["author"]).id)
            stored = world.dmp.submit(tx, actor, entry.patient_ins, meta, content)
            with pytest.raises(Exception) as refused:
                world.dmp.submit(
                    tx, actor, signature.patient_ins, dict(signature.meta, author="dr-libre"), b"<sig/>"
                )
            assert refused.value.code == "CONFIDENTIALITY_CONFLICT"
        with world.transaction() as tx:
            found = world.dmp.find(
                tx,
                actor,
                query.patient_ins,
                **query.world_filters(
                    professional_id=lambda idnps: world.directory.professional(tx, idnps).id
                ),
            )
        assert [d.unique_id for d in found] == [entry.unique_id]
        assert stored.extra["legalAuthenticator"].startswith(IDNPS)
        again = parse_one(ebrim.render_extrinsic_object(found[0], PATIENT_CX, author_idnps=IDNPS))
        assert again.meta["extra"] == entry.meta["extra"]
        assert {
            k: again.meta[k] for k in ("class_code", "type_code", "creation_time", "title", "author")
        } == {k: entry.meta[k] for k in ("class_code", "type_code", "creation_time", "title", "author")}
    finally:
        store.close()


# TD3.1, TD3.2, TD3.3 ----------------------------------------------------------------------------------------
def test_td31_find_documents(corpus):
    q = ebrim.parse_stored_query(wire(corpus, "TD3.1_request.xml"))
    assert (q.query_id, q.kind, q.return_type) == (
        "urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d",
        "FindDocuments",
        "LeafClass",
    )
    assert q.params == {
        "$XDSDocumentEntryPatientId": [PATIENT_CX],
        "$XDSDocumentEntryStatus": ["urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"],
    }
    assert q.world_filters() == {"statuses": ["approved"]}
    assert (q.patient_ins, q.patient_oid) == (INS, "1.2.250.1.213.1.4.10")
    assert (q.unsupported, q.and_groups, q.patient_id) == ({}, {}, PATIENT_CX)


def test_td32_retrieve(corpus):
    assert ebrim.parse_retrieve(wire(corpus, "TD3.2_request.xml")) == [
        ("1.2.250.1.213.4.1.1.1.2", "1.2.250.1.999.1.1.7898.1.995657292", "")
    ]


@pytest.mark.parametrize(
    "name, original, new, ss_unique_id",
    [
        (
            "TD3.3c_request.xml",
            ebrim.STATUS_ARCHIVED,
            ebrim.STATUS_DELETED,
            "1.2.250.1.999.1.1.7898.3.20180518163612.3",
        ),
        (
            "TD3.3d_request.xml",
            ebrim.STATUS_APPROVED,
            ebrim.STATUS_ARCHIVED,
            "1.2.250.1.999.1.1.7898.1.11086546546895",
        ),
    ],
)
def test_td33_update_availability_status(corpus, name, original, new, ss_unique_id):
    update = ebrim.parse_update(wire(corpus, name))
    assert update.status_changes == [("urn:uuid:fe5287a2-ae6a-11eb-8f5d-0050569e422e", original, new)]
    assert update.metadata_updates == []
    ss = update.submission_set
    assert (ss["uniqueId"], ss["sourceId"], ss["patient_ins"], ss["submission_time"], ss["author"]) == (
        ss_unique_id,
        "1.2.250.1.999.1.1.7898",
        INS,
        "2021-06-04T09:24:15Z",
        IDNPS,
    )
    assert ss["patient_id"] == f"{PATIENT_CX}^^20210604092415"
    assert update.findings == []


def test_td31_answer_reproduced_from_world_documents(corpus):
    """Each of the 21 ExtrinsicObjects of the DMP's TD3.1 answer, parsed into a world Document and rendered
    again, comes out identical (but for the random ids of classifications and identifiers)."""
    root = parse_xml((corpus / "dmp-wire" / "TD3.1_response.xml").read_bytes())
    eos = list(root.iter(f"{{{RIM}}}ExtrinsicObject"))
    assert len(eos) == 21
    for eo in eos:
        patient_cx = find_rim(
            eo, f"rim:ExternalIdentifier[@identificationScheme='{ebrim.DE_PATIENT_ID}']"
        ).get("value")
        entry = parse_one(eo, patient_cx=patient_cx)
        doc = entry_document(entry)
        again = ebrim.render_extrinsic_object(doc, patient_cx)
        assert shape(again) == shape(eo), entry.symbolic_id
    first = parse_one(eos[0], patient_cx=PATIENT_CX)
    assert (first.symbolic_id, first.lid, first.version_info, first.availability_status) == (
        "urn:uuid:7953af1a-ba1c-11eb-816f-0050569e422e",
        "urn:uuid:7953af1a-ba1c-11eb-816f-0050569e422e",
        "1",
        ebrim.STATUS_APPROVED,
    )
    assert {k: first.meta[k] for k in ("hash", "size", "repository_id", "confidentiality", "author")} == {
        "hash": "AF326FB44FEB720121D2C277CE10F87407818089",
        "size": 2768,
        "repository_id": "1.2.250.1.213.4.1.1.1.2",
        "confidentiality": ["N", "INVISIBLE_PATIENT"],
        "author": IDNPS,
    }
    assert first.meta["extra"]["eventCodeList"] == [
        {"code": "H33", "scheme": "2.16.840.1.113883.6.3", "name": "Décollement et déchirement de la rétine"}
    ]


# XDM --------------------------------------------------------------------------------------------------------
XDM_ACTIONS = {
    "C": {
        "BIO-CR-BIO_2021.01_Microbiologie_V2",
        "BIO-CR-BIO_2024.01_Microbiologie_V2",
        "CARD-F-PRC-AVK_2022.01",
        "CARD-F-PRC-DCI_2022.01",
        "CARD-F-PRC-PPV_2022.01",
        "CARD-F-PRC-PSC_2022.01",
        "CARD-F-PRC-TAP_2022.01",
        "CNAM-HR_2021.01_sans-info",
        "IMG_CR_IMG_2024.01",
        "IMG_CR_IMG_2024.01_CDA-R2-Niveau-1",
        "IPS-FR_2024.01",
        "IPS-FR_2024.01_DLU",
        "OPH-BRE_2022.02",
        "SDM-MR_2025.01_nouveau-ne",
        "SDM-MR_2025.01_patiente-post-grossesse",
        "VSM_1.4_2022.01",
    },
    "D": {"BIO-CR-BIO_2021.01_Microbiologie_V2_Delete", "BIO-CR-BIO_2024.01_Microbiologie_V2_Delete"},
}


def test_every_xdm_metadata_parses(corpus):
    """All 72 METADATA.XML parse without RegistryErrors. Every one nests classifications naming the
    submission set as classifiedObject and identifiers naming other objects (findings); all use a facility
    type as the submission set's contentTypeCode (info); none has an RPLC association."""
    zips = sorted((corpus / "xdm").glob("*.zip"))
    assert len(zips) == 72
    rules, actions, two_authors = set(), {"C": set(), "D": set()}, set()
    for path in zips:
        sub = ebrim.parse_submit_objects(
            parse_xml(zipfile.ZipFile(path).read("IHE_XDM/SUBSET01/METADATA.XML"))
        )
        (entry,) = sub.documents
        meta = entry.meta
        assert meta["hash"] == meta["hash"].upper() and len(meta["hash"]) == 40 and meta["size"] > 0, (
            path.name
        )
        assert meta["confidentiality"] == ["N"] and meta["language"] == "fr-FR", path.name
        assert (
            entry.patient_oid == "1.2.250.1.213.1.4.10"
            and entry.patient_ins == sub.submission_set["patient_ins"]
        )
        assert sub.submission_set["content_type_scheme"] == "1.2.250.1.71.4.2.4", path.name
        assert meta["extra"]["URI"] == ["DOC0001.XML"] and sub.replacements() == [], path.name
        assert set(meta) <= DOCUMENT_FIELDS, path.name
        rules.update(f["rule"] for f in sub.findings)
        action = meta["extra"].get("urn:action:extraMetadataSlot")
        if action:
            actions[action[0]].add(path.stem)
        if len(meta["extra"]["authors"]) == 2:
            two_authors.add(path.stem)
    assert rules == {"DMP/XDS-CLASSIFIED-OBJECT", "DMP/XDS-REGISTRY-OBJECT", "DMP/XDS-CONTENT-TYPE"}
    assert actions == XDM_ACTIONS
    assert two_authors == {
        "BIO-CR-BIO_2024.01_DEP-CCU-HPV-structure-CYTO-pdf",
        "BIO-CR-BIO_2024.01_DEP-CCU-tout-structure",
    }


def test_xdm_microbiologie_v2_delete_values(corpus):
    path = corpus / "xdm" / "BIO-CR-BIO_2024.01_Microbiologie_V2_Delete.zip"
    sub = ebrim.parse_submit_objects(parse_xml(zipfile.ZipFile(path).read("IHE_XDM/SUBSET01/METADATA.XML")))
    (entry,) = sub.documents
    extra = entry.meta.pop("extra")
    assert entry.meta == {
        "unique_id": "1.2.250.1.213.1.1.1.55.2024.8.2",
        "mime_type": "text/xml",
        "creation_time": "2024-01-04T15:05:27Z",
        "service_start": "2024-01-04T08:22:00Z",
        "service_stop": "2024-01-04T15:05:00Z",
        "language": "fr-FR",
        "hash": "D88AA33886104183F2BD8184C2033DD802F563C8",
        "size": 173157,
        "title": "Compte rendu d'examens biologiques",
        "class_code": "10",
        "type_code": "11502-2",
        "type_system": "2.16.840.1.113883.6.1",
        "format_code": "urn:ihe:lab:xd-lab:2008",
        "facility_type": "SA25",
        "practice_setting": "AMBULATOIRE",
        "confidentiality": ["N"],
        "author": "801234534765",
        "author_specialty": "G15_10/SM03",
        "content_type": "SA25",
    }
    assert extra["urn:action:extraMetadataSlot"] == ["D"]
    assert extra["codingSchemes"]["format_code"] == "1.2.250.1.213.1.1.4.2.282"
    assert extra["eventCodeList"] == [
        {"code": "18725-2", "scheme": "2.16.840.1.113883.6.1", "name": "Microbiologie"}
    ]
    assert (entry.patient_ins, sub.submission_set["uniqueId"]) == (
        "279035121518989",
        "1.2.250.1.213.1.1.1.1.2026.1.1.639039200527981344",
    )


# Round trip -------------------------------------------------------------------------------------------------
_times = st.datetimes(
    min_value=parse_time("1900-01-01").replace(tzinfo=None),
    max_value=parse_time("2099-12-31").replace(tzinfo=None),
).map(lambda d: d.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ"))
_text = (
    st.text(
        st.characters(categories=("L", "N", "P", "S", "Zs"), exclude_characters="\x85"),
        min_size=1,
        max_size=40,
    )
    .map(str.strip)
    .filter(bool)
)


@st.composite
def world_documents(draw) -> Document:
    extra_codes = draw(
        st.lists(
            st.sampled_from(["MASQUE_PS", "INVISIBLE_PATIENT", "INVISIBLE_REPRESENTANTS_LEGAUX"]),
            unique=True,
            max_size=3,
        )
    )
    uid = f"urn:uuid:{draw(st.uuids())}"
    return document(
        unique_id="1.2.250.1.213.1.1.9." + str(draw(st.integers(1, 10**12))),
        entry_uuid=uid,
        lid=draw(st.sampled_from([uid, f"urn:uuid:{draw(st.uuids())}"])),
        version=draw(st.integers(1, 40)),
        status=draw(st.sampled_from(["approved", "deprecated", "archived", "deleted"])),
        title=draw(_text),
        type_code=draw(st.sampled_from(sorted(ebrim.TYPE_NAMES) + ["99999-9"])),
        class_code=draw(st.sampled_from(sorted(ebrim.CLASS_NAMES)[:-1])),
        format_code=draw(st.sampled_from(sorted(ebrim.FORMAT_NAMES)[:-1] + ["urn:ans:ci-sis:trod:2024"])),
        practice_setting=draw(st.sampled_from(sorted(ebrim.PRACTICE_SETTING_NAMES))),
        facility_type=draw(st.sampled_from(sorted(ebrim.FACILITY_TYPE_NAMES) + ["SA99"])),
        mime_type=draw(st.sampled_from(["text/xml", "application/pdf", "image/jpeg"])),
        language=draw(st.sampled_from(["fr-FR", "en-US", "art"])),
        creation_time=draw(_times),
        service_start=draw(st.none() | _times),
        service_stop=draw(st.none() | _times),
        confidentiality=["N", *extra_codes],
        author_specialty=draw(st.sampled_from(["G15_10/SM26", "SM26", "ALIM_AM"])),
        hash=draw(st.text("0123456789ABCDEF", min_size=40, max_size=40)),
        size=draw(st.integers(0, 2**40)),
        repository_id=draw(st.sampled_from(["1.2.250.1.213.4.1.1.1.2", "1.2.3"])),
    )


ROUND_TRIP = (
    "unique_id",
    "type_code",
    "type_system",
    "class_code",
    "format_code",
    "practice_setting",
    "facility_type",
    "mime_type",
    "language",
    "title",
    "confidentiality",
    "author_specialty",
    "hash",
    "size",
    "repository_id",
)


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(world_documents())
def test_round_trip_world_document(doc):
    eo = render(doc)
    entry = parse_one(parse_xml(etree.tostring(eo)))  # through bytes, as on the wire
    meta = entry.meta
    assert {k: meta.get(k) for k in ROUND_TRIP} == {k: getattr(doc, k) for k in ROUND_TRIP}
    for key in ("creation_time", "service_start", "service_stop"):
        want = getattr(doc, key)
        assert (parse_time(meta[key]) if key in meta else None) == (parse_time(want) if want else None), key
    assert (entry.symbolic_id, entry.lid, entry.version_info, entry.availability_status) == (
        doc.entry_uuid,
        doc.lid,
        str(doc.version),
        ebrim.STATUS_URNS[doc.status],
    )
    assert (entry.patient_id, meta["author"], meta["content_type"]) == (PATIENT_CX, IDNPS, "04")
    # Stored as parsed, rendered again: the same ExtrinsicObject.
    assert shape(render(entry_document(entry))) == shape(eo)


def test_round_trip_keeps_extra_of_a_parsed_document():
    first = parse_one(
        render(
            document(),
            author_structure_name="CHU",
            author_structure_idnst="1750000010",
            author_family="MAX",
            author_given="LIBRE",
        )
    )
    assert first.meta["extra"]["authors"] == [
        {
            "authorInstitution": ["CHU^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^1750000010"],
            "authorPerson": [f"{IDNPS}^MAX^LIBRE^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS"],
            "authorSpecialty": ["G15_10/SM26^^1.2.250.1.213.1.1.4.5"],
        }
    ]
    assert first.author_structure_idnst == "1750000010"
    named = parse_one(render(document(), author_structure_name="CHU"))
    assert named.meta["extra"]["authors"][0]["authorInstitution"] == ["CHU"]
    assert named.author_structure_idnst == ""
    second = parse_one(render(entry_document(first)))
    assert second.meta == first.meta


def test_render_shape_and_object_ref():
    eo = render(document(confidentiality=["N", "MASQUE_PS"]))
    assert eo.tag == f"{{{RIM}}}ExtrinsicObject"
    assert dict(eo.attrib) == {
        "id": "urn:uuid:7953af1a-ba1c-11eb-816f-0050569e422e",
        "isOpaque": "false",
        "lid": "urn:uuid:7953af1a-ba1c-11eb-816f-0050569e422e",
        "mimeType": "application/pdf",
        "objectType": ebrim.DE_OBJECT_TYPE,
        "status": ebrim.STATUS_APPROVED,
    }
    assert [s.get("name") for s in eo.findall(f"{{{RIM}}}Slot")] == [
        "creationTime",
        "hash",
        "languageCode",
        "repositoryUniqueId",
        "serviceStartTime",
        "size",
        "sourcePatientId",
    ]
    assert (
        find_rim(eo, "rim:Slot[@name='hash']/rim:ValueList/rim:Value").text
        == "d88aa33886104183f2bd8184c2033dd802f563c8"
    )
    assert find_rim(eo, "rim:Slot[@name='creationTime']/rim:ValueList/rim:Value").text == "20240104150527"
    assert [
        (c.get("classificationScheme"), c.get("nodeRepresentation"))
        for c in eo.findall(f"{{{RIM}}}Classification")
    ] == [
        (ebrim.DE_AUTHOR, ""),
        (ebrim.DE_CLASS_CODE, "10"),
        (ebrim.DE_CONFIDENTIALITY_CODE, "N"),
        (ebrim.DE_CONFIDENTIALITY_CODE, "MASQUE_PS"),
        (ebrim.DE_FORMAT_CODE, "urn:ihe:iti:xds-sd:pdf:2008"),
        (ebrim.DE_FACILITY_TYPE_CODE, "SA01"),
        (ebrim.DE_PRACTICE_SETTING_CODE, "ETABLISSEMENT"),
        (ebrim.DE_TYPE_CODE, "11488-4"),
    ]
    masked = eo.findall(f"{{{RIM}}}Classification")[3]
    assert find_rim(masked, "rim:Slot/rim:ValueList/rim:Value").text == "1.2.250.1.213.1.1.4.13"
    assert (
        find_rim(masked, "rim:Name/rim:LocalizedString").get("value") == "Masqué aux professionnels de santé"
    )
    assert [
        (
            e.get("identificationScheme"),
            e.get("value"),
            find_rim(e, "rim:Name/rim:LocalizedString").get("value"),
        )
        for e in eo.findall(f"{{{RIM}}}ExternalIdentifier")
    ] == [
        (ebrim.DE_PATIENT_ID, PATIENT_CX, "XDSDocumentEntry.patientId"),
        (ebrim.DE_UNIQUE_ID, "1.2.250.1.999.1.1.7898.3.1", "XDSDocumentEntry.uniqueId"),
    ]
    for status, urn in (
        ("archived", "urn:asip:ci-sis:2010:StatusType:Archived"),
        ("deleted", "urn:asip:ci-sis:2010:StatusType:Deleted"),
        ("deprecated", "urn:oasis:names:tc:ebxml-regrep:StatusType:Deprecated"),
    ):
        assert render(document(status=status)).get("status") == urn
    ref = render(document(), object_ref=True)
    assert (ref.tag, dict(ref.attrib)) == (
        f"{{{RIM}}}ObjectRef",
        {"id": "urn:uuid:7953af1a-ba1c-11eb-816f-0050569e422e"},
    )
    assert etree.tostring(render(document())) == etree.tostring(render(document()))  # deterministic ids


# ITI-41 / XDM errors ----------------------------------------------------------------------------------------
def eo_of(**over) -> etree._Element:
    return render(document(**over))


def test_a_rendered_document_is_a_valid_provide_and_register():
    sub = ebrim.parse_provide_and_register(provide_and_register(eo_of()))
    assert [d.document_ref for d in sub.documents] == ["urn:uuid:7953af1a-ba1c-11eb-816f-0050569e422e"]
    assert sub.findings == []


def test_missing_document():
    with pytest.raises(ebrim.RegistryErrors) as exc:
        ebrim.parse_provide_and_register(provide_and_register(eo_of(), documents=[]))
    assert codes_of(exc) == ["XDSMissingDocument"]
    assert exc.value.errors[0].location == "urn:uuid:7953af1a-ba1c-11eb-816f-0050569e422e"


def test_missing_document_metadata():
    body = provide_and_register(eo_of(), documents=["urn:uuid:7953af1a-ba1c-11eb-816f-0050569e422e", "Doc2"])
    with pytest.raises(ebrim.RegistryErrors) as exc:
        ebrim.parse_provide_and_register(body)
    assert codes_of(exc) == ["XDSMissingDocumentMetadata"] and exc.value.errors[0].location == "Doc2"


def test_patient_id_does_not_match():
    eo = eo_of()
    find_rim(eo, f"rim:ExternalIdentifier[@identificationScheme='{ebrim.DE_PATIENT_ID}']").set(
        "value", "279035121518989^^^&1.2.250.1.213.1.4.10&ISO^NH"
    )
    with pytest.raises(ebrim.RegistryErrors) as exc:
        ebrim.parse_provide_and_register(provide_and_register(eo))
    assert codes_of(exc) == ["XDSPatientIdDoesNotMatch"]


def test_patient_id_trailing_components_do_not_matter():
    entry = parse_one(eo_of(), patient_cx=f"{PATIENT_CX}^^20100907")
    assert entry.patient_ins == INS


def test_duplicate_unique_id_in_message():
    second = eo_of(
        entry_uuid="urn:uuid:00000000-0000-4000-8000-000000000002",
        lid="urn:uuid:00000000-0000-4000-8000-000000000002",
    )
    with pytest.raises(ebrim.RegistryErrors) as exc:
        ebrim.parse_provide_and_register(provide_and_register(eo_of(), second))
    assert codes_of(exc) == ["XDSRegistryDuplicateUniqueIdInMessage"]


def drop(eo, xpath):
    for el in eo.xpath(xpath, namespaces={"rim": RIM}):
        el.getparent().remove(el)
    return eo


@pytest.mark.parametrize(
    "mutate, message",
    [
        (
            lambda eo: drop(eo, f"rim:Classification[@classificationScheme='{ebrim.DE_CLASS_CODE}']"),
            "no classCode",
        ),
        (
            lambda eo: drop(eo, f"rim:Classification[@classificationScheme='{ebrim.DE_TYPE_CODE}']"),
            "no typeCode",
        ),
        (
            lambda eo: drop(eo, f"rim:Classification[@classificationScheme='{ebrim.DE_FORMAT_CODE}']"),
            "no formatCode",
        ),
        (
            lambda eo: drop(eo, f"rim:Classification[@classificationScheme='{ebrim.DE_FACILITY_TYPE_CODE}']"),
            "no healthcareFacilityTypeCode",
        ),
        (
            lambda eo: drop(
                eo, f"rim:Classification[@classificationScheme='{ebrim.DE_PRACTICE_SETTING_CODE}']"
            ),
            "no practiceSettingCode",
        ),
        (
            lambda eo: drop(
                eo, f"rim:Classification[@classificationScheme='{ebrim.DE_CONFIDENTIALITY_CODE}']"
            ),
            "no confidentialityCode",
        ),
        (
            lambda eo: drop(eo, f"rim:ExternalIdentifier[@identificationScheme='{ebrim.DE_UNIQUE_ID}']"),
            "no XDSDocumentEntry.uniqueId",
        ),
        (lambda eo: drop(eo, "rim:Slot[@name='creationTime']"), "creationTime slot is missing"),
        (lambda eo: drop(eo, "rim:Slot[@name='languageCode']"), "languageCode slot is missing"),
        (lambda eo: drop(eo, "rim:Slot[@name='sourcePatientId']"), "sourcePatientId slot is missing"),
        (lambda eo: eo.attrib.pop("mimeType") and eo, "no mimeType"),
        (lambda eo: eo.set("objectType", ebrim.DE_OBJECT_TYPE_ON_DEMAND) or eo, "on-demand"),
        (
            lambda eo: (
                find_rim(eo, "rim:Slot[@name='creationTime']/rim:ValueList/rim:Value").__setattr__(
                    "text", "2024-01-04"
                )
                or eo
            ),
            "not an HL7 DTM",
        ),
        (
            lambda eo: (
                find_rim(eo, "rim:Slot[@name='hash']/rim:ValueList/rim:Value").__setattr__("text", "abc")
                or eo
            ),
            "not a SHA-1",
        ),
        (
            lambda eo: (
                find_rim(
                    eo,
                    f"rim:Classification[@classificationScheme='{ebrim.DE_CLASS_CODE}']/rim:Slot/rim:ValueList/"
                    "rim:Value",
                ).__setattr__("text", "1.2.3")
                or eo
            ),
            "classCode 10 has codingScheme 1.2.3",
        ),
        (
            lambda eo: (
                find_rim(
                    eo, f"rim:Classification[@classificationScheme='{ebrim.DE_CONFIDENTIALITY_CODE}']"
                ).set("nodeRepresentation", "R")
                or eo
            ),
            "confidentialityCode R",
        ),
    ],
)
def test_metadata_errors_name_the_entry_and_attribute(mutate, message):
    with pytest.raises(ebrim.RegistryErrors) as exc:
        ebrim.parse_provide_and_register(provide_and_register(mutate(eo_of())))
    assert codes_of(exc) == ["XDSRegistryMetadataError"], exc.value.errors
    assert message in exc.value.errors[0].message
    assert exc.value.errors[0].location == "urn:uuid:7953af1a-ba1c-11eb-816f-0050569e422e"


def test_every_problem_of_a_submission_is_reported():
    eo = drop(eo_of(), f"rim:Classification[@classificationScheme='{ebrim.DE_CLASS_CODE}']")
    drop(eo, "rim:Slot[@name='languageCode']")
    find_rim(eo, f"rim:ExternalIdentifier[@identificationScheme='{ebrim.DE_PATIENT_ID}']").set(
        "value", "279035121518989^^^&1.2.250.1.213.1.4.10&ISO^NH"
    )
    with pytest.raises(ebrim.RegistryErrors) as exc:
        ebrim.parse_provide_and_register(provide_and_register(eo, documents=["other"]))
    assert sorted(codes_of(exc)) == sorted(
        [
            "XDSRegistryMetadataError",
            "XDSRegistryMetadataError",
            "XDSPatientIdDoesNotMatch",
            "XDSMissingDocument",
            "XDSMissingDocumentMetadata",
        ]
    )


def test_submission_set_errors():
    req = submit_objects(eo_of())
    for el in req.iter(f"{{{RIM}}}Classification"):
        if el.get("classificationNode") == ebrim.SS_CLASSIFICATION_NODE:
            el.getparent().remove(el)
            break
    with pytest.raises(ebrim.RegistryErrors) as exc:
        ebrim.parse_submit_objects(req)
    assert "XDSRegistryMetadataError" in codes_of(exc)
    assert any("0 submission sets" in e.message for e in exc.value.errors)
    with pytest.raises(ebrim.RegistryErrors) as exc:
        ebrim.parse_submit_objects(submit_objects(eo_of(), content_type=("04", "1.2.3")))
    assert codes_of(exc) == ["XDSRegistryMetadataError"] and "contentTypeCode" in exc.value.errors[0].message


def test_no_has_member():
    with pytest.raises(ebrim.RegistryErrors) as exc:
        ebrim.parse_submit_objects(submit_objects(eo_of(), has_member=False))
    assert codes_of(exc) == ["XDSRegistryMetadataError"] and "HasMember" in exc.value.errors[0].message


def test_rplc_replacements():
    target = "urn:uuid:11111111-2222-4333-8444-555555555555"
    new = eo_of()
    sub = ebrim.parse_provide_and_register(
        provide_and_register(new, associations=[(ebrim.RPLC, new.get("id"), target, {})])
    )
    assert sub.replacements() == [(new.get("id"), target)]


@pytest.mark.parametrize(
    "kind, target, message",
    [
        (ebrim.RPLC, "1.2.250.1.999.1.1.7898.3.0", "must be the entryUUID"),
        (ebrim.RPLC, "urn:uuid:7953af1a-ba1c-11eb-816f-0050569e422e", "must be the entryUUID"),
        (ebrim.XFRM_RPLC, "urn:uuid:11111111-2222-4333-8444-555555555555", "not accepted by the DMP"),
        ("urn:example:Unknown", "urn:uuid:11111111-2222-4333-8444-555555555555", "unknown association type"),
        (ebrim.UPDATE_AVAILABILITY_STATUS, "urn:uuid:11111111-2222-4333-8444-555555555555", "must come from"),
    ],
)
def test_association_errors(kind, target, message):
    new = eo_of()
    body = provide_and_register(new, associations=[(kind, new.get("id"), target, {})])
    with pytest.raises(ebrim.RegistryErrors) as exc:
        ebrim.parse_provide_and_register(body)
    assert set(codes_of(exc)) == {"XDSRegistryMetadataError"}
    assert any(message in e.message for e in exc.value.errors), exc.value.errors


def test_wrong_root_is_a_repository_metadata_error():
    with pytest.raises(ebrim.RegistryErrors) as exc:
        ebrim.parse_provide_and_register(submit_objects(eo_of()))
    assert codes_of(exc) == ["XDSRepositoryMetadataError"]


# ITI-57 -----------------------------------------------------------------------------------------------------
def test_metadata_update_new_version():
    new_uuid = "urn:uuid:22222222-3333-4444-8555-666666666666"
    eo = eo_of(entry_uuid=new_uuid, version=2, confidentiality=["N", "MASQUE_PS"])
    req = submit_objects(
        eo,
        has_member=False,
        associations=[
            (
                ebrim.HAS_MEMBER,
                "SubmissionSet01",
                new_uuid,
                {"SubmissionSetStatus": ["Original"], "PreviousVersion": ["1"]},
            )
        ],
    )
    update = ebrim.parse_update(req)
    assert update.status_changes == []
    ((entry, previous),) = update.metadata_updates
    assert (entry.symbolic_id, entry.lid, previous, entry.meta["confidentiality"]) == (
        new_uuid,
        "urn:uuid:7953af1a-ba1c-11eb-816f-0050569e422e",
        "1",
        ["N", "MASQUE_PS"],
    )


def test_metadata_update_errors():
    with pytest.raises(ebrim.RegistryErrors) as exc:
        ebrim.parse_update(submit_objects(eo_of()))
    assert codes_of(exc) == ["XDSRegistryMetadataError"] and "PreviousVersion" in exc.value.errors[0].message
    eo = eo_of(entry_uuid="urn:uuid:22222222-3333-4444-8555-666666666666")
    eo.attrib.pop("lid")
    req = submit_objects(
        eo,
        has_member=False,
        associations=[
            (
                ebrim.HAS_MEMBER,
                "SubmissionSet01",
                eo.get("id"),
                {"SubmissionSetStatus": ["Original"], "PreviousVersion": ["1"]},
            )
        ],
    )
    with pytest.raises(ebrim.RegistryErrors) as exc:
        ebrim.parse_update(req)
    assert "lid" in exc.value.errors[0].message


def test_status_change_errors():
    req = submit_objects(
        associations=[
            (
                ebrim.UPDATE_AVAILABILITY_STATUS,
                "SubmissionSet01",
                "urn:uuid:fe5287a2-ae6a-11eb-8f5d-0050569e422e",
                {"OriginalStatus": [ebrim.STATUS_APPROVED], "NewStatus": ["urn:x:Gone"]},
            )
        ]
    )
    with pytest.raises(ebrim.RegistryErrors) as exc:
        ebrim.parse_update(req)
    assert codes_of(exc) == ["XDSRegistryMetadataError"] and "NewStatus" in exc.value.errors[0].message
    with pytest.raises(ebrim.RegistryErrors) as exc:
        ebrim.parse_update(submit_objects())
    assert codes_of(exc) == ["XDSRegistryMetadataError"]


# ITI-18 -----------------------------------------------------------------------------------------------------
def adhoc(query_id=ebrim.FIND_DOCUMENTS, return_type="LeafClass", **slots) -> etree._Element:
    req = etree.Element(f"{{{QUERY}}}AdhocQueryRequest", nsmap={"query": QUERY, "rim": RIM})
    if return_type is not None:
        etree.SubElement(
            req, f"{{{QUERY}}}ResponseOption", returnComposedObjects="true", returnType=return_type
        )
    q = rim(req, "AdhocQuery", id=query_id)
    for name, values in slots.items():
        for group in values if isinstance(values, list) else [values]:
            slot(q, "$" + name, *(group if isinstance(group, tuple) else (group,)))
    return req


BASE = {
    "XDSDocumentEntryPatientId": f"'{PATIENT_CX}'",
    "XDSDocumentEntryStatus": f"('{ebrim.STATUS_APPROVED}', '{ebrim.STATUS_ARCHIVED}')",
}


def test_find_documents_filters():
    q = ebrim.parse_stored_query(
        adhoc(
            **BASE,
            XDSDocumentEntryClassCode="('10^^1.2.250.1.213.1.1.4.1', '11^^^&1.2.250.1.213.1.1.4.1&ISO')",
            XDSDocumentEntryTypeCode=("'11488-4^^2.16.840.1.113883.6.1'", "'SYNTH^^1.2.250.1.213.1.1.4.12'"),
            XDSDocumentEntryPracticeSettingCode="('ETABLISSEMENT')",
            XDSDocumentEntryHealthcareFacilityTypeCode="('SA01')",
            XDSDocumentEntryFormatCode="('urn:ihe:iti:xds-sd:pdf:2008^^1.3.6.1.4.1.19376.1.2.3')",
            XDSDocumentEntryConfidentialityCode="('MASQUE_PS^^1.2.250.1.213.1.1.4.13')",
            XDSDocumentEntryAuthorPerson=f"('{IDNPS}^MAX^LIBRE^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS')",
            XDSDocumentEntryCreationTimeFrom="20100319",
            XDSDocumentEntryCreationTimeTo="'20100320120000'",
            XDSDocumentEntryServiceStartTimeFrom="201003",
            XDSDocumentEntryServiceStartTimeTo="2011",
            XDSDocumentEntryServiceStopTimeFrom="20100319183344",
            XDSDocumentEntryServiceStopTimeTo="20100319193344+0100",
            XDSDocumentEntryEventCodeList="('H33^^2.16.840.1.113883.6.3')",
            XDSDocumentEntryType=f"('{ebrim.DE_OBJECT_TYPE}')",
        )
    )
    assert q.world_filters(professional_id={IDNPS: "dr-libre"}.get) == {
        "statuses": ["approved", "archived"],
        "class_code": ["10", "11"],
        "type_code": ["11488-4", "SYNTH"],
        "practice_setting": ["ETABLISSEMENT"],
        "facility_type": ["SA01"],
        "format_code": ["urn:ihe:iti:xds-sd:pdf:2008"],
        "confidentiality": ["MASQUE_PS"],
        "author": ["dr-libre"],
        "creation_time_from": "2010-03-19T00:00:00Z",
        "creation_time_to": "2010-03-20T12:00:00Z",
        "service_start_from": "2010-03-01T00:00:00Z",
        "service_start_to": "2011-01-01T00:00:00Z",
        "service_stop_from": "2010-03-19T18:33:44Z",
        "service_stop_to": "2010-03-19T18:33:44Z",
    }
    assert q.unsupported == {"$XDSDocumentEntryEventCodeList": ["H33^^2.16.840.1.113883.6.3"]}
    assert q.world_filters()["author"] == [IDNPS]


def test_find_documents_value_syntax_and_unsupported():
    q = ebrim.parse_stored_query(
        adhoc(
            **BASE,
            XDSDocumentEntryAuthorPerson="('%^O''BRIEN^%')",
            XDSDocumentEntryConfidentialityCode=[("('N')",), ("('MASQUE_PS')",)],
            XDSDocumentEntryType=f"('{ebrim.DE_OBJECT_TYPE_ON_DEMAND}')",
        )
    )
    assert q.params["$XDSDocumentEntryAuthorPerson"] == ["%^O'BRIEN^%"]
    assert q.params["$XDSDocumentEntryStatus"] == [ebrim.STATUS_APPROVED, ebrim.STATUS_ARCHIVED]
    assert q.and_groups == {"$XDSDocumentEntryConfidentialityCode": [["N"], ["MASQUE_PS"]]}
    assert set(q.unsupported) == {
        "$XDSDocumentEntryAuthorPerson",
        "$XDSDocumentEntryConfidentialityCode",
        "$XDSDocumentEntryType",
    }
    filters = q.world_filters()
    assert "author" not in filters and "confidentiality" not in filters
    assert ebrim.matches_like("%^O'BRIEN^%", f"{IDNPS}^O'BRIEN^JOHN") and not ebrim.matches_like(
        "%^X^%", "1^Y^Z"
    )


def test_get_documents():
    q = ebrim.parse_stored_query(
        adhoc(ebrim.GET_DOCUMENTS, "ObjectRef", XDSDocumentEntryUniqueId="('1.2.3', '1.2.4')")
    )
    assert (q.kind, q.return_type, q.world_filters()) == (
        "GetDocuments",
        "ObjectRef",
        {"unique_ids": ["1.2.3", "1.2.4"]},
    )
    q = ebrim.parse_stored_query(adhoc(ebrim.GET_DOCUMENTS, XDSDocumentEntryEntryUUID="('urn:uuid:a')"))
    assert q.world_filters() == {"entry_uuids": ["urn:uuid:a"]}


@pytest.mark.parametrize(
    "request_, code, location",
    [
        (
            lambda: adhoc("urn:uuid:00000000-0000-0000-0000-000000000000", **BASE),
            "XDSUnknownStoredQuery",
            "urn:uuid:00000000-0000-0000-0000-000000000000",
        ),
        (
            lambda: adhoc(XDSDocumentEntryPatientId=f"'{PATIENT_CX}'"),
            "XDSStoredQueryMissingParam",
            "$XDSDocumentEntryStatus",
        ),
        (
            lambda: adhoc(XDSDocumentEntryStatus=BASE["XDSDocumentEntryStatus"]),
            "XDSStoredQueryMissingParam",
            "$XDSDocumentEntryPatientId",
        ),
        (
            lambda: adhoc(
                **{**BASE, "XDSDocumentEntryPatientId": f"('{PATIENT_CX}', '279035121518989^^^&1.2&ISO')"}
            ),
            "XDSStoredQueryParamNumber",
            "$XDSDocumentEntryPatientId",
        ),
        (
            lambda: adhoc(**BASE, XDSDocumentEntryCreationTimeFrom=["20100101", "20110101"]),
            "XDSStoredQueryParamNumber",
            "$XDSDocumentEntryCreationTimeFrom",
        ),
        (lambda: adhoc(ebrim.GET_DOCUMENTS), "XDSStoredQueryMissingParam", "$XDSDocumentEntryUniqueId"),
        (
            lambda: adhoc(
                ebrim.GET_DOCUMENTS,
                XDSDocumentEntryUniqueId="('1.2')",
                XDSDocumentEntryEntryUUID="('urn:uuid:a')",
            ),
            "XDSStoredQueryParamNumber",
            "$XDSDocumentEntryUniqueId",
        ),
        (
            lambda: adhoc(**{**BASE, "XDSDocumentEntryStatus": "('urn:x:Gone')"}),
            "XDSRegistryError",
            "$XDSDocumentEntryStatus",
        ),
        (
            lambda: adhoc(**BASE, XDSDocumentEntryCreationTimeTo="'yesterday'"),
            "XDSRegistryError",
            "$XDSDocumentEntryCreationTimeTo",
        ),
        (lambda: adhoc(return_type=None, **BASE), "XDSRegistryError", "ResponseOption"),
    ],
)
def test_stored_query_errors(request_, code, location):
    with pytest.raises(ebrim.RegistryErrors) as exc:
        ebrim.parse_stored_query(request_())
    assert [(e.error_code, e.location) for e in exc.value.errors] == [(code, location)]


# ITI-43 -----------------------------------------------------------------------------------------------------
def retrieve(*requests) -> etree._Element:
    body = etree.Element(f"{{{XDS_B}}}RetrieveDocumentSetRequest", nsmap={None: XDS_B})
    for parts in requests:
        dr = etree.SubElement(body, f"{{{XDS_B}}}DocumentRequest")
        for name, value in parts.items():
            etree.SubElement(dr, f"{{{XDS_B}}}{name}").text = value
    return body


def test_retrieve_several_and_errors():
    assert ebrim.parse_retrieve(
        retrieve(
            {
                "HomeCommunityId": "urn:oid:1.2.3",
                "RepositoryUniqueId": "1.2.250.1.213.4.1.1.1.2",
                "DocumentUniqueId": "1.2.1",
            },
            {"RepositoryUniqueId": "1.2.250.1.213.4.1.1.1.2", "DocumentUniqueId": "1.2.2"},
        )
    ) == [("1.2.250.1.213.4.1.1.1.2", "1.2.1", "urn:oid:1.2.3"), ("1.2.250.1.213.4.1.1.1.2", "1.2.2", "")]
    with pytest.raises(ebrim.RegistryErrors) as exc:
        ebrim.parse_retrieve(retrieve({"DocumentUniqueId": "1.2.1"}, {"RepositoryUniqueId": "1.2"}))
    assert [(e.error_code, e.location) for e in exc.value.errors] == [
        ("XDSRepositoryMetadataError", "DocumentRequest[1]"),
        ("XDSDocumentUniqueIdError", "DocumentRequest[2]"),
    ]
    with pytest.raises(ebrim.RegistryErrors) as exc:
        ebrim.parse_retrieve(retrieve())
    assert codes_of(exc) == ["XDSRepositoryMetadataError"]


# Answers compared with the corpus ---------------------------------------------------------------------------
def corpus_body(corpus: Path, name: str) -> etree._Element:
    root = parse_xml((corpus / "dmp-wire" / name).read_bytes())
    return next(c for c in root if etree.QName(c).localname == "Body")[0]


@pytest.mark.parametrize("name", ["TD2.1_response.xml", "TD3.3c_response.xml", "TD3.3d_response.xml"])
def test_registry_response_like_the_corpus(corpus, name):
    want = corpus_body(corpus, name)
    got = ebrim.render_registry_response()
    assert (got.tag, dict(got.attrib), names(got)) == (want.tag, dict(want.attrib), names(want))


def test_registry_response_failure_and_warnings():
    err = ebrim.RegistryError(
        "XDSPatientIdDoesNotMatch", "DocumentME2: not the same patient", location="DocumentME2"
    )
    got = ebrim.render_registry_response(
        [err], warnings=[ebrim.RegistryError("XDSRegistryMetadataError", "w")]
    )
    assert got.get("status") == ebrim.RESPONSE_FAILURE
    assert names(got) == [f"{{{RS}}}RegistryErrorList"]
    error_list = got[0]
    assert error_list.get("highestSeverity") == ebrim.SEVERITY_ERROR
    assert [dict(e.attrib) for e in error_list] == [
        {
            "codeContext": "DocumentME2: not the same patient",
            "errorCode": "XDSPatientIdDoesNotMatch",
            "location": "DocumentME2",
            "severity": ebrim.SEVERITY_ERROR,
        },
        {"codeContext": "w", "errorCode": "XDSRegistryMetadataError", "severity": ebrim.SEVERITY_WARNING},
    ]
    only_warning = ebrim.render_registry_response(
        warnings=[ebrim.RegistryError("XDSRegistryMetadataError", "w")]
    )
    assert only_warning.get("status") == ebrim.RESPONSE_SUCCESS
    assert only_warning[0].get("highestSeverity") == ebrim.SEVERITY_WARNING


def test_query_response_like_the_corpus(corpus):
    want = corpus_body(corpus, "TD3.1_response.xml")
    objects = [
        render(document(entry_uuid=f"urn:uuid:00000000-0000-4000-8000-{i:012d}", extra={"description": "d"}))
        for i in range(21)
    ]
    got = ebrim.render_query_response(objects)
    assert (got.tag, dict(got.attrib), names(got)) == (want.tag, dict(want.attrib), names(want))
    assert names(got[0]) == names(want[0])

    def kinds(el):  # Slot, Name, Description, VersionInfo, Classification, ExternalIdentifier
        return [k for i, k in enumerate(names(el)) if i == 0 or names(el)[i - 1] != k]

    assert kinds(got[0][0]) == kinds(want[0][0])
    parse_xml(etree.tostring(got))  # serialises and parses back


def test_query_response_statuses():
    err = ebrim.RegistryError("XDSRegistryError", "boom")
    failure = ebrim.render_query_response([], errors=[err])
    assert (failure.get("status"), names(failure)) == (
        ebrim.RESPONSE_FAILURE,
        [f"{{{RS}}}RegistryErrorList", f"{{{RIM}}}RegistryObjectList"],
    )
    partial = ebrim.render_query_response([render(document(), object_ref=True)], errors=[err])
    assert (partial.get("status"), partial.get("totalResultCount")) == (ebrim.RESPONSE_PARTIAL_SUCCESS, "1")
    assert names(partial[1]) == [f"{{{RIM}}}ObjectRef"]
    assert ebrim.render_query_response([]).get("status") == ebrim.RESPONSE_SUCCESS


def test_retrieve_response_like_the_corpus(corpus):
    want = corpus_body(corpus, "TD3.2_response.xml")
    got = ebrim.render_retrieve_response(
        [("1.2.250.1.213.4.1.1.1.2", "1.2.250.1.999.1.1.7898.1.995657292", "text/xml")], []
    )
    assert (got.tag, names(got)) == (want.tag, names(want))
    assert dict(got[0].attrib) == dict(want[0].attrib)
    assert [(c.tag, (c.text or "").strip()) for c in got[1]][:3] == [
        (c.tag, (c.text or "").strip()) for c in want[1]
    ][:3]
    assert names(got[1]) == names(want[1]) and len(got[1][3]) == 0  # the door fills xdsb:Document


def test_retrieve_response_statuses():
    err = ebrim.RegistryError("XDSDocumentUniqueIdError", "urn:uuid:x is an entryUUID", location="urn:uuid:x")
    partial = ebrim.render_retrieve_response([("1.2", "1.2.1", "text/xml")], [err])
    assert partial[0].get("status") == ebrim.RESPONSE_PARTIAL_SUCCESS
    assert names(partial[0]) == [f"{{{RS}}}RegistryErrorList"]
    failure = ebrim.render_retrieve_response([], [err])
    assert (failure[0].get("status"), names(failure)) == (
        ebrim.RESPONSE_FAILURE,
        [f"{{{RS}}}RegistryResponse"],
    )


# Small pieces -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "dtm, iso",
    [
        ("20100319194535", "2010-03-19T19:45:35Z"),
        ("2010", "2010-01-01T00:00:00Z"),
        ("201003191945", "2010-03-19T19:45:00Z"),
        ("20190221133445+0100", "2019-02-21T12:34:45Z"),
        ("20100319194535.123", "2010-03-19T19:45:35Z"),
    ],
)
def test_dtm(dtm, iso):
    assert ebrim.dtm_to_iso(dtm) == iso
    assert (
        ebrim.iso_to_dtm(iso) == ebrim.dtm_to_iso(dtm).replace("-", "").replace(":", "").replace("T", "")[:14]
    )


@pytest.mark.parametrize("bad", ["2010-03-19", "2010031", "20101319", "", "abc"])
def test_bad_dtm(bad):
    with pytest.raises(ValueError):
        ebrim.dtm_to_iso(bad)


def test_registry_error_defaults():
    e = ebrim.RegistryError("XDSRegistryError", "message")
    assert (e.code_context, e.location, e.severity, e.is_error) == ("message", "", ebrim.SEVERITY_ERROR, True)
    assert ebrim.RegistryErrors([e]).errors == [e]
