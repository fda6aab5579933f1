"""Applying planned merges, one chunk per transaction, with a fixed set of statements per chunk:
lock the chunk's accounts in id order, re-check the rules under the locks, record, move links
(the higher role wins), re-point earlier merges, mark the secondaries, audit. A chunk is a range
of primary ids, so one primary's rows are never split (its owner gets one email, and its row is
locked once)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from portalctl.core.schema import UTCDateTime
from portalctl.domain.consolidation_plan import STAGE
from portalctl.domain.outbox import queue_email

RETRYABLE_SQLSTATES = ("40001", "40P01")  # serialization failure, deadlock detected
MAX_ATTEMPTS = 6
_CHUNK = "s.primary_id BETWEEN :lo AND :hi AND s.outcome IS NULL"


def apply_next_chunk(
    connection: Connection,
    *,
    start: int,
    size: int,
    batch_id: int | None,
    operator: str,
    now_fn: Callable[[], datetime],
    notify: bool,
) -> tuple[int, dict[str, int]] | None:
    """The merges of the next chunk (at least ``size`` rows from primary id ``start`` on, or
    what is left) in their own transaction, retried when the database picks it as a deadlock
    or serialization victim (the transaction rolled back whole, the stage included). The last
    primary id it covered and its outcome counts; None when nothing is left."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            with connection.begin():
                end = connection.execute(
                    sa.text(f"""
                    SELECT MAX(primary_id) FROM (
                        SELECT s.primary_id FROM {STAGE} s
                        WHERE s.outcome IS NULL AND s.primary_id >= :start
                        ORDER BY s.primary_id LIMIT :size) c"""),
                    {"start": start, "size": size},
                ).scalar()
                if end is None:
                    return None
                return end, apply_chunk(
                    connection,
                    lo=start,
                    hi=end,
                    batch_id=batch_id,
                    operator=operator,
                    now=now_fn(),
                    notify=notify,
                )
        except sa.exc.DBAPIError as error:
            state = getattr(getattr(error, "orig", None), "sqlstate", None)
            if state not in RETRYABLE_SQLSTATES or attempt == MAX_ATTEMPTS:
                raise
            time.sleep(0.05 * attempt)
    raise AssertionError("unreachable")


@contextmanager
def keys_checked_by_chunks(connection: Connection) -> Iterator[None]:
    """SQLite: the block's chunks write with foreign key enforcement off, on this connection.
    Enforced, every update of ``merged_into`` (a key into its own table) makes SQLite rewrite
    all of the row's index entries and probe the unique username index again: a third of a
    large run. Each chunk checks, in its own transaction and under SQLite's single write lock,
    that every account it names exists, and its other keys are copied from rows that hold them;
    ``PRAGMA foreign_key_check`` stays clean (tested). Must be called outside a transaction."""
    if connection.dialect.name != "sqlite" or connection.in_transaction():
        yield
        return
    driver = connection.connection.driver_connection
    driver.execute("PRAGMA foreign_keys = OFF")
    try:
        yield
    finally:
        driver.execute("PRAGMA foreign_keys = ON")


