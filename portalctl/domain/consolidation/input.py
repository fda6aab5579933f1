"""Reading a consolidation file into the planner's input table: the CSV rules of SPEC section 5
and the row-level checks of section 1 in one tight loop per row (a 1,000,000-row file is read
and staged in seconds), then COPY on PostgreSQL or multi-row INSERTs on SQLite."""

from __future__ import annotations

import csv
import functools
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from sqlalchemy.engine import Connection

from portalctl.core.csvio import NUL_PROBLEM, CsvRecord, open_csv_hashed, read_csv
from portalctl.core.database import driver_connection
from portalctl.core.errors import InvalidInput
from portalctl.core.staging import load_rows
from portalctl.core.tin import parse_tin_digits

REQUIRED = ("primary_username", "secondary_username")
OPTIONAL = ("tin", "note")
RAW = "consolidation_input"

# The file as read: outcome stays NULL for a row still to plan, else invalid | refused, with
# ``rule`` naming the rule that decided (see ``rules``); graph = 0 takes a row out of the chain
# resolution; final_key starts as the primary and ends at the chain's final primary.
RAW_COLUMNS = [
    ("line", "INTEGER"),
    ("primary_name", "VARCHAR(254)"),
    ("secondary_name", "VARCHAR(254)"),
    ("primary_key", "VARCHAR(254)"),
    ("secondary_key", "VARCHAR(254)"),
    ("tin", "CHAR(9)"),
    ("graph", "INTEGER"),
    ("final_key", "VARCHAR(254)"),
    ("outcome", "VARCHAR(16)"),
    ("rule", "VARCHAR(32)"),
    ("detail", "VARCHAR(500)"),
]
_LOADED = [name for name, _ in RAW_COLUMNS]
_REQUIRED_DETAIL = "primary_username and secondary_username are required"
_SELF_DETAIL = "an account cannot be merged into itself"
# SQLite: rows per INSERT (fewer where the library binds fewer values per statement). One
# statement binding 500 rows costs under half as much per row as executemany of single-row
# INSERTs (the driver's per-execution overhead is the bulk of it).
_SQLITE_ROWS_PER_INSERT = 500
# A row to plan is staged as its first six columns: line, names, keys, TIN.
_PLANNED = 6


def stage_file(connection: Connection, path: str | Path) -> tuple[str, str]:
    """Stream a consolidation CSV into the input table (row-level checks done on the way),
    reading it once; the file's name as messages show it, and its SHA-256."""
    stream, source, hashed = open_csv_hashed(path)
    with stream:
        rows = (
            _rows_of_file(stream, source)
            if str(path) != "-" and stream.seekable()
            else _rows_of_records(read_csv(stream, source, required=REQUIRED, optional=OPTIONAL))
        )
        load_input(connection, rows)
        while stream.read(1 << 16):  # whatever the CSV reader left unread still counts
            pass
        return source, hashed.hexdigest()


def stage_pairs(connection: Connection, pairs: Iterable[tuple[str, str, str | None]]) -> None:
    """Stage merges given directly as (primary, secondary, tin) (``consolidate one``)."""
    records = (
        CsvRecord(line, {"primary_username": p, "secondary_username": s, "tin": t or ""})
        for line, (p, s, t) in enumerate(pairs, start=1)
    )
    load_input(connection, _rows_of_records(records))


def create_input(connection: Connection, on_commit: str) -> None:
    columns = ", ".join(f"{name} {sql_type}" for name, sql_type in RAW_COLUMNS)
    connection.exec_driver_sql(f"CREATE TEMPORARY TABLE {RAW} ({columns}){on_commit}")


def load_input(connection: Connection, rows: Iterable[tuple[Any, ...]]) -> None:
    """Rows are ``_row``'s: a row to plan as its first six columns (the rest follow from them),
    a row with a problem in full."""
    if connection.dialect.name == "postgresql":
        # The planner's statements read whole tables; a small sample (for this transaction's
        # ANALYZEs of the temporary tables) plans them as well as the default one, much faster.
        connection.exec_driver_sql("SET LOCAL default_statistics_target = 10")
        load_rows(
            connection,
            RAW,
            _LOADED,
            (
                row if len(row) == len(_LOADED) else (*row, 1, row[3], None, None, None)
                for row in rows
            ),
        )
        return
    driver = driver_connection(connection)
    per_insert = max(
        1,
        min(
            _SQLITE_ROWS_PER_INSERT,
            driver.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // len(_LOADED),
        ),
    )
    batches: dict[int, list[tuple[Any, ...]]] = {_PLANNED: [], len(_LOADED): []}
    cursor = driver.cursor()
    try:
        for row in rows:
            batch = batches[len(row)]
            batch.append(row)
            if len(batch) == per_insert:
                cursor.execute(
                    _sqlite_insert(len(row), per_insert), [value for row in batch for value in row]
                )
                batch.clear()
        for width, batch in batches.items():
            if batch:
                cursor.execute(
                    _sqlite_insert(width, len(batch)), [value for row in batch for value in row]
                )
    finally:
        cursor.close()


