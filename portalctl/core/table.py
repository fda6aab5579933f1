"""Text tables as operators read them: columns two spaces apart, a rule of dashes under the
header, cells left-aligned and measured by their width on a terminal (East Asian wide
characters count two, combining marks none).

It lays out what ``tabulate``'s ``simple`` and ``plain`` formats did for portalctl's string
cells, line for line, without its import (a third of a look-up's start-up, for two layouts)."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

GAP = "  "
HEADER_MARGIN = 2  # a header is never wider than its column less this, as tabulate kept it


def display_width(text: str) -> int:
    if text.isascii():
        return len(text)
    return sum(
        0 if unicodedata.combining(char) else 2 if unicodedata.east_asian_width(char) in "WF" else 1
        for char in text
    )


def column_widths(rows: Sequence[Sequence[str]], headers: Sequence[str] | None = None) -> list[int]:
    """Each column's width: its widest cell, and its header with a margin."""
    count = len(headers) if headers is not None else max((len(row) for row in rows), default=0)
    widths = [
        display_width(headers[index]) + HEADER_MARGIN if headers is not None else 0
        for index in range(count)
    ]
    for row in rows:
        for index, cell in enumerate(row):
            widths[index] = max(widths[index], display_width(cell.strip()))
    return widths


def table_line(cells: Sequence[str], widths: Sequence[int]) -> str:
    """One line of a table laid out with ``widths``; a cell wider than its column pushes the
    rest of its line along."""
    padded = []
    for cell, width in zip(cells, widths):
        text = cell.strip()
        padded.append(text + " " * max(0, width - display_width(text)))
    return GAP.join(padded).rstrip()


def simple_table(rows: Sequence[Sequence[str]], headers: Sequence[str]) -> str:
    """A header, a rule of dashes, then the rows."""
    widths = column_widths(rows, headers)
    lines = [table_line(headers, widths), GAP.join("-" * width for width in widths)]
    lines += [table_line(row, widths) for row in rows]
    return "\n".join(lines)


def plain_table(rows: Sequence[Sequence[str]]) -> str:
    """Rows only, aligned: ``key  value`` lines of one record."""
    widths = column_widths(rows)
    return "\n".join(table_line(row, widths) for row in rows)
