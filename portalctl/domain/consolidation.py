"""Account consolidation (SPEC section 1): one merge, a whole file in resumable chunks, and the
batches' status. Planning is in ``consolidation_plan``, the per-chunk SQL in
``consolidation_apply``, batch bookkeeping in ``consolidation_batches``."""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from portalctl.core.clock import utc_now
from portalctl.core.csvio import open_input_file
from portalctl.core.errors import InvalidInput, NotFound, Refused
from portalctl.core.render import escape_formula
from portalctl.core.staging import tune_for_bulk_work
from portalctl.core.tin import Tin
from portalctl.core.wal_checkpoints import checkpoints_in_background
from portalctl.domain.consolidation_apply import (
    apply_chunk,
    apply_next_chunk,
    keys_checked_by_chunks,
)
from portalctl.domain.consolidation_batches import (
    batch_counts,
    finish_batch,
    release_batch,
    start_batch,
)
from portalctl.domain.consolidation_plan import (
    STAGE,
    ConsolidationPlan,
    create_stage,
    drop_stage,
    plan_staged,
    stage_file,
    stage_pairs,
    stage_report_rows,
)

REPORT_COLUMNS = ["line", "primary_username", "secondary_username", "outcome", "detail"]
DEFAULT_CHUNK_SIZE = 10_000
_ERRORS = {3: NotFound, 4: Refused, 5: InvalidInput}
Progress = Callable[[int, int], None]


def consolidate_one(
    connection: Connection,
    *,
    operator: str,
    primary: str,
    secondary: str,
    tin: Tin | None = None,
    dry_run: bool = False,
    notify: bool = False,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Merge one account into another under every rule of SPEC section 1; what moved."""
    now = now or utc_now()
    create_stage(connection, keep_after_commit=False)
    stage_pairs(connection, [(primary.strip(), secondary.strip(), tin.reveal() if tin else None)])
    plan_staged(connection, source="consolidate one")
    row = _stage_row(connection)
    _raise_for_problem(row)
    links = [
        {"tin": Tin(tin_), "role": role}
        for tin_, role in connection.execute(
            sa.text("SELECT tin, role FROM account_tins WHERE account_id = :id ORDER BY tin"),
            {"id": row["secondary_id"]},
        ).all()
    ]
    if row["outcome"] is None and not dry_run:
        apply_chunk(
            connection,
            lo=row["primary_id"],
            hi=row["primary_id"],
            batch_id=None,
            operator=operator,
            now=now,
            notify=notify,
        )
        row = _stage_row(connection)
        _raise_for_problem(row)
    drop_stage(connection)
    outcome = row["outcome"] or ("would_merge" if dry_run else "merged")
    return {
        "primary": row["primary_username"],
        "secondary": row["secondary_username"],
        "outcome": outcome,
        "detail": row["detail"],
        "dry_run": dry_run,
        "links_moved": links if outcome != "already_merged" else [],
    }


def _stage_row(connection: Connection):
    return connection.execute(sa.text(f"SELECT * FROM {STAGE}")).mappings().one()


def _raise_for_problem(row) -> None:
    if row["outcome"] in ("invalid", "refused"):
        raise _ERRORS.get(row["code"], Refused)(row["detail"])


def run_consolidation_file(
    engine: Engine,
    path: str | Path,
    *,
    operator: str,
    dry_run: bool = False,
    skip_invalid: bool = False,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    notify: bool = False,
    report_path: str | Path | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Plan the whole file, then (unless a dry run, or a bad row without ``skip_invalid``) apply
    it in chunks of about ``chunk_size`` rows under a batch record; returns the run summary."""
    if chunk_size < 1:
        raise InvalidInput("--chunk-size must be at least 1")
    sha256 = _file_sha256(path)
    with engine.connect() as connection:
        try:
            with connection.begin():
                tune_for_bulk_work(connection)
                create_stage(connection, keep_after_commit=True)
                source = stage_file(connection, path)
                plan = plan_staged(connection, source=source)
            if plan.bad_rows and not skip_invalid or dry_run:
                return _stop_before_applying(
                    connection,
                    plan,
                    dry_run=dry_run,
                    skip_invalid=skip_invalid,
                    report_path=report_path,
                )
            batch_id = start_batch(
                connection, file_name=Path(source).name, sha256=sha256, plan=plan, operator=operator
            )
            try:
                _apply_all(
                    connection,
                    plan,
                    batch_id=batch_id,
                    operator=operator,
                    chunk_size=chunk_size,
                    notify=notify,
                    progress=progress,
                )
                with connection.begin():
                    finish_batch(connection, batch_id, state="completed")
                    counts = batch_counts(connection, batch_id)
            except BaseException:
                if not connection.closed:
                    connection.rollback()
                    with connection.begin():
                        finish_batch(connection, batch_id, state="failed")
                raise
            finally:
                release_batch(connection, sha256)
            if report_path is not None:
                write_report(connection, report_path, applied=True)
            return {"batch_id": batch_id, **counts, "dry_run": False}
        finally:
            # The stage goes with the connection: closing it drops the temporary tables at once
            # (DROP TABLE of a 1,000,000-row stage takes a third of a second on SQLite).
            if not connection.closed:
                connection.invalidate()


def _stop_before_applying(
    connection: Connection,
    plan: ConsolidationPlan,
    *,
    dry_run: bool,
    skip_invalid: bool,
    report_path,
) -> dict[str, Any]:
    if report_path is not None:
        write_report(connection, report_path, applied=False)
    if plan.bad_rows and not skip_invalid:
        more = plan.bad_rows - len(plan.problems)
        raise InvalidInput(
            f"{plan.source}: {plan.bad_rows} of {plan.rows} rows cannot be applied, nothing was "
            f"written" + (" (dry run)" if dry_run else "") + f"; first: {plan.problems[0]}",
            details=plan.problems + ([f"... and {more} more"] if more > 0 else []),
        )
    return _dry_run_summary(plan)


def _apply_all(
    connection: Connection,
    plan: ConsolidationPlan,
    *,
    batch_id: int,
    operator: str,
    chunk_size: int,
    notify: bool,
    progress: Progress | None,
) -> None:
    total = plan.count("would_merge")
    done, start = 0, 0
    with (
        keys_checked_by_chunks(connection),
        checkpoints_in_background(connection) as between_chunks,
    ):
        while chunk := apply_next_chunk(
            connection,
            start=start,
            size=chunk_size,
            batch_id=batch_id,
            operator=operator,
            now_fn=utc_now,
            notify=notify,
        ):
            end, counts = chunk
            done += sum(counts.values())
            if progress:
                progress(done, total)
            start = end + 1
            between_chunks()


def _dry_run_summary(plan: ConsolidationPlan) -> dict[str, Any]:
    return {
        "batch_id": None,
        "rows": plan.rows,
        "merged": 0,
        "already_merged": plan.count("already_merged"),
        "invalid": plan.count("invalid"),
        "refused": plan.count("refused"),
        "dry_run": True,
        "would_merge": plan.count("would_merge"),
    }


def write_report(connection: Connection, path: str | Path, *, applied: bool) -> None:
    """The report of SPEC section 5, streamed from the stage, cells escaped against formulas."""
    with connection.begin(), open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(REPORT_COLUMNS)
        for line, primary, secondary, outcome, detail in stage_report_rows(
            connection, applied=applied
        ):
            writer.writerow(
                [
                    line,
                    escape_formula(primary or ""),
                    escape_formula(secondary or ""),
                    outcome,
                    escape_formula(detail or ""),
                ]
            )


def _file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open_input_file(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