@functools.cache
def _sqlite_insert(width: int, rows: int) -> str:
    """One INSERT of ``rows`` rows; planned rows bind their first six columns only (binding is
    most of the cost of a row), the other columns follow from them."""
    values = ", ".join(["(" + ", ".join("?" * width) + ")"] * rows)
    if width == len(_LOADED):
        return f"INSERT INTO temp.{RAW} ({', '.join(_LOADED)}) VALUES {values}"
    return (
        f"INSERT INTO temp.{RAW} ({', '.join(_LOADED[:_PLANNED])}, graph, final_key) "
        f"SELECT {', '.join(f'column{i}' for i in range(1, _PLANNED + 1))}, 1, column4 "
        f"FROM (VALUES {values})"
    )


def _row(line: int, primary: str, secondary: str, tin: str) -> tuple[Any, ...]:
    """One staged row: the cells as given, their case-folded keys and the TIN (a row to plan),
    or all of the input table's columns for a row that breaks a check one row allows."""
    primary_key, secondary_key = primary.lower()[:254], secondary.lower()[:254]
    if not primary or not secondary:
        problem = ("invalid", "missing_username", _REQUIRED_DETAIL)
    elif "\x00" in primary or "\x00" in secondary or "\x00" in tin:
        return _problem_row(line, NUL_PROBLEM)
    elif primary_key == secondary_key and primary.lower() == secondary.lower():
        problem = ("refused", "self_merge", _SELF_DETAIL)
    elif tin:
        try:
            tin = parse_tin_digits(tin)
        except InvalidInput as error:
            problem = ("invalid", "bad_tin", error.message)
        else:
            return (line, primary[:254], secondary[:254], primary_key, secondary_key, tin)
    else:
        return (line, primary[:254], secondary[:254], primary_key, secondary_key, None)
    return (
        line,
        primary[:254],
        secondary[:254],
        primary_key,
        secondary_key,
        None,
        0,
        primary_key,
        *problem,
    )


def _problem_row(line: int, problem: str) -> tuple[Any, ...]:
    return (line, "", "", "", "", None, 0, "", "invalid", "bad_row", problem)


def _rows_of_records(records: Iterable[CsvRecord]) -> Iterator[tuple[Any, ...]]:
    for record in records:
        if record.problem:
            yield _problem_row(record.line, record.problem)
            continue
        values = record.values
        yield _row(
            record.line,
            values.get("primary_username", ""),
            values.get("secondary_username", ""),
            values.get("tin", ""),
        )


def _rows_of_file(stream: IO[str], source: str) -> Iterator[tuple[Any, ...]]:
    """``read_csv``'s rules without a record object per row. Anything unusual before the data
    (a bad header, a malformed or undecodable line) is left to ``read_csv`` itself, reading the
    file again, so every message is exactly its own."""
    reader = csv.reader(stream, strict=True)
    try:
        header = next((cells for cells in reader if cells and any(c.strip() for c in cells)), None)
    except (csv.Error, UnicodeDecodeError):
        header = None
    names = [cell.strip().lower() for cell in header or ()]
    known = set(REQUIRED) | set(OPTIONAL)
    if not names or len(set(names)) != len(names) or not set(REQUIRED) <= set(names) <= known:
        yield from _rows_of_records(_reread(stream, source))
        return
    width = len(names)
    at_primary, at_secondary = names.index("primary_username"), names.index("secondary_username")
    at_tin = names.index("tin") if "tin" in names else None
    previous_end = reader.line_num
    try:
        for cells in reader:
            line = previous_end + 1
            previous_end = reader.line_num
            if len(cells) == width:
                primary, secondary = cells[at_primary].strip(), cells[at_secondary].strip()
                tin = cells[at_tin].strip() if at_tin is not None else ""
                if not (primary and secondary or tin) and all(not c.strip() for c in cells):
                    continue
                yield _row(line, primary, secondary, tin)
            elif cells and any(cell.strip() for cell in cells):
                yield _problem_row(line, f"expected {width} fields, found {len(cells)}")
    except csv.Error as error:
        raise InvalidInput(f"{source}:{reader.line_num}: malformed CSV ({error})") from None
    except UnicodeDecodeError:
        for _ in _reread(stream, source):
            pass
        raise


def _reread(stream: IO[str], source: str) -> Iterator[CsvRecord]:
    stream.seek(0)
    return read_csv(stream, source, required=REQUIRED, optional=OPTIONAL)
