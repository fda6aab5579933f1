"""``consolidate run``: a whole file of merges, validated and planned first, then applied in
resumable chunks under a batch record, with a per-row report (SPEC section 5)."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection, Engine

from portalctl.core.clock import utc_now
from portalctl.core.csvio import OutputFile, open_output_file
from portalctl.core.errors import InvalidInput, PartlyApplied
from portalctl.core.render import escape_formula
from portalctl.core.staging import bulk_connection, reading_phase, tune_for_bulk_work
from portalctl.core.wal_checkpoints import checkpoints_in_background
from portalctl.domain.consolidation.apply import apply_next_chunk, keys_checked_by_chunks
from portalctl.domain.consolidation.batches import (
    abandon_batch,
    batch_counts,
    claim_batch,
    finish_batch,
    release_batch,
    start_batch,
)
from portalctl.domain.consolidation.plan import (
    ConsolidationPlan,
    create_stage,
    plan_staged,
    stage_file,
    stage_report_rows,
)

REPORT_COLUMNS = ["line", "primary_username", "secondary_username", "outcome", "detail"]
DEFAULT_CHUNK_SIZE = 10_000
Progress = Callable[[int, int], None]


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
    it in chunks of about ``chunk_size`` rows under a batch record; the run's summary. Rows not
    applied with ``skip_invalid``: ``PartlyApplied`` carrying the summary, after the report."""
    if chunk_size < 1:
        raise InvalidInput("--chunk-size must be at least 1")
    report = open_output_file(report_path) if report_path is not None else None
    try:
        with bulk_connection(engine) as connection:
            with reading_phase(connection):
                tune_for_bulk_work(connection)
                create_stage(connection, keep_after_commit=True)
                source, sha256 = stage_file(connection, path)
            batch_id = None
            if not dry_run:
                batch_id = claim_batch(
                    connection, file_name=Path(source).name, sha256=sha256, operator=operator
                )
            try:
                summary = _plan_and_apply(
                    connection,
                    source,
                    batch_id,
                    operator=operator,
                    skip_invalid=skip_invalid,
                    chunk_size=chunk_size,
                    notify=notify,
                    progress=progress,
                    report=report,
                )
            finally:
                if batch_id is not None:
                    release_batch(connection, sha256)
    finally:
        if report is not None:
            report.close()
    if summary["invalid"] or summary["refused"]:
        raise PartlyApplied(
            f"{summary['invalid'] + summary['refused']} row(s) not applied"
            + (f"; see {report_path}" if report_path else "; use --report to list them"),
            record=summary,
        )
    return summary


def _plan_and_apply(
    connection: Connection,
    source: str,
    batch_id: int | None,
    *,
    operator: str,
    skip_invalid: bool,
    chunk_size: int,
    notify: bool,
    progress: Progress | None,
    report: OutputFile | None,
) -> dict[str, Any]:
    with connection.begin():
        plan = plan_staged(connection, source=source)
    if batch_id is None or (plan.bad_rows and not skip_invalid):
        if batch_id is not None:
            abandon_batch(connection, batch_id)
        if report is not None:
            write_report(connection, report, applied=False)
        _refuse_bad_rows(plan, skip_invalid=skip_invalid, dry_run=batch_id is None)
        return _dry_run_summary(plan)
    start_batch(connection, batch_id, plan=plan, operator=operator)
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
        if not connection.closed and not connection.invalidated:
            connection.rollback()
            with connection.begin():
                finish_batch(connection, batch_id, state="failed")
        raise
    if report is not None:
        write_report(connection, report, applied=True)
    return {"batch_id": batch_id, **counts, "dry_run": False}


def _refuse_bad_rows(plan: ConsolidationPlan, *, skip_invalid: bool, dry_run: bool) -> None:
    if plan.bad_rows and not skip_invalid:
        more = plan.bad_rows - len(plan.problems)
        raise InvalidInput(
            f"{plan.source}: {plan.bad_rows} of {plan.rows} rows cannot be applied, nothing was "
            "written" + (" (dry run)" if dry_run else "") + f"; first: {plan.problems[0]}",
            details=plan.problems + ([f"... and {more} more"] if more > 0 else []),
        )


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


def write_report(connection: Connection, report: OutputFile, *, applied: bool) -> None:
    """The report of SPEC section 5, streamed from the stage, cells escaped against formulas."""
    writer = csv.writer(report.stream, lineterminator="\n")
    writer.writerow(REPORT_COLUMNS)
    with connection.begin():
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
