"""Apply the ordered SQL files of ``sql/`` and check that a database is up to date."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from portalctl.core.database import driver_connection
from portalctl.core.errors import DatabaseUnavailable
from portalctl.core.migration_files import (
    PLACEHOLDERS,
    Migration,
    available_migrations,
    compare_with_files,
    require_current,
)
from portalctl.core.schema import schema_migrations

__all__ = [
    "Migration",
    "MigrationState",
    "apply_pending",
    "available_migrations",
    "ensure_current",
    "migration_state",
]

_CREATE_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    VARCHAR(4) PRIMARY KEY,
    name       VARCHAR(200) NOT NULL,
    checksum   VARCHAR(64) NOT NULL,
    applied_at {timestamp} NOT NULL
)"""


@dataclass(frozen=True)
class MigrationState:
    applied: list[dict[str, Any]]
    pending: list[Migration]
    edited: list[str]


def migration_state(connection: Connection) -> MigrationState:
    dialect = connection.dialect.name
    if not sa.inspect(connection).has_table("schema_migrations"):
        return MigrationState([], available_migrations(dialect), [])
    rows = (
        connection.execute(sa.select(schema_migrations).order_by(schema_migrations.c.version))
        .mappings()
        .all()
    )
    pending, edited = compare_with_files({row["version"]: row["checksum"] for row in rows}, dialect)
    return MigrationState([dict(row) for row in rows], pending, edited)


def apply_pending(engine: Engine, *, now: datetime) -> list[Migration]:
    """Apply each pending migration in its own transaction and record it with its checksum."""
    dialect = engine.dialect.name
    timestamp_type = PLACEHOLDERS[dialect]["{{timestamp}}"]
    with engine.begin() as connection:
        connection.exec_driver_sql(_CREATE_MIGRATIONS_TABLE.format(timestamp=timestamp_type))
        state = migration_state(connection)
    if state.edited:
        raise DatabaseUnavailable(
            "refusing to migrate: applied migration(s) were edited since they ran: "
            + ", ".join(state.edited)
            + " (add a new migration instead)"
        )
    applied = []
    for migration in state.pending:
        with engine.begin() as connection:
            _run_script(connection, migration.sql_for(dialect))
            connection.execute(
                schema_migrations.insert().values(
                    version=migration.version,
                    name=migration.name,
                    checksum=migration.checksum,
                    applied_at=now,
                )
            )
        applied.append(migration)
    return applied


def _run_script(connection: Connection, script: str) -> None:
    if connection.dialect.name == "sqlite":
        # One statement at a time inside the open transaction: sqlite3's executescript would
        # COMMIT it first, and a migration failing half-way would stay half-applied.
        import sqlite3

        driver = driver_connection(connection)
        statement = ""
        for piece in script.split(";"):
            statement += piece + ";"
            if sqlite3.complete_statement(statement):  # not a ';' inside a trigger or string
                if statement.strip(" \t\r\n;"):
                    driver.execute(statement)
                statement = ""
    else:
        # No parameters, so psycopg sends the script as is ('%' needs no escaping).
        with driver_connection(connection).cursor() as cursor:
            cursor.execute(script)


def ensure_current(connection: Connection) -> None:
    """Refuse to work on a database that is missing migrations (exit 6 with what to run)."""
    state = migration_state(connection)
    require_current(
        {row["version"]: row["checksum"] for row in state.applied}, connection.dialect.name
    )
