"""Reading CSV: BOM, quoting, blank lines, Windows line endings, header rules, line numbers."""

import csv
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portalctl.core.csvio import CsvErrors, read_csv
from portalctl.core.errors import InvalidInput


def records(text: str, required=("a", "b"), optional=("c",)):
    return list(
        read_csv(io.StringIO(text, newline=""), "f.csv", required=required, optional=optional)
    )


cell = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12
)


@settings(max_examples=60)
@given(st.lists(st.tuples(cell, cell), min_size=1, max_size=8), st.sampled_from(["\n", "\r\n"]))
def test_whatever_csv_writes_is_read_back(rows, newline):
    rows = [(a, b) for a, b in rows if (a.strip() or b.strip())]
    buffer = io.StringIO(newline="")
    # Python's writer leaves a lone CR unquoted under QUOTE_MINIMAL; RFC 4180 files quote it.
    quoting = csv.QUOTE_ALL if any("\r" in a + b for a, b in rows) else csv.QUOTE_MINIMAL
    writer = csv.writer(buffer, lineterminator=newline, quoting=quoting)
    writer.writerow(["A ", " b"])
    writer.writerows(rows)
    read = records(buffer.getvalue())
    assert [(r.values["a"], r.values["b"]) for r in read] == [
        (a.strip(), b.strip()) for a, b in rows
    ]


def test_line_numbers_count_blank_lines_and_quoted_newlines():
    text = 'a,b\n\n1,2\n"multi\nline",3\n\n4,5\n'
    assert [r.line for r in records(text)] == [3, 4, 7]


def test_header_is_trimmed_and_case_insensitive_and_optional_columns_allowed():
    assert records(" A ,B,C\n1,2,3\n")[0].values == {"a": "1", "b": "2", "c": "3"}


def test_unknown_column_is_named():
    with pytest.raises(InvalidInput, match=r"f.csv:1: unknown column 'zzz'"):
        records("a,b,zzz\n1,2,3\n")


def test_missing_column_is_named():
    with pytest.raises(InvalidInput, match=r"f.csv:1: missing column 'b'"):
        records("a\n1\n")


def test_empty_file_is_invalid():
    with pytest.raises(InvalidInput, match="empty file"):
        records("\n\n")


def test_wrong_field_count_is_a_row_problem():
    assert records("a,b\n1,2,3\n")[0].problem == "expected 2 fields, found 3"


def test_errors_collector_names_file_and_line_and_counts_all():
    errors = CsvErrors("f.csv")
    for line in range(30):
        errors.add(line + 2, "bad")
    with pytest.raises(InvalidInput) as caught:
        errors.raise_if_any()
    assert caught.value.message.startswith("f.csv: 30 invalid rows")
    assert caught.value.details[0] == "f.csv:2: bad"
    assert caught.value.details[-1] == "... and 10 more"