def apply_chunk(
    connection: Connection,
    *,
    lo: int,
    hi: int,
    batch_id: int | None,
    operator: str,
    now: datetime,
    notify: bool = False,
) -> dict[str, int]:
    """Apply the planned merges of primaries lo..hi in the caller's transaction; outcome
    counts."""
    params = {"lo": lo, "hi": hi, "now": now, "operator": operator, "batch": batch_id}

    def run(sql: str):
        statement = sa.text(sql)
        if ":now" in sql:
            statement = statement.bindparams(sa.bindparam("now", type_=UTCDateTime))
        return connection.execute(statement, params)

    postgres = connection.dialect.name == "postgresql"
    secondaries = f"SELECT s.secondary_id FROM {STAGE} s WHERE {_CHUNK}"
    # On PostgreSQL "= ANY(ARRAY(...))" probes the index for each id instead of hashing a scan
    # of the whole table once per chunk.
    in_secondaries = f"= ANY(ARRAY({secondaries}))" if postgres else f"IN ({secondaries})"

    def probe(column: str) -> str:
        return f"AND {column} = ANY(ARRAY({secondaries}))" if postgres else ""

    if postgres:
        # Fixed order (by id): two overlapping runs queue on the same rows instead of deadlocking.
        # (counted on the server: the ids need not travel)
        expected, locked = run(f"""
            WITH ids AS MATERIALIZED (SELECT primary_id AS id FROM {STAGE} s WHERE {_CHUNK}
                                      UNION SELECT secondary_id FROM {STAGE} s WHERE {_CHUNK})
            SELECT (SELECT COUNT(*) FROM ids), (SELECT COUNT(*) FROM (
                SELECT id FROM accounts WHERE id = ANY(ARRAY(SELECT id FROM ids))
                ORDER BY id FOR UPDATE) locked)""").one()
        # Every account there: probe them by index. One deleted since the plan (its foreign
        # keys would fail the whole chunk): the outer joins, so that its rows are refused.
        accounts, matched = (
            (
                "accounts sec, accounts p",
                f"sec.id = {STAGE}.secondary_id AND p.id = {STAGE}.primary_id "
                f"AND {STAGE}.primary_id BETWEEN :lo AND :hi {probe('sec.id')}",
            )
            if locked == expected
            else _outer_joined("ctid")
        )
    else:
        # Foreign keys are off (``keys_checked_by_chunks``): always the outer joins.
        accounts, matched = _outer_joined("rowid")
    # The plan was made without locks; another run may have changed these accounts since.
    rechecked = (
        run(f"""
        UPDATE {STAGE} SET
            outcome = CASE WHEN sec.merged_into = p.id THEN 'already_merged' ELSE 'refused' END,
            code = CASE WHEN p.id IS NULL OR sec.id IS NULL THEN 3
                        WHEN sec.merged_into = p.id THEN 0 ELSE 4 END,
            detail = CASE
                WHEN p.id IS NULL THEN 'no account ' || {STAGE}.final_key
                WHEN sec.id IS NULL THEN 'no account ' || {STAGE}.secondary_name
                WHEN sec.merged_into = p.id THEN 'already merged into ' || p.username
                WHEN sec.merged_into IS NOT NULL THEN 'secondary ' || {STAGE}.secondary_name
                     || ' was merged into another account meanwhile'
                WHEN p.status <> 'active' THEN 'primary ' || {STAGE}.final_key || ' is '
                     || p.status || ', not active'
                ELSE 'secondary ' || {STAGE}.secondary_name || ' no longer holds TIN *****'
                     || substr({STAGE}.tin, 6, 4) END
        FROM {accounts}
        WHERE {matched} AND {STAGE}.outcome IS NULL
          AND (p.id IS NULL OR sec.id IS NULL OR sec.merged_into IS NOT NULL
               OR p.status <> 'active'
               OR ({STAGE}.tin IS NOT NULL AND NOT EXISTS (
                   SELECT 1 FROM account_tins t
                   WHERE t.account_id = {STAGE}.secondary_id AND t.tin = {STAGE}.tin)))
        RETURNING {STAGE}.outcome""")
        .scalars()
        .all()
    )
    already = rechecked.count("already_merged")
    refused = len(rechecked) - already
    record = f"""
        INSERT INTO consolidations (batch_id, line, primary_id, secondary_id, tin,
                                    links_moved, operator, merged_at)
        SELECT CAST(:batch AS BIGINT), s.line, s.primary_id, s.secondary_id, s.tin, {{links}},
               :operator, :now
        FROM {STAGE} s {{held}}
        WHERE {_CHUNK}"""
    if not postgres:
        merged = run(
            record.format(
                held="",
                links="(SELECT COUNT(*) FROM account_tins t WHERE t.account_id = s.secondary_id)",
            )
        ).rowcount
    json = _json_object(connection)
    run(f"""INSERT INTO audit_log (at, operator, action, target, account, details)
            SELECT :now, :operator, 'account.repoint', 'account:' || m.username, m.username,
                   {json}('from', sec.username, 'to', p.username)
            FROM {STAGE} s JOIN accounts m ON m.merged_into = s.secondary_id
            JOIN accounts sec ON sec.id = s.secondary_id JOIN accounts p ON p.id = s.primary_id
            WHERE {_CHUNK} {probe("m.merged_into")}""")
    run(f"""UPDATE accounts SET merged_into = s.primary_id, updated_at = :now
            FROM {STAGE} s WHERE accounts.merged_into = s.secondary_id AND {_CHUNK}
              {probe("accounts.merged_into")}""")
    if postgres:
        # One upsert of each (primary, TIN) with MIN(role) (the upsert keeps the higher of that
        # and the primary's own); then, in one statement, the secondaries' links go and the
        # consolidation records count them as they go.
        run(f"""INSERT INTO account_tins (account_id, tin, role, linked_at)
                SELECT s.primary_id, t.tin, MIN(t.role), MIN(t.linked_at)
                FROM {STAGE} s JOIN account_tins t ON t.account_id = s.secondary_id
                WHERE {_CHUNK} AND t.account_id {in_secondaries}
                GROUP BY s.primary_id, t.tin
                ORDER BY s.primary_id, t.tin
                ON CONFLICT (account_id, tin) DO UPDATE SET role = CASE
                    WHEN excluded.role = 'security_admin' THEN 'security_admin'
                    ELSE account_tins.role END""")
        merged = run(
            "WITH removed AS (DELETE FROM account_tins WHERE account_id "
            f"{in_secondaries} RETURNING account_id)"
            + record.format(
                links="COALESCE(held.links, 0)",
                held="LEFT JOIN (SELECT account_id, COUNT(*) AS links FROM removed "
                "GROUP BY account_id) held ON held.account_id = s.secondary_id",
            )
        ).rowcount
    else:
        for statement in _MOVE_LINKS:
            run(statement)
    run(f"""UPDATE accounts SET status = 'merged', merged_into = s.primary_id, updated_at = :now
            FROM {STAGE} s WHERE accounts.id = s.secondary_id AND {_CHUNK}
              {probe("accounts.id")}""")
    run(f"""INSERT INTO audit_log (at, operator, action, target, account, tin, details)
            SELECT :now, :operator, 'account.consolidate', 'account:' || s.secondary_username,
                   s.primary_username, s.tin,
                   {json}('primary', s.primary_username, 'secondary', s.secondary_username,
                          'line', s.line, 'batch_id', CAST(:batch AS BIGINT),
                          'tin', CASE WHEN s.tin IS NULL THEN NULL
                                      ELSE '*****' || substr(s.tin, 6, 4) END)
            FROM {STAGE} s WHERE {_CHUNK}""")
    counts = {"merged": merged, "already_merged": already, "refused": refused}
    if batch_id is not None:
        connection.execute(
            sa.text("""
            UPDATE consolidation_batches SET merged = merged + :merged,
                   already_merged = already_merged + :already_merged,
                   refused = refused + :refused, heartbeat_at = :now
            WHERE id = :batch""").bindparams(sa.bindparam("now", type_=UTCDateTime)),
            {**counts, "now": now, "batch": batch_id},
        )
    if notify and counts["merged"]:
        queue_consolidation_emails(connection, lo=lo, hi=hi, now=now)
    return counts


