"""IHE XDM (ITI-32) packages as MSSanté carries them: `IHE_XDM.ZIP` with README.TXT, INDEX.HTM and
IHE_XDM/SUBSET01/METADATA.XML (an ebRS SubmitObjectsRequest) beside DOC0001.XML... (DOMAIN.md section 3).

- `read_package(data)`: a hostile zip is refused (XdmError, with a stable `.code`) before anything is
  inflated: member count, declared sizes, compression ratio and names are checked from the central
  directory, then each member is read with a bounded read. METADATA.XML goes through `parse_xml` and the
  ebRIM codec's `ebrim.parse_submit_objects`. What an importer decides on (hash or size mismatch, a CDA it
  cannot read, a missing README.TXT) is a finding, not an exception.
- `write_package(...)`: the package a PFI mails; `read_package(write_package(...))` has no findings.
- `subject_is_xdm`, `ans_subject`: the mail subject of an XDM message.
"""

from __future__ import annotations

import hashlib
import io
import re
import stat
import uuid
import zipfile
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from lxml import etree

from . import ebrim
from .cda import CdaError, CdaHeader, read_cda_header
from .findings import finding
from .times import dtm, iso_to_dtm
from .xml import XmlError, escape, parse_xml

__all__ = ["ACTION_SLOT", "XdmDocument", "XdmError", "XdmLimits", "XdmPackage", "ans_subject", "read_package",
           "subject_is_xdm", "write_package"]

MIB = 1024 * 1024
ACTION_SLOT = "urn:action:extraMetadataSlot"   # C: replacement, D: deletion, absent: initial send
ACTIONS = ("C", "D")
SUBJECT_MARK = "XDM/1.0/DDM"

XDM_NOT_ZIP = "XDM_NOT_ZIP"
XDM_TOO_LARGE = "XDM_TOO_LARGE"
XDM_BOMB = "XDM_BOMB"
XDM_PATH_TRAVERSAL = "XDM_PATH_TRAVERSAL"
XDM_NO_METADATA = "XDM_NO_METADATA"
XDM_METADATA_INVALID = "XDM_METADATA_INVALID"
XDM_MISSING_DOCUMENT = "XDM_MISSING_DOCUMENT"
XDM_NESTED = "XDM_NESTED"

_REGISTRY_PACKAGE_TYPE = "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:RegistryPackage"
_CHUNK = 64 * 1024
_READ_MARGIN = 1          # one byte past the declared size is enough to know the declaration lied
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_ARCHIVE_EXTENSIONS = (".zip", ".jar", ".docx", ".xlsx", ".odt")   # zip containers, by name
_DRIVE = re.compile(r"^[A-Za-z]:")
_METADATA = re.compile(r"IHE_XDM/([^/]+)/METADATA\.XML", re.IGNORECASE)
_DOC_NAME = re.compile(r"DOC(\d{4,})(\.[^/]*)?", re.IGNORECASE)
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_XML_MIME = ("text/xml", "application/xml", "application/hl7-v3+xml", "application/hl7-cda+xml")
_EXT_MIME = MappingProxyType({".xml": "text/xml", ".pdf": "application/pdf", ".txt": "text/plain",
                              ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png",
                              ".rtf": "text/rtf", ".tif": "image/tiff", ".tiff": "image/tiff"})


@dataclass(frozen=True)
class XdmLimits:
    # A mail is the carrier: MSSanté operators cap a message around 10-20 MiB, and base64 adds a third,
    # so a 32 MiB package is already beyond anything a real sender can mail.
    max_zip_bytes: int = 32 * MIB
    # An XDM package holds README, INDEX, a few subsets with their METADATA.XML and documents (the corpus:
    # 4 files); 256 leaves room for a batch while bounding the central directory we walk.
    max_members: int = 256
    # A CDA with embedded PDF/images runs to a few MiB (corpus max ~0.5 MiB); 64 MiB of one member is
    # what we are willing to hold in memory at once.
    max_member_bytes: int = 64 * MIB
    # The sum held in memory for one package (every member is read into bytes).
    max_total_bytes: int = 256 * MIB
    # XML deflates 5-30:1, base64 PDFs ~1.3:1; deflate cannot exceed ~1032:1. Above 200:1 a member is a
    # bomb (zeros or repeated text), not a document.
    max_ratio: float = 200.0
    # Below this uncompressed size the ratio is not judged: a tiny repetitive file (an empty INDEX.HTM, a
    # 2 KiB run of spaces) compresses far beyond 200:1 and costs nothing to inflate.
    ratio_floor_bytes: int = 1 * MIB
    # 0: a zip inside the package is refused (XDM_NESTED); XDM has no nested archives and nesting is the
    # classic way around per-level limits. 1: tolerated as an opaque document, never opened (we never
    # recurse, so depth 1 is the most there can be).
    max_depth: int = 0


