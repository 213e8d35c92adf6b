"""Reading an ebRIM submission into plain records: lcm:SubmitObjectsRequest (XDM METADATA.XML, ITI-57's body,
ITI-41's metadata), xdsb:ProvideAndRegisterDocumentSetRequest (ITI-41, TD2.1) and ITI-57's update (TD3.3a-d),
validated like a registry. Every problem of a request is collected and raised together as `RegistryErrors`;
what a real DMP plausibly accepts but a strict reader would not is accepted and reported as findings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lxml import etree

from ..findings import finding
from ..times import dtm_to_iso
from .model import (
    Association,
    DocumentEntry,
    RegistryError,
    RegistryErrors,
    Submission,
    Update,
    _bare_code,
    _children,
    _localized,
    _parse_cx,
    _q,
    _xcn_id,
)
from .vocabulary import (
    _CODED,
    _HASH,
    _SCHEME_NAMES,
    _SINGLE_SLOTS,
    _UNIQUE_ID,
    APND,
    CONFIDENTIALITY_SYSTEMS,
    DE_AUTHOR,
    DE_CLASS_CODE,
    DE_CONFIDENTIALITY_CODE,
    DE_EVENT_CODE,
    DE_FACILITY_TYPE_CODE,
    DE_OBJECT_TYPE,
    DE_OBJECT_TYPE_ON_DEMAND,
    DE_PATIENT_ID,
    DE_PRACTICE_SETTING_CODE,
    DE_TYPE_CODE,
    DE_UNIQUE_ID,
    DSG_FORMAT_CODE,
    ERR_DUPLICATE_UNIQUE_ID_IN_MESSAGE,
    ERR_MISSING_DOCUMENT,
    ERR_MISSING_DOCUMENT_METADATA,
    ERR_PATIENT_ID_DOES_NOT_MATCH,
    ERR_REGISTRY_METADATA,
    ERR_REPOSITORY_METADATA,
    FOLDER_CLASSIFICATION_NODE,
    HAS_MEMBER,
    INS_OIDS,
    LCM,
    OID_CLASS,
    OID_CONTENT_TYPE,
    OID_DMP_CONFIDENTIALITY,
    OID_DMP_TYPE,
    OID_FACILITY_TYPE,
    OID_HL7_CONFIDENTIALITY,
    OID_LOINC,
    OID_PRACTICE_SETTING,
    RIM,
    RPLC,
    SIGNS,
    SS_AUTHOR,
    SS_CLASSIFICATION_NODE,
    SS_CONTENT_TYPE_CODE,
    SS_PATIENT_ID,
    SS_SOURCE_ID,
    SS_UNIQUE_ID,
    STATUS_NAMES,
    UPDATE_AVAILABILITY_STATUS,
    XDS_B,
    XFRM,
    XFRM_RPLC,
)

if TYPE_CHECKING:
    from lxml.etree import _Element as Element


# Reading ----------------------------------------------------------------------------------------------------
@dataclass
class _Coded:
    scheme: str
    node: str
    code: str
    system: str
    name: str | None
    slots: dict


class _Reader:
    """One request's reading: errors and findings live here, never at module level."""

    def __init__(self) -> None:
        self.errors: list[RegistryError] = []
        self.findings: list[dict] = []

    def error(self, message: str, location: str = "", code: str = ERR_REGISTRY_METADATA) -> None:
        self.errors.append(RegistryError(code, message, location=location))

    def note(self, rule: str, message: str, severity: str = "warning", *, fr: str) -> None:
        f = finding(rule, message, severity, fr=fr)
        if f not in self.findings:
            self.findings.append(f)

    def fail_if_errors(self) -> None:
        if self.errors:
            raise RegistryErrors(self.errors, findings=self.findings)

    # Slots, classifications, external identifiers ---------------------------------------------------------
    def slots(self, el: Element, where: str) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for slot in _children(el, RIM, "Slot"):
            name = slot.get("name", "")
            values = [(v.text or "").strip() for v in slot.iter(_q(RIM, "Value"))]
            if not name:
                self.error(f"{where}: a Slot has no name", where)
            elif name in out:
                self.error(f"{where}: slot {name} appears twice", where)
            else:
                out[name] = values
        return out

    def single(self, slots: dict, name: str, where: str, *, required: bool = False) -> str | None:
        values = [v for v in slots.pop(name, []) if v]
        if not values:
            if required:
                self.error(f"{where}: the {name} slot is missing or empty", where)
            return None
        if len(values) > 1:
            self.error(f"{where}: the {name} slot has {len(values)} values, it takes one", where)
        return values[0]

    def time(self, value: str | None, name: str, where: str) -> str | None:
        if value is None:
            return None
        try:
            iso = dtm_to_iso(value)
        except ValueError:
            self.error(f"{where}: {name} {value!r} is not an HL7 DTM (YYYYMMDDHHMMSS)", where)
            return None
        if "+" in value or "-" in value:
            self.note("DMP/XDS-DTM", f"{where}: {name} {value} carries a UTC offset; XDS times are UTC",
                      fr=f"{where} : {name} {value} porte un décalage horaire ; les dates XDS sont en UTC")
        return iso

    def classifications(self, el: Element, obj_id: str, top: dict, where: str) -> list[_Coded]:
        out, foreign = [], set()
        for c in _children(el, RIM, "Classification"):
            target = c.get("classifiedObject")
            if target and target != obj_id:
                foreign.add(target)
            out.append(c)
        if foreign:
            self.note("DMP/XDS-CLASSIFIED-OBJECT", f"{where}: classifications nested in it name another "
                      f"classifiedObject ({', '.join(sorted(foreign))}); read as its own",
                      fr=f"{where} : des classifications imbriquées nomment un autre classifiedObject ({', '.join(sorted(foreign))}) ; lues comme les siennes")
        out.extend(top.get(obj_id, []))
        coded = []
        for c in out:
            slots = self.slots(c, where)
            system = slots.pop("codingScheme", [])
            coded.append(_Coded(c.get("classificationScheme", ""), c.get("classificationNode", ""),
                                c.get("nodeRepresentation", ""), system[0] if system else "",
                                _localized(c, "Name"), slots))
        return coded

    def identifiers(self, el: Element, obj_id: str, top: dict, where: str) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        nested = _children(el, RIM, "ExternalIdentifier")
        foreign = {t for ei in nested if (t := ei.get("registryObject")) and t != obj_id}
        for ei in [*nested, *top.get(obj_id, [])]:
            out.setdefault(ei.get("identificationScheme", ""), []).append(ei.get("value", "").strip())
        if foreign:
            self.note("DMP/XDS-REGISTRY-OBJECT", f"{where}: external identifiers nested in it name another "
                      f"registryObject ({', '.join(sorted(foreign))}); read as its own",
                      fr=f"{where} : des identifiants externes imbriqués nomment un autre registryObject ({', '.join(sorted(foreign))}) ; lus comme les siens")
        return out

    def one_identifier(self, ids: dict, scheme: str, name: str, where: str) -> str:
        values = ids.get(scheme, [])
        if not values or not values[0]:
            self.error(f"{where}: no {name} external identifier", where)
            return ""
        if len(values) > 1:
            self.error(f"{where}: {len(values)} {name} external identifiers, one expected", where)
        return values[0]

    def patient(self, value: str, name: str, where: str) -> tuple[str, str]:
        cx = _parse_cx(value)
        if value and cx is None:
            self.error(f"{where}: {name} {value!r} is not a CX with an assigning authority "
                       "(id^^^&OID&ISO)", where)
        if cx and cx[1] not in INS_OIDS:
            self.note("DMP/XDS-PATIENT-ID", f"{where}: {name} is not an INS (assigning authority {cx[1]})",
                      fr=f"{where} : {name} n'est pas une INS (autorité d'affectation {cx[1]})")
        return cx or ("", "")

    @staticmethod
    def authors(coded: list[_Coded], scheme: str) -> list[dict]:
        return [{k: [v for v in vals if v] for k, vals in c.slots.items()}
                for c in coded if c.scheme == scheme]

    # The submission set ------------------------------------------------------------------------------------
    def submission_set(self, pkg: Element, top_cls: dict, top_eis: dict) -> dict:
        sid = pkg.get("id", "")
        where = sid or "RegistryPackage"
        slots = self.slots(pkg, where)
        coded = self.classifications(pkg, sid, top_cls, where)
        ids = self.identifiers(pkg, sid, top_eis, where)
        submission_time = self.time(self.single(slots, "submissionTime", where, required=True),
                                    "submissionTime", where)
        patient_id = self.one_identifier(ids, SS_PATIENT_ID, "XDSSubmissionSet.patientId", where)
        ins, oid = self.patient(patient_id, "XDSSubmissionSet.patientId", where)
        authors = self.authors(coded, SS_AUTHOR)
        content = [c for c in coded if c.scheme == SS_CONTENT_TYPE_CODE]
        out = {
            "id": sid,
            "uniqueId": self.one_identifier(ids, SS_UNIQUE_ID, "XDSSubmissionSet.uniqueId", where),
            "sourceId": self.one_identifier(ids, SS_SOURCE_ID, "XDSSubmissionSet.sourceId", where),
            "patient_id": patient_id, "patient_ins": ins, "patient_oid": oid,
            "submission_time": submission_time,
            "content_type": "", "content_type_scheme": "", "content_type_name": "",
            "author": _xcn_id(authors), "authors": authors,
            "title": _localized(pkg, "Name") or "", "comments": _localized(pkg, "Description") or "",
            "availability_status": pkg.get("status"),
            "extra": slots,
        }
        if not content or not content[0].code:
            self.error(f"{where}: no contentTypeCode classification", where)
        else:
            c = content[0]
            out.update(content_type=c.code, content_type_scheme=c.system, content_type_name=c.name or "")
            if c.system not in (OID_CONTENT_TYPE, OID_FACILITY_TYPE):
                self.error(f"{where}: contentTypeCode {c.code} has codingScheme {c.system!r}, not "
                           f"{OID_CONTENT_TYPE} or {OID_FACILITY_TYPE}", where)
            if c.system == OID_FACILITY_TYPE:
                self.note("DMP/XDS-CONTENT-TYPE", f"{where}: contentTypeCode {c.code} is a facility type "
                          f"({OID_FACILITY_TYPE}), as in the ANS XDM examples; TD2.1 uses {OID_CONTENT_TYPE}",
                          "info",
                          fr=f"{where} : le contentTypeCode {c.code} est un type d'établissement ({OID_FACILITY_TYPE}), comme dans les exemples XDM de l'ANS ; la TD2.1 utilise {OID_CONTENT_TYPE}")
        if not authors:
            self.note("DMP/XDS-AUTHOR", f"{where}: the submission set has no author",
                      fr=f"{where} : le lot de soumission n'a pas d'auteur")
        return out

    # Document entries ---------------------------------------------------------------------------------------
    def entry(self, eo: Element, top_cls: dict, top_eis: dict) -> tuple[DocumentEntry, list[_Coded]]:
        """One rim:ExtrinsicObject as a DocumentEntry, with its classifications (for `check_codes`)."""
        sid = eo.get("id", "")
        where = sid or "ExtrinsicObject"
        status = self.entry_attributes(eo, where)
        slots = self.slots(eo, where)
        coded = self.classifications(eo, sid, top_cls, where)
        ids = self.identifiers(eo, sid, top_eis, where)
        unique_id = self.one_identifier(ids, DE_UNIQUE_ID, "XDSDocumentEntry.uniqueId", where)
        if unique_id and not _UNIQUE_ID.fullmatch(unique_id):
            self.error(f"{where}: XDSDocumentEntry.uniqueId {unique_id!r} is not an OID (or OID^extension)",
                       where)
        patient_id = self.one_identifier(ids, DE_PATIENT_ID, "XDSDocumentEntry.patientId", where)
        ins, oid = self.patient(patient_id, "XDSDocumentEntry.patientId", where)

        meta: dict[str, Any] = {"unique_id": unique_id, "mime_type": eo.get("mimeType", "")}
        extra: dict[str, Any] = {}
        self.entry_slots(eo, slots, where, meta, extra)
        schemes, names = self.entry_codes(coded, where, meta)
        self.entry_authors(coded, where, meta, extra)
        self.entry_other_classifications(coded, where, extra)
        extra["codingSchemes"] = schemes
        extra["displayNames"] = names
        extra.update(slots)
        meta["extra"] = extra
        version = eo.find(_q(RIM, "VersionInfo"))
        entry = DocumentEntry(symbolic_id=sid, unique_id=unique_id, patient_id=patient_id, patient_ins=ins,
                              patient_oid=oid, meta=meta, lid=eo.get("lid"),
                              version_info=None if version is None else version.get("versionName"),
                              availability_status=status)
        if not sid:
            self.error("an ExtrinsicObject has no id", where)
        return entry, coded

    def entry_attributes(self, eo: Element, where: str) -> str | None:
        """objectType (a stable entry), mimeType and status; returns the status."""
        object_type = eo.get("objectType")
        if object_type == DE_OBJECT_TYPE_ON_DEMAND:
            self.error(f"{where}: on-demand document entries are not accepted by the DMP", where)
        elif object_type != DE_OBJECT_TYPE:
            self.error(f"{where}: objectType {object_type!r} is not the stable document entry type "
                       f"{DE_OBJECT_TYPE}", where)
        if not eo.get("mimeType"):
            self.error(f"{where}: no mimeType", where)
        status = eo.get("status")
        if status and status not in STATUS_NAMES:
            self.note("DMP/XDS-STATUS", f"{where}: unknown availability status {status}",
                      fr=f"{where} : statut de disponibilité inconnu {status}")
        return status

    def entry_slots(self, eo: Element, slots: dict, where: str, meta: dict, extra: dict) -> None:
        """The single-valued slots (times, language, hash, size...), Name and Description into meta/extra;
        the slots read are popped from `slots`, the others stay for meta["extra"]."""
        single = {name: self.single(slots, name, where, required=name in ("creationTime", "languageCode",
                                                                            "sourcePatientId"))
                  for name in _SINGLE_SLOTS}
        for key, name in (("creation_time", "creationTime"), ("service_start", "serviceStartTime"),
                          ("service_stop", "serviceStopTime")):
            iso = self.time(single[name], name, where)
            if iso:
                meta[key] = iso
        if single["languageCode"]:
            meta["language"] = single["languageCode"]
        self.entry_hash_and_size(single["hash"], single["size"], where, meta)
        if single["repositoryUniqueId"]:
            meta["repository_id"] = single["repositoryUniqueId"]
        for name in ("sourcePatientId", "legalAuthenticator"):
            if single[name]:
                extra[name] = single[name]
        if slots.get("sourcePatientInfo"):
            extra["sourcePatientInfo"] = slots.pop("sourcePatientInfo")
        title = _localized(eo, "Name")
        if title:
            meta["title"] = title
        description = _localized(eo, "Description")
        if description:
            extra["description"] = description

    def entry_hash_and_size(self, hash_: str | None, size: str | None, where: str, meta: dict) -> None:
        if hash_:
            if _HASH.fullmatch(hash_):
                meta["hash"] = hash_.upper()
            else:
                self.error(f"{where}: hash {hash_!r} is not a SHA-1 in hexadecimal", where)
        if size:
            if size.isdigit():
                meta["size"] = int(size)
            else:
                self.error(f"{where}: size {size!r} is not a number of bytes", where)

    def entry_codes(self, coded: list[_Coded], where: str, meta: dict) -> tuple[dict, dict]:
        """The one-per-entry codes (class, type, format, facility, practice) and the confidentiality codes
        into meta; returns their coding schemes and display names, by meta field (for meta["extra"])."""
        schemes, names = {}, {}
        for key, scheme, name in _CODED:
            found = [c for c in coded if c.scheme == scheme]
            if not found:
                self.error(f"{where}: no {name} classification", where)
                continue
            if len(found) > 1:
                self.error(f"{where}: {len(found)} {name} classifications, one expected", where)
            c = found[0]
            if not c.code or not c.system:
                self.error(f"{where}: {name} needs a nodeRepresentation and a codingScheme slot", where)
            meta[key] = c.code
            schemes[key] = c.system
            if c.name:
                names[key] = c.name
        if "type_code" in schemes:
            meta["type_system"] = schemes.pop("type_code")
        confidentiality = [c for c in coded if c.scheme == DE_CONFIDENTIALITY_CODE]
        if not confidentiality:
            self.error(f"{where}: no confidentialityCode classification", where)
        meta["confidentiality"] = list(dict.fromkeys(c.code for c in confidentiality))
        return schemes, names

    def entry_authors(self, coded: list[_Coded], where: str, meta: dict, extra: dict) -> None:
        """The author classifications: all of them in extra, the first IDNPS and specialty in meta."""
        authors = self.authors(coded, DE_AUTHOR)
        if not authors:
            self.note("DMP/XDS-AUTHOR", f"{where}: the document entry has no author",
                      fr=f"{where} : la fiche du document n'a pas d'auteur")
            return
        extra["authors"] = authors
        idnps = _xcn_id(authors)
        if idnps:
            meta["author"] = idnps
        else:
            self.note("DMP/XDS-AUTHOR", f"{where}: the author has no identifier (authorPerson XCN.1)",
                      fr=f"{where} : l'auteur n'a pas d'identifiant (authorPerson XCN.1)")
        specialty = next((v for a in authors for v in a.get("authorSpecialty", [])), "")
        if specialty:
            meta["author_specialty"] = _bare_code(specialty)

    def entry_other_classifications(self, coded: list[_Coded], where: str, extra: dict) -> None:
        """Event codes into extra; a classification of no known scheme is noted and ignored."""
        events = [c for c in coded if c.scheme == DE_EVENT_CODE]
        if events:
            extra["eventCodeList"] = [{"code": c.code, "scheme": c.system, "name": c.name or ""}
                                      for c in events]
        known = {DE_AUTHOR, DE_CONFIDENTIALITY_CODE, DE_EVENT_CODE, *(s for _, s, _ in _CODED)}
        for c in coded:
            if c.scheme not in known:
                self.note("DMP/XDS-CLASSIFICATION", f"{where}: classification {c.scheme or c.node} ignored",
                          fr=f"{where} : classification {c.scheme or c.node} ignorée")

    def check_codes(self, entry: DocumentEntry, coded: list[_Coded], signature: bool) -> None:
        where = entry.symbolic_id
        wanted: dict[str, tuple[str, ...]] = {DE_PRACTICE_SETTING_CODE: (OID_PRACTICE_SETTING,),
                  DE_FACILITY_TYPE_CODE: (OID_FACILITY_TYPE,)}
        if not signature:
            wanted.update({DE_CLASS_CODE: (OID_CLASS,), DE_TYPE_CODE: (OID_LOINC, OID_DMP_TYPE)})
        for c in coded:
            if c.scheme in wanted and c.system and c.system not in wanted[c.scheme]:
                self.error(f"{where}: {_SCHEME_NAMES[c.scheme]} {c.code} has codingScheme {c.system}, not "
                           f"{' or '.join(wanted[c.scheme])}", where)
            if c.scheme == DE_CONFIDENTIALITY_CODE and CONFIDENTIALITY_SYSTEMS.get(c.code) != c.system:
                self.error(f"{where}: confidentialityCode {c.code} ({c.system}) is not a DMP confidentiality "
                           f"code (N {OID_HL7_CONFIDENTIALITY}; MASQUE_PS, INVISIBLE_PATIENT, "
                           f"INVISIBLE_REPRESENTANTS_LEGAUX {OID_DMP_CONFIDENTIALITY})", where)

    # The request -------------------------------------------------------------------------------------------
    def submit_objects(self, req: Element) -> Submission:
        if not isinstance(req.tag, str) or req.tag != _q(LCM, "SubmitObjectsRequest"):
            self.error(f"expected lcm:SubmitObjectsRequest, got {req.tag}")
            self.fail_if_errors()
        rol = req.find(_q(RIM, "RegistryObjectList"))
        if rol is None:
            self.error("the SubmitObjectsRequest has no RegistryObjectList")
            self.fail_if_errors()
        packages, eos, assoc_els, refs = [], [], [], set()
        top_cls: dict[str, list] = {}
        top_eis: dict[str, list] = {}
        seen: set[str] = set()
        for child in rol:
            if not isinstance(child.tag, str):
                continue
            name = etree.QName(child).localname if child.tag.startswith(f"{{{RIM}}}") else child.tag
            oid = child.get("id", "")
            if oid and oid in seen and name != "ObjectRef":
                self.error(f"two objects have the id {oid}", oid)
            seen.add(oid)
            if name == "RegistryPackage":
                packages.append(child)
            elif name == "ExtrinsicObject":
                eos.append(child)
            elif name == "Association":
                assoc_els.append(child)
            elif name == "Classification":
                top_cls.setdefault(child.get("classifiedObject", ""), []).append(child)
            elif name == "ExternalIdentifier":
                top_eis.setdefault(child.get("registryObject", ""), []).append(child)
            elif name == "ObjectRef":
                refs.add(oid)
            else:
                self.note("DMP/XDS-OBJECT", f"{name} in the RegistryObjectList ignored",
                          fr=f"{name} dans la RegistryObjectList ignoré")

        sets = []
        for pkg in packages:
            pid = pkg.get("id", "")
            nodes = {c.get("classificationNode") for c in [*_children(pkg, RIM, "Classification"),
                                                             *top_cls.get(pid, [])]}
            if SS_CLASSIFICATION_NODE in nodes:
                sets.append(pkg)
            elif FOLDER_CLASSIFICATION_NODE in nodes:
                self.error(f"{pid}: folders are not accepted by the DMP", pid)
            else:
                self.error(f"{pid}: a RegistryPackage that is neither a submission set nor a folder", pid)
        submission_set: dict = {}
        if len(sets) != 1:
            self.error(f"{len(sets)} submission sets (RegistryPackage classified {SS_CLASSIFICATION_NODE}); "
                       "one expected")
        if sets:
            submission_set = self.submission_set(sets[0], top_cls, top_eis)

        entries, coded_by_id = [], {}
        for eo in eos:
            entry, coded = self.entry(eo, top_cls, top_eis)
            if submission_set.get("content_type"):
                entry.meta["content_type"] = submission_set["content_type"]
            entries.append(entry)
            coded_by_id[entry.symbolic_id] = coded

        associations = [self.association(a) for a in assoc_els]
        self.check_associations(associations, submission_set.get("id", ""), entries, refs)
        signing = {a.source for a in associations if a.type == SIGNS}
        for entry in entries:
            signature = entry.symbolic_id in signing or entry.meta.get("format_code") == DSG_FORMAT_CODE
            self.check_codes(entry, coded_by_id[entry.symbolic_id], signature)
        self.check_patients(submission_set, entries)
        unique_ids: dict[str, str] = {}
        for entry in entries:
            if entry.unique_id and entry.unique_id in unique_ids:
                self.error(f"{entry.symbolic_id} and {unique_ids[entry.unique_id]} share the uniqueId "
                           f"{entry.unique_id}", entry.symbolic_id, ERR_DUPLICATE_UNIQUE_ID_IN_MESSAGE)
            unique_ids.setdefault(entry.unique_id, entry.symbolic_id)
        return Submission(submission_set=submission_set, documents=entries, associations=associations,
                          findings=self.findings)

    def association(self, el: Element) -> Association:
        assoc = Association(type=el.get("associationType", ""), source=el.get("sourceObject", ""),
                            target=el.get("targetObject", ""), id=el.get("id", ""))
        where = assoc.id or "Association"
        assoc.slots = self.slots(el, where)
        for attr in ("associationType", "sourceObject", "targetObject"):
            if not el.get(attr):
                self.error(f"{where}: the association has no {attr}", where)
        return assoc

    def check_associations(self, associations: list[Association], ss_id: str, entries: list[DocumentEntry],
                           refs: set[str]) -> None:
        entry_ids = {e.symbolic_id for e in entries}
        local = entry_ids | {ss_id} | {a.id for a in associations if a.id} | refs
        members, replaced = set(), {}
        for a in associations:
            where = a.id or f"{a.type} {a.source} -> {a.target}"
            for end in (a.source, a.target):
                if end and end not in local and not end.startswith("urn:uuid:"):
                    self.error(f"{where}: {end} is neither in the submission nor an entryUUID (urn:uuid:...)",
                               where)
            if a.type == HAS_MEMBER:
                if a.source != ss_id:
                    self.error(f"{where}: HasMember must come from the submission set {ss_id}", where)
                if a.target in entry_ids:
                    members.add(a.target)
                    if (a.slots.get("SubmissionSetStatus") or [""])[0] != "Original":
                        self.note("DMP/XDS-HAS-MEMBER", f"{where}: SubmissionSetStatus should be Original",
                                  fr=f"{where} : SubmissionSetStatus devrait valoir Original")
            elif a.type == RPLC:
                if a.source not in entry_ids:
                    self.error(f"{where}: the source of an RPLC must be a document entry of the submission",
                               where)
                if a.target in local or not a.target.startswith("urn:uuid:"):
                    self.error(f"{where}: the target of an RPLC must be the entryUUID (urn:uuid:...) of the "
                               f"replaced document, not {a.target!r}", where)
                if a.source in replaced:
                    self.error(f"{where}: {a.source} replaces two documents", where)
                replaced[a.source] = a.target
            elif a.type == SIGNS:
                if a.source not in entry_ids:
                    self.error(f"{where}: the source of a signs association must be a document entry", where)
            elif a.type == UPDATE_AVAILABILITY_STATUS:
                if a.source != ss_id:
                    self.error(f"{where}: UpdateAvailabilityStatus must come from the submission set", where)
                for slot in ("OriginalStatus", "NewStatus"):
                    value = (a.slots.get(slot) or [""])[0]
                    if value not in STATUS_NAMES:
                        self.error(f"{where}: {slot} {value!r} is not a DMP status "
                                   f"({', '.join(STATUS_NAMES)})", where)
            elif a.type in (APND, XFRM, XFRM_RPLC):
                self.error(f"{where}: {a.type} is not accepted by the DMP (it replaces with RPLC only)",
                           where)
            else:
                self.error(f"{where}: unknown association type {a.type!r}", where)
        for entry in entries:
            if entry.symbolic_id not in members:
                self.error(f"{entry.symbolic_id}: no HasMember association links it to the submission set",
                           entry.symbolic_id)

    def check_patients(self, submission_set: dict, entries: list[DocumentEntry]) -> None:
        ss_patient = (submission_set.get("patient_ins"), submission_set.get("patient_oid"))
        if not submission_set or not ss_patient[0]:
            return
        for entry in entries:
            if entry.patient_ins and (entry.patient_ins, entry.patient_oid) != ss_patient:
                self.error(f"{entry.symbolic_id}: XDSDocumentEntry.patientId {entry.patient_id} is not the "
                           f"submission set's {submission_set['patient_id']}", entry.symbolic_id,
                           ERR_PATIENT_ID_DOES_NOT_MATCH)


