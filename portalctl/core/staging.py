"""Staging tables for bulk work: a temporary table filled by COPY on PostgreSQL and by batched
executemany on SQLite, so the real work is a few set-based statements whatever the row count."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from itertools import islice
from typing import Any

from sqlalchemy.engine import Connection, Engine

from portalctl.core.database import DEFER_WRITE_LOCK, driver_connection

_SQLITE_BATCH = 10_000
# A 64 MB page cache instead of the default 2 MB, and a WAL checkpoint every ~400 MB instead of
# every 4 MB: chunk after chunk then rewrites hot pages in memory and copies them back once.
# The temporary database (staging tables) is deleted when the connection closes, so zeroing
# its freed pages first (some SQLite builds have secure_delete on) would only cost writes.
_SQLITE_BULK_PRAGMAS = (
    "PRAGMA cache_size = -65536",
    "PRAGMA wal_autocheckpoint = 100000",
    "PRAGMA temp.secure_delete = OFF",
)


@contextmanager
def bulk_connection(engine: Engine) -> Iterator[Connection]:
    """A connection for work in several transactions over temporary tables, which go with it:
    closed, its stage is dropped at once instead of by a DROP TABLE that rewrites the pages it
    frees."""
    with engine.connect() as connection:
        try:
            yield connection
        finally:
            if not connection.closed:
                connection.invalidate()


@contextmanager
def reading_phase(connection: Connection) -> Iterator[Connection]:
    """A transaction that reads the database and writes only temporary tables (reading and
    staging an input file): on SQLite it takes no write lock, so a slow or big input never
    keeps other writers waiting."""
    connection.execution_options(**{DEFER_WRITE_LOCK: True})
    try:
        with connection.begin():
            yield connection
    finally:
        connection.execution_options(**{DEFER_WRITE_LOCK: False})


def tune_for_bulk_work(connection: Connection) -> None:
    """Settings for a connection about to write many rows (SQLite; PostgreSQL needs none):
    more memory for pages, fewer checkpoints."""
    if connection.dialect.name == "sqlite":
        for pragma in _SQLITE_BULK_PRAGMAS:
            connection.exec_driver_sql(pragma)


def create_staging_table(
    connection: Connection,
    name: str,
    columns: Sequence[tuple[str, str]],
    *,
    keep_after_commit: bool = False,
) -> None:
    """A temporary table: dropped at commit on PostgreSQL unless ``keep_after_commit`` (work
    in several transactions), replaced if left over on SQLite (where it lasts as long as the
    connection)."""
    column_sql = ", ".join(f"{column} {sql_type}" for column, sql_type in columns)
    if connection.dialect.name == "postgresql":
        on_commit = "PRESERVE ROWS" if keep_after_commit else "DROP"
        connection.exec_driver_sql(f"DROP TABLE IF EXISTS pg_temp.{name}")
        connection.exec_driver_sql(
            f"CREATE TEMPORARY TABLE {name} ({column_sql}) ON COMMIT {on_commit}"
        )
    else:
        connection.exec_driver_sql(f"DROP TABLE IF EXISTS temp.{name}")
        connection.exec_driver_sql(f"CREATE TEMPORARY TABLE {name} ({column_sql})")


def load_rows(
    connection: Connection, name: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> int:
    """Stream ``rows`` into the staging table; returns how many were loaded."""
    count = 0
    if connection.dialect.name == "postgresql":
        cursor = driver_connection(connection).cursor()
        with cursor, cursor.copy(f"COPY {name} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
                count += 1
        # Temporary tables are never auto-analysed; without statistics joins plan badly.
        connection.exec_driver_sql(f"ANALYZE {name}")
        return count
    insert = (
        f"INSERT INTO temp.{name} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"
    )
    cursor = driver_connection(connection).cursor()
    iterator = iter(rows)
    while batch := list(islice(iterator, _SQLITE_BATCH)):
        cursor.executemany(insert, batch)
        count += len(batch)
    cursor.close()
    return count


@contextmanager
def bulk_load(
    connection: Connection, table: str, *, foreign_keys: bool = True, rebuild_indexes: bool = False
) -> Iterator[None]:
    """On PostgreSQL, drop ``table``'s foreign keys (unless not ``foreign_keys``) and, with
    ``rebuild_indexes``, its indexes that back no constraint, for the block and re-create them
    after it: the rows inserted meanwhile are then checked by one join per key instead of a probe and a row lock per row,
    and indexed by one sort instead of one descent per row (the manual's advice for bulk loads).
    The definitions are read from the catalog, so the migrations stay the only source of the
    schema; DDL is transactional, so a failure restores them. The price: ``table`` and the
    tables its keys reference are locked exclusively until commit.
    """
    if connection.dialect.name != "postgresql":
        yield
        return
    parameters = {"table": table}
    keys = (
        connection.exec_driver_sql(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = %(table)s::regclass AND contype = 'f' ORDER BY conname",
            parameters,
        ).all()
        if foreign_keys
        else []
    )
    indexes = (
        connection.exec_driver_sql(
            "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x "
            "JOIN pg_class i ON i.oid = x.indexrelid WHERE x.indrelid = %(table)s::regclass "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid) "
            "ORDER BY i.relname",
            parameters,
        ).all()
        if rebuild_indexes
        else []
    )
    if keys:
        connection.exec_driver_sql(
            f"ALTER TABLE {table} " + ", ".join(f'DROP CONSTRAINT "{name}"' for name, _ in keys)
        )
    for name, _ in indexes:
        connection.exec_driver_sql(f'DROP INDEX "{name}"')
    yield
    for _, definition in indexes:
        connection.exec_driver_sql(definition)
    if keys:
        connection.exec_driver_sql(
            f"ALTER TABLE {table} "
            + ", ".join(f'ADD CONSTRAINT "{name}" {definition}' for name, definition in keys)
        )