class XdmError(ValueError):
    """A package refused by `read_package`. `code` is stable (XDM_NOT_ZIP, XDM_TOO_LARGE, XDM_BOMB,
    XDM_PATH_TRAVERSAL, XDM_NO_METADATA, XDM_METADATA_INVALID, XDM_MISSING_DOCUMENT, XDM_NESTED); the
    message is plain words for a journal or an MDN."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"XdmError({self.code!r}, {self.message!r})"


@dataclass
class XdmDocument:
    path: str                          # the zip member name, e.g. IHE_XDM/SUBSET01/DOC0001.XML
    entry: ebrim.DocumentEntry         # entry.meta: hash, size, unique_id, mime_type..., extra (slots)
    content: bytes
    hash_ok: bool
    size_ok: bool
    cda: CdaHeader | None = None

    @property
    def action(self) -> str | None:
        values = [v for v in self.entry.meta.get("extra", {}).get(ACTION_SLOT, []) if v]
        return values[0] if values else None


@dataclass
class XdmPackage:
    metadata_path: str
    submission: ebrim.Submission
    documents: list[XdmDocument]
    readme: str | None
    index_htm: bool
    findings: list[dict] = field(default_factory=list)

    @property
    def action(self) -> str | None:
        """The `urn:action:extraMetadataSlot` value of the document entries: "C" (replacement), "D"
        (deletion), or None (an initial send). The first entry carrying one wins; entries that disagree
        are a finding of `read_package` (XDM/ACTION)."""
        return next((a for d in self.documents if (a := d.action)), None)


# --- Reading -----------------------------------------------------------------------------------------------

def read_package(data: bytes, limits: XdmLimits = XdmLimits()) -> XdmPackage:  # noqa: B008 (frozen)
    """Read an IHE_XDM.ZIP. Raises XdmError for a package an importer must refuse; returns the package
    with `findings` (journal finding dicts) for what it may accept or refuse itself.

    Refused: not a zip or truncated, encrypted members (XDM_NOT_ZIP: an XDM zip is never encrypted, the
    mail's S/MIME protects it); too large (XDM_TOO_LARGE); a compression ratio above the limit or a
    member whose content overruns its declared size or CRC (XDM_BOMB); unsafe names: absolute, `..`,
    backslashes, drive letters, NUL, duplicates (exact or by case), symlinks (XDM_PATH_TRAVERSAL); a zip
    inside (XDM_NESTED); no IHE_XDM/<subset>/METADATA.XML (XDM_NO_METADATA); metadata that is not safe XML
    or that ebrim refuses (XDM_METADATA_INVALID, the registry codes in the message); an entry whose
    document is not in the package (XDM_MISSING_DOCUMENT).

    Every `RegistryErrors` is fatal: `parse_submit_objects` gives no Submission when it raises, and what
    it tolerates in the ANS examples it already reports as findings, copied here. Findings: XDM/HASH and
    XDM/SIZE (error), XDM/CDA (a text/xml document whose CDA header cannot be read), XDM/UNIQUE-ID (the
    CDA id is not the entry's uniqueId), XDM/README and XDM/INDEX (missing: ITI-32 requires them),
    XDM/URI (no URI slot, or a URI that matched only ignoring case), XDM/SUBSETS (more than one subset:
    the first is read), XDM/UNREFERENCED (a file of the subset no entry names), XDM/ACTION (an unknown
    or inconsistent action slot)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError("read_package takes the zip's bytes")
    data = bytes(data)
    if len(data) > limits.max_zip_bytes:
        raise XdmError(XDM_TOO_LARGE,
                       f"the package is {len(data)} bytes, the limit is {limits.max_zip_bytes}")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, OSError) as err:
        raise XdmError(XDM_NOT_ZIP, f"the package is not a readable zip archive ({err})") from None
    with zf:
        infos = _check_directory(zf, limits)
        members = {info.filename: _read_member(zf, info, limits) for info in infos if not info.is_dir()}
    return _read_xdm(members, limits)


def _check_directory(zf: zipfile.ZipFile, limits: XdmLimits) -> list[zipfile.ZipInfo]:
    """Every check that needs only the central directory, before anything is inflated."""
    infos = zf.infolist()
    if len(infos) > limits.max_members:
        raise XdmError(XDM_TOO_LARGE,
                       f"the package has {len(infos)} members, the limit is {limits.max_members}")
    seen: dict[str, str] = {}
    total = 0
    for info in infos:
        name = info.filename
        _check_name(name, info)
        key = name.rstrip("/").casefold()
        if key in seen:
            raise XdmError(XDM_PATH_TRAVERSAL, f"the member name {name!r} appears twice"
                           + ("" if seen[key] == name else f" (as {seen[key]!r}, ignoring case)"))
        seen[key] = name
        if info.flag_bits & 0x1:
            raise XdmError(XDM_NOT_ZIP, f"member {name!r} is encrypted; an XDM package is not (the mail is)")
        if info.file_size > limits.max_member_bytes:
            raise XdmError(XDM_TOO_LARGE, f"member {name!r} declares {info.file_size} bytes, the limit is "
                           f"{limits.max_member_bytes}")
        stored = info.compress_type == zipfile.ZIP_STORED and not info.is_dir()
        if stored and info.file_size != info.compress_size:
            raise XdmError(XDM_BOMB, f"member {name!r} is stored uncompressed but declares {info.file_size} "
                           f"bytes for {info.compress_size} stored")
        if info.file_size > limits.ratio_floor_bytes:
            ratio = info.file_size / max(info.compress_size, 1)
            if ratio > limits.max_ratio:
                raise XdmError(XDM_BOMB, f"member {name!r} inflates {ratio:.0f} times ({info.compress_size} "
                               f"-> {info.file_size} bytes), the limit is {limits.max_ratio:g}")
        total += info.file_size
        if total > limits.max_total_bytes:
            raise XdmError(XDM_TOO_LARGE,
                           f"the members declare more than {limits.max_total_bytes} bytes in all")
        if limits.max_depth < 1 and name.lower().endswith(_ARCHIVE_EXTENSIONS):
            raise XdmError(XDM_NESTED, f"member {name!r} is an archive; nested archives are refused")
    return infos


def _check_name(name: str, info: zipfile.ZipInfo) -> None:
    def refuse(why: str) -> XdmError:
        return XdmError(XDM_PATH_TRAVERSAL, f"member name {name!r} {why}")

    if not name or "\x00" in name:
        raise refuse("is empty or holds a NUL")
    # zipfile turns "\" into "/" only when the archive was made on Windows (create_system 0): look at the
    # raw name too, so that "..\x" is refused whatever the archive claims.
    raw = getattr(info, "orig_filename", name)
    if "\\" in name or "\\" in raw:
        raise refuse("uses a backslash; XDM paths use /")
    if name.startswith("/") or raw.startswith("/"):
        raise refuse("is absolute")
    if _DRIVE.match(name):
        raise refuse("starts with a drive letter")
    parts = name.rstrip("/").split("/")
    if any(p in ("..", ".") for p in parts):
        raise refuse("has a . or .. component")
    if any(not p for p in parts):
        raise refuse("has an empty component")
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise refuse("is a symbolic link")
    if mode and stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise refuse("is neither a file nor a directory")


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limits: XdmLimits) -> bytes:
    """Read one member in chunks, stopping one byte past its declared size: a declared size can lie."""
    cap = info.file_size + _READ_MARGIN
    out = bytearray()
    try:
        with zf.open(info) as fh:
            while chunk := fh.read(min(_CHUNK, cap - len(out))):
                out += chunk
                if len(out) > info.file_size:
                    raise XdmError(XDM_BOMB, f"member {info.filename!r} inflates past its declared "
                                   f"{info.file_size} bytes")
    except zipfile.BadZipFile as err:
        # zipfile stops at the declared size itself; a longer stream then fails its CRC.
        raise XdmError(XDM_BOMB, f"member {info.filename!r} does not match its declared size and CRC ({err})"
                       ) from None
    except (EOFError, zlib.error, OSError, NotImplementedError, RuntimeError) as err:
        raise XdmError(XDM_NOT_ZIP, f"member {info.filename!r} cannot be read: it is truncated or corrupt "
                       f"({err or type(err).__name__})") from None
    if len(out) != info.file_size:
        raise XdmError(XDM_NOT_ZIP, f"member {info.filename!r} holds {len(out)} bytes, not the declared "
                       f"{info.file_size}")
    if limits.max_depth < 1 and bytes(out[:4]) in _ZIP_MAGIC:
        raise XdmError(XDM_NESTED, f"member {info.filename!r} is a zip archive; nested archives are refused")
    return bytes(out)


