"""The XDS creationTime the PFI derives from the CDA, through python-hl7's MLLP client over real sockets.

trans-cda-r2/mapping.md, "Mapping XDS", Fiche: creationTime is "requis", from the CDA's effectiveTime@value.
A CDA without one (or with one that is no HL7 time) is taken by the PFI (ACK AA: the HL7 message is sound) and
refused by the DMP it feeds, as the DMP door refuses a TD2.1 entry without the slot (XDSRegistryMetadataError,
formats/ebrim/reader.py): the PFI reports it as it reports every DMP refusal, a ZAM^Z01 N whose ERR-5 carries the
DMP's code (trans-cda-r2/profils-messages.md, "Contraintes à appliquer au message ZAM^Z01^ZAM_Z01", segment ERR:
ERR-3 207, ERR-5 `code^libellé^DMP_ERROR_CODE`). The guide does not say more of this case: the path is the one
the bench already takes for DMP refusals (world error -> protocols/pfi/errors.py z01_error)."""

import re

import pytest
import requests
from kit.dpi_listener import field
from kit.pfi import cda_for, mdm, send
from kit.wait import wait_for
from lxml import etree

from mockbench.testing import messages as m

UNREADABLE = [None, "", "20261345", "hier"]   # absent, empty, month 13, not digits


def without_effective_time(cda: bytes, value: str | None) -> bytes:
    """The CDA with its effectiveTime removed (None) or set to `value`."""
    replacement = b"" if value is None else f'<effectiveTime value="{value}"/>'.encode()
    edited = re.sub(rb"<effectiveTime[^>]*/>", replacement, cda, count=1)
    assert edited != cda
    return edited


def z01s(listener) -> list:
    return listener.of_type("ZAM^Z01")


@pytest.mark.parametrize("value", UNREADABLE)
def test_a_cda_without_a_readable_effective_time_is_refused_by_the_dmp_and_the_z01_says_so(
        pfi_world, dpi_listener, value):
    bench, patient, dr_a = pfi_world["bench"], pfi_world["patient"], pfi_world["pros"]["dr_a"]
    listener = dpi_listener()
    uid = "1.2.250.1.999.71.1"
    cda = without_effective_time(cda_for(patient, uid, dr_a), value)
    [ack] = send(bench, mdm("T02", patient, dr_a, dr_a["finess"], uid, control_id="CT1", cda=cda))
    assert (str(ack.segment("MSA")[1]), str(ack.segment("MSA")[2])) == ("AA", "CT1")   # the message is sound
    assert uid not in {d["unique_id"] for d in bench.client.documents("alice", history=True)}
    pfi = next(e for e in bench.client.journal(channel="pfi") if e["operation"] == "MDM^T02")
    dmp = bench.client.journal(channel="dmp")[-1]
    assert [f["rule"] for f in pfi["findings"] if f["rule"] == "CDA-HL7/effectiveTime"] == ["CDA-HL7/effectiveTime"]
    assert (dmp["operation"], dmp["verdict"], dmp["code"], dmp["document"]) == (
        "TD2.1", "refused", "METADATA_INVALID", uid)
    assert "creationTime" in dmp["findings"][-1]["message"]
    assert wait_for(lambda: len(z01s(listener)) == 1)
    [zam] = z01s(listener)
    obx = zam.segments("OBX")[0]
    assert (str(obx[3]), str(obx[4]), str(obx[5])) == (
        "ACK_RECEPTION_DMP^Accusé de réception DMP^AckMetierZAM", "CT1", "N^^expandedYes-NoIndicator")
    assert field(zam, "ERR", 3) == "207^Application error^messageErrorCondition"
    code, label, system = field(zam, "ERR", 5).split("^")
    assert (code, system) == ("XDSRegistryMetadataError", "DMP_ERROR_CODE") and "creationTime" in label