# Public parsers ---------------------------------------------------------------------------------------------
def parse_submit_objects(req: Element) -> Submission:
    """lcm:SubmitObjectsRequest (XDM METADATA.XML, ITI-57's body, ITI-41's metadata). No document bytes are
    looked for. Raises RegistryErrors with every problem found."""
    reader = _Reader()
    submission = reader.submit_objects(req)
    reader.fail_if_errors()
    return submission


def parse_provide_and_register(body: Element) -> Submission:
    """xdsb:ProvideAndRegisterDocumentSetRequest (ITI-41, TD2.1). Besides the metadata checks, each entry
    must have its xdsb:Document and each xdsb:Document its entry (ids compared exactly, then ignoring case
    with a finding: TD2.1 pairs ExtrinsicObject `DocumentME2` with Document `documentME2`)."""
    reader = _Reader()
    if not isinstance(body.tag, str) or body.tag != _q(XDS_B, "ProvideAndRegisterDocumentSetRequest"):
        reader.error(f"expected xdsb:ProvideAndRegisterDocumentSetRequest, got {body.tag}", "",
                     ERR_REPOSITORY_METADATA)
        reader.fail_if_errors()
    req = body.find(_q(LCM, "SubmitObjectsRequest"))
    if req is None:
        reader.error("the request has no lcm:SubmitObjectsRequest", "", ERR_REPOSITORY_METADATA)
        reader.fail_if_errors()
    submission = reader.submit_objects(req)
    documents: dict[str, Element] = {}
    for doc in _children(body, XDS_B, "Document"):
        did = doc.get("id", "")
        if not did:
            reader.error("an xdsb:Document has no id", "", ERR_REPOSITORY_METADATA)
        elif did in documents:
            reader.error(f"two xdsb:Document elements have the id {did}", did, ERR_REPOSITORY_METADATA)
        else:
            documents[did] = doc
    unused = dict(documents)
    for entry in submission.documents:
        if entry.symbolic_id in unused:
            entry.document_ref = entry.symbolic_id
        else:
            folded = [d for d in unused if d.casefold() == entry.symbolic_id.casefold()]
            if len(folded) == 1:
                entry.document_ref = folded[0]
                reader.note("DMP/XDS-DOCUMENT-ID", f"xdsb:Document {folded[0]} matches ExtrinsicObject "
                            f"{entry.symbolic_id} only when case is ignored",
                            fr=f"le xdsb:Document {folded[0]} ne correspond à l'ExtrinsicObject {entry.symbolic_id} qu'en ignorant la casse")
            else:
                reader.error(f"{entry.symbolic_id}: no xdsb:Document carries this entry's content",
                             entry.symbolic_id, ERR_MISSING_DOCUMENT)
                continue
        unused.pop(entry.document_ref)
    for did in unused:
        reader.error(f"xdsb:Document {did} has no ExtrinsicObject", did, ERR_MISSING_DOCUMENT_METADATA)
    if not submission.documents and not reader.errors:
        reader.error("the submission carries no document entry", "", ERR_REGISTRY_METADATA)
    for a in submission.associations:
        if a.type == UPDATE_AVAILABILITY_STATUS:
            reader.error(f"{a.id}: UpdateAvailabilityStatus belongs to ITI-57, not ITI-41", a.id)
    submission.document_elements = documents
    submission.findings = reader.findings
    reader.fail_if_errors()
    return submission