def _read_xdm(members: dict[str, bytes], limits: XdmLimits) -> XdmPackage:
    findings: list[dict] = []
    by_key = {name.casefold(): name for name in members}
    subsets = sorted(name for name in members if _METADATA.fullmatch(name))
    if not subsets:
        raise XdmError(XDM_NO_METADATA, "the package has no IHE_XDM/<subset>/METADATA.XML")
    metadata_path = subsets[0]
    if len(subsets) > 1:
        findings.append(finding("XDM/SUBSETS", f"{len(subsets)} subsets ({', '.join(subsets)}); only "
                                f"{metadata_path} is read",
                                fr=f"{len(subsets)} sous-ensembles ({', '.join(subsets)}) ; seul {metadata_path} est lu"))
    try:
        root = parse_xml(members[metadata_path], max_bytes=limits.max_member_bytes)
    except XmlError as err:
        raise XdmError(XDM_METADATA_INVALID, f"{metadata_path} is refused: {err}") from None
    try:
        submission = ebrim.parse_submit_objects(root)
    except ebrim.RegistryErrors as err:
        details = "; ".join(f"{e.error_code}: {e.message}" for e in err.errors)
        raise XdmError(XDM_METADATA_INVALID, f"{metadata_path} is not valid XDS metadata "
                       f"({', '.join(dict.fromkeys(err.codes))}): {details}") from None
    findings.extend(submission.findings)
    folder = metadata_path.rsplit("/", 1)[0]

    documents: list[XdmDocument] = []
    used = {metadata_path}
    for index, entry in enumerate(submission.documents, start=1):
        path = _document_path(entry, index, folder, members, by_key, findings)
        used.add(path)
        documents.append(_document(entry, path, members[path], findings))

    for name in sorted(members):
        if name.startswith(folder + "/") and name not in used:
            findings.append(finding("XDM/UNREFERENCED", f"{name} is in the subset but no entry names it",
                                    "info",
                                    fr=f"{name} est dans le sous-ensemble mais aucune entrée ne le nomme"))
    actions = {d.action for d in documents}
    unknown = sorted(a for a in actions if a and a not in ACTIONS)
    if unknown:
        findings.append(finding("XDM/ACTION", f"unknown {ACTION_SLOT} value(s) {', '.join(unknown)} "
                                "(C: replacement, D: deletion)", "error",
                                fr=f"valeur(s) de {ACTION_SLOT} inconnue(s) {', '.join(unknown)} (C : remplacement, D : suppression)"))
    if len(actions) > 1:
        findings.append(finding("XDM/ACTION", f"the entries disagree on {ACTION_SLOT} "
                                f"({', '.join(sorted(a or 'none' for a in actions))})", "error",
                                fr=f"les entrées ne s'accordent pas sur {ACTION_SLOT} ({', '.join(sorted(a or 'none' for a in actions))})"))

    readme_name = by_key.get("readme.txt")
    readme = None
    if readme_name is None:
        findings.append(finding("XDM/README",
                                "no README.TXT at the root of the package (IHE ITI-32 requires one)",
                                fr="pas de README.TXT à la racine du paquet (IHE ITI-32 l'exige)"))
    else:
        raw = members[readme_name]
        try:
            readme = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            readme = raw.decode("latin-1")
    index_htm = "index.htm" in by_key
    if not index_htm:
        findings.append(finding("XDM/INDEX",
                                "no INDEX.HTM at the root of the package (IHE ITI-32 requires one)",
                                fr="pas d'INDEX.HTM à la racine du paquet (IHE ITI-32 l'exige)"))
    return XdmPackage(metadata_path=metadata_path, submission=submission, documents=documents, readme=readme,
                      index_htm=index_htm, findings=findings)


