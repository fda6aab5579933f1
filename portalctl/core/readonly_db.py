"""Read-only connections on the driver itself (sqlite3, psycopg), without SQLAlchemy.

``accounts lookup`` has a 400 ms budget and importing SQLAlchemy alone takes ~300 ms of it; a
look-up is two SELECTs, so it runs them on the DB-API connection directly. These connections
cannot write (SQLite ``query_only``, PostgreSQL read-only transactions): every change goes
through the engine, where it is audited.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from portalctl.core.errors import DatabaseUnavailable, InvalidInput
from portalctl.core.migration_files import require_current

_SIMPLE_SQLITE = re.compile(r"sqlite:///(?P<path>[^?%]*)")
_SIMPLE_POSTGRESQL = re.compile(r"postgresql(?:\+psycopg)?://(?P<rest>.*)", re.DOTALL)
NOT_A_DATABASE = "file is not a database"  # SQLite's words for a file that is something else
# SQLite's words for a database it cannot use: something else, damaged (truncated), held by
# another writer past the busy timeout, on a full or failing disk, or where it cannot write.
SQLITE_UNUSABLE = (
    NOT_A_DATABASE,
    "database disk image is malformed",
    "database is locked",
    "disk I/O error",
    "database or disk is full",
    "attempt to write a readonly database",
    "unable to open database file",
)
_NAMED_PARAMETER = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


@dataclass(frozen=True)
class ConnectionTarget:
    """Where a database URL points, in the driver's terms."""

    backend: str  # "sqlite" or "postgresql"
    sqlite_path: str | None = None  # None: in memory
    conninfo: str | None = None  # a libpq URI

    def description(self) -> str:
        if self.backend == "sqlite":
            return target_description("sqlite", database=self.sqlite_path)
        parts = urlsplit(self.conninfo or "")
        return target_description(
            "postgresql", database=parts.path.lstrip("/"), host=parts.hostname, port=parts.port
        )

    @classmethod
    def from_url(cls, url: str) -> ConnectionTarget:
        """Plain URLs are read here; anything else goes through SQLAlchemy's URL parser, which
        also gives the error message for a malformed one."""
        url = normalise_url(url)
        if match := _SIMPLE_SQLITE.fullmatch(url):
            path = match["path"]
            return cls("sqlite", sqlite_path=None if path in ("", ":memory:") else path)
        if match := _SIMPLE_POSTGRESQL.fullmatch(url):
            conninfo = "postgresql://" + match["rest"]
            refuse_malformed_port(conninfo)
            return cls("postgresql", conninfo=conninfo)
        from portalctl.core.database import parse_url

        parsed = parse_url(url)
        if parsed.get_backend_name() == "sqlite":
            database = parsed.database
            return cls(
                "sqlite", sqlite_path=None if database in (None, "", ":memory:") else database
            )
        rendered = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
        return cls("postgresql", conninfo=rendered)


MALFORMED_URL = (
    "the database URL is malformed (expected sqlite:///FILE or postgresql://user@host:5432/db)"
)


def refuse_malformed_port(url: str) -> None:
    try:
        _ = urlsplit(url).port  # raises for a port that is not a number below 65536
    except ValueError:
        raise InvalidInput(MALFORMED_URL) from None


def normalise_url(url: str) -> str:
    """``postgres://`` (as Heroku and others write it) is PostgreSQL too."""
    return "postgresql://" + url[len("postgres://") :] if url.startswith("postgres://") else url


def refuse_missing_sqlite_file(path: str | None) -> None:
    """Opening a missing SQLite file would create an empty database; say what to run instead."""
    if path is not None and not os.path.exists(path):
        raise DatabaseUnavailable(f"no database at {path}: run `portalctl db init` to create it")


def target_description(
    backend: str, *, database: str | None, host: str | None = None, port: int | str | None = None
) -> str:
    if backend == "sqlite":
        return f"SQLite file {database or ':memory:'}"
    return f"PostgreSQL at {host or 'localhost'}:{port or 5432}/{database or ''}"


