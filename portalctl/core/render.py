"""The one renderer: records to ``table`` (``core.table``), ``json``, ``jsonl`` or ``csv`` text.

Pure functions, no database. TINs are shown masked unless ``reveal`` is set; CSV cells that a
spreadsheet would run as a formula are escaped.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime
from enum import Enum
from typing import Any

from portalctl.core.table import GAP, column_widths, plain_table, simple_table, table_line
from portalctl.core.text import escape_controls
from portalctl.core.tin import Tin

TABLE_PAGE = 1000  # rows a table is laid out from; later rows keep its widths
_FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")


def to_plain(value: Any, *, reveal: bool = False) -> Any:
    """JSON-ready data: TINs masked (or revealed), datetimes as ISO 8601 UTC."""
    if isinstance(value, Tin):
        return value.reveal() if reveal else value.masked
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): to_plain(v, reveal=reveal) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_plain(v, reveal=reveal) for v in value]
    if hasattr(value, "__dataclass_fields__"):
        return {
            name: to_plain(getattr(value, name), reveal=reveal)
            for name in value.__dataclass_fields__
        }
    return value


def render(
    data: Any, fmt: str, *, reveal: bool = False, columns: Sequence[str] | None = None
) -> str:
    """A listing (sequence) or one record (mapping) as text in ``fmt``."""
    if isinstance(data, Mapping) or hasattr(data, "__dataclass_fields__"):
        plain = to_plain(data, reveal=reveal)
        if fmt == "json":
            return json.dumps(plain, indent=2, ensure_ascii=False)
        if fmt == "jsonl":
            return json.dumps(plain, ensure_ascii=False)
        if fmt == "table":
            return _vertical_table(plain)
        data = [plain]
    return "".join(render_lines(data, fmt, reveal=reveal, columns=columns)).rstrip("\n")


def render_lines(
    rows: Iterable[Any], fmt: str, *, reveal: bool = False, columns: Sequence[str] | None = None
) -> Iterator[str]:
    """A listing as text, a line at a time (each piece ends with a newline), so a long listing
    reaches its reader as it is read, in constant memory, whatever the format."""
    plain_rows = (to_plain(row, reveal=reveal) for row in rows)
    if fmt == "table":
        yield from _table_lines(plain_rows, columns)
    elif fmt == "jsonl":
        for row in plain_rows:
            yield json.dumps(row, ensure_ascii=False) + "\n"
    elif fmt == "json":
        yield from _json_lines(plain_rows)
    elif fmt == "csv":
        yield from _csv_lines(plain_rows, columns)
    else:
        raise ValueError(f"unknown format {fmt!r}")


def _json_lines(rows: Iterator[Any]) -> Iterator[str]:
    first = True
    for row in rows:
        text = json.dumps(row, indent=2, ensure_ascii=False).replace("\n", "\n  ")
        yield ("[\n  " if first else ",\n  ") + text
        first = False
    yield "[]\n" if first else "\n]\n"


def _csv_lines(rows: Iterator[Any], columns: Sequence[str] | None) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header_written = False
    for row in rows:
        if not header_written:
            columns = columns or list(row)
            writer.writerow(columns)
            header_written = True
        assert columns is not None
        writer.writerow([escape_formula(cell_text(row.get(column))) for column in columns])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    if not header_written:
        writer.writerow(columns or [])
        yield buffer.getvalue()


def _columns_of(rows: list[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        for key in row:
            seen.setdefault(key, None)
    return list(seen)


def cell_text(value: Any) -> str:
    """A cell for a table or CSV: lists of TIN links and nested records flattened to one line."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return "; ".join(cell_text(item) for item in value)
    if isinstance(value, dict):
        if set(value) == {"tin", "role"}:
            return f"{value['tin']} ({value['role']})"
        return ", ".join(f"{k}={cell_text(v)}" for k, v in value.items())
    return str(value)


def escape_formula(text: str) -> str:
    """Neutralise spreadsheet formulas (CSV injection) with a leading apostrophe."""
    return "'" + text if text.startswith(_FORMULA_LEADS) else text


def _table_lines(rows: Iterator[Any], columns: Sequence[str] | None) -> Iterator[str]:
    """A table laid out from its first ``TABLE_PAGE`` rows (as ``psql`` does with
    ``FETCH_COUNT``): later rows keep those column widths, and a wider cell only pushes the rest
    of its own line, so a table of any length streams."""
    first_page = list(itertools.islice(rows, TABLE_PAGE))
    columns = columns or _columns_of(first_page)
    if not first_page:
        yield "(no rows)\n"
        return
    body = [_cells(row, columns) for row in first_page]
    widths = column_widths(body, columns)
    yield table_line(columns, widths) + "\n"
    yield GAP.join("-" * width for width in widths) + "\n"
    for cells in body:
        yield table_line(cells, widths) + "\n"
    for row in rows:
        yield table_line(_cells(row, columns), widths) + "\n"


def _cells(row: dict[str, Any], columns: Sequence[str]) -> list[str]:
    return [escape_controls(cell_text(row.get(column))) for column in columns]


def _table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    if not rows:
        return "(no rows)"
    return simple_table([_cells(row, columns) for row in rows], columns)


def _vertical_table(record: dict[str, Any]) -> str:
    """One record as ``key value`` lines; its lists of records (an account's recent audit, a
    TIN's codes) as tables below it."""
    nested = {key: value for key, value in record.items() if _is_nested_listing(value)}
    body = [
        [key, f"({len(value)} rows below)" if key in nested else escape_controls(cell_text(value))]
        for key, value in record.items()
    ]
    text = plain_table(body)
    for key, value in nested.items():
        text += f"\n\n{key}:\n" + _table(value, _columns_of(value))
    return text


def _is_nested_listing(value: Any) -> bool:
    """A list of records other than an account's TIN links (which fit in one cell)."""
    return (
        isinstance(value, list)
        and bool(value)
        and isinstance(value[0], dict)
        and set(value[0]) != {"tin", "role"}
    )
