"""Consolidation batches: one record per applied file, at most one ``running`` per file, and a
crashed run (kill -9, lost connection) never blocks the re-run that finishes it."""

from __future__ import annotations

import os
import socket
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from portalctl.core.clock import utc_now
from portalctl.core.errors import NotFound, Refused
from portalctl.core.schema import consolidation_batches, consolidations
from portalctl.domain.audit import record_audit

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


def start_batch(connection: Connection, *, file_name: str, sha256: str, plan, operator: str) -> int:
    """Record a running batch for this file, or refuse (exit 4) while another run holds it.

    On PostgreSQL the holder keeps a session advisory lock on the file's hash, which the server
    drops with a dead process's connection; on SQLite the runner's pid@host is checked."""
    now = utc_now()
    postgres = connection.dialect.name == "postgresql"
    with connection.begin():
        if (
            postgres
            and not connection.execute(
                sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": _lock_key(sha256)}
            ).scalar()
        ):
            holder = _describe_running(connection, sha256)
            raise Refused(f"batch already running for {file_name} ({holder})")
        running = (
            connection.execute(
                sa.select(consolidation_batches).where(
                    consolidation_batches.c.file_sha256 == sha256,
                    consolidation_batches.c.state == "running",
                )
            )
            .mappings()
            .first()
        )
        if running is not None:
            if not postgres and _runner_alive(running, now):
                raise Refused(
                    f"batch already running for {file_name} (batch {running['id']}, "
                    f"runner {running['runner']})"
                )
            connection.execute(
                consolidation_batches.update()
                .where(consolidation_batches.c.id == running["id"])
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
        batch_id = connection.execute(
            consolidation_batches.insert()
            .values(
                file_name=file_name,
                file_sha256=sha256,
                state="running",
                rows_total=plan.rows,
                merged=0,
                already_merged=plan.count("already_merged"),
                invalid=plan.count("invalid"),
                refused=plan.count("refused"),
                operator=operator,
                runner=f"{os.getpid()}@{socket.gethostname()}"[:200],
                started_at=now,
                heartbeat_at=now,
            )
            .returning(consolidation_batches.c.id)
        ).scalar_one()
        record_audit(
            connection,
            operator=operator,
            action="consolidation.batch_start",
            target=f"batch:{batch_id}",
            now=now,
            details={"file": file_name, "sha256": sha256, "rows": plan.rows},
        )
    return batch_id


def finish_batch(connection: Connection, batch_id: int, *, state: str) -> None:
    connection.execute(
        consolidation_batches.update()
        .where(consolidation_batches.c.id == batch_id)
        .values(state=state, finished_at=utc_now())
    )


def batch_counts(connection: Connection, batch_id: int) -> dict[str, int]:
    """The batch's rows by outcome, kept up to date by every chunk (the run's summary)."""
    row = connection.execute(
        sa.select(
            consolidation_batches.c.rows_total,
            consolidation_batches.c.merged,
            consolidation_batches.c.already_merged,
            consolidation_batches.c.invalid,
            consolidation_batches.c.refused,
        ).where(consolidation_batches.c.id == batch_id)
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


def _describe_running(connection: Connection, sha256: str) -> str:
    batch_id = connection.execute(
        sa.select(consolidation_batches.c.id).where(
            consolidation_batches.c.file_sha256 == sha256,
            consolidation_batches.c.state == "running",
        )
    ).scalar()
    return f"batch {batch_id}" if batch_id else "starting"


def _runner_alive(batch, now) -> bool:
    pid_text, _, host = (batch["runner"] or "").partition("@")
    if host != socket.gethostname() or not pid_text.isdigit():
        heartbeat = batch["heartbeat_at"] or batch["started_at"]
        return now - heartbeat < STALE_AFTER
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


def list_batches(connection: Connection, *, limit: int = 50) -> list[dict[str, Any]]:
    """The newest batches first, with their state and counts."""
    rows = (
        connection.execute(
            sa.select(consolidation_batches)
            .order_by(consolidation_batches.c.id.desc())
            .limit(limit)
        )
        .mappings()
        .all()
    )
    return [{column: row[column] for column in BATCH_COLUMNS} for row in rows]


def show_batch(connection: Connection, batch_id: int) -> dict[str, Any]:
    """One batch's record, with its runner, heartbeat and recorded merges."""
    row = (
        connection.execute(
            sa.select(consolidation_batches).where(consolidation_batches.c.id == batch_id)
        )
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
            "file_sha256": row["file_sha256"],
            "runner": row["runner"],
            "heartbeat_at": row["heartbeat_at"],
            "consolidations_recorded": recorded,
        }
    )
    return record
