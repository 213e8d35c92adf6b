"""The bounded CSV reader shared by the uploads of STAT/ES.01 (checks/stats.py) and DMP/CONF.14
(world/trace_check.py): every refusal names its line."""

import pytest

from mockbench.formats.table import TableError, decode, fold, read

COLUMNS = {"month": ("mois",), "failures": ("nombre d echecs", "echecs")}


def refused(fn, *args, **kwargs) -> TableError:
    with pytest.raises(TableError) as caught:
        fn(*args, **kwargs)
    return caught.value


def test_a_table_with_a_bom_either_separator_and_folded_names():
    for sep in (";", ","):
        text = decode(f"\ufeffMOIS{sep} Nombre d'Échecs \n2026-11{sep}2\n\n2026-12{sep}0\n".encode(), max_bytes=100)
        table = read(text, COLUMNS, header_help="Mois; Échecs")
        assert table.columns == {"month": 0, "failures": 1} and table.delimiter == sep
        assert list(table.records(max_rows=10)) == [(2, ["2026-11", "2"]), (4, ["2026-12", "0"])]
    assert fold("Nombre d'échecs") == "nombre d echecs"


@pytest.mark.parametrize(("data", "line", "message"), [
    (b"x" * 101, 0, "the CSV has 101 bytes; at most 100 are read"),
    (b"Mois\n\xe9\n", 2, "the CSV is not UTF-8 (byte 0xE9)"),
    (b"Mois\n\x00\n", 2, "the CSV holds a NUL character"),
])
def test_what_cannot_be_decoded(data, line, message):
    error = refused(decode, data, max_bytes=100)
    assert error.line == line and error.message.startswith(message)


@pytest.mark.parametrize(("text", "line", "message"), [
    ("", 1, "the CSV has no header line; expected H"),
    ("Mois;Remarque\n", 1, "unknown column 'Remarque'"),
    ("Mois;mois\n", 1, "column 'mois' appears twice"),
])
def test_what_the_header_refuses(text, line, message):
    error = refused(read, text, COLUMNS, header_help="H")
    assert (error.line, error.message[:len(message)]) == (line, message)


@pytest.mark.parametrize(("text", "bounds", "line", "message"), [
    ("Mois;Echecs\n2026-11\n", {}, 2, "1 fields, the header has 2 (separator ';')"),
    ("Mois;Echecs\na;1\nb;2\nc;3\n", {"max_rows": 2}, 4, "more than 2 rows"),
    ("Mois;Echecs\naaaa;1\n", {"max_field": 3}, 2, "a field longer than 3 characters"),
    ('Mois;Echecs\n"a;1\n', {}, 2, "the CSV cannot be read"),
])
def test_what_the_records_refuse(text, bounds, line, message):
    table = read(text, COLUMNS, header_help="H")
    error = refused(list, table.records(**{"max_rows": 10, **bounds}))
    assert (error.line, error.message[:len(message)]) == (line, message)