def _document_path(entry: ebrim.DocumentEntry, index: int, folder: str, members: dict[str, bytes],
                   by_key: dict[str, str], findings: list[dict]) -> str:
    where = entry.symbolic_id or entry.unique_id
    uris = [u for u in entry.meta.get("extra", {}).get("URI", []) if u]
    if uris:
        uri = uris[0]
        # An XDS URI slot longer than 128 characters is split as "1|part" "2|part" (ITI TF-3 4.2.3.2.24).
        if len(uris) > 1 and all(re.match(r"\d+\|", u) for u in uris):
            uri = "".join(u.split("|", 1)[1] for u in sorted(uris, key=lambda u: int(u.split("|", 1)[0])))
        if "\\" in uri or uri.startswith("/") or _DRIVE.match(uri) or any(
                p in ("..", ".", "") for p in uri.split("/")):
            raise XdmError(XDM_PATH_TRAVERSAL, f"{where}: URI {uri!r} leaves the subset folder")
        path = f"{folder}/{uri}"
        if path in members:
            return path
        if path.casefold() in by_key:
            found = by_key[path.casefold()]
            findings.append(finding("XDM/URI", f"{where}: URI {uri!r} names {found} only ignoring case",
                                    fr=f"{where} : l'URI {uri!r} ne désigne {found} qu'en ignorant la casse"))
            return found
        raise XdmError(XDM_MISSING_DOCUMENT, f"{where}: its URI {uri!r} names no file of the package")
    # No URI slot: IHE names the files DOC0001.XML, DOC0002.PDF... in entry order.
    prefix = folder + "/"
    candidates = [n for n in members if n.startswith(prefix)
                  and (m := _DOC_NAME.fullmatch(n[len(prefix):])) and int(m.group(1)) == index]
    if len(candidates) == 1:
        findings.append(finding("XDM/URI",
                                f"{where}: no URI slot; {candidates[0]} taken by its DOC{index:04d} name",
                                fr=f"{where} : pas de slot URI ; {candidates[0]} retenu d'après son nom DOC{index:04d}"))
        return candidates[0]
    raise XdmError(XDM_MISSING_DOCUMENT,
                   f"{where}: no URI slot and no single DOC{index:04d}.* file in {folder}")