@dataclass
class ReadOnlyConnection:
    """One read-only transaction on a DB-API connection, queried with ``:name`` parameters."""

    backend: str
    driver_connection: Any
    where: str = ""

    def rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        if self.backend == "postgresql":
            sql = _NAMED_PARAMETER.sub(r"%(\1)s", sql.replace("%", "%%"))
        cursor = self.driver_connection.cursor()
        try:
            cursor.execute(sql, params or {})
            names = [column[0] for column in cursor.description]
            return [dict(zip(names, row)) for row in cursor.fetchall()]
        except Exception as error:
            failure = None if _is_missing_table(error) else _as_unavailable(error, self.where)
            if failure is None:
                raise
            raise failure from None
        finally:
            cursor.close()


def _is_missing_table(error: BaseException) -> bool:
    """PostgreSQL's undefined_table, or SQLite's "no such table"."""
    return getattr(error, "sqlstate", None) == "42P01" or "no such table" in str(error)


def _as_unavailable(error: BaseException, where: str) -> DatabaseUnavailable | None:
    """A driver error that is the database failing (cannot be opened or read, damaged, gone
    away), as one line naming it; None for an error of the statement (a bug)."""
    text = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
    kind = type(error).__name__
    if any(marker in text for marker in SQLITE_UNUSABLE):
        return DatabaseUnavailable(f"cannot use the database ({where}): {text}")
    if kind in ("OperationalError", "InterfaceError") or getattr(error, "sqlstate", "") in (
        "08000",
        "08003",
        "08006",
        "57P01",
        "57P02",
        "57P03",
    ):
        return DatabaseUnavailable(f"cannot use the database ({where}): {text}")
    return None


@contextmanager
def readonly_connection(database_url: str) -> Iterator[ReadOnlyConnection]:
    """A read-only connection on a database whose schema is current (exit 6 otherwise)."""
    target = ConnectionTarget.from_url(database_url)
    opened = _open_sqlite(target) if target.backend == "sqlite" else _open_postgresql(target)
    try:
        connection = ReadOnlyConnection(target.backend, opened, target.description())
        require_current(_applied_checksums(connection, target), target.backend)
        yield connection
    finally:
        opened.close()  # ends the read-only transaction (both drivers roll back on close)


def _open_sqlite(target: ConnectionTarget) -> Any:
    import sqlite3

    refuse_missing_sqlite_file(target.sqlite_path)
    try:
        connection = sqlite3.connect(
            target.sqlite_path or ":memory:", timeout=30, isolation_level=None
        )
        connection.execute("PRAGMA query_only = ON")
        connection.execute("BEGIN")  # one snapshot for every read of the command
    except sqlite3.Error as error:
        raise DatabaseUnavailable(
            f"cannot reach the database ({target_description('sqlite', database=target.sqlite_path)}"
            f"): {error}"
        ) from None
    return connection


def _open_postgresql(target: ConnectionTarget) -> Any:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    assert target.conninfo is not None

    try:
        connection = psycopg.connect(
            target.conninfo, connect_timeout=5, application_name="portalctl"
        )
    except psycopg.Error as error:
        try:
            parts = conninfo_to_dict(target.conninfo)
        except psycopg.Error:
            parts = {}
        where = target_description(
            "postgresql",
            database=str(parts.get("dbname") or ""),
            host=str(parts.get("host") or "localhost"),
            port=parts.get("port"),
        )
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise DatabaseUnavailable(
            f"cannot reach the database ({where}): {first_line[:300]}"
        ) from None
    connection.read_only = True
    return connection


def _applied_checksums(connection: ReadOnlyConnection, target: ConnectionTarget) -> dict[str, str]:
    """version -> checksum of the applied migrations; empty when there is no schema at all."""
    try:
        rows = connection.rows("SELECT version, checksum FROM schema_migrations")
    except Exception as error:
        if _is_missing_table(error):
            return {}
        raise
    return {row["version"]: row["checksum"] for row in rows}
