"""Reading a consolidation file: the fast per-row loop says exactly what ``read_csv`` says."""

from __future__ import annotations

import pytest

from portalctl.core.csvio import open_csv_text, read_csv
from portalctl.core.errors import InvalidInput
from portalctl.domain.consolidation.input import (
    OPTIONAL,
    REQUIRED,
    _rows_of_file,
    _rows_of_records,
)


def both_readings(path):
    """(fast rows or error message, read_csv rows or error message) of one file."""
    readings = []
    for fast in (True, False):
        stream, source = open_csv_text(path)
        with stream:
            try:
                rows = (
                    _rows_of_file(stream, source)
                    if fast
                    else _rows_of_records(
                        read_csv(stream, source, required=REQUIRED, optional=OPTIONAL)
                    )
                )
                readings.append(list(rows))
            except InvalidInput as error:
                readings.append(error.message)
    return readings


@pytest.mark.parametrize(
    "text",
    [
        "primary_username,secondary_username\nann,bob\n",
        "\ufeff Primary_Username , SECONDARY_USERNAME ,tin,note\r\n\r\n"
        " Ann , Bob ,06-1137531,x\r\n,,,\r\n  ,  ,  ,  \r\nann,ANN,,\r\n"
        'carl,,,\r\nann,"multi\nline",12345,\r\nonly,three,cells\r\ntoo,many,cells,x,y\r\n'
        "dan,eve,000000000,\r\n,,x,\r\n",
        '\n\nsecondary_username,primary_username\n"b,1",a\n\n\nd,c\n',
        "primary_username,secondary_username\nann,bob",
    ],
)
def test_fast_reading_matches_read_csv(tmp_path, text):
    path = tmp_path / "f.csv"
    path.write_bytes(text.encode("utf-8"))
    fast, generic = both_readings(path)
    assert fast == generic
    assert isinstance(fast, list) and fast


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\n\n",
        b"primary_username,nobody\nann,bob\n",
        b"primary_username\nann\n",
        b"primary_username,secondary_username,primary_username\nann,bob,c\n",
        b'primary_username,secondary_username\nann,bob\n"open,bob\nx,y\n',
        b"primary_username,secondary_username\nann,bob\nann,b\xffob\nc,d\n",
        b"primary_username,secondary\xff\nann,bob\n",
    ],
)
def test_fast_reading_fails_as_read_csv_does(tmp_path, content):
    path = tmp_path / "f.csv"
    path.write_bytes(content)
    fast, generic = both_readings(path)
    assert isinstance(generic, str) and fast == generic
