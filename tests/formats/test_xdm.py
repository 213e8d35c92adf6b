"""IHE XDM packages (MSSanté IHE_XDM.ZIP): the ANS corpus packages (MOCKBENCH_CORPUS; skipped where it is
unset), hostile zips built here, and the write_package -> read_package round trip."""

from __future__ import annotations

import base64
import hashlib
import io
import random
import stat
import struct
import warnings
import zipfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mockbench.formats.cda import minimal_cda
from mockbench.formats.xdm import (
    ACTION_SLOT,
    XdmError,
    XdmLimits,
    XdmPackage,
    ans_subject,
    read_package,
    subject_is_xdm,
    write_package,
)

INS = "279035121518989"
NIR_TEST = "1.2.250.1.213.1.4.10"
PATIENT = f"{INS}^^^&{NIR_TEST}&ISO^NH"
AUTHOR = {"authorPerson": ["801234567897^MARTIN^Paul^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS"],
          "authorInstitution": ["Cabinet^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^1120459876"],
          "authorSpecialty": ["G15_10/SM26^Qualifié en médecine générale (SM)^1.2.250.1.213.1.1.4.5"]}
SUBMISSION_SET = {"unique_id": "1.2.250.1.999.1.20240104", "source_id": "1.2.250.1.71.4.2.2.1120459876",
                  "content_type": "04", "title": "Lettre", "authors": [AUTHOR],
                  "submission_time": "2024-01-04T15:05:27Z"}
SUBSET = "IHE_XDM/SUBSET01/"
# Rules ebrim reports on every ANS example (the quirks a real importer accepts), nothing else.
CORPUS_RULES = {"DMP/XDS-REGISTRY-OBJECT", "DMP/XDS-CLASSIFIED-OBJECT", "DMP/XDS-CONTENT-TYPE"}


def cda(unique_id: str = "1.2.250.1.999.2.1", **kw) -> bytes:
    args = dict(unique_id=unique_id, ins=INS, ins_oid=NIR_TEST, type_code="11488-4", title="Lettre",
                author_idnps="801234567897", author_family="MARTIN", author_given="Paul",
                patient_family="PAT-TROIS", patient_given="DOMINIQUE", birth_date="1979-03-28", sex="F",
                effective_time="2024-01-04T15:05:27", text="Bonjour")
    args.update(kw)
    return minimal_cda(**args)


def meta(unique_id: str, **kw) -> dict:
    return {"unique_id": unique_id, "title": "Lettre de liaison", "creation_time": "2024-01-04T15:05:27Z",
            "authors": [AUTHOR], **kw}


def package(action: str | None = None) -> bytes:
    return write_package([("DOC0001.XML", cda(), meta("1.2.250.1.999.2.1")),
                          ("DOC0002.PDF", b"%PDF-1.4\n%%EOF\n", meta("1.2.250.1.999.2.2"))],
                         submission_set=SUBMISSION_SET, patient_id=PATIENT, action=action)


def members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist()}


