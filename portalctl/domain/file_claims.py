"""A bulk run's claim on its input file: at most one run of a file at a time, and a crashed run
(kill -9, a lost connection) never blocks the re-run that finishes it.

The claim is taken before the file is planned, so the second of two runs of one file is refused
at once instead of planning against a moving state. On PostgreSQL it is a session advisory lock
on the file's hash, which the server drops with a dead process's connection; on SQLite it is the
``running`` record itself, whose runner (pid@host) is checked for life. Used by the tables that
record runs of files (``consolidation_batches``, ``code_batches``), which share these columns:
``file_name, file_sha256, state, operator, runner, started_at, heartbeat_at, finished_at``.
"""

from __future__ import annotations

import hashlib
import os
import socket
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from portalctl.core.clock import utc_now
from portalctl.core.errors import Refused
from portalctl.core.fields import clean_text
from portalctl.domain.audit import record_audit

# A run on another host is presumed alive until its heartbeat (one per chunk) is this old.
STALE_AFTER = timedelta(minutes=30)


def claim_file(
    connection: Connection,
    runs: sa.Table,
    *,
    file_name: str,
    sha256: str,
    operator: str,
    what: str,
    values: dict[str, Any] | None = None,
) -> int:
    """A ``running`` record in ``runs`` for this file, or ``Refused`` while another live run
    holds it; a crashed run's record is marked ``failed`` (audited as ``{what}_crashed``)."""
    now = utc_now()
    file_name = clean_text(file_name, "file name") or "-"
    postgres = connection.dialect.name == "postgresql"
    with connection.begin():
        if (
            postgres
            and not connection.execute(
                sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": lock_key(runs, sha256)}
            ).scalar()
        ):
            running = _running(connection, runs, sha256)
            holder = f"batch {running['id']}" if running is not None else "planning"
            raise Refused(f"batch already running for {file_name} ({holder})")
        running = _running(connection, runs, sha256)
        if running is not None:
            if not postgres and runner_alive(running, now):
                raise Refused(
                    f"batch already running for {file_name} (batch {running['id']}, "
                    f"runner {running['runner']})"
                )
            _mark_crashed(connection, runs, running, operator=operator, what=what, now=now)
        return int(
            connection.execute(
                runs.insert()
                .values(
                    file_name=file_name,
                    file_sha256=sha256,
                    state="running",
                    operator=operator,
                    runner=f"{os.getpid()}@{socket.gethostname()}"[:200],
                    started_at=now,
                    heartbeat_at=now,
                    **(values or {}),
                )
                .returning(runs.c.id)
            ).scalar_one()
        )


def release_file(connection: Connection, runs: sa.Table, sha256: str) -> None:
    """Give the claim back (PostgreSQL's advisory lock; SQLite's is the record's state)."""
    if connection.dialect.name == "postgresql" and not connection.closed:
        with connection.begin():
            connection.execute(
                sa.text("SELECT pg_advisory_unlock(:key)"), {"key": lock_key(runs, sha256)}
            )


def finish_run(connection: Connection, runs: sa.Table, run_id: int, *, state: str) -> None:
    connection.execute(
        runs.update().where(runs.c.id == run_id).values(state=state, finished_at=utc_now())
    )


def lock_key(runs: sa.Table, sha256: str) -> int:
    """The advisory lock of (the kind of run, the file): 60 bits of their hash."""
    digest = hashlib.sha256(f"{runs.name}:{sha256}".encode()).hexdigest()
    return int(digest[:15], 16)


def shown_state(connection: Connection, runs: sa.Table, row: RowMapping, now: datetime) -> str:
    """``crashed`` is derived: a ``running`` record whose runner is gone (its advisory lock is
    free on PostgreSQL, its process dead on SQLite). The next run of its file finishes it."""
    if row["state"] != "running":
        return str(row["state"])
    if connection.dialect.name == "postgresql":
        key = {"key": lock_key(runs, row["file_sha256"])}
        if connection.execute(sa.text("SELECT pg_try_advisory_lock(:key)"), key).scalar():
            connection.execute(sa.text("SELECT pg_advisory_unlock(:key)"), key)
            return "crashed"
        return "running"
    return "running" if runner_alive(row, now) else "crashed"


def runner_alive(run: RowMapping, now: datetime) -> bool:
    """SQLite: whether the process named by a running record's ``pid@host`` still runs."""
    pid_text, _, host = (run["runner"] or "").partition("@")
    if host != socket.gethostname() or not pid_text.isdigit():
        heartbeat = run["heartbeat_at"] or run["started_at"]
        return bool(now - heartbeat < STALE_AFTER)
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is dead
    except OSError:
        return True


def _running(connection: Connection, runs: sa.Table, sha256: str) -> RowMapping | None:
    return (
        connection.execute(
            sa.select(runs).where(runs.c.file_sha256 == sha256, runs.c.state == "running")
        )
        .mappings()
        .first()
    )


def _mark_crashed(
    connection: Connection,
    runs: sa.Table,
    running: RowMapping,
    *,
    operator: str,
    what: str,
    now: datetime,
) -> None:
    connection.execute(
        runs.update().where(runs.c.id == running["id"]).values(state="failed", finished_at=now)
    )
    record_audit(
        connection,
        operator=operator,
        action=f"{what}_crashed",
        target=f"batch:{running['id']}",
        now=now,
        details={"runner": running["runner"], "file": running["file_name"]},
    )