def test_the_dmp_door_refuses_the_same_entry_with_the_same_code(pfi_world):
    """The same document fed over SOAP (TD2.1) without the creationTime slot: the DMP door's answer carries the
    code the PFI's Z01 carries above, XDSRegistryMetadataError (formats/ebrim/reader.py, `entry_slots`)."""
    bench, patient, dr_a = pfi_world["bench"], pfi_world["patient"], pfi_world["pros"]["dr_a"]
    idnst = next(s for s in bench.client.call("GET", "/structures") if s["id"] == "chu")["idnst"]
    uid = "1.2.250.1.999.71.2"
    body, _ = m.provide_and_register(patient, dr_a, uid, without_effective_time(cda_for(patient, uid, dr_a), None))
    for slot in body.iter(f"{{{m.RIM}}}Slot"):
        if slot.get("name") == "creationTime":
            slot.getparent().remove(slot)
            break
    else:
        raise AssertionError("no creationTime slot to remove")
    answer = requests.post(bench.url + m.DMP_SERVICES + "/repository", timeout=10,
                           headers={"Content-Type": "application/soap+xml; charset=utf-8"},
                           data=m.soap_envelope(body, m.vihf(dr_a, idnst, patient, signer=bench.bench),
                                                m.ACTIONS["TD2.1"]))
    assert answer.status_code == 200, answer.text
    errors = [e.get("errorCode") for e in etree.fromstring(answer.content).iter(
        "{urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0}RegistryError")]
    assert errors == ["XDSRegistryMetadataError"]
    assert uid not in {d["unique_id"] for d in bench.client.documents("alice", history=True)}


def test_a_replacement_without_effective_time_leaves_the_version_it_replaces_current(pfi_world, dpi_listener):
    bench, patient, dr_a = pfi_world["bench"], pfi_world["patient"], pfi_world["pros"]["dr_a"]
    listener = dpi_listener()
    v1, v2 = "1.2.250.1.999.71.3", "1.2.250.1.999.71.4"
    cda = without_effective_time(cda_for(patient, v2, dr_a), None)
    acks = send(bench, mdm("T02", patient, dr_a, dr_a["finess"], v1, control_id="CT3"),
                mdm("T10", patient, dr_a, dr_a["finess"], v2, v1, control_id="CT4", cda=cda))
    assert [str(a.segment("MSA")[1]) for a in acks] == ["AA", "AA"]
    docs = {d["unique_id"]: d for d in bench.client.documents("alice", history=True)}
    assert v2 not in docs and docs[v1]["status"] == "approved" and docs[v1]["replaced_by"] is None
    assert wait_for(lambda: len(z01s(listener)) == 2)
    assert [str(z.segment("OBX")[5]).split("^")[0] for z in z01s(listener)] == ["Y", "N"]
    assert field(z01s(listener)[1], "ERR", 5).startswith("XDSRegistryMetadataError^")


def test_a_deletion_needs_no_creation_time(pfi_world):
    """A deletion (MDM^T04) feeds no metadata: its CDA's effectiveTime is not asked for."""
    bench, patient, dr_a = pfi_world["bench"], pfi_world["patient"], pfi_world["pros"]["dr_a"]
    uid = "1.2.250.1.999.71.5"
    cda = without_effective_time(cda_for(patient, uid, dr_a), None)
    acks = send(bench, mdm("T02", patient, dr_a, dr_a["finess"], uid, control_id="CT5"),
                mdm("T04", patient, dr_a, dr_a["finess"], uid, control_id="CT6", cda=cda))
    assert [str(a.segment("MSA")[1]) for a in acks] == ["AA", "AA"]
    dmp = bench.client.journal(channel="dmp")[-1]
    assert (dmp["operation"], dmp["verdict"]) == ("TD3.3c", "accepted")
    t04 = next(e for e in bench.client.journal(channel="pfi") if e["operation"] == "MDM^T04")
    assert not [f for f in t04["findings"] if f["rule"] == "CDA-HL7/effectiveTime"]


@pytest.mark.parametrize("value,creation", [
    ("20210104160527+0100", "2021-01-04T15:05:27Z"),   # the ANS ORU examples' form: the offset is honoured
    ("20261120", "2026-11-20T00:00:00Z"),
    ("20261120100000.123-0230", "2026-11-20T12:30:00Z"),
])
def test_the_creation_time_is_the_effective_time_in_utc(pfi_world, value, creation):
    """XDS times are UTC (ITI TF-3 4.2.3.1.7); the DMP door reads a creationTime's offset (formats/times.py
    `dtm_to_iso`), and the PFI gives the DMP the effectiveTime as that reading makes it."""
    bench, patient, dr_a = pfi_world["bench"], pfi_world["patient"], pfi_world["pros"]["dr_a"]
    uid = "1.2.250.1.999.71.6"
    cda = without_effective_time(cda_for(patient, uid, dr_a), value)
    [ack] = send(bench, mdm("T02", patient, dr_a, dr_a["finess"], uid, control_id="CT7", cda=cda))
    assert str(ack.segment("MSA")[1]) == "AA"
    doc = next(d for d in bench.client.documents("alice") if d["unique_id"] == uid)
    assert doc["creation_time"] == creation
