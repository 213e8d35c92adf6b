"""parse_xml: the one safe XML parser of every door. Hostile documents are refused with a plain XmlError and
never make lxml read a file or open a connection; ordinary documents parse whatever their encoding."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from xml.sax import saxutils

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

import mockbench.formats.xml as xmlmod
from mockbench.formats.xml import XmlError, parse_xml


class _Probe(etree.Resolver):
    """Records every URL libxml2 asks to load: an external entity or DTD fetch shows up here first."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def resolve(self, url, pubid, context):
        self.urls.append(url)
        # A DTD must parse as one; anything else gets a marker that must never show up.
        return self.resolve_string("" if url.endswith(".dtd") else "SECRET-FROM-RESOLVER", context)


@pytest.fixture
def probe(monkeypatch) -> _Probe:
    """Wrap parse_xml's parser factory so each parser carries the recording resolver."""
    recorder = _Probe()
    original = xmlmod._make_parser

    def make() -> etree.XMLParser:
        parser = original()
        parser.resolvers.add(recorder)
        return parser

    monkeypatch.setattr(xmlmod, "_make_parser", make)
    return recorder


def _billion_laughs(levels: int = 10) -> bytes:
    decls = ['<!ENTITY lol0 "lol">']
    for i in range(1, levels):
        refs = f"&lol{i - 1};" * 10
        decls.append(f'<!ENTITY lol{i} "{refs}">')
    return (f'<?xml version="1.0"?>\n<!DOCTYPE lolz [\n{"".join(decls)}\n]>\n'
            f"<lolz>&lol{levels - 1};</lolz>").encode()


# --- ordinary documents -------------------------------------------------------------------------------

def test_parses_without_xml_declaration():
    root = parse_xml(b"<a><b>x</b><!-- kept --></a>")
    assert root.tag == "a"
    assert root.findtext("b") == "x"
    # remove_comments=False: a signature or a digest over the document must see its comments.
    assert isinstance(root[1], etree._Comment)


def test_parses_with_utf8_declaration_and_accents():
    root = parse_xml('<?xml version="1.0" encoding="UTF-8"?>\n<r a="é">Hôpital Européen €</r>'.encode())
    assert (root.get("a"), root.text) == ("é", "Hôpital Européen €")


def test_parses_iso_8859_15_declared_in_the_prolog():
    # 0xA4 is € in ISO-8859-15 (¤ in ISO-8859-1): the declared encoding is the one used.
    data = '<?xml version="1.0" encoding="ISO-8859-15"?><r>€ à Sète</r>'.encode("iso-8859-15")
    assert b"\xa4" in data
    assert parse_xml(data).text == "€ à Sète"


def test_parses_utf16_with_bom():
    data = '<?xml version="1.0" encoding="UTF-16"?><r>ça</r>'.encode("utf-16")
    assert parse_xml(data).text == "ça"


def test_utf8_bom_is_accepted():
    assert parse_xml(b"\xef\xbb\xbf<r>x</r>").text == "x"


def test_doctype_without_entities_is_accepted_and_its_dtd_not_fetched(probe):
    root = parse_xml(b'<?xml version="1.0"?>\n<!DOCTYPE r SYSTEM "http://dtd.example.invalid/r.dtd">\n<r/>')
    assert root.tag == "r"
    assert probe.urls == []


def test_predefined_and_character_references_are_fine():
    assert parse_xml(b"<r>&lt;&amp;&gt;&quot;&apos;&#233;&#x20AC;</r>").text == "<&>\"'é€"


def test_accepts_bytearray_and_memoryview():
    assert parse_xml(bytearray(b"<r/>")).tag == "r"
    assert parse_xml(memoryview(b"<r/>")).tag == "r"


def test_str_is_a_type_error():
    with pytest.raises(TypeError):
        parse_xml("<r/>")  # type: ignore[arg-type]


# --- entities -----------------------------------------------------------------------------------------

def test_billion_laughs_is_refused_quickly(probe):
    started = time.monotonic()
    with pytest.raises(XmlError, match="^entity declarations are not accepted$"):
        parse_xml(_billion_laughs())
    assert time.monotonic() - started < 1.0
    assert probe.urls == []


def test_billion_laughs_in_utf16_is_refused():
    # The pre-parse look must see through UTF-16, where "<!ENTITY" is not ASCII bytes.
    with pytest.raises(XmlError, match="entity declarations are not accepted"):
        parse_xml(_billion_laughs().decode().replace('version="1.0"', 'version="1.0" encoding="UTF-16"')
                  .encode("utf-16"))


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_entity_declaration_in_utf16_without_bom_is_refused_before_parsing(monkeypatch, codec):
    monkeypatch.setattr(xmlmod, "_make_parser", lambda: pytest.fail("parsed a document declaring entities"))
    with pytest.raises(XmlError, match="^entity declarations are not accepted$"):
        parse_xml('<!DOCTYPE r [<!ENTITY x "y">]><r>&x;</r>'.encode(codec))


