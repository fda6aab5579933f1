"""``accounts import``: validate a whole CSV, stage it, and load it with set-based SQL, all or
nothing (SPEC section 5)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from portalctl.core.clock import utc_now
from portalctl.core.csvio import CsvErrors, CsvRecord, open_csv_hashed, read_csv
from portalctl.core.database import retrying_conflicts, unique_violation
from portalctl.core.errors import InvalidInput, PortalError, Refused
from portalctl.core.fields import clean_text
from portalctl.core.schema import JSONText, UTCDateTime, account_imports
from portalctl.core.secrets import hash_secret, normalise_answer
from portalctl.core.staging import (
    bulk_connection,
    bulk_load,
    create_staging_table,
    load_rows,
    reading_phase,
    tune_for_bulk_work,
)
from portalctl.core.text import quoted
from portalctl.core.tin import mask_tin, parse_tin_digits
from portalctl.domain.audit import record_audit
from portalctl.domain.validation import (
    clean_email,
    clean_name,
    clean_new_password,
    clean_role,
    clean_status,
    clean_username,
)

REQUIRED = ("username", "email", "full_name")
OPTIONAL = ("tins", "status", "security_question", "security_answer", "password")

_STAGE = "import_accounts"
# From this many rows on (PostgreSQL), account_tins' foreign keys are checked once for the whole
# file rather than row by row (one join instead of a probe and a row lock per link), and a table
# the file at least
# doubles (an initial load) gets its indexes rebuilt rather than grown, at the cost of locking
# the tables involved exclusively until the import commits.
BULK_LINKS = 100_000
# Argon2id costs ~50 ms a hash by design: the answers and passwords of this many rows are hashed
# together, on every core (argon2 releases the GIL while it works).
_HASH_BATCH = 64
_ANSWER, _PASSWORD = 8, 9  # their places in an account's staged row
# One staging table for accounts (kind 'a') and their links (kind 'l'), so one COPY stream.
_STAGE_COLUMNS = [
    ("line", "INTEGER"),
    ("kind", "CHAR(1)"),
    ("username_key", "VARCHAR(254)"),
    ("username", "VARCHAR(254)"),
    ("email", "VARCHAR(254)"),
    ("full_name", "VARCHAR(200)"),
    ("status", "VARCHAR(16)"),
    ("security_question", "VARCHAR(300)"),
    ("security_answer_hash", "VARCHAR(300)"),
    ("password_hash", "VARCHAR(300)"),
    ("tin", "CHAR(9)"),
    ("role", "VARCHAR(16)"),
]


def import_accounts_csv(
    engine: Engine,
    path: str | Path,
    *,
    operator: str,
    now: datetime | None = None,
    bulk_links: int = BULK_LINKS,
    progress: Callable[[int, int | None], None] | None = None,
) -> dict[str, Any]:
    """Import every row or none. The file is read, checked row by row and staged, and checked
    whole in SQL, in a transaction that takes no write lock on SQLite; then, under the lock,
    usernames are checked again (another writer may have taken one meanwhile) and the rows go
    in by a few set-based statements, retried if PostgreSQL picks them as a deadlock victim."""
    now = now or utc_now()
    with bulk_connection(engine) as connection:
        with reading_phase(connection):
            tune_for_bulk_work(connection)
            source, sha256, staged = _stage_file(connection, path, progress)

        def apply() -> dict[str, int]:
            errors = CsvErrors(source)
            _check_taken_usernames(connection, errors)
            errors.raise_if_any()
            try:
                counts = _apply(connection, operator=operator, now=now, bulk_links=bulk_links)
            except sa.exc.IntegrityError as error:
                if unique_violation(error) != "accounts_username_key":
                    raise
                raise InvalidInput(
                    f"{source}: a username in the file was taken while it was being imported; "
                    "nothing was written: run it again to see which"
                ) from None
            connection.execute(
                account_imports.insert().values(
                    file_name=clean_text(Path(source).name, "file name") or "-",
                    file_sha256=sha256,
                    rows_total=staged,
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
                details={"file": source, "sha256": sha256, "rows": staged, **counts},
            )
            return counts

        counts = retrying_conflicts(connection, apply, what="accounts import")
    return {"file": source, **counts}


def _stage_file(
    connection: Connection, path: str | Path, progress: Callable[[int, int | None], None] | None
) -> tuple[str, str, int]:
    """Read and stage the whole file, every row checked; (its name, SHA-256, rows). A file
    already imported is refused as such rather than by the usernames it has taken."""
    stream, source, hashed = open_csv_hashed(path)
    errors = CsvErrors(source)
    create_staging_table(connection, _STAGE, _STAGE_COLUMNS, keep_after_commit=True)
    with stream, ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as hashers:
        records = read_csv(stream, source, required=REQUIRED, optional=OPTIONAL)
        rows = _staged_rows(records, errors, hashers, progress)
        staged = load_rows(connection, _STAGE, [c for c, _ in _STAGE_COLUMNS], rows)
    sha256 = hashed.hexdigest()
    _refuse_imported_before(connection, source, sha256)
    _check_repeated_usernames(connection, errors)
    _check_taken_usernames(connection, errors)
    errors.raise_if_any()
    if staged == 0:
        raise InvalidInput(f"{source}: no rows")
    return source, sha256, staged


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


def _staged_rows(
    records: Iterable[CsvRecord],
    errors: CsvErrors,
    hashers: Executor,
    progress: Callable[[int, int | None], None] | None = None,
) -> Iterator[tuple[Any, ...]]:
    batch: list[list[tuple[Any, ...]]] = []
    done = 0
    for record in records:
        done += 1
        try:
            if record.problem:
                raise InvalidInput(record.problem)
            batch.append(_rows_for(record.line, record.values))
        except PortalError as error:
            errors.add(record.line, error.message)
        if len(batch) >= _HASH_BATCH:
            yield from _with_hashes(batch, errors, hashers)
            batch = []
            if progress:
                progress(done, None)
    yield from _with_hashes(batch, errors, hashers)
    if progress:
        progress(done, done)


def _with_hashes(
    batch: list[list[tuple[Any, ...]]], errors: CsvErrors, hashers: Executor
) -> Iterator[tuple[Any, ...]]:
    """The batch's staged rows with each plain answer and password replaced by its hash. Once a
    row is invalid the file will be refused whole, so nothing more is hashed."""
    plain = [rows[0][place] for rows in batch for place in (_ANSWER, _PASSWORD)]
    hashes: list[str | None] = [None] * len(plain)
    wanted = [index for index, value in enumerate(plain) if value]
    if wanted and not errors.count:
        for index, hashed in zip(wanted, hashers.map(hash_secret, [plain[i] for i in wanted])):
            hashes[index] = hashed
    for index, rows in enumerate(batch):
        account = rows[0]
        answer, password = hashes[2 * index], hashes[2 * index + 1]
        yield account[:_ANSWER] + (answer, password) + account[_PASSWORD + 1 :]
        yield from rows[1:]


def _rows_for(line: int, values: dict[str, str]) -> list[tuple[Any, ...]]:
    """The staged rows of one CSV row: its account, then one row per TIN link. (The hot loop of
    a 1,000,000-row import: plain locals, no per-TIN objects.)"""
    username = clean_username(values["username"])
    email = clean_email(values["email"])
    full_name = clean_name(values["full_name"])
    status = values.get("status")
    status = clean_status(status) if status else "active"
    question = clean_text(values.get("security_question"), "security question", required=False)
    answer = values.get("security_answer") or None
    if (question is None) != (answer is None):
        raise InvalidInput("security_question and security_answer go together")
    password = values.get("password") or None
    if password is not None:
        password = clean_new_password(password, username=username, email=email)
    key = username.lower()
    rows: list[tuple[Any, ...]] = [
        (
            line,
            "a",
            key,
            username,
            email,
            full_name,
            status,
            question,
            normalise_answer(answer) if answer else None,  # hashed by _with_hashes
            password,
            None,
            None,
        )
    ]
    tins = values.get("tins")
    if tins:
        linked: set[str] = set()
        for item in tins.split(";"):
            item = item.strip()
            if not item:
                continue
            tin_text, _, role = item.partition(":")
            digits = parse_tin_digits(tin_text)
            if digits in linked:
                raise InvalidInput(f"TIN {mask_tin(digits)} is listed twice")
            linked.add(digits)
            rows.append(
                (
                    line,
                    "l",
                    key,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    digits,
                    clean_role(role) if role else "user",
                )
            )
    return rows


def _check_repeated_usernames(connection: Connection, errors: CsvErrors) -> None:
    """Usernames repeated in the file (case-insensitive)."""
    repeated = connection.execute(
        sa.text(f"""
        SELECT s.line, s.username, first.line AS first_line
        FROM {_STAGE} s
        JOIN (SELECT username_key, MIN(line) AS line FROM {_STAGE} WHERE kind = 'a'
              GROUP BY username_key HAVING COUNT(*) > 1) first
          ON first.username_key = s.username_key AND s.line > first.line
        WHERE s.kind = 'a' ORDER BY s.line LIMIT 50""")
    ).all()
    for line, username, first_line in repeated:
        errors.add(line, f"username {quoted(username)} repeats line {first_line}")


def _check_taken_usernames(connection: Connection, errors: CsvErrors) -> None:
    """Usernames already taken in the database (case-insensitive, merged accounts' included)."""
    taken = connection.execute(
        sa.text(f"""
        SELECT s.line, s.username FROM {_STAGE} s
        JOIN accounts a ON lower(a.username) = s.username_key
        WHERE s.kind = 'a' ORDER BY s.line LIMIT 50""")
    ).all()
    for line, username in taken:
        errors.add(line, f"username {quoted(username)} is already taken")


def _apply(
    connection: Connection, *, operator: str, now: datetime, bulk_links: int
) -> dict[str, int]:
    params = {"now": now, "operator": operator}
    typed = [sa.bindparam("now", type_=UTCDateTime)]
    organisations_created = connection.execute(
        sa.text(f"""
        INSERT INTO organisations (tin, failed_code_attempts, created_at)
        SELECT DISTINCT tin, 0, :now FROM {_STAGE} s
        WHERE kind = 'l' AND NOT EXISTS (SELECT 1 FROM organisations o WHERE o.tin = s.tin)
    """).bindparams(*typed),
        params,
    ).rowcount
    accounts_staged, links_staged = connection.execute(
        sa.text(
            f"SELECT SUM(CASE WHEN kind = 'a' THEN 1 ELSE 0 END), "
            f"SUM(CASE WHEN kind = 'l' THEN 1 ELSE 0 END) FROM {_STAGE}"
        )
    ).one()
    # Inserted in key order, the accounts' index entries mostly append: rebuilding those
    # indexes as for the links would not pay.
    accounts_created = connection.execute(
        sa.text(f"""
        INSERT INTO accounts (username, email, full_name, status, password_hash,
                              security_question, security_answer_hash, failed_verifications,
                              created_at, updated_at)
        SELECT username, email, full_name, status, password_hash, security_question,
               security_answer_hash, 0, :now, :now
        FROM {_STAGE} WHERE kind = 'a'
        ORDER BY username_key  -- keys in index order: appends, not page splits all over
    """).bindparams(*typed),
        params,
    ).rowcount
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("ANALYZE accounts")  # it may have just grown many-fold
    with _loading(connection, "account_tins", links_staged or 0, bulk_rows=bulk_links):
        links_created = connection.execute(
            sa.text(f"""
            INSERT INTO account_tins (account_id, tin, role, linked_at)
            SELECT a.id, s.tin, s.role, :now
            FROM {_STAGE} s JOIN accounts a ON lower(a.username) = s.username_key
            WHERE s.kind = 'l' ORDER BY a.id, s.tin
        """).bindparams(*typed),
            params,
        ).rowcount
    with _loading(
        connection, "audit_log", accounts_staged or 0, bulk_rows=bulk_links, foreign_keys=False
    ):
        connection.execute(
            sa.text(f"""
            INSERT INTO audit_log (at, operator, action, target, account, details)
            SELECT :now, :operator, 'account.import', 'account:' || username, username, :details
            FROM {_STAGE} WHERE kind = 'a' ORDER BY username_key
        """).bindparams(*typed, sa.bindparam("details", type_=JSONText)),
            {**params, "details": {"source": "accounts import"}},
        )
    return {
        "accounts_created": accounts_created,
        "links_created": links_created,
        "organisations_created": organisations_created,
    }


def _loading(
    connection: Connection, table: str, rows: int, *, bulk_rows: int, foreign_keys: bool = True
) -> AbstractContextManager[None]:
    """The block inserting ``rows`` into ``table``: from ``bulk_rows`` on (PostgreSQL), with
    its foreign keys checked once, and its indexes rebuilt when the rows at least double it."""
    if rows < bulk_rows or connection.dialect.name != "postgresql":
        return nullcontext()
    size = int(
        connection.exec_driver_sql(
            "SELECT reltuples FROM pg_class WHERE oid = %(table)s::regclass", {"table": table}
        ).scalar_one()
    )  # an estimate: counting a big table costs seconds
    return bulk_load(
        connection, table, foreign_keys=foreign_keys, rebuild_indexes=rows >= max(size, 0)
    )
