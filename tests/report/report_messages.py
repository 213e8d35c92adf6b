"""Messages the report tests send through real doors: MDM messages (python-hl7's MLLP client) shaped as
the ANS guide shapes them, and a way to check an HTML document for external references."""

from __future__ import annotations

import base64
import re

from kit.pfi import send_raw
from lxml import html as lxml_html

from mockbench.formats.cda import minimal_cda

EVENTS = {"T02": ("NW", "F"), "T04": ("CA", "D")}
SCRIPT = "<script>alert('x')</script>"


def mdm(event: str, patient: dict, author: dict, finess: str, unique_id: str, *, obr_text: str = "CR") -> bytes:
    orc, status = EVENTS[event]
    cda = minimal_cda(unique_id=unique_id, ins=patient["ins"], ins_oid=patient["ins_oid"], type_code="11488-4",
                      title="Compte rendu de consultation", author_idnps=author["idnps"],
                      author_family=author["family_name"], author_given=author["given_name"],
                      patient_family=patient["family_name"], patient_given=patient["given_name"],
                      birth_date=patient["birth_date"], sex=patient["sex"], effective_time="2026-11-20T10:00:00Z",
                      text="Examen normal.")
    b64 = base64.b64encode(cda).decode()
    lines = [
        f"MSH|^~\\&|DPI|CHU|PFI|CHU|20261120100000||MDM^{event}^MDM_T02|{event}|P|2.6|||||FRA|UNICODE UTF-8|||"
        "2.1^CISIS_CDA_HL7_V2",
        "EVN||20261120100000",
        f"PID|||{patient['ins']}^^^ASIP-SANTE-INS-NIR&{patient['ins_oid']}&ISO^INS||{patient['family_name']}^"
        f"{patient['given_name']}^^^^^L||{patient['birth_date'].replace('-', '')}|{patient['sex']}",
        "PV1|1|I",
        f"ORC|{orc}|",
        f"OBR|1|||11488-4^{obr_text}^LN",
        f"TXA|1|11488-4|TEXT|20261120100000||||||||{unique_id}^CHU|||||AU|||||{author['idnps']}",
        f"OBX|1|ED|11488-4^CR de consultation^LN||^text^XML^Base64^{b64}||||||{status}",
        f"PRT||UC||SB^^participation|{author['idnps']}^{author['family_name']}^{author['given_name']}^^^^^^"
        f"ASIP-SANTE-PS&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS|||CHU^^^^^ASIP-SANTE-ST&1.2.250.1.71.4.2.2&ISO^FINEG^^^"
        f"{finess}",
        "OBX|2|CWE|DESTDMP^DESTDMP^MetaDMPMSS||Y^^expandedYes-NoIndicator||||||F",
    ]
    return ("\r".join(lines) + "\r").encode("utf-8")


def send(bench, *messages: bytes) -> list[bytes]:
    """Each message to the bench's PFI over MLLP; the raw ACKs (the report tests send what the strict reader
    may refuse)."""
    return send_raw(bench.ports["mllp"], *messages)


def play_conf_03_01(bench, *, delete: bool = True, obr_text: str = "CR") -> str:
    """dmp-conf-03-01 through the PFI door: the T02, then (if `delete`) the T04; the document's unique id."""
    c = bench.client
    patient = c.patient("alice")
    pro = c.call("GET", "/professionals")[0]
    finess = c.call("GET", "/structures")[0]["finess"]
    uid = "1.2.250.1.999.42.1"
    messages = [mdm("T02", patient, pro, finess, uid, obr_text=obr_text)]
    if delete:
        messages.append(mdm("T04", patient, pro, finess, uid))
    send(bench, *messages)
    return uid


# External references -----------------------------------------------------------------------------------
REFERENCE_ATTRIBUTES = ("src", "href", "action", "formaction", "srcset", "poster", "data", "background",
                        "codebase", "cite", "longdesc", "manifest", "ping", "xlink:href")
_URL_IN_CSS = re.compile(r"url\(\s*['\"]?([^'\")]*)", re.I)


def external_references(document: str) -> list[str]:
    """Every reference in the HTML to anything but an anchor of the page or a data: URI."""
    tree = lxml_html.document_fromstring(document)
    found = []
    for element in tree.iter():
        if not isinstance(element.tag, str):
            continue
        if element.tag in ("script", "link", "iframe", "frame", "object", "embed", "base", "img", "video",
                           "audio", "source", "form"):
            found.append(f"<{element.tag}>")
        if element.tag == "meta" and (element.get("http-equiv") or "").lower() == "refresh":
            found.append("<meta refresh>")
        for name, value in element.attrib.items():
            if name.lower() in REFERENCE_ATTRIBUTES and not _local(value):
                found.append(f"<{element.tag} {name}={value!r}>")
        styles = [element.get("style") or ""] + ([element.text or ""] if element.tag == "style" else [])
        for css in styles:
            found.extend(f"url({u})" for u in _URL_IN_CSS.findall(css) if not _local(u))
            if "@import" in css.lower():
                found.append("@import")
    return found


def _local(value: str) -> bool:
    value = value.strip()
    return value.startswith("#") or value.lower().startswith("data:")
