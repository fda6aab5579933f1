"""``codes issue --csv``: a registration code for every row of a credentialing file (SPEC 5).

The file is read, validated whole and staged first, without taking SQLite's write lock (a bad
row: exit 5, nothing written). Its run is then claimed (one run of a file at a time) and applied
in chunks of rows, each one transaction with a fixed set of statements. Every code records its
run and line, so a file is issued once however often it runs: rows an earlier run of the same
file issued are ``already_issued``, and a re-run after a crash issues exactly the rest. Codes
are generated and encrypted in Python (never in clear in the database), HMACs staged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from portalctl.core.clock import utc_now
from portalctl.core.config import Settings
from portalctl.core.csvio import CsvErrors, CsvRecord, open_csv_hashed, read_csv
from portalctl.core.database import retrying_conflicts
from portalctl.core.errors import InvalidInput, PortalError
from portalctl.core.fields import clean_text
from portalctl.core.schema import JSONText, UTCDateTime, code_batches
from portalctl.core.secrets import code_hmac, encrypt_secret, generate_code
from portalctl.core.staging import bulk_connection, create_staging_table, load_rows, reading_phase
from portalctl.core.tin import Tin
from portalctl.domain.audit import record_audit
from portalctl.domain.code_issue_sql import chunk_statements
from portalctl.domain.file_claims import claim_file, finish_run, release_file
from portalctl.domain.outbox import new_message_id
from portalctl.domain.validation import clean_email, clean_name

REQUIRED = ("tin", "admin_name", "admin_email")
OPTIONAL = ("provider_name", "org_name")
STAGE = "issue_codes"
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
) -> dict[str, Any]:
    """Issue every row's code and queue its email; counts only (the plain codes travel in the
    emails, never in output or logs)."""
    with bulk_connection(engine) as connection:
        with reading_phase(connection):
            source, sha256, rows = _stage_file(
                connection, path, settings=settings, generate=not dry_run, send_email=send_email
            )
        if dry_run:
            return {"file": source, "dry_run": True, "would_issue": rows}
        batch_id = claim_file(
            connection,
            code_batches,
            file_name=Path(source).name,
            sha256=sha256,
            operator=operator,
            what="code.batch",
        )
        try:
            return _issue_claimed(
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
        finally:
            release_file(connection, code_batches, sha256)


def _stage_file(
    connection: Connection,
    path: str | Path,
    *,
    settings: Settings,
    generate: bool,
    send_email: bool,
) -> tuple[str, str, int]:
    """Read, validate and stage the whole file; (its name, SHA-256, rows)."""
    stream, source, hashed = open_csv_hashed(path)
    errors = CsvErrors(source)
    create_staging_table(connection, STAGE, _STAGE_COLUMNS, keep_after_commit=True)
    with stream:
        records = read_csv(stream, source, required=REQUIRED, optional=OPTIONAL)
        rows = _staged_rows(
            records, errors, settings=settings, generate=generate, send_email=send_email
        )
        staged = load_rows(connection, STAGE, [c for c, _ in _STAGE_COLUMNS], rows)
    _check_contacts(connection, errors)
    errors.raise_if_any()
    if staged == 0:
        raise InvalidInput(f"{source}: no rows")
    return source, hashed.hexdigest(), staged


def _staged_rows(
    records: Iterable[CsvRecord],
    errors: CsvErrors,
    *,
    settings: Settings,
    generate: bool,
    send_email: bool,
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
            continue
        digest = ciphertext = message_id = None
        if generate:
            code = generate_code(digits)
            digest = code_hmac(key, tin=tin, code=code)
            if send_email:
                ciphertext, message_id = encrypt_secret(key, code), new_message_id()
        yield (record.line, tin, name, email, provider, org_name, digest, ciphertext, message_id, 0)


def _check_contacts(connection: Connection, errors: CsvErrors) -> None:
    """A contact holds at most one active code per TIN: a file naming one twice is invalid."""
    repeated = connection.execute(
        sa.text(f"""
        SELECT s.line, f.line FROM {STAGE} s
        JOIN (SELECT tin, lower(admin_email) AS email, MIN(line) AS line FROM {STAGE}
              GROUP BY tin, lower(admin_email) HAVING COUNT(*) > 1) f
          ON f.tin = s.tin AND f.email = lower(s.admin_email) AND s.line > f.line
        ORDER BY s.line LIMIT 50""")
    ).all()
    for line, first in repeated:
        errors.add(line, f"the same admin email and TIN as line {first} (one code per contact)")


def _issue_claimed(
    connection: Connection,
    batch_id: int,
    *,
    source: str,
    sha256: str,
    operator: str,
    settings: Settings,
    send_email: bool,
    chunk_size: int,
    now_fn: Callable[[], datetime],
    progress: Callable[[int, int | None], None] | None,
    rows: int,
) -> dict[str, Any]:
    with connection.begin():
        already = _mark_issued_lines(connection, sha256)
        _regenerate_clashing_codes(connection, settings=settings, send_email=send_email)
        connection.execute(
            code_batches.update()
            .where(code_batches.c.id == batch_id)
            .values(
                rows_total=sa.select(sa.func.count())
                .select_from(sa.table(STAGE))
                .scalar_subquery(),
                already_issued=already,
            )
        )
    counts = {"codes_issued": 0, "emails_queued": 0, "organisations_created": 0}
    statements, texts = chunk_statements(STAGE, settings=settings, send_email=send_email)
    start = 0
    try:
        while True:
            next_chunk = partial(
                _issue_chunk,
                connection,
                statements,
                texts,
                start=start,
                size=chunk_size,
                batch_id=batch_id,
                operator=operator,
                ttl_days=settings.code_ttl_days,
                now_fn=now_fn,
            )
            chunk = retrying_conflicts(connection, next_chunk, what="codes issue --csv")
            if chunk is None:
                break
            start, issued = chunk
            for name, value in issued.items():
                counts[name] += value
            if progress:
                progress(already + counts["codes_issued"], rows)
        with connection.begin():
            finish_run(connection, code_batches, batch_id, state="completed")
            record_audit(
                connection,
                operator=operator,
                action="code.issue_file",
                target=f"batch:{batch_id}",
                details={"file": source, "already_issued": already, **counts},
            )
    except BaseException:
        if not connection.closed and not connection.invalidated:
            connection.rollback()
            with connection.begin():
                finish_run(connection, code_batches, batch_id, state="failed")
        raise
    return {
        "file": source,
        "dry_run": False,
        "batch_id": batch_id,
        "already_issued": already,
        **counts,
    }


def _mark_issued_lines(connection: Connection, sha256: str) -> int:
    """Lines an earlier run of this same file issued are not issued again."""
    return connection.execute(
        sa.text(f"""
        UPDATE {STAGE} SET done = 1
        WHERE EXISTS (SELECT 1 FROM registration_codes r
                      JOIN code_batches b ON b.id = r.batch_id
                      WHERE b.file_sha256 = :sha AND r.batch_line = {STAGE}.line)"""),
        {"sha": sha256},
    ).rowcount


def _regenerate_clashing_codes(
    connection: Connection, *, settings: Settings, send_email: bool
) -> None:
    """A generated code whose HMAC another code of its TIN already has (one chance in
    10**digits per code of that TIN) is drawn again."""
    key, digits = settings.secret_key, settings.code_digits
    while clashes := connection.execute(
        sa.text(f"""
            SELECT s.line, s.tin FROM {STAGE} s
            WHERE s.done = 0 AND (
                EXISTS (SELECT 1 FROM registration_codes r WHERE r.code_hmac = s.code_hmac)
                OR EXISTS (SELECT 1 FROM {STAGE} o WHERE o.code_hmac = s.code_hmac
                           AND o.line < s.line))""")
    ).all():
        for line, tin in clashes:
            code = generate_code(digits)
            connection.execute(
                sa.text(
                    f"UPDATE {STAGE} SET code_hmac = :digest, secret_ciphertext = :secret "
                    "WHERE line = :line"
                ),
                {
                    "digest": code_hmac(key, tin=tin, code=code),
                    "line": line,
                    "secret": encrypt_secret(key, code) if send_email else None,
                },
            )


def _issue_chunk(
    connection: Connection,
    statements: dict[str, str],
    texts: dict[str, str],
    *,
    start: int,
    size: int,
    batch_id: int,
    operator: str,
    ttl_days: int,
    now_fn: Callable[[], datetime],
) -> tuple[int, dict[str, int]] | None:
    """The next ``size`` lines still to issue, from line ``start`` on: (the line after them,
    the counts); None when none is left."""
    end = connection.execute(
        sa.text(f"""
        SELECT MAX(line) FROM (SELECT line FROM {STAGE} WHERE done = 0 AND line >= :start
                               ORDER BY line LIMIT :size) c"""),
        {"start": start, "size": size},
    ).scalar()
    if end is None:
        return None
    now = now_fn()
    params = {
        **texts,
        "lo": start,
        "hi": end,
        "batch": batch_id,
        "operator": operator,
        "now": now,
        "expires": now + timedelta(days=ttl_days),
        "details": {"source": "codes issue --csv", "batch_id": batch_id},
    }
    typed: list[sa.BindParameter[Any]] = [
        sa.bindparam("now", type_=UTCDateTime),
        sa.bindparam("expires", type_=UTCDateTime),
        sa.bindparam("details", type_=JSONText),
    ]
    done = {
        name: connection.execute(
            sa.text(sql).bindparams(*[p for p in typed if f":{p.key}" in sql]), params
        ).rowcount
        for name, sql in statements.items()
    }
    connection.execute(
        code_batches.update()
        .where(code_batches.c.id == batch_id)
        .values(issued=code_batches.c.issued + done["codes_issued"], heartbeat_at=now)
    )
    return end + 1, {
        "codes_issued": done["codes_issued"],
        "emails_queued": done.get("emails_queued", 0),
        "organisations_created": done["organisations_created"],
    }
