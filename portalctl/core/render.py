"""The one renderer: records to ``table`` (tabulate), ``json`` or ``csv`` text.

Pure functions, no database. TINs are shown masked unless ``reveal`` is set; CSV cells that a
spreadsheet would run as a formula are escaped.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from enum import Enum
from typing import Any

from portalctl.core.text import escape_controls
from portalctl.core.tin import Tin

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
    plain = to_plain(data, reveal=reveal)
    if fmt == "json":
        return json.dumps(plain, indent=2, ensure_ascii=False)
    rows = [plain] if isinstance(plain, dict) else list(plain)
    if columns is None:
        columns = _columns_of(rows)
    if fmt == "csv":
        return _csv(rows, columns)
    if fmt == "table":
        if isinstance(plain, dict):
            return _vertical_table(plain)
        return _table(rows, columns)
    raise ValueError(f"unknown format {fmt!r}")


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


def _csv(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([escape_formula(cell_text(row.get(column))) for column in columns])
    return buffer.getvalue().rstrip("\n")


def _table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    if not rows:
        return "(no rows)"
    from tabulate import tabulate

    body = [[escape_controls(cell_text(row.get(column))) for column in columns] for row in rows]
    return tabulate(body, headers=list(columns), tablefmt="simple", disable_numparse=True)


def _vertical_table(record: dict[str, Any]) -> str:
    """One record as ``key value`` lines; its lists of records (an account's recent audit, a
    TIN's codes) as tables below it."""
    from tabulate import tabulate

    nested = {key: value for key, value in record.items() if _is_nested_listing(value)}
    body = [
        [key, f"({len(value)} rows below)" if key in nested else escape_controls(cell_text(value))]
        for key, value in record.items()
    ]
    text = tabulate(body, tablefmt="plain", disable_numparse=True)
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
