"""Safe XML parsing for every door (SOAP, CDA, XDM metadata): no entity expansion, no DTD or network
fetch, bounded size and depth. Every door parses through `parse_xml`, so a hostile document is refused
the same way everywhere, with a plain message a test or a journal can show."""

from __future__ import annotations

import re

from lxml import etree

__all__ = ["XmlError", "escape", "parse_xml", "quoteattr"]

_DOCTYPE = b"<!DOCTYPE"
_ENTITY = b"<!ENTITY"
# libxml2 appends the position to its message; we report it once, in our own words.
_LXML_POSITION = re.compile(r",? line \d+, column \d+$")


class XmlError(ValueError):
    """A document refused by `parse_xml`; `line` is the 1-based line lxml pointed at, when it gave one."""

    def __init__(self, message: str, *, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


def _make_parser() -> etree.XMLParser:
    # A new parser per call: lxml parsers keep state and must not be shared across threads.
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                           huge_tree=False, remove_comments=False)


def _ascii_view(data: bytes) -> bytes:
    """The bytes in which `<!DOCTYPE` / `<!ENTITY` can be looked for: UTF-16 is re-encoded, since the
    markup is ASCII in every ASCII-compatible encoding but not in UTF-16."""
    head = data[:4]
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        codec = "utf-16"
    elif len(head) == 4 and head[0] and not head[1] and not head[3]:
        codec = "utf-16-le"  # "<" then NUL: UTF-16 without a BOM
    elif len(head) == 4 and not head[0] and head[1] and not head[2]:
        codec = "utf-16-be"
    else:
        return data
    return data.decode(codec, errors="replace").encode("utf-8", errors="replace")


def _declares_entities(data: bytes) -> bool:
    """Whether the DOCTYPE's internal subset declares an entity. A cheap look before parsing, so that an
    entity bomb is refused for what it is and never reaches libxml2; the parsed DTD is checked as well."""
    view = _ascii_view(data)
    start = view.find(_DOCTYPE)
    if start < 0:
        return False
    first_gt = view.find(b">", start)
    bracket = view.find(b"[", start)
    # With an internal subset the declaration ends at "]>", otherwise at its first ">".
    end = view.find(b"]>", start) if bracket >= 0 and (first_gt < 0 or bracket < first_gt) else first_gt
    return _ENTITY in view[start:end if end >= 0 else len(view)]


def parse_xml(data: bytes, *, max_bytes: int = 64 * 1024 * 1024, max_depth: int = 256) -> etree._Element:
    """Parse `data` (bytes: the encoding is the document's to declare) and return its root element.

    Raises XmlError for an empty or oversize document, a DOCTYPE that declares entities, an entity
    reference, elements nested deeper than `max_depth` (the root is depth 1), or ill-formed XML. libxml2
    itself refuses nesting beyond 256 without huge_tree, so a larger `max_depth` does not raise that cap.
    A DOCTYPE without entity declarations is accepted and its external DTD, if any, is never fetched."""
    if isinstance(data, str):
        raise TypeError("parse_xml takes bytes, not str: the encoding is the document's to declare")
    data = bytes(data)
    if len(data) > max_bytes:
        raise XmlError(f"the document is too large ({len(data)} bytes, the limit is {max_bytes})")
    if not data or data.isspace():   # `not data.strip()` without copying the document
        raise XmlError("the document is empty")
    if _declares_entities(data):
        raise XmlError("entity declarations are not accepted")
    try:
        root = etree.fromstring(data, parser=_make_parser())
    except etree.XMLSyntaxError as err:
        raise _syntax_error(err, max_depth) from None
    dtd = root.getroottree().docinfo.internalDTD
    if dtd is not None and any(True for _ in dtd.iterentities()):
        raise XmlError("entity declarations are not accepted")
    _check_tree(root, max_depth)
    return root


def _syntax_error(err: etree.XMLSyntaxError, max_depth: int) -> XmlError:
    line = err.lineno if err.lineno and err.lineno > 0 else None
    msg = _LXML_POSITION.sub("", err.msg or str(err)).strip()
    if msg.startswith("Excessive depth in document"):
        return XmlError(f"the document nests elements deeper than {min(max_depth, 256)} levels", line=line)
    if "amplification" in msg or "Detected an entity reference loop" in msg:
        return XmlError(f"entity declarations are not accepted ({msg})", line=line)
    where = f" (line {line}, column {err.position[1]})" if line else ""
    return XmlError(f"the document is not well-formed XML: {msg}{where}", line=line)


def _depth_xpath(max_depth: int) -> str:
    """The nodes one level too deep (elements, comments, processing instructions: what iterating an element
    yields, text aside), the root element being at depth 1."""
    return "/*" * max_depth + "/node()[not(self::text())]"


# Compiled once, like a regular expression (lxml's XPath objects lock around each evaluation); without the EXSLT
# regular-expression functions, which lxml would register at each evaluation and the path does not call.
_DEFAULT_DEPTH_XPATH = etree.XPath(_depth_xpath(256), regexp=False)
# An element at depth 32: without one, no node is deeper than 32, and a limit of 32 or more cannot be passed.
# libxml2 evaluates every one of the 256 steps above even once the set is empty (66 k instructions for a CDA
# of depth 10, a tenth of its parse); the usual document is told by 32 steps.
_SHALLOW = 32
_SHALLOW_XPATH = etree.XPath("/*" * _SHALLOW, regexp=False)


def _check_tree(root: etree._Element, max_depth: int) -> None:
    # Most documents have neither an unresolved entity nor a node too deep: lxml and libxml2 tell so in C,
    # without a Python step per node (a walk in Python was most of the time spent on a large CDA).
    # Otherwise the walk below finds the same problem it always reported.
    if max_depth >= _SHALLOW and not _SHALLOW_XPATH(root):
        too_deep: object = []
    else:
        too_deep = _DEFAULT_DEPTH_XPATH(root) if max_depth == 256 else root.xpath(_depth_xpath(max_depth))
    if not too_deep and next(root.iter(etree.Entity), None) is None:
        return
    # Iterative walk: a recursive one would meet Python's recursion limit before the document's depth.
    stack = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            raise XmlError(f"the document nests elements deeper than {max_depth} levels",
                           line=node.sourceline)
        if isinstance(node, etree._Entity):
            # Left unresolved (e.g. declared in an external DTD we do not load): refuse, not pass on.
            raise XmlError(f"entity references are not accepted (&{node.name};)", line=node.sourceline)
        stack.extend((child, depth + 1) for child in node)


# xml.sax.saxutils' two functions, written here: importing that module brought xml.sax and urllib.request
# (http.client...) into every start, 2 ms (issue 21, point 5). The same results (tests/formats/test_xml.py).
def escape(data: str) -> str:
    """`&`, `<` and `>` as entities: text content."""
    return data.replace("&", "&amp;").replace(">", "&gt;").replace("<", "&lt;")


def quoteattr(data: str) -> str:
    """An attribute value with its quotes: escaped, line breaks and tabs as character references, in double
    quotes unless it holds double quotes and no single ones."""
    data = escape(data).replace("\n", "&#10;").replace("\r", "&#13;").replace("\t", "&#9;")
    if '"' not in data:
        return f'"{data}"'
    if "'" not in data:
        return f"'{data}'"
    return '"{}"'.format(data.replace('"', "&quot;"))
