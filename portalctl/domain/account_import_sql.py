"""``accounts import``, file-wide: the checks only the whole staged file can make (usernames
repeated in it, or taken), and the set-based statements that load it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from portalctl.core.schema import JSONText, UTCDateTime
from portalctl.core.staging import bulk_load
from portalctl.core.text import quoted
from portalctl.domain.account_import_rows import RowProblems

STAGE = "import_accounts"
# From this many rows on (PostgreSQL), account_tins' foreign keys are checked once for the whole
# file rather than row by row (one join instead of a probe and a row lock per link), and a table
# the file at least doubles (an initial load) gets its indexes rebuilt rather than grown, at the
# cost of locking the tables involved exclusively until the import commits.
BULK_LINKS = 100_000


def check_repeated_usernames(connection: Connection, problems: RowProblems) -> None:
    """Usernames repeated in the file (case-insensitive)."""
    repeated = connection.execute(
        sa.text(f"""
        SELECT s.line, s.username, first.line AS first_line
        FROM {STAGE} s
        JOIN (SELECT username_key, MIN(line) AS line FROM {STAGE} WHERE kind = 'a'
              GROUP BY username_key HAVING COUNT(*) > 1) first
          ON first.username_key = s.username_key AND s.line > first.line
        WHERE s.kind = 'a' ORDER BY s.line {_limit(problems)}""")
    ).all()
    for line, username, first_line in repeated:
        problems.add(line, f"username {quoted(username)} repeats line {first_line}", username)


def check_taken_usernames(connection: Connection, problems: RowProblems) -> None:
    """Usernames already taken in the database (case-insensitive, merged accounts' included)."""
    taken = connection.execute(
        sa.text(f"""
        SELECT s.line, s.username FROM {STAGE} s
        JOIN accounts a ON lower(a.username) = s.username_key
        WHERE s.kind = 'a' ORDER BY s.line {_limit(problems)}""")
    ).all()
    for line, username in taken:
        problems.add(line, f"username {quoted(username)} is already taken", username)


def _limit(problems: RowProblems) -> str:
    """Enough rows for the error message, unless every invalid row must be known."""
    return "" if problems.keep_all or problems.skip_invalid else "LIMIT 50"


def unstage_invalid_rows(connection: Connection, problems: RowProblems) -> None:
    """``--skip-invalid``: rows found invalid once staged (a repeated or taken username) leave
    the stage, their links with them; their cells go to the failed-rows file."""
    lines = sorted(line for line in problems.by_line)
    for start in range(0, len(lines), 500):
        chunk = lines[start : start + 500]
        marks = ", ".join(str(int(line)) for line in chunk)
        if problems.failed_rows is not None:
            for line, raw in connection.exec_driver_sql(
                f"SELECT line, raw FROM {STAGE} WHERE kind = 'a' AND line IN ({marks})"
            ):
                problems.failed_rows.add(line, tuple(json.loads(raw)))
        connection.exec_driver_sql(f"DELETE FROM {STAGE} WHERE line IN ({marks})")


def staged_accounts(connection: Connection) -> Iterator[tuple[int, str]]:
    """(line, username) of the accounts still staged, in line order (for the report)."""
    yield from connection.exec_driver_sql(
        f"SELECT line, username FROM {STAGE} WHERE kind = 'a' ORDER BY line"
    )


def apply_stage(
    connection: Connection, *, operator: str, now: datetime, bulk_links: int
) -> dict[str, int]:
    params = {"now": now, "operator": operator}
    typed = [sa.bindparam("now", type_=UTCDateTime)]
    organisations_created = connection.execute(
        sa.text(f"""
        INSERT INTO organisations (tin, failed_code_attempts, created_at)
        SELECT DISTINCT tin, 0, :now FROM {STAGE} s
        WHERE kind = 'l' AND NOT EXISTS (SELECT 1 FROM organisations o WHERE o.tin = s.tin)
    """).bindparams(*typed),
        params,
    ).rowcount
    accounts_staged, links_staged = connection.execute(
        sa.text(
            f"SELECT SUM(CASE WHEN kind = 'a' THEN 1 ELSE 0 END), "
            f"SUM(CASE WHEN kind = 'l' THEN 1 ELSE 0 END) FROM {STAGE}"
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
        FROM {STAGE} WHERE kind = 'a'
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
            FROM {STAGE} s JOIN accounts a ON lower(a.username) = s.username_key
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
            FROM {STAGE} WHERE kind = 'a' ORDER BY username_key
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
