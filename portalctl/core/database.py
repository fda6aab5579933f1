"""Engine creation, transactions, and translating driver failures into ``DatabaseUnavailable``."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from portalctl.core.errors import DatabaseUnavailable, InvalidInput, PortalError, Refused
from portalctl.core.readonly_db import (
    MALFORMED_URL,
    SQLITE_UNUSABLE,
    normalise_url,
    refuse_malformed_port,
    target_description,
)

T = TypeVar("T")

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Connection, Engine
    from sqlalchemy.exc import DBAPIError


# Execution option for a connection whose transactions only read: on SQLite they BEGIN
# deferred, so they never queue for the write lock that writers take at BEGIN (in WAL mode a
# reader then sees the last commit at once); on PostgreSQL it changes nothing.
DEFER_WRITE_LOCK = "portalctl_defer_write_lock"


def driver_connection(connection: Connection) -> Any:
    """The DB-API connection under ``connection`` (sqlite3's or psycopg's), for what SQLAlchemy
    does not wrap: COPY, executescript, PRAGMAs outside a transaction."""
    driver = connection.connection.driver_connection
    if driver is None:
        raise RuntimeError("the connection is closed")
    return driver


def parse_url(url: str) -> URL:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(normalise_url(url))  # a port that is not a number: ValueError
        if parsed.get_backend_name() == "postgresql":
            refuse_malformed_port(normalise_url(url))
    except (ArgumentError, ValueError):
        raise InvalidInput(MALFORMED_URL) from None
    if parsed.get_backend_name() == "postgresql" and parsed.drivername != "postgresql+psycopg":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise InvalidInput(
            f"unsupported database {parsed.get_backend_name()!r}: "
            "use sqlite:///FILE or postgresql+psycopg://..."
        )
    return parsed


def create_private_sqlite_file(url: URL) -> None:
    """A new SQLite database file is made readable by its owner only (it holds TINs and
    hashes); SQLite gives its -wal and -shm files the same mode. Existing files are left."""
    import os

    path = url.database if url.get_backend_name() == "sqlite" else None
    if not path or path == ":memory:" or os.path.exists(path):
        return
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    except OSError as error:
        raise DatabaseUnavailable(f"cannot create the database {path}: {error.strerror}") from None


def masked_url(url: str | URL) -> str:
    """The URL as it may be shown: never with its password."""
    parsed = parse_url(url) if isinstance(url, str) else url
    return parsed.render_as_string(hide_password=True)


def describe_target(url: URL) -> str:
    return target_description(
        url.get_backend_name(), database=url.database, host=url.host, port=url.port
    )


def create_engine(url: str) -> Engine:
    """An engine with the settings portalctl relies on (SQLite: foreign keys, WAL, busy timeout)."""
    import sqlalchemy as sa

    parsed = parse_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = sa.create_engine(parsed, connect_args={"timeout": 30}, hide_parameters=True)
        sa.event.listen(engine, "connect", _configure_sqlite)
        sa.event.listen(engine, "begin", _begin_immediate)
        return engine
    return sa.create_engine(
        parsed,
        connect_args={"connect_timeout": 5, "application_name": "portalctl"},
        pool_pre_ping=False,
        hide_parameters=True,
    )


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy, not pysqlite, decide when transactions begin (see _begin_immediate).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute("PRAGMA busy_timeout = 30000")
    if dbapi_connection.execute("PRAGMA database_list").fetchone()[2]:
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.close()


def _begin_immediate(connection: Connection) -> None:
    # Take SQLite's write lock at BEGIN, so two writers queue instead of failing mid-transaction.
    # A transaction that only reads begins deferred: in WAL mode it then never waits for a
    # writer (`consolidate status` during a long run would otherwise queue behind every chunk).
    if connection.get_execution_options().get(DEFER_WRITE_LOCK):
        connection.exec_driver_sql("BEGIN")
    else:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


@contextmanager
def translate_database_errors(url: URL) -> Iterator[None]:
    """Turn a failure of the database itself into one line that names it and never the
    password (``database_failure``); other errors pass."""
    from sqlalchemy import exc

    try:
        yield
    except exc.DBAPIError as error:
        failure = database_failure(error, describe_target(url))
        if failure is None:
            raise
        raise failure from None


def database_failure(error: DBAPIError, where: str | None = None) -> DatabaseUnavailable | None:
    """The ``DatabaseUnavailable`` (exit 6) that a driver error means, when it is the database
    failing rather than the statement: unreachable, lost, refusing the login, or (SQLite) a
    file that is not a database or is damaged. None for anything else. A deadlock or a
    serialization failure is none of these (``retrying_conflicts`` retries it)."""
    from sqlalchemy import exc

    place = f" ({where})" if where else ""
    if getattr(error.orig, "sqlstate", None) in RETRYABLE_SQLSTATES:
        return None
    if isinstance(error, exc.InterfaceError) or (
        isinstance(error, exc.OperationalError) and _is_connection_failure(error)
    ):
        return DatabaseUnavailable(f"cannot reach the database{place}: {_first_line(error)}")
    damage = next((marker for marker in SQLITE_UNUSABLE if marker in str(error.orig)), None)
    if damage is not None:
        return DatabaseUnavailable(f"cannot use the database{place}: {damage}")
    return None


def _is_connection_failure(error: DBAPIError) -> bool:
    if error.connection_invalidated:
        return True
    text = str(error.orig).lower()
    markers = (
        "connection",
        "could not",
        "unable to open",
        "timeout expired",
        "server closed",
        "does not exist",
        "authentication",
        "no password",
        "role",
        "resolve",
    )
    return any(marker in text for marker in markers) and "lock" not in text


def _first_line(error: BaseException) -> str:
    text = str(getattr(error, "orig", error)).strip().splitlines()
    line = text[0] if text else error.__class__.__name__
    return line.replace("\r", " ")[:300]


def unique_violation(error: BaseException) -> str | None:
    """The name of the unique index a failed INSERT or UPDATE broke, or None for any other
    error: a race two writers ran (both checked, both inserted) ends as the refusal the
    sequential case gives, not as a database error."""
    orig = getattr(error, "orig", None)
    if getattr(orig, "sqlstate", None) == "23505":  # PostgreSQL's unique_violation
        diag = getattr(orig, "diag", None)
        return str(getattr(diag, "constraint_name", "") or "")
    text = str(orig or "")
    if "UNIQUE constraint failed" in text:  # SQLite names the index, or the columns
        return text.split("index '", 1)[-1].rstrip("'") if "index '" in text else text
    return None


RETRYABLE_SQLSTATES = ("40001", "40P01")  # serialization failure, deadlock detected
MAX_ATTEMPTS = 6


def retrying_conflicts(connection: Connection, work: Callable[[], T], *, what: str) -> T:
    """``work()`` in a transaction of its own, run again when PostgreSQL picks it as a deadlock
    or serialization victim (it was rolled back whole, so nothing is done twice). Still losing
    after ``MAX_ATTEMPTS``: refused, saying so (a conflict, not an unavailable database)."""
    from sqlalchemy.exc import DBAPIError

    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            with transaction_on(connection):
                return work()
        except DBAPIError as error:
            if getattr(error.orig, "sqlstate", None) not in RETRYABLE_SQLSTATES:
                raise
            time.sleep(0.05 * attempt)
    raise Refused(
        f"{what}: concurrent work on the same rows won {MAX_ATTEMPTS} times in a row; this "
        "part was not written: run it again"
    )


@contextmanager
def transaction_on(connection: Connection) -> Iterator[Connection]:
    """One transaction on ``connection``: committed when the block ends or raises an error that
    keeps its changes (``RecordedRefusal``: what led to the refusal was recorded;
    ``PartlyApplied``: the rows applied stay), rolled back on any other error."""
    outer = connection.begin()
    try:
        yield connection
    except PortalError as error:
        if error.keeps_changes:
            outer.commit()
        elif outer.is_active:
            outer.rollback()
        raise
    except BaseException:
        if outer.is_active:
            outer.rollback()
        raise
    outer.commit()


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """``transaction_on`` a new connection of ``engine``."""
    with engine.connect() as connection, transaction_on(connection):
        yield connection