def _document(entry: ebrim.DocumentEntry, path: str, content: bytes, findings: list[dict]) -> XdmDocument:
    where = f"{path} ({entry.symbolic_id})"
    declared_hash = entry.meta.get("hash")
    actual_hash = hashlib.sha1(content).hexdigest().upper()
    hash_ok = bool(declared_hash and declared_hash.upper() == actual_hash)
    if not declared_hash:
        findings.append(finding("XDM/HASH", f"{where}: the entry has no hash slot (XDM requires one)",
                                "error", fr=f"{where} : l'entrée n'a pas de slot hash (XDM l'exige)"))
    elif not hash_ok:
        findings.append(finding("XDM/HASH",
                                f"{where}: SHA-1 {actual_hash}, the metadata says {declared_hash}", "error",
                                fr=f"{where} : SHA-1 {actual_hash}, les métadonnées indiquent {declared_hash}"))
    declared_size = entry.meta.get("size")
    size_ok = declared_size == len(content)
    if declared_size is None:
        findings.append(finding("XDM/SIZE", f"{where}: the entry has no size slot (XDM requires one)",
                                "error", fr=f"{where} : l'entrée n'a pas de slot size (XDM l'exige)"))
    elif not size_ok:
        findings.append(finding("XDM/SIZE",
                                f"{where}: {len(content)} bytes, the metadata says {declared_size}", "error",
                                fr=f"{where} : {len(content)} octets, les métadonnées indiquent {declared_size}"))
    cda = None
    mime = (entry.meta.get("mime_type") or "").split(";")[0].strip().lower()
    if mime in _XML_MIME or mime.endswith("+xml"):
        try:
            cda = read_cda_header(content)
        except CdaError as err:
            findings.append(finding("XDM/CDA", f"{where}: {err}", fr=f"{where} : {err}"))
        else:
            if entry.unique_id and cda.unique_id != entry.unique_id:
                findings.append(finding("XDM/UNIQUE-ID", f"{where}: the CDA id is {cda.unique_id}, the "
                                        f"entry's uniqueId {entry.unique_id}",
                                        fr=f"{where} : l'identifiant du CDA est {cda.unique_id}, le uniqueId de l'entrée {entry.unique_id}"))
    return XdmDocument(path=path, entry=entry, content=content, hash_ok=hash_ok, size_ok=size_ok, cda=cda)


# --- Writing -----------------------------------------------------------------------------------------------