def _outer_joined(row_id: str) -> tuple[str, str]:
    """The re-check's FROM and join condition keeping the chunk's rows whose primary or
    secondary no longer exists (``row_id``: the backend's name for a row's address)."""
    return (
        f"(SELECT s.{row_id} AS row, s.primary_id, s.secondary_id FROM {STAGE} s "
        f"WHERE {_CHUNK}) x LEFT JOIN accounts sec ON sec.id = x.secondary_id "
        "LEFT JOIN accounts p ON p.id = x.primary_id",
        f"{STAGE}.{row_id} = x.row",
    )


_SECONDARIES = f"SELECT s.secondary_id FROM {STAGE} s WHERE {_CHUNK}"
# SQLite moves the secondaries' links to their primary by updating each link's account in
# place, which leaves the TIN index alone (a delete and an insert would touch it twice per link,
# at random places). A link whose TIN the primary already holds (or has just received from
# another secondary, which then keeps its date) stays behind, lends its role if higher (where
# both hold a TIN the higher role wins), and goes.
_MOVE_LINKS = [
    f"""UPDATE OR IGNORE account_tins SET account_id = s.primary_id
        FROM {STAGE} s WHERE account_tins.account_id = s.secondary_id AND {_CHUNK}""",
    f"""UPDATE account_tins SET role = 'security_admin'
        FROM {STAGE} s JOIN account_tins t ON t.account_id = s.secondary_id
        WHERE {_CHUNK} AND t.role = 'security_admin'
          AND account_tins.account_id = s.primary_id AND account_tins.tin = t.tin
          AND account_tins.role <> 'security_admin'""",
    f"DELETE FROM account_tins WHERE account_id IN ({_SECONDARIES})",
]


def _json_object(connection: Connection) -> str:
    return "jsonb_build_object" if connection.dialect.name == "postgresql" else "json_object"


def queue_consolidation_emails(connection: Connection, *, lo: int, hi: int, now: datetime) -> int:
    """One ``accounts_consolidated`` email to each surviving account of the chunk."""
    rows = (
        connection.execute(
            sa.text(f"""
        SELECT p.id, p.username, p.email, p.full_name, s.secondary_username AS secondary
        FROM {STAGE} s JOIN accounts p ON p.id = s.primary_id
        WHERE {_CHUNK} ORDER BY p.id, s.line"""),
            {"lo": lo, "hi": hi},
        )
        .mappings()
        .all()
    )
    by_primary: dict[int, list[Any]] = {}
    for row in rows:
        by_primary.setdefault(row["id"], []).append(row)
    for account_id, merged in by_primary.items():
        first = merged[0]
        subject, body = consolidation_email(
            first["full_name"], first["username"], [row["secondary"] for row in merged]
        )
        queue_email(
            connection,
            kind="accounts_consolidated",
            recipient=first["email"],
            recipient_name=first["full_name"],
            subject=subject,
            body=body,
            account_id=account_id,
            now=now,
        )
    return len(by_primary)


def consolidation_email(full_name: str, username: str, merged: list[str]) -> tuple[str, str]:
    """Subject and body telling the surviving account's owner what was merged into it."""
    listing = "\n".join(f"  - {name}" for name in merged)
    body = (
        f"Hello {full_name},\n\n"
        f"Your provider portal accounts have been consolidated. From now on, sign in as\n"
        f"{username}; it holds the Tax IDs and roles of these accounts, which can no longer\n"
        f"be used:\n\n{listing}\n\n"
        "If you did not ask for this, please call Provider Services.\n\n"
        "To maintain HIPAA compliance, please do not share your username or password with "
        "anyone.\n"
    )
    return "Your provider portal accounts have been consolidated", body
