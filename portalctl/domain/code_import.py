"""``codes issue --csv``: a registration code for every row of a credentialing file (SPEC 5).

The file is read, validated whole and staged first, without taking SQLite's write lock (a bad
row: exit 5, nothing written). Its run is then claimed (one run of a file at a time) and applied
in chunks of rows, each one transaction with a fixed set of statements. Every code records its
run and line, so a file is issued once however often it runs: rows an earlier run of the same
file issued are ``already_issued``, and a re-run after a crash issues exactly the rest. Codes
are generated and encrypted in Python (never in clear in the database), HMACs staged.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from portalctl.core.clock import utc_now
from portalctl.core.config import Settings
from portalctl.core.csvio import (
    CsvErrors,
    CsvRecord,
    FailedRows,
    open_csv_hashed,
    open_output_file,
    read_csv,
)
from portalctl.core.errors import InvalidInput, PartlyApplied, PortalError
from portalctl.core.fields import clean_text
from portalctl.core.schema import code_batches
from portalctl.core.secrets import code_hmac, encrypt_secret, generate_code
from portalctl.core.staging import bulk_connection, create_staging_table, load_rows, reading_phase
from portalctl.core.tin import Tin
from portalctl.domain.code_issue_chunks import STAGE, issue_claimed
from portalctl.domain.file_claims import claim_file, release_file
from portalctl.domain.outbox import new_message_id
from portalctl.domain.validation import clean_email, clean_name

REQUIRED = ("tin", "admin_name", "admin_email")
OPTIONAL = ("provider_name", "org_name")
DEFAULT_CHUNK_SIZE = 10_000
_STAGE_COLUMNS = [
    ("line", "INTEGER"),
    ("tin", "CHAR(9)"),
    ("admin_name", "VARCHAR(200)"),
    ("admin_email", "VARCHAR(254)"),
    ("provider_name", "VARCHAR(200)"),
    ("org_name", "VARCHAR(200)"),
    ("code_hmac", "CHAR(64)"),
    ("secret_ciphertext", "TEXT"),
    ("message_id", "VARCHAR(250)"),
    ("done", "INTEGER"),
    ("raw", "TEXT"),
]


def issue_codes_from_csv(
    engine: Engine,
    path: str | Path,
    *,
    operator: str,
    settings: Settings,
    dry_run: bool = False,
    send_email: bool = True,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    now_fn: Callable[[], datetime] = utc_now,
    progress: Callable[[int, int | None], None] | None = None,
    skip_invalid: bool = False,
    failed_rows_path: str | Path | None = None,
) -> dict[str, Any]:
    """Issue every row's code and queue its email; counts only (the plain codes travel in the
    emails, never in output or logs). With ``skip_invalid`` the good rows are issued and the
    run ends ``PartlyApplied`` naming how many were not; ``failed_rows_path`` keeps the rows
    not issued, as they were."""
    failed = FailedRows(open_output_file(failed_rows_path)) if failed_rows_path else None
    try:
        summary = _issue_file(
            engine,
            path,
            operator=operator,
            settings=settings,
            dry_run=dry_run,
            send_email=send_email,
            chunk_size=chunk_size,
            now_fn=now_fn,
            progress=progress,
            skip_invalid=skip_invalid,
            failed=failed,
        )
    finally:
        if failed is not None:
            failed.close()
    if summary["invalid"]:
        raise PartlyApplied(f"{summary['invalid']} row(s) not issued", record=summary)
    return summary


def _issue_file(
    engine: Engine,
    path: str | Path,
    *,
    operator: str,
    settings: Settings,
    dry_run: bool,
    send_email: bool,
    chunk_size: int,
    now_fn: Callable[[], datetime],
    progress: Callable[[int, int | None], None] | None,
    skip_invalid: bool,
    failed: FailedRows | None,
) -> dict[str, Any]:
    with bulk_connection(engine) as connection:
        with reading_phase(connection):
            source, sha256, rows, invalid = _stage_file(
                connection,
                path,
                settings=settings,
                generate=not dry_run,
                send_email=send_email,
                skip_invalid=skip_invalid,
                failed=failed,
            )
        if dry_run:
            return {"file": source, "dry_run": True, "would_issue": rows, "invalid": invalid}
        batch_id = claim_file(
            connection,
            code_batches,
            file_name=Path(source).name,
            sha256=sha256,
            operator=operator,
            what="code.batch",
        )
        try:
            issued = issue_claimed(
                connection,
                batch_id,
                source=source,
                sha256=sha256,
                operator=operator,
                settings=settings,
                send_email=send_email,
                chunk_size=chunk_size,
                now_fn=now_fn,
                progress=progress,
                rows=rows,
            )
            return {**issued, "invalid": invalid}
        finally:
            release_file(connection, code_batches, sha256)


def _stage_file(
    connection: Connection,
    path: str | Path,
    *,
    settings: Settings,
    generate: bool,
    send_email: bool,
    skip_invalid: bool,
    failed: FailedRows | None,
) -> tuple[str, str, int, int]:
    """Read, validate and stage the whole file; (its name, SHA-256, rows staged, invalid)."""
    stream, source, hashed = open_csv_hashed(path)
    errors = CsvErrors(source)
    create_staging_table(connection, STAGE, _STAGE_COLUMNS, keep_after_commit=True)
    with stream:
        header = failed.keep_header if failed is not None else None
        records = read_csv(stream, source, required=REQUIRED, optional=OPTIONAL, on_header=header)
        rows = _staged_rows(
            records,
            errors,
            settings=settings,
            generate=generate,
            send_email=send_email,
            failed=failed,
        )
        staged = load_rows(connection, STAGE, [c for c, _ in _STAGE_COLUMNS], rows)
    repeated = _check_contacts(connection, errors, every=skip_invalid)
    if errors.count and not skip_invalid:
        _keep_failed(connection, failed, "1 = 1")  # refused whole: no row was issued
        errors.raise_if_any()
    if repeated:
        lines = ", ".join(str(line) for line in repeated)
        _keep_failed(connection, failed, f"line IN ({lines})")
        connection.exec_driver_sql(f"DELETE FROM {STAGE} WHERE line IN ({lines})")
        staged -= len(repeated)
    if staged == 0 and not errors.count:
        raise InvalidInput(f"{source}: no rows")
    return source, hashed.hexdigest(), staged, errors.count


def _keep_failed(connection: Connection, failed: FailedRows | None, where: str) -> None:
    if failed is not None:
        for line, raw in connection.exec_driver_sql(f"SELECT line, raw FROM {STAGE} WHERE {where}"):
            failed.add(line, tuple(json.loads(raw)))


def _staged_rows(
    records: Iterable[CsvRecord],
    errors: CsvErrors,
    *,
    settings: Settings,
    generate: bool,
    send_email: bool,
    failed: FailedRows | None,
) -> Iterator[tuple[Any, ...]]:
    key, digits = settings.secret_key, settings.code_digits
    for record in records:
        try:
            if record.problem:
                raise InvalidInput(record.problem)
            values = record.values
            tin = Tin.parse(values["tin"]).reveal()
            name = clean_name(values["admin_name"], "admin name")
            email = clean_email(values["admin_email"], what="admin email")
            provider = clean_text(values.get("provider_name"), "provider name", required=False)
            org_name = clean_text(values.get("org_name"), "organisation name", required=False)
        except PortalError as error:
            errors.add(record.line, error.message)
            if failed is not None:
                failed.add(record.line, record.cells)
            continue
        digest = ciphertext = message_id = None
        if generate:
            code = generate_code(digits)
            digest = code_hmac(key, tin=tin, code=code)
            if send_email:
                ciphertext, message_id = encrypt_secret(key, code), new_message_id()
        raw = json.dumps(record.cells) if failed is not None else None
        yield (
            record.line,
            tin,
            name,
            email,
            provider,
            org_name,
            digest,
            ciphertext,
            message_id,
            0,
            raw,
        )


def _check_contacts(connection: Connection, errors: CsvErrors, *, every: bool) -> list[int]:
    """A contact holds at most one active code per TIN: a file naming one twice is invalid;
    the lines after the first (all of them with ``every``, else enough to list)."""
    repeated = connection.execute(
        sa.text(f"""
        SELECT s.line, f.line FROM {STAGE} s
        JOIN (SELECT tin, lower(admin_email) AS email, MIN(line) AS line FROM {STAGE}
              GROUP BY tin, lower(admin_email) HAVING COUNT(*) > 1) f
          ON f.tin = s.tin AND f.email = lower(s.admin_email) AND s.line > f.line
        ORDER BY s.line {"" if every else "LIMIT 50"}""")
    ).all()
    for line, first in repeated:
        errors.add(line, f"the same admin email and TIN as line {first} (one code per contact)")
    return [line for line, _ in repeated]
