"""``accounts import``: validate a whole CSV, stage it, and load it with set-based SQL in one
transaction (SPEC section 5): every row or none, unless ``skip_invalid`` applies the good rows
and leaves the bad ones in the report and the failed-rows file."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from portalctl.core.clock import utc_now
from portalctl.core.csvio import (
    CsvErrors,
    FailedRows,
    OutputFile,
    open_csv_hashed,
    open_output_file,
    read_csv,
)
from portalctl.core.database import retrying_conflicts, unique_violation
from portalctl.core.errors import InvalidInput, PartlyApplied, Refused
from portalctl.core.fields import clean_text
from portalctl.core.render import escape_formula
from portalctl.core.schema import account_imports
from portalctl.core.staging import (
    bulk_connection,
    create_staging_table,
    load_rows,
    reading_phase,
    tune_for_bulk_work,
)
from portalctl.domain.account_import_rows import (
    OPTIONAL,
    REQUIRED,
    STAGE_COLUMNS,
    RowProblems,
    staged_rows,
)
from portalctl.domain.account_import_sql import (
    BULK_LINKS,
    STAGE,
    apply_stage,
    check_repeated_usernames,
    check_taken_usernames,
    staged_accounts,
    unstage_invalid_rows,
)
from portalctl.domain.audit import record_audit

REPORT_COLUMNS = ["line", "username", "outcome", "detail"]
Progress = Callable[[int, int | None], None]


@dataclass(frozen=True)
class ImportOptions:
    dry_run: bool = False
    skip_invalid: bool = False
    report_path: str | Path | None = None
    failed_rows_path: str | Path | None = None


def import_accounts_csv(
    engine: Engine,
    path: str | Path,
    *,
    operator: str,
    options: ImportOptions = ImportOptions(),
    now: datetime | None = None,
    bulk_links: int = BULK_LINKS,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Import every row or none. The file is read, checked row by row and staged, and checked
    whole in SQL, in a transaction that takes no write lock on SQLite; then, under the lock,
    usernames are checked again (another writer may have taken one meanwhile) and the rows go
    in by a few set-based statements, retried if PostgreSQL picks them as a deadlock victim.
    The report and failed-rows files are opened first: a path that cannot be written is
    invalid input while nothing has been done."""
    now = now or utc_now()
    report = open_output_file(options.report_path) if options.report_path else None
    failed = (
        FailedRows(open_output_file(options.failed_rows_path))
        if (options.failed_rows_path)
        else None
    )
    try:
        with bulk_connection(engine) as connection:
            with reading_phase(connection):
                tune_for_bulk_work(connection)
                source, sha256, problems = _stage_file(connection, path, options, failed, progress)
            if options.dry_run:
                with connection.begin():
                    would = _count_accounts(connection)
                summary = _summary(source, problems, dry_run=True, counts=None, would=would)
            else:
                summary = _apply_staged(
                    connection,
                    source,
                    sha256,
                    problems,
                    operator=operator,
                    now=now,
                    bulk_links=bulk_links,
                )
            if report is not None:
                _write_report(connection, report, problems, applied=not options.dry_run)
    finally:
        for output in (report, failed):
            if output is not None:
                output.close()
    if summary["invalid"]:
        raise PartlyApplied(
            f"{summary['invalid']} row(s) not imported"
            + (f"; see {options.report_path}" if options.report_path else ""),
            record=summary,
        )
    return summary


def _stage_file(
    connection: Connection,
    path: str | Path,
    options: ImportOptions,
    failed: FailedRows | None,
    progress: Progress | None,
) -> tuple[str, str, RowProblems]:
    """Read and stage the whole file, every row checked; (its name, SHA-256, its problems). A
    file already imported is refused as such rather than by the usernames it has taken."""
    stream, source, hashed = open_csv_hashed(path)
    problems = RowProblems(
        CsvErrors(source),
        skip_invalid=options.skip_invalid,
        keep_all=options.report_path is not None,
        failed_rows=failed,
    )
    create_staging_table(connection, STAGE, STAGE_COLUMNS, keep_after_commit=True)
    with stream, ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as hashers:
        header = failed.keep_header if failed is not None else None
        records = read_csv(stream, source, required=REQUIRED, optional=OPTIONAL, on_header=header)
        rows = staged_rows(records, problems, hashers, progress)
        load_rows(connection, STAGE, [c for c, _ in STAGE_COLUMNS], rows)
    sha256 = hashed.hexdigest()
    _refuse_imported_before(connection, source, sha256)
    check_repeated_usernames(connection, problems)
    check_taken_usernames(connection, problems)
    if not options.skip_invalid and problems.errors.count:
        if failed is not None:  # refused whole: every row of the file was not applied
            for line, raw in connection.exec_driver_sql(
                f"SELECT line, raw FROM {STAGE} WHERE kind = 'a'"
            ):
                failed.add(line, tuple(json.loads(raw)))
        problems.errors.raise_if_any()
    unstage_invalid_rows(connection, problems)
    if not _count_accounts(connection) and not problems.errors.count:
        raise InvalidInput(f"{source}: no rows")
    return source, sha256, problems