def rezip(files: dict[str, bytes] | list[tuple[str | zipfile.ZipInfo, bytes]],
          compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns on duplicate names: that is the point of one test
        with zipfile.ZipFile(out, "w", compression=compression) as zf:
            for name, content in (files.items() if isinstance(files, dict) else files):
                zf.writestr(name, content)
    return out.getvalue()


def with_member(name: str | zipfile.ZipInfo, content: bytes, base: bytes | None = None) -> bytes:
    return rezip([*members(base or package()).items(), (name, content)])


def code_of(data: bytes, limits: XdmLimits = XdmLimits()) -> str:  # noqa: B008
    with pytest.raises(XdmError) as caught:
        read_package(data, limits)
    assert str(caught.value) and caught.value.code in str(repr(caught.value))
    return caught.value.code


def patch_central(data: bytes, name: str, offset: int, fmt: str, value: int) -> bytes:
    """Overwrite a field of `name`'s central directory record (offsets per APPNOTE 4.3.12)."""
    buf = bytearray(data)
    pos = buf.find(b"PK\x01\x02")
    while pos >= 0:
        name_len = struct.unpack_from("<H", buf, pos + 28)[0]
        if buf[pos + 46:pos + 46 + name_len] == name.encode():
            struct.pack_into(fmt, buf, pos + offset, value)
            return bytes(buf)
        pos = buf.find(b"PK\x01\x02", pos + 4)
    raise AssertionError(f"{name} not in the central directory")


# --- Corpus -------------------------------------------------------------------------------------------------

# Packages whose entry carries urn:action:extraMetadataSlot "C" though nothing in their name says
# replacement: their CDA is version 2 or later (versionNumber), and the slot says so.
CORPUS_REPLACEMENTS = {
    "BIO-CR-BIO_2021.01_Microbiologie_V2.zip", "BIO-CR-BIO_2024.01_Microbiologie_V2.zip",
    "CARD-F-PRC-AVK_2022.01.zip", "CARD-F-PRC-DCI_2022.01.zip", "CARD-F-PRC-PPV_2022.01.zip",
    "CARD-F-PRC-PSC_2022.01.zip", "CARD-F-PRC-TAP_2022.01.zip", "CNAM-HR_2021.01_sans-info.zip",
    "IMG_CR_IMG_2024.01.zip", "IMG_CR_IMG_2024.01_CDA-R2-Niveau-1.zip", "IPS-FR_2024.01.zip",
    "IPS-FR_2024.01_DLU.zip", "OPH-BRE_2022.02.zip", "SDM-MR_2025.01_nouveau-ne.zip",
    "SDM-MR_2025.01_patiente-post-grossesse.zip", "VSM_1.4_2022.01.zip",
}
CORPUS_DELETIONS = {"BIO-CR-BIO_2021.01_Microbiologie_V2_Delete.zip",
                    "BIO-CR-BIO_2024.01_Microbiologie_V2_Delete.zip"}


def test_every_corpus_package_reads_with_matching_hashes_and_sizes(corpus):
    paths = sorted((corpus / "xdm").glob("*.zip"))
    assert len(paths) == 72
    for path in paths:
        pkg = read_package(path.read_bytes())
        # Every package: one CDA, hash and size as declared, README.TXT and INDEX.HTM present, a CDA header
        # whose id is the entry's uniqueId; only ebrim's three ANS-quirk findings.
        assert pkg.metadata_path == "IHE_XDM/SUBSET01/METADATA.XML", path.name
        assert [d.path for d in pkg.documents] == ["IHE_XDM/SUBSET01/DOC0001.XML"], path.name
        doc = pkg.documents[0]
        assert doc.hash_ok and doc.size_ok, path.name
        assert doc.entry.meta["hash"] == hashlib.sha1(doc.content).hexdigest().upper()
        assert doc.entry.meta["size"] == len(doc.content)
        assert doc.cda is not None and doc.cda.unique_id == doc.entry.unique_id, path.name
        assert pkg.readme and "Emetteur" in pkg.readme and pkg.index_htm, path.name
        assert {f["rule"] for f in pkg.findings} <= CORPUS_RULES, (path.name, pkg.findings)
        assert not any(f["severity"] == "error" for f in pkg.findings), path.name
        expected = "C" if path.name in CORPUS_REPLACEMENTS else "D" if path.name in CORPUS_DELETIONS else None
        assert pkg.action == expected, path.name
        if expected == "C":
            assert doc.cda.version and doc.cda.version >= 2, path.name


@pytest.mark.parametrize("year", ["2021", "2024"])
def test_corpus_microbiologie_series(corpus, year):
    stem = f"BIO-CR-BIO_{year}.01_Microbiologie"
    v1, v2, delete = (read_package((corpus / "xdm" / f"{stem}{s}.zip").read_bytes())
                      for s in ("_V1", "_V2", "_V2_Delete"))
    assert (v1.action, v2.action, delete.action) == (None, "C", "D")
    assert v2.documents[0].entry.meta["extra"][ACTION_SLOT] == ["C"]
    h1, h2, hd = (p.documents[0].cda for p in (v1, v2, delete))
    assert h1.set_id == h2.set_id == hd.set_id
    assert h2.version == h1.version + 1 and hd.version == h2.version
    assert h1.unique_id != h2.unique_id and hd.unique_id == h2.unique_id   # the deletion names V2
    # No RPLC association in the XDM packages (DOMAIN.md section 3): the slot alone says "replacement".
    assert v2.submission.replacements() == []


# --- Hostile zips -------------------------------------------------------------------------------------------

def test_not_a_zip_and_truncated():
    assert code_of(b"hello, not a zip") == "XDM_NOT_ZIP"
    assert code_of(b"") == "XDM_NOT_ZIP"
    data = package()
    assert code_of(data[: len(data) // 2]) == "XDM_NOT_ZIP"
    assert code_of(data[:-10]) == "XDM_NOT_ZIP"


def test_zip_bomb_is_refused_from_the_directory():
    bomb = with_member(SUBSET + "DOC0003.XML", b"\0" * (8 * 1024 * 1024))
    assert code_of(bomb) == "XDM_BOMB"
    # Below the ratio floor a repetitive file is harmless and read.
    small = with_member("IHE_XDM/SUBSET01/BLANK.TXT", b" " * 4096)
    assert any(f["rule"] == "XDM/UNREFERENCED" for f in read_package(small).findings)


def test_declared_size_that_lies():
    base = with_member(SUBSET + "DOC0003.TXT", b"A" * 100_000)
    smaller = patch_central(base, SUBSET + "DOC0003.TXT", 24, "<I", 1000)   # inflates past 1000 bytes
    assert code_of(smaller) == "XDM_BOMB"
    larger = patch_central(base, SUBSET + "DOC0003.TXT", 24, "<I", 200_000)  # the stream ends short
    assert code_of(larger) == "XDM_NOT_ZIP"   # harmless: read as a corrupt member
    stored = rezip([*members(package()).items()], compression=zipfile.ZIP_STORED)
    lying = patch_central(stored, "README.TXT", 24, "<I", 10)
    assert code_of(lying) == "XDM_BOMB"


@pytest.mark.parametrize("name", ["../etc/passwd", "/abs", "C:\\x", "C:x", "C:/x", "IHE_XDM\\..\\..\\x",
                                  "IHE_XDM/SUBSET01/../../x", "IHE_XDM//x", "./README2.TXT"])
def test_unsafe_member_names(name):
    assert code_of(with_member(zipfile.ZipInfo(name), b"x")) == "XDM_PATH_TRAVERSAL"


def test_duplicate_names():
    assert code_of(with_member("README.TXT", b"again")) == "XDM_PATH_TRAVERSAL"
    assert code_of(with_member("readme.txt", b"again")) == "XDM_PATH_TRAVERSAL"   # ambiguous by case


def test_symlink_entry():
    info = zipfile.ZipInfo(SUBSET + "DOC0003.XML")
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    assert code_of(with_member(info, b"/etc/passwd")) == "XDM_PATH_TRAVERSAL"


def test_encrypted_member():
    data = patch_central(package(), "README.TXT", 8, "<H", 0x1)
    assert code_of(data) == "XDM_NOT_ZIP"


def test_nested_zip():
    inner = package()
    assert code_of(with_member(SUBSET + "DOC0003.ZIP", inner)) == "XDM_NESTED"
    assert code_of(with_member(SUBSET + "DOC0003.BIN", inner)) == "XDM_NESTED"   # by its magic bytes
    # max_depth=1 tolerates it as an opaque file: never opened.
    pkg = read_package(with_member(SUBSET + "DOC0003.BIN", inner), XdmLimits(max_depth=1))
    assert len(pkg.documents) == 2


def test_size_limits():
    many = rezip([*members(package()).items(), *((f"IHE_XDM/X{i}.TXT", b"") for i in range(300))])
    assert code_of(many) == "XDM_TOO_LARGE"
    assert code_of(package(), XdmLimits(max_zip_bytes=100)) == "XDM_TOO_LARGE"
    assert code_of(package(), XdmLimits(max_member_bytes=100)) == "XDM_TOO_LARGE"
    assert code_of(package(), XdmLimits(max_total_bytes=1000)) == "XDM_TOO_LARGE"


def test_missing_metadata():
    files = {n: c for n, c in members(package()).items() if not n.endswith("METADATA.XML")}
    assert code_of(rezip(files)) == "XDM_NO_METADATA"
    moved = {n.replace("IHE_XDM/SUBSET01/", "IHE_XDM/"): c for n, c in members(package()).items()}
    assert code_of(rezip(moved)) == "XDM_NO_METADATA"   # METADATA.XML must be in a subset folder


def test_metadata_found_ignoring_case():
    files = {n.replace("METADATA.XML", "metadata.xml"): c for n, c in members(package()).items()}
    assert read_package(rezip(files)).metadata_path == SUBSET + "metadata.xml"


def test_metadata_with_an_entity_declaration():
    files = members(package())
    md = files[SUBSET + "METADATA.XML"]
    files[SUBSET + "METADATA.XML"] = md.replace(
        b"?>", b'?>\n<!DOCTYPE lol [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>', 1)
    assert code_of(rezip(files)) == "XDM_METADATA_INVALID"
    files[SUBSET + "METADATA.XML"] = b"<not xml"
    assert code_of(rezip(files)) == "XDM_METADATA_INVALID"


def test_metadata_refused_by_ebrim_names_the_codes():
    files = members(package())
    md = files[SUBSET + "METADATA.XML"]
    files[SUBSET + "METADATA.XML"] = md.replace(b"1.2.250.1.999.2.2", b"1.2.250.1.999.2.1")
    with pytest.raises(XdmError) as caught:
        read_package(rezip(files))
    assert caught.value.code == "XDM_METADATA_INVALID"
    assert "XDSRegistryDuplicateUniqueIdInMessage" in str(caught.value)


def test_missing_document_and_uri_traversal():
    files = {n: c for n, c in members(package()).items() if not n.endswith("DOC0002.PDF")}
    assert code_of(rezip(files)) == "XDM_MISSING_DOCUMENT"
    files = members(package())
    files[SUBSET + "METADATA.XML"] = files[SUBSET + "METADATA.XML"].replace(b">DOC0002.PDF<", b">../../x<")
    assert code_of(rezip(files)) == "XDM_PATH_TRAVERSAL"


def test_document_found_by_its_doc_name_without_uri():
    files = members(package())
    files[SUBSET + "METADATA.XML"] = files[SUBSET + "METADATA.XML"].replace(b'name="URI"', b'name="URI-none"')
    pkg = read_package(rezip(files))
    assert [d.path for d in pkg.documents] == [SUBSET + "DOC0001.XML", SUBSET + "DOC0002.PDF"]
    assert [f["rule"] for f in pkg.findings] == ["XDM/URI", "XDM/URI"]


def test_hash_and_size_mismatch_are_findings():
    files = members(package())
    files[SUBSET + "DOC0002.PDF"] = b"%PDF-1.4\n% tampered\n%%EOF\n"
    pkg = read_package(rezip(files))
    doc = pkg.documents[1]
    assert (doc.hash_ok, doc.size_ok) == (False, False)
    assert [(f["rule"], f["severity"]) for f in pkg.findings] == [("XDM/HASH", "error"),
                                                                   ("XDM/SIZE", "error")]
    assert pkg.documents[0].hash_ok and pkg.documents[0].size_ok


def test_unreadable_cda_and_missing_readme_index_are_findings():
    files = members(package())
    del files["README.TXT"], files["INDEX.HTM"]
    files[SUBSET + "DOC0001.XML"] = b"<html/>"
    # The metadata keeps DOC0001.XML's hash and size: they now lie too.
    pkg = read_package(rezip(files))
    assert pkg.readme is None and not pkg.index_htm
    assert {f["rule"] for f in pkg.findings} == {"XDM/HASH", "XDM/SIZE", "XDM/CDA", "XDM/README", "XDM/INDEX"}
    assert pkg.documents[0].cda is None


def test_lesser_quirks_are_findings():
    # A second subset is noted and not read; a URI matching only ignoring case; a CDA whose id is not the
    # entry's uniqueId.
    files = members(package())
    files["IHE_XDM/SUBSET02/METADATA.XML"] = files[SUBSET + "METADATA.XML"]
    files[SUBSET + "doc0002.pdf"] = files.pop(SUBSET + "DOC0002.PDF")
    files[SUBSET + "DOC0001.XML"] = cda("1.2.250.1.999.2.9")
    pkg = read_package(rezip(files))
    rules = [f["rule"] for f in pkg.findings]
    assert {"XDM/SUBSETS", "XDM/URI", "XDM/UNIQUE-ID"} <= set(rules)
    assert pkg.metadata_path == SUBSET + "METADATA.XML"
    assert pkg.documents[1].path == SUBSET + "doc0002.pdf" and pkg.documents[1].hash_ok


def test_entries_that_disagree_on_the_action():
    files = members(package("C"))
    md = files[SUBSET + "METADATA.XML"]
    last = md.rindex(b"<rim:Value>C</rim:Value>")
    files[SUBSET + "METADATA.XML"] = md[:last] + b"<rim:Value>D</rim:Value>" + md[last + 24:]
    pkg = read_package(rezip(files))
    assert pkg.action == "C"
    assert [f["rule"] for f in pkg.findings] == ["XDM/ACTION"]


# --- Writing ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("action", [None, "C", "D"])
def test_write_read_round_trip(action):
    data = package(action)
    assert sorted(n for n in members(data) if not n.endswith("/")) == sorted(
        ["README.TXT", "INDEX.HTM", SUBSET + "METADATA.XML", SUBSET + "DOC0001.XML", SUBSET + "DOC0002.PDF"])
    pkg = read_package(data)
    assert pkg.findings == []
    assert pkg.action == action
    xml, pdf = pkg.documents
    assert xml.content == cda() and pdf.content == b"%PDF-1.4\n%%EOF\n"
    assert xml.cda is not None and xml.cda.unique_id == "1.2.250.1.999.2.1" and pdf.cda is None
    assert xml.entry.meta["mime_type"] == "text/xml" and pdf.entry.meta["mime_type"] == "application/pdf"
    assert xml.entry.meta["title"] == "Lettre de liaison"
    assert xml.entry.meta["creation_time"] == "2024-01-04T15:05:27Z"
    assert xml.entry.meta["author"] == "801234567897"
    assert xml.entry.meta["extra"]["authors"] == [AUTHOR]
    assert xml.entry.patient_id == PATIENT and xml.entry.patient_ins == INS
    ss = pkg.submission.submission_set
    assert (ss["uniqueId"], ss["sourceId"], ss["content_type"], ss["patient_id"]) == (
        SUBMISSION_SET["unique_id"], SUBMISSION_SET["source_id"], "04", PATIENT)
    assert "DOC0002.PDF" in pkg.readme


def test_write_package_refuses_bad_arguments():
    ok = ("DOC0001.XML", b"x", meta("1.2.3.4"))
    for documents, kw in [([], {}), ([("../x", b"x", meta("1.2.3"))], {}),
                          ([("METADATA.XML", b"x", meta("1.2.3"))], {}),
                          ([ok, ("doc0001.xml", b"y", meta("1.2.3.5"))], {}), ([("A", b"x", {})], {}),
                          ([ok], {"action": "X"}), ([("DOC0001.BIN", b"PK\x03\x04...", meta("1.2.3"))], {}),
                          ([("DOC0001.ZIP", b"x", meta("1.2.3"))], {}),
                          ([("A", b"x", meta("1.2.3", confidentiality=["Z"]))], {})]:
        with pytest.raises(ValueError):
            write_package(documents, submission_set=SUBMISSION_SET, patient_id=PATIENT, **kw)
    with pytest.raises(ValueError):
        write_package([ok], submission_set={}, patient_id=PATIENT)


_names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True).filter(
    lambda n: n.upper() != "METADATA.XML" and not n.lower().endswith(".zip"))
_contents = st.binary(max_size=2000).filter(lambda b: not b.startswith(b"PK"))   # no nested zip


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(_names, _contents), min_size=1, max_size=4,
                unique_by=lambda t: t[0].casefold()),
       st.sampled_from([None, "C", "D"]))
