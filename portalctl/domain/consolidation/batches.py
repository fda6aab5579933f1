"""Consolidation batches: one record per run of a file, claimed before the file is planned
(``file_claims``: one run of a file at a time, a crashed run never blocks the re-run that
finishes it), with the counts every chunk keeps up to date."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from portalctl.core.clock import utc_now
from portalctl.core.errors import NotFound
from portalctl.core.fields import refuse_impossible_id
from portalctl.core.schema import consolidation_batches, consolidations
from portalctl.domain.audit import record_audit
from portalctl.domain.consolidation.plan import ConsolidationPlan
from portalctl.domain.file_claims import (
    claim_file,
    finish_run,
    release_file,
    shown_state,
)

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
    """A ``running`` record for this file (``file_claims``), or ``Refused`` while another live
    run holds it."""
    return claim_file(
        connection,
        consolidation_batches,
        file_name=file_name,
        sha256=sha256,
        operator=operator,
        what="consolidation.batch",
        values={"rows_total": 0, "merged": 0, "already_merged": 0, "invalid": 0, "refused": 0},
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
    finish_run(connection, consolidation_batches, batch_id, state=state)


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
    release_file(connection, consolidation_batches, sha256)


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
        | {"state": shown_state(connection, consolidation_batches, row, now)}
        for row in rows
    ]


def show_batch(connection: Connection, batch_id: int) -> dict[str, Any]:
    """One batch's record, with its runner, heartbeat and recorded merges."""
    refuse_impossible_id(batch_id, "consolidation batch")
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
            "state": shown_state(connection, consolidation_batches, row, utc_now()),
            "file_sha256": row["file_sha256"],
            "runner": row["runner"],
            "heartbeat_at": row["heartbeat_at"],
            "consolidations_recorded": recorded,
        }
    )
    return record