def test_quadratic_blowup_is_refused():
    data = (b'<!DOCTYPE r [<!ENTITY a "' + b"x" * 50_000 + b'">]><r>' + b"&a;" * 50_000 + b"</r>")
    with pytest.raises(XmlError, match="entity declarations are not accepted"):
        parse_xml(data)


def test_internal_entity_is_refused_even_if_harmless():
    with pytest.raises(XmlError, match="entity declarations are not accepted"):
        parse_xml(b'<!DOCTYPE r [<!ENTITY name "value">]><r>&name;</r>')


def test_external_file_entity_is_refused_and_the_file_never_read(tmp_path, probe):
    secret = tmp_path / "passwd"
    secret.write_text("root:x:0:0:SECRET-ON-DISK\n")
    for target in ("file:///etc/passwd", secret.as_uri()):
        doc = f'<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY x SYSTEM "{target}">]>\n<r>&x;</r>'.encode()
        with pytest.raises(XmlError, match="entity declarations are not accepted") as caught:
            parse_xml(doc)
        assert "SECRET" not in str(caught.value) and "root:x" not in str(caught.value)
    assert probe.urls == []


def test_external_parameter_entity_is_refused_and_never_loaded(tmp_path, probe):
    evil = tmp_path / "evil.dtd"
    evil.write_text('<!ENTITY leak "SECRET">')
    doc = f'<!DOCTYPE r [<!ENTITY % p SYSTEM "{evil.as_uri()}"> %p;]><r>&leak;</r>'.encode()
    with pytest.raises(XmlError, match="entity declarations are not accepted"):
        parse_xml(doc)
    assert probe.urls == []


def test_the_entity_check_is_not_fooled_by_a_doctype_without_prescan_match(monkeypatch, probe):
    # Even if the cheap look before parsing missed the declaration, the parsed DTD is checked.
    monkeypatch.setattr(xmlmod, "_declares_entities", lambda data: False)
    with pytest.raises(XmlError, match="entity declarations are not accepted"):
        parse_xml(b'<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>')
    assert probe.urls == []


def test_external_dtd_with_network_url_is_never_fetched(probe):
    doc = (b'<?xml version="1.0"?>\n<!DOCTYPE r PUBLIC "-//X//DTD R//EN" "http://attacker.example.invalid/r.dtd">'
           b"\n<r>&fromdtd;</r>")
    # The entity would come from the DTD we refuse to load: it stays unresolved, and is refused.
    with pytest.raises(XmlError, match=r"entity references are not accepted \(&fromdtd;\)") as caught:
        parse_xml(doc)
    assert caught.value.line == 3
    assert probe.urls == []


def test_the_probe_would_have_seen_a_fetch():
    """Control: with an unsafe parser the same documents do reach the resolver, so `probe.urls == []`
    above means something."""
    recorder = _Probe()
    unsafe = etree.XMLParser(resolve_entities=True, load_dtd=True, no_network=False)
    unsafe.resolvers.add(recorder)
    etree.fromstring(b'<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>', unsafe)
    etree.fromstring(b'<!DOCTYPE r SYSTEM "http://attacker.example.invalid/r.dtd"><r/>', unsafe)
    assert recorder.urls == ["file:///etc/passwd", "http://attacker.example.invalid/r.dtd"]


def test_undeclared_entity_is_not_well_formed():
    with pytest.raises(XmlError, match="not well-formed.*nbsp") as caught:
        parse_xml(b"<r>a&nbsp;b</r>")
    assert caught.value.line == 1


# --- size and depth -----------------------------------------------------------------------------------

def test_empty_document():
    for data in (b"", b"   \r\n\t"):
        with pytest.raises(XmlError, match="^the document is empty$"):
            parse_xml(data)


def test_oversize_is_refused_before_parsing(monkeypatch):
    monkeypatch.setattr(xmlmod, "_make_parser", lambda: pytest.fail("parsed an oversize document"))
    data = b"<r>" + b"x" * 100 + b"</r>"
    with pytest.raises(XmlError, match=rf"too large \({len(data)} bytes, the limit is 100\)"):
        parse_xml(data, max_bytes=100)


def test_exactly_max_bytes_is_accepted():
    data = b"<r>" + b"x" * 93 + b"</r>"
    assert len(data) == 100
    assert parse_xml(data, max_bytes=100).tag == "r"


def _nested(depth: int) -> bytes:
    return b"<a>" * depth + b"</a>" * depth


def test_depth_up_to_the_limit_is_accepted():
    assert parse_xml(_nested(256)).tag == "a"
    assert parse_xml(_nested(10), max_depth=10).tag == "a"


def test_depth_over_the_limit_is_refused():
    with pytest.raises(XmlError, match="deeper than 10 levels"):
        parse_xml(_nested(11), max_depth=10)
    with pytest.raises(XmlError, match="deeper than 256 levels"):
        parse_xml(_nested(257))


def test_depth_refusal_names_the_line():
    doc = b"<a>\n<a>\n<a>\n<a>x</a>\n</a>\n</a>\n</a>"
    with pytest.raises(XmlError, match="deeper than 3 levels") as caught:
        parse_xml(doc, max_depth=3)
    assert caught.value.line == 4


