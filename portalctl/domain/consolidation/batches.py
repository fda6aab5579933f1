"""Consolidation batches: one record per applied file, at most one run per file at a time, and
a crashed run (kill -9, lost connection) never blocks the re-run that finishes it.

A run claims its file before planning, so the second of two runs of one file is refused at
once instead of planning against a moving state. On PostgreSQL the claim is a session advisory
lock on the file's hash, which the server drops with a dead process's connection; on SQLite it
is the ``running`` record itself, whose runner (pid@host) is checked for life.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from portalctl.core.clock import utc_now
from portalctl.core.errors import NotFound, Refused
from portalctl.core.fields import clean_text
from portalctl.core.schema import consolidation_batches, consolidations
from portalctl.domain.audit import record_audit
from portalctl.domain.consolidation.plan import ConsolidationPlan

# A run on another host is presumed alive until its heartbeat (one per chunk) is this old.
STALE_AFTER = timedelta(minutes=30)
BATCH_COLUMNS = [
    "id",
    "file_name",
    "state",
    "rows_total",
    "merged",
    "already_merged",
    "invalid",
    "refused",
    "operator",
    "started_at",
    "finished_at",
]
_B = consolidation_batches.c


def claim_batch(connection: Connection, *, file_name: str, sha256: str, operator: str) -> int:
    """A ``running`` record for this file, or ``Refused`` while another live run holds it. A
    crashed run's record is marked ``failed`` (audited) and this run finishes its file."""
    now = utc_now()
    file_name = clean_text(file_name, "file name") or "-"
    postgres = connection.dialect.name == "postgresql"
    with connection.begin():
        if (
            postgres
            and not connection.execute(
                sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": _lock_key(sha256)}
            ).scalar()
        ):
            raise Refused(f"batch already running for {file_name} ({_holder(connection, sha256)})")
        running = _running(connection, sha256)
        if running is not None:
            if not postgres and _runner_alive(running, now):
                raise Refused(
                    f"batch already running for {file_name} (batch {running['id']}, "
                    f"runner {running['runner']})"
                )
            _mark_crashed(connection, running, operator=operator, file_name=file_name, now=now)
        return int(
            connection.execute(
                consolidation_batches.insert()
                .values(
                    file_name=file_name,
                    file_sha256=sha256,
                    state="running",
                    rows_total=0,
                    merged=0,
                    already_merged=0,
                    invalid=0,
                    refused=0,
                    operator=operator,
                    runner=f"{os.getpid()}@{socket.gethostname()}"[:200],
                    started_at=now,
                    heartbeat_at=now,
                )
                .returning(_B.id)
            ).scalar_one()
        )


def start_batch(
    connection: Connection, batch_id: int, *, plan: ConsolidationPlan, operator: str
) -> None:
    """The claimed batch starts applying its plan: its counts so far, and the audit record."""
    now = utc_now()
    with connection.begin():
        batch = connection.execute(sa.select(consolidation_batches).where(_B.id == batch_id)).one()
        connection.execute(
            consolidation_batches.update()
            .where(_B.id == batch_id)
            .values(
                rows_total=plan.rows,
                already_merged=plan.count("already_merged"),
                invalid=plan.count("invalid"),
                refused=plan.count("refused"),
                heartbeat_at=now,
            )
        )
        record_audit(
            connection,
            operator=operator,
            action="consolidation.batch_start",
            target=f"batch:{batch_id}",
            now=now,
            details={"file": batch.file_name, "sha256": batch.file_sha256, "rows": plan.rows},
        )


def abandon_batch(connection: Connection, batch_id: int) -> None:
    """A claim whose plan was refused before anything was applied leaves no record."""
    with connection.begin():
        connection.execute(consolidation_batches.delete().where(_B.id == batch_id))


def finish_batch(connection: Connection, batch_id: int, *, state: str) -> None:
    connection.execute(
        consolidation_batches.update()
        .where(_B.id == batch_id)
        .values(state=state, finished_at=utc_now())
    )