def test_round_trip_property(docs, action):
    documents = [(name, content, meta(f"1.2.250.1.999.3.{i}", mime_type="application/octet-stream"))
                 for i, (name, content) in enumerate(docs, start=1)]
    data = write_package(documents, submission_set=SUBMISSION_SET, patient_id=PATIENT, action=action)
    pkg = read_package(data)
    assert isinstance(pkg, XdmPackage)
    assert pkg.findings == []
    assert pkg.action == action
    assert [(d.path, d.content, d.entry.unique_id) for d in pkg.documents] == [
        (SUBSET + name, content, m["unique_id"]) for name, content, m in documents]
    assert all(d.hash_ok and d.size_ok and d.entry.meta["size"] == len(d.content) for d in pkg.documents)


def test_round_trip_of_a_large_realistic_document():
    # 1.5 MiB of base64 (an embedded PDF's shape): above the ratio floor, well below the 200:1 limit.
    body = base64.b64encode(random.Random(7).randbytes(1_100_000)).decode()
    big = cda(text=body)
    data = write_package([("DOC0001.XML", big, meta("1.2.250.1.999.2.1"))], submission_set=SUBMISSION_SET,
                         patient_id=PATIENT)
    pkg = read_package(data)
    assert pkg.documents[0].content == big and pkg.findings == []


# --- Subject ------------------------------------------------------------------------------------------------

def test_subject():
    subject = ans_subject("CR de biologie", "Pat-Trois", "Dominique", "19790328")
    # trans-cda-mss/struct-msg-mdn.md's example: names upper-cased, the birth date DD/MM/YYYY
    assert subject == "XDM/1.0/DDM+CR de biologie PAT-TROIS DOMINIQUE 28/03/1979"
    assert ans_subject("ECHOGRAPHIE ABDOMINOPELVIENNE", "Corse", "Figatellix Marie", "1988-10-12") == \
        "XDM/1.0/DDM+ECHOGRAPHIE ABDOMINOPELVIENNE CORSE FIGATELLIX 12/10/1988"
    assert subject_is_xdm(subject)
    assert subject_is_xdm("[KO Intégration système !][12] " + subject)
    assert not subject_is_xdm("Bonjour") and not subject_is_xdm("")