def _apply_staged(
    connection: Connection,
    source: str,
    sha256: str,
    problems: RowProblems,
    *,
    operator: str,
    now: datetime,
    bulk_links: int,
) -> dict[str, Any]:
    def apply() -> dict[str, int]:
        taken = RowProblems(CsvErrors(source))
        check_taken_usernames(connection, taken)
        taken.errors.raise_if_any()
        try:
            counts = apply_stage(connection, operator=operator, now=now, bulk_links=bulk_links)
        except sa.exc.IntegrityError as error:
            if unique_violation(error) != "accounts_username_key":
                raise
            raise InvalidInput(
                f"{source}: a username in the file was taken while it was being imported; "
                "nothing was written: run it again to see which"
            ) from None
        rows = counts["accounts_created"] + problems.errors.count
        connection.execute(
            account_imports.insert().values(
                file_name=clean_text(Path(source).name, "file name") or "-",
                file_sha256=sha256,
                rows_total=rows,
                accounts_created=counts["accounts_created"],
                operator=operator,
                imported_at=now,
            )
        )
        record_audit(
            connection,
            operator=operator,
            action="account.import_file",
            target=f"file:{Path(source).name}",
            now=now,
            details={
                "file": source,
                "sha256": sha256,
                "rows": rows,
                "invalid": problems.errors.count,
                **counts,
            },
        )
        return counts

    counts = retrying_conflicts(connection, apply, what="accounts import")
    return _summary(source, problems, dry_run=False, counts=counts)


def _summary(
    source: str,
    problems: RowProblems,
    *,
    dry_run: bool,
    counts: dict[str, int] | None,
    would: int = 0,
) -> dict[str, Any]:
    summary: dict[str, Any] = {"file": source}
    if counts is None:
        summary["would_create"] = would
    else:
        summary.update(counts)
    summary.update({"invalid": problems.errors.count, "dry_run": dry_run})
    return summary


def _count_accounts(connection: Connection) -> int:
    count: int = connection.exec_driver_sql(
        f"SELECT COUNT(*) FROM {STAGE} WHERE kind = 'a'"
    ).scalar_one()
    return count


def _refuse_imported_before(connection: Connection, source: str, sha256: str) -> None:
    earlier = connection.execute(
        sa.select(account_imports)
        .where(account_imports.c.file_sha256 == sha256)
        .order_by(account_imports.c.id)
        .limit(1)
    ).first()
    if earlier is not None:
        raise Refused(
            f"{source} was already imported ({earlier.imported_at:%Y-%m-%d %H:%M}Z by "
            f"{earlier.operator}, {earlier.accounts_created} accounts): nothing was written"
        )


def _write_report(
    connection: Connection, report: OutputFile, problems: RowProblems, *, applied: bool
) -> None:
    """``line,username,outcome,detail`` for every row, in line order; cells escaped against
    formulas."""
    rows: list[tuple[int, str, str, str]] = [
        (line, username or "", "invalid", message)
        for line, (username, message) in problems.by_line.items()
    ]
    with connection.begin():
        outcome = "created" if applied else "would_create"
        rows += [(line, username, outcome, "") for line, username in staged_accounts(connection)]
    writer = csv.writer(report.stream, lineterminator="\n")
    writer.writerow(REPORT_COLUMNS)
    for line, username, outcome, detail in sorted(rows):
        writer.writerow([line, escape_formula(username), outcome, escape_formula(detail)])
