"""A minimal CDA R2 document for seeded DMP documents: a header that names the patient by INS, the author
and the type, and a non-structured narrative body. Enough for a DPI to retrieve, hash and display it."""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr


def minimal_cda(*, unique_id: str, ins: str, ins_oid: str, type_code: str, title: str, author_idnps: str,
                author_family: str, author_given: str, patient_family: str, patient_given: str, birth_date: str,
                sex: str, effective_time: str, text: str, set_id: str | None = None, version: int = 1) -> bytes:
    root, _, ext = unique_id.rpartition(".") if not unique_id.startswith("2.25.") else (unique_id, "", "")
    doc_id = f"<id root={quoteattr(root)} extension={quoteattr(ext)}/>" if ext else f"<id root={quoteattr(unique_id)}/>"
    gender = {"M": "M", "F": "F"}.get(sex, "UN")
    when = effective_time.replace("-", "").replace(":", "").replace("T", "")[:14]
    xml = f"""<?xml version="1.0" encoding="UTF-8"?>
<ClinicalDocument xmlns="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <realmCode code="FR"/>
  <typeId root="2.16.840.1.113883.1.3" extension="POCD_HD000040"/>
  <templateId root="2.16.840.1.113883.2.8.2.1"/>
  <templateId root="1.2.250.1.213.1.1.1.1"/>
  {doc_id}
  <code code={quoteattr(type_code)} codeSystem="2.16.840.1.113883.6.1" displayName={quoteattr(title)}/>
  <title>{escape(title)}</title>
  <effectiveTime value="{when}+0000"/>
  <confidentialityCode code="N" codeSystem="2.16.840.1.113883.5.25"/>
  <languageCode code="fr-FR"/>
  <setId root={quoteattr(set_id or unique_id)}/>
  <versionNumber value="{version}"/>
  <recordTarget><patientRole>
    <id root={quoteattr(ins_oid)} extension={quoteattr(ins)}/>
    <patient>
      <name><given>{escape(patient_given)}</given><family qualifier="BR">{escape(patient_family)}</family></name>
      <administrativeGenderCode code="{gender}" codeSystem="2.16.840.1.113883.5.1"/>
      <birthTime value="{birth_date.replace('-', '')}"/>
    </patient>
  </patientRole></recordTarget>
  <author><time value="{when}+0000"/><assignedAuthor>
    <id root="1.2.250.1.71.4.2.1" extension={quoteattr(author_idnps)}/>
    <assignedPerson><name><given>{escape(author_given)}</given><family>{escape(author_family)}</family></name></assignedPerson>
  </assignedAuthor></author>
  <component><nonXMLBody><text mediaType="text/plain">{escape(text)}</text></nonXMLBody></component>
</ClinicalDocument>
"""
    return xml.encode("utf-8")