def batch_counts(connection: Connection, batch_id: int) -> dict[str, int]:
    """The batch's rows by outcome, kept up to date by every chunk (the run's summary)."""
    row = connection.execute(
        sa.select(_B.rows_total, _B.merged, _B.already_merged, _B.invalid, _B.refused).where(
            _B.id == batch_id
        )
    ).one()
    return {
        "rows": row.rows_total,
        "merged": row.merged,
        "already_merged": row.already_merged,
        "invalid": row.invalid,
        "refused": row.refused,
    }


def release_batch(connection: Connection, sha256: str) -> None:
    if connection.dialect.name == "postgresql" and not connection.closed:
        with connection.begin():
            connection.execute(
                sa.text("SELECT pg_advisory_unlock(:key)"), {"key": _lock_key(sha256)}
            )


def _lock_key(sha256: str) -> int:
    return int(sha256[:15], 16)


def _running(connection: Connection, sha256: str) -> RowMapping | None:
    return (
        connection.execute(
            sa.select(consolidation_batches).where(_B.file_sha256 == sha256, _B.state == "running")
        )
        .mappings()
        .first()
    )


def _holder(connection: Connection, sha256: str) -> str:
    running = _running(connection, sha256)
    return f"batch {running['id']}" if running is not None else "planning"


def _mark_crashed(
    connection: Connection, running: RowMapping, *, operator: str, file_name: str, now: datetime
) -> None:
    connection.execute(
        consolidation_batches.update()
        .where(_B.id == running["id"])
        .values(state="failed", finished_at=now)
    )
    record_audit(
        connection,
        operator=operator,
        action="consolidation.batch_crashed",
        target=f"batch:{running['id']}",
        now=now,
        details={"runner": running["runner"], "file": file_name},
    )


def _runner_alive(batch: RowMapping, now: datetime) -> bool:
    """SQLite: whether the process named by a running batch's ``pid@host`` still runs."""
    pid_text, _, host = (batch["runner"] or "").partition("@")
    if host != socket.gethostname() or not pid_text.isdigit():
        heartbeat = batch["heartbeat_at"] or batch["started_at"]
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


def _shown_state(connection: Connection, row: RowMapping, now: datetime) -> str:
    """``crashed`` is derived: a ``running`` batch whose runner is gone (its advisory lock is
    free on PostgreSQL, its process dead on SQLite). The next run of its file finishes it."""
    if row["state"] != "running":
        return str(row["state"])
    if connection.dialect.name == "postgresql":
        key = {"key": _lock_key(row["file_sha256"])}
        if connection.execute(sa.text("SELECT pg_try_advisory_lock(:key)"), key).scalar():
            connection.execute(sa.text("SELECT pg_advisory_unlock(:key)"), key)
            return "crashed"
        return "running"
    return "running" if _runner_alive(row, now) else "crashed"


def list_batches(connection: Connection, *, limit: int = 50) -> list[dict[str, Any]]:
    """The newest batches first, with their state and counts."""
    now = utc_now()
    rows = (
        connection.execute(sa.select(consolidation_batches).order_by(_B.id.desc()).limit(limit))
        .mappings()
        .all()
    )
    return [
        {column: row[column] for column in BATCH_COLUMNS}
        | {"state": _shown_state(connection, row, now)}
        for row in rows
    ]


def show_batch(connection: Connection, batch_id: int) -> dict[str, Any]:
    """One batch's record, with its runner, heartbeat and recorded merges."""
    row = (
        connection.execute(sa.select(consolidation_batches).where(_B.id == batch_id))
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"no consolidation batch {batch_id}")
    recorded = connection.execute(
        sa.select(sa.func.count())
        .select_from(consolidations)
        .where(consolidations.c.batch_id == batch_id)
    ).scalar_one()
    record = {column: row[column] for column in BATCH_COLUMNS}
    record.update(
        {
            "state": _shown_state(connection, row, utc_now()),
            "file_sha256": row["file_sha256"],
            "runner": row["runner"],
            "heartbeat_at": row["heartbeat_at"],
            "consolidations_recorded": recorded,
        }
    )
    return record