def test_a_comment_or_pi_too_deep_counts_as_a_level():
    with pytest.raises(XmlError, match="deeper than 3 levels"):
        parse_xml(b"<a><a><a><!-- c --></a></a></a>", max_depth=3)
    with pytest.raises(XmlError, match="deeper than 3 levels"):
        parse_xml(b"<a><a><a><?pi x?></a></a></a>", max_depth=3)
    assert parse_xml(b"<a><a><a>text</a></a></a>", max_depth=3).tag == "a"


def test_very_deep_nesting_neither_recurses_nor_hangs():
    started = time.monotonic()
    with pytest.raises(XmlError, match="deeper than"):
        parse_xml(_nested(200_000))
    assert time.monotonic() - started < 2.0


def test_wide_documents_are_fine():
    assert len(parse_xml(b"<r>" + b"<i/>" * 100_000 + b"</r>")) == 100_000


# --- malformed ----------------------------------------------------------------------------------------

def test_malformed_names_line_and_column():
    with pytest.raises(XmlError) as caught:
        parse_xml(b'<?xml version="1.0"?>\n<a>\n  <b>\n  </c>\n</a>')
    err = caught.value
    assert err.line == 4
    assert str(err).startswith("the document is not well-formed XML: ")
    assert "(line 4, column" in str(err)
    # The message is plain: one position, no "<string>" file name from lxml.
    assert "<string>" not in str(err) and str(err).count("line 4") == 1


@pytest.mark.parametrize("data", [b"not xml at all", b"<a>", b"<a></b>", b"<a b=c/>", b"<a/><b/>",
                                  b"\x00\x01\x02", b"  <?xml version='1.0'?><a/>"])
def test_malformed_is_an_xml_error(data):
    with pytest.raises(XmlError, match="not well-formed"):
        parse_xml(data)


def test_xml_error_is_a_value_error():
    assert issubclass(XmlError, ValueError)
    assert XmlError("x").line is None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=200).map(lambda t: f"<r>{t}</r>".encode()))
def test_any_input_gives_an_element_or_an_xml_error(data):
    try:
        assert parse_xml(data) is not None
    except XmlError as err:
        assert str(err)


# --- threads ------------------------------------------------------------------------------------------

def test_parallel_parsing_from_threads():
    docs = [f"<r n='{i}'>{'<c/>' * i}</r>".encode() for i in range(200)]
    barrier = threading.Barrier(8)

    def work(chunk: list[bytes]) -> list[int]:
        barrier.wait()
        return [len(parse_xml(d)) for d in chunk]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(work, [docs[i::8] for i in range(8)]))
    assert sorted(n for chunk in results for n in chunk) == list(range(200))


@given(st.text())
def test_escape_and_quoteattr_are_the_standard_librarys(text: str) -> None:
    """formats/xml.py writes xml.sax.saxutils' escape and quoteattr itself (start-up, issue 21 point 5)."""
    assert xmlmod.escape(text) == saxutils.escape(text)
    assert xmlmod.quoteattr(text) == saxutils.quoteattr(text)


@pytest.mark.parametrize("text", ["", "a&b<c>d", "l'heure", 'dit "non"', """l'a dit "non" \t\r\n"""])
def test_quoteattr_on_each_kind_of_quote(text: str) -> None:
    assert xmlmod.quoteattr(text) == saxutils.quoteattr(text)


def _former_check_tree(root, max_depth):
    """xml._check_tree before the 32-step look: the whole depth path always evaluated, then the walk."""
    too_deep = root.xpath(xmlmod._depth_xpath(max_depth))
    if not too_deep and next(root.iter(etree.Entity), None) is None:
        return None
    stack = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            return ("depth", max_depth, node.sourceline)
        if isinstance(node, etree._Entity):
            return ("entity", node.name)
        stack.extend((child, depth + 1) for child in node)
    return None


@pytest.mark.parametrize("levels", [1, 10, 30, 31, 32, 33, 34, 100, 255, 256])
@pytest.mark.parametrize("tip", ["", "<!-- c -->", "<?pi x?>", "<b/>", "text"])
def test_the_depth_check_answers_as_the_whole_path_did(levels, tip):
    """_check_tree first asks whether any element is 32 deep and skips the 256-step path when none is: on
    trees of every depth around 32 and up to libxml2's 256, with a comment, a PI, an element or text at the
    bottom, for limits below, at and above 32, it refuses exactly what the whole path and walk refused."""
    if levels == 256 and tip == "<b/>":
        return   # 257 elements: libxml2 refuses the nesting itself
    root = etree.fromstring(("<a>" * levels + tip + "</a>" * levels).encode())
    for max_depth in (1, 9, 31, 32, 33, 34, 100, 255, 256):
        try:
            xmlmod._check_tree(root, max_depth)
            got = None
        except xmlmod.XmlError as err:
            got = ("depth", max_depth, err.line)
        assert got == _former_check_tree(root, max_depth), max_depth