def _q(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


def _sub(parent: etree._Element, name: str, attrib: dict | None = None) -> etree._Element:
    return etree.SubElement(parent, _q(ebrim.RIM, name), attrib or {})


def _slot(parent: etree._Element, name: str, values: list[str]) -> None:
    value_list = _sub(_sub(parent, "Slot", {"name": name}), "ValueList")
    for value in values:
        _sub(value_list, "Value").text = value


def _localized(parent: etree._Element, name: str, value: str) -> None:
    _sub(_sub(parent, name), "LocalizedString",
         {"{http://www.w3.org/XML/1998/namespace}lang": "FR", "charset": "UTF8", "value": value})


def _classify(parent: etree._Element, target: str, scheme: str, code: str, system: str | None,
              name: str | None = None, slots: dict[str, list[str]] | None = None) -> None:
    c = _sub(parent, "Classification", {"id": _urn(), "classificationScheme": scheme,
                                        "classifiedObject": target, "nodeRepresentation": code})
    for slot_name, values in (slots or {}).items():
        _slot(c, slot_name, values)
    if system is not None:
        _slot(c, "codingScheme", [system])
    if name:
        _localized(c, "Name", name)


def _identify(parent: etree._Element, target: str, scheme: str, value: str, name: str) -> None:
    ei = _sub(parent, "ExternalIdentifier", {"id": _urn(), "identificationScheme": scheme,
                                             "registryObject": target, "value": value})
    _localized(ei, "Name", name)


def _urn() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def _dtm(value: str | None) -> str:
    return iso_to_dtm(value) if value else dtm(datetime.now(UTC))


def _author_classifications(parent: etree._Element, target: str, scheme: str,
                             authors: list[dict] | None) -> None:
    """Authors as ebrim reads them back (extra["authors"]): one dict of slots per author, e.g.
    {"authorPerson": [XCN], "authorInstitution": [XON], "authorSpecialty": [code^name^system]}."""
    for author in authors or []:
        slots = {k: list(v) if isinstance(v, list | tuple) else [v] for k, v in author.items() if v}
        _classify(parent, target, scheme, "", None, slots=slots)


def write_package(documents: list[tuple[str, bytes, dict]], *, submission_set: dict, patient_id: str,
                  action: str | None = None, readme: str | None = None, sender: str = "mockbench") -> bytes:
    """Build an IHE_XDM.ZIP: README.TXT, INDEX.HTM, IHE_XDM/SUBSET01/METADATA.XML and the documents.

    `documents`: (file name, bytes, meta) per document, in order. The file name is one path component
    ([A-Za-z0-9][A-Za-z0-9._-]*, e.g. "DOC0001.XML"; unique ignoring case, not METADATA.XML). `meta` uses
    ebrim's DocumentEntry.meta keys: `unique_id` (required, an OID or OID^ext), `mime_type` (default from
    the extension), `title`, `class_code`, `type_code` (+ `type_system`, default LOINC), `format_code`,
    `facility_type`, `practice_setting`, `confidentiality` (list, default ["N"]), `creation_time`,
    `service_start`, `service_stop` (ISO, as the world stores them), `language` (default fr-FR),
    `source_patient_id` (CX, default `patient_id`), `legal_authenticator` (XCN), `authors` (a list of
    dicts of author slots, as ebrim reads them back in extra["authors"]: authorPerson, authorInstitution,
    authorSpecialty..., values a string or a list) and `displayNames` ({meta key: display name}). hash,
    size and URI are computed.
    `submission_set`: `unique_id` (OID), `source_id` (OID), `content_type` (code, system 1.2.250.1.213.2.2
    unless `content_type_system`), optional `content_type_name`, `title`, `submission_time` (ISO, default
    now), `authors` (as above). `patient_id`: the XDS CX, "<INS>^^^&<OID>&ISO^NH".
    `action`: None (initial send), "C" (replacement) or "D" (deletion): the `urn:action:extraMetadataSlot`
    slot of every entry. Raises ValueError for bad arguments, including a document that is itself a zip
    archive (read_package refuses nested archives). With its default limits read_package also refuses a
    member above 1 MiB that deflates beyond 200:1: real documents (CDA, base64 PDF) stay far below."""
    if action not in (None, *ACTIONS):
        raise ValueError(f"action must be None, 'C' or 'D', not {action!r}")
    if not documents:
        raise ValueError("an XDM package carries at least one document")
    names: set[str] = set()
    for name, content, meta in documents:
        if not isinstance(name, str) or not _SAFE_NAME.fullmatch(name) or name.upper() == "METADATA.XML":
            raise ValueError(f"document file name {name!r} is not a plain file name ([A-Za-z0-9._-], not "
                             "METADATA.XML)")
        if name.casefold() in names:
            raise ValueError(f"document file name {name!r} is used twice (names are compared ignoring case)")
        names.add(name.casefold())
        if not isinstance(content, bytes | bytearray):
            raise ValueError(f"{name}: the content must be bytes")
        if not meta.get("unique_id"):
            raise ValueError(f"{name}: meta needs a unique_id")
        if bytes(content[:4]) in _ZIP_MAGIC or name.lower().endswith(_ARCHIVE_EXTENSIONS):
            raise ValueError(f"{name}: a zip archive inside an XDM package is refused by read_package")
    for key in ("unique_id", "source_id", "content_type"):
        if not submission_set.get(key):
            raise ValueError(f"submission_set needs {key}")

    metadata = _metadata(documents, submission_set, patient_id, action)
    files = [("README.TXT", _readme(readme, sender, [n for n, _, _ in documents]).encode("utf-8")),
             ("INDEX.HTM", _index_htm(sender).encode("utf-8")),
             ("IHE_XDM/SUBSET01/METADATA.XML", metadata),
             *((f"IHE_XDM/SUBSET01/{name}", bytes(content)) for name, content, _ in documents)]
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, content in files:
            info = zipfile.ZipInfo(name, date_time=(2000, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            zf.writestr(info, content)
    return out.getvalue()


def _metadata(documents: list[tuple[str, bytes, dict]], ss: dict, patient_id: str,
              action: str | None) -> bytes:
    req = etree.Element(_q(ebrim.LCM, "SubmitObjectsRequest"), nsmap={"lcm": ebrim.LCM, "rim": ebrim.RIM})
    rol = _sub(req, "RegistryObjectList")
    ss_id = _urn()
    pkg = _sub(rol, "RegistryPackage", {"id": ss_id, "objectType": _REGISTRY_PACKAGE_TYPE})
    _slot(pkg, "submissionTime", [_dtm(ss.get("submission_time"))])
    if ss.get("title"):
        _localized(pkg, "Name", ss["title"])
    if ss.get("comments"):
        _localized(pkg, "Description", ss["comments"])
    _author_classifications(pkg, ss_id, ebrim.SS_AUTHOR, ss.get("authors"))
    _classify(pkg, ss_id, ebrim.SS_CONTENT_TYPE_CODE, ss["content_type"],
              ss.get("content_type_system", ebrim.OID_CONTENT_TYPE), ss.get("content_type_name"))
    _identify(pkg, ss_id, ebrim.SS_UNIQUE_ID, ss["unique_id"], "XDSSubmissionSet.uniqueId")
    _identify(pkg, ss_id, ebrim.SS_SOURCE_ID, ss["source_id"], "XDSSubmissionSet.sourceId")
    _identify(pkg, ss_id, ebrim.SS_PATIENT_ID, patient_id, "XDSSubmissionSet.patientId")
    _sub(rol, "Classification", {"id": _urn(), "classifiedObject": ss_id,
                                 "classificationNode": ebrim.SS_CLASSIFICATION_NODE})
    entry_ids = []
    for name, content, meta in documents:
        entry_ids.append(_extrinsic_object(rol, name, bytes(content), meta, patient_id, action))
    for entry_id in entry_ids:
        assoc = _sub(rol, "Association", {"id": _urn(), "associationType": ebrim.HAS_MEMBER,
                                          "sourceObject": ss_id, "targetObject": entry_id})
        _slot(assoc, "SubmissionSetStatus", ["Original"])
    return etree.tostring(req, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _extrinsic_object(rol: etree._Element, name: str, content: bytes, meta: dict, patient_id: str,
                      action: str | None) -> str:
    eid = _urn()
    ext = "." + name.rsplit(".", 1)[1].lower() if "." in name else ""
    mime = meta.get("mime_type") or _EXT_MIME.get(ext, "application/octet-stream")
    eo = _sub(rol, "ExtrinsicObject", {"id": eid, "mimeType": mime, "objectType": ebrim.DE_OBJECT_TYPE,
                                       "status": ebrim.STATUS_APPROVED})
    if action:
        _slot(eo, ACTION_SLOT, [action])
    _slot(eo, "hash", [hashlib.sha1(content).hexdigest().upper()])
    _slot(eo, "size", [str(len(content))])
    _slot(eo, "URI", [name])
    _slot(eo, "creationTime", [_dtm(meta.get("creation_time"))])
    _slot(eo, "languageCode", [meta.get("language") or "fr-FR"])
    for key, slot in (("service_start", "serviceStartTime"), ("service_stop", "serviceStopTime")):
        if meta.get(key):
            _slot(eo, slot, [_dtm(meta[key])])
    if meta.get("legal_authenticator"):
        _slot(eo, "legalAuthenticator", [meta["legal_authenticator"]])
    _slot(eo, "sourcePatientId", [meta.get("source_patient_id") or patient_id])
    if meta.get("title"):
        _localized(eo, "Name", meta["title"])
    names: dict[str, Any] = meta.get("displayNames") or {}
    _author_classifications(eo, eid, ebrim.DE_AUTHOR, meta.get("authors"))
    type_code = meta.get("type_code", "11488-4")
    format_code = meta.get("format_code", "urn:ihe:iti:xds-sd:pdf:2008" if mime == "application/pdf"
                           else "urn:ihe:iti:xds:2017:mimeTypeSufficient")
    for key, scheme, code, system in (
            ("class_code", ebrim.DE_CLASS_CODE, meta.get("class_code", "10"), ebrim.OID_CLASS),
            ("type_code", ebrim.DE_TYPE_CODE, type_code, meta.get("type_system", ebrim.OID_LOINC)),
            ("format_code", ebrim.DE_FORMAT_CODE, format_code,
             ebrim.OID_IHE_FORMAT if format_code.startswith("urn:ihe:iti") else ebrim.OID_DMP_FORMAT),
            ("facility_type", ebrim.DE_FACILITY_TYPE_CODE, meta.get("facility_type", "SA01"),
             ebrim.OID_FACILITY_TYPE),
            ("practice_setting", ebrim.DE_PRACTICE_SETTING_CODE, meta.get("practice_setting", "AMBULATOIRE"),
             ebrim.OID_PRACTICE_SETTING)):
        _classify(eo, eid, scheme, code, system, names.get(key))
    for code in meta.get("confidentiality") or ["N"]:
        system = ebrim.CONFIDENTIALITY_SYSTEMS.get(code)
        if system is None:
            raise ValueError(f"{name}: confidentiality {code!r} is not a DMP code "
                             f"({', '.join(ebrim.CONFIDENTIALITY_SYSTEMS)})")
        _classify(eo, eid, ebrim.DE_CONFIDENTIALITY_CODE, code, system)
    _identify(eo, eid, ebrim.DE_PATIENT_ID, patient_id, "XDSDocumentEntry.patientId")
    _identify(eo, eid, ebrim.DE_UNIQUE_ID, meta["unique_id"], "XDSDocumentEntry.uniqueId")
    return eid


def _readme(text: str | None, sender: str, names: list[str]) -> str:
    if text is not None:
        return text
    tree = "\n".join(f"                {n}" for n in names)
    return (f"Emetteur :\n=============\n    . Nom : {sender}\n\nInstructions :\n=============\n"
            ". Consultez les fichiers reçus par messagerie securisee de sante dans votre logiciel de "
            "professionnel de sante.\n\nArborescence :\n============\n     README.TXT\n     INDEX.HTM\n"
            f"     + IHE_XDM\n           +SUBSET01\n                METADATA.XML\n{tree}\n")


def _index_htm(sender: str) -> str:
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<html><body>\nEmetteur : {escape(sender)}\n'
            'Voir le fichier <a href="README.TXT">ReadMe</a>\n</body></html>\n')


# --- Mail subject ------------------------------------------------------------------------------------------

def subject_is_xdm(subject: str) -> bool:
    """Whether a mail subject marks an XDM message (it contains `XDM/1.0/DDM`)."""
    return SUBJECT_MARK in (subject or "")


def ans_subject(label: str, family: str, given: str, birth_date: str) -> str:
    """The ANS subject `XDM/1.0/DDM+<label> <NOM> <prénom> <date de naissance>` as the guide's example writes
    it (trans-cda-mss/struct-msg-mdn.md: `XDM/1.0/DDM+ECHOGRAPHIE ABDOMINOPELVIENNE CORSE FIGATELLIX
    12/10/1988`): the names upper-cased, the first given name only, the birth date DD/MM/YYYY (YYYYMMDD and
    YYYY-MM-DD are converted; anything else is kept as given)."""
    first = (given.strip().split(" ") or [""])[0]
    parts = [p.strip() for p in (label, family.upper(), first.upper(), french_date(birth_date))]
    return f"{SUBJECT_MARK}+" + " ".join(p for p in parts if p)


def french_date(value: str) -> str:
    """YYYYMMDD[...] or YYYY-MM-DD[...] as DD/MM/YYYY; other text unchanged."""
    text = (value or "").strip()
    digits = text.replace("-", "")[:8]
    if len(digits) == 8 and digits.isdigit() and (text[:8].isdigit() or text[4:5] == "-"):
        return f"{digits[6:8]}/{digits[4:6]}/{digits[:4]}"
    return text