def parse_update(body: Element) -> Update:
    """lcm:SubmitObjectsRequest of ITI-57 (TD3.3a-d): UpdateAvailabilityStatus associations and new metadata
    versions (an ExtrinsicObject with the document's lid, linked by a HasMember carrying
    SubmissionSetStatus=Original and PreviousVersion). Whether the target exists, is the current version
    and belongs to the patient is the door's check (XDSMetadataVersionError, XDSDocumentUniqueIdError)."""
    reader = _Reader()
    submission = reader.submit_objects(body)
    changes = [(a.target, (a.slots.get("OriginalStatus") or [""])[0], (a.slots.get("NewStatus") or [""])[0])
               for a in submission.associations if a.type == UPDATE_AVAILABILITY_STATUS]
    previous = {}
    for a in submission.associations:
        if a.type == HAS_MEMBER and "PreviousVersion" in a.slots:
            previous[a.target] = (a.slots["PreviousVersion"] or [""])[0]
        if a.type == RPLC:
            reader.error(f"{a.id}: RPLC belongs to ITI-41, not ITI-57", a.id)
    updates = []
    for entry in submission.documents:
        where = entry.symbolic_id
        version = previous.get(where)
        if not version:
            reader.error(f"{where}: a new metadata version needs a HasMember association with the "
                         "PreviousVersion slot", where)
            continue
        if not version.isdigit():
            reader.error(f"{where}: PreviousVersion {version!r} is not a version number", where)
        if not entry.lid or not entry.lid.startswith("urn:uuid:") or entry.lid == entry.symbolic_id:
            reader.error(f"{where}: a new metadata version must carry the document's lid (urn:uuid:...)",
                         where)
        updates.append((entry, version))
    if not changes and not updates and not reader.errors:
        reader.error("the update carries neither an UpdateAvailabilityStatus association nor a new metadata "
                     "version")
    reader.fail_if_errors()
    return Update(status_changes=changes, metadata_updates=updates, submission_set=submission.submission_set,
                  findings=reader.findings)

