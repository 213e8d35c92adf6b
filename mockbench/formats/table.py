"""A CSV file uploaded by a DPI (its statistics of sends, its extract of access traces), read within bounds:
UTF-8 with or without a BOM, `;` or `,` as the header line uses, columns matched by name without case, accents
or punctuation, one record per non-empty line with as many fields as the header. No rule here: the caller
says which columns exist and checks the values. Errors name the line (1 is the header, 0 the whole file).
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any


class TableError(ValueError):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}" if line else message)
        self.line = line
        self.message = message


def fold(name: str) -> str:
    """A column name (or a word) without case, accents or punctuation: `Nombre d'échecs` -> `nombre d echecs`."""
    text = "".join(c for c in unicodedata.normalize("NFKD", name) if not unicodedata.combining(c)).lower()
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text).split())


def decode(data: bytes, *, max_bytes: int, what: str = "CSV") -> str:
    """The text of an uploaded file: at most `max_bytes`, UTF-8 (a BOM dropped), no NUL."""
    if len(data) > max_bytes:
        raise TableError(0, f"the {what} has {len(data)} bytes; at most {max_bytes} are read")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise TableError(line, f"the {what} is not UTF-8 (byte 0x{data[exc.start]:02X}); save it as UTF-8") from None
    if "\x00" in text:
        raise TableError(text[:text.index("\x00")].count("\n") + 1, f"the {what} holds a NUL character")
    return text


@dataclass
class Table:
    columns: dict[str, int]     # column key -> its index in a record
    delimiter: str
    width: int                  # fields in the header, hence in every record
    _reader: Any                # the csv reader, past its header; its line_num names the line

    def records(self, *, max_rows: int, max_field: int | None = None) -> Iterator[tuple[int, list[str]]]:
        """(line, fields) of each non-empty record, at most `max_rows`, each with the header's width."""
        count = 0
        try:
            for record in self._reader:
                line = self._reader.line_num
                if not any(v.strip() for v in record):
                    continue
                if count >= max_rows:
                    raise TableError(line, f"more than {max_rows} rows")
                if len(record) != self.width:
                    raise TableError(line, f"{len(record)} fields, the header has {self.width} "
                                     f"(separator {self.delimiter!r})")
                if max_field is not None and any(len(v) > max_field for v in record):
                    raise TableError(line, f"a field longer than {max_field} characters")
                count += 1
                yield line, record
        except csv.Error as exc:
            raise TableError(self._reader.line_num, f"the CSV cannot be read: {exc}") from None


def read(text: str, columns: Mapping[str, tuple[str, ...]], *, header_help: str) -> Table:
    """The header of a CSV: each of its names matched (folded) against `columns` (key -> accepted names);
    an unknown or repeated column is refused; an empty column name is ignored."""
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise TableError(1, f"the CSV has no header line; expected {header_help}")
    delimiter = ";" if lines[0].count(";") >= lines[0].count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader)
    except csv.Error as exc:
        raise TableError(1, f"the header line cannot be read: {exc}") from None
    found: dict[str, int] = {}
    for index, name in enumerate(header):
        key = next((k for k, names in columns.items() if fold(name) in names), None)
        if key is None:
            if name.strip():
                raise TableError(1, f"unknown column {name.strip()!r}; expected {header_help}")
            continue
        if key in found:
            raise TableError(1, f"column {name.strip()!r} appears twice")
        found[key] = index
    return Table(found, delimiter, len(header), reader)


__all__ = ["Table", "TableError", "decode", "fold", "read"]
