"""Applying planned merges, one chunk per transaction, with a fixed set of statements per chunk:
lock the chunk's accounts in id order, re-check the rules under the locks, record, move links
(the higher role wins), re-point earlier merges, mark the secondaries, audit."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from portalctl.core.schema import UTCDateTime
from portalctl.domain.consolidation_plan import STAGE
from portalctl.domain.outbox import queue_email

RETRYABLE_SQLSTATES = ("40001", "40P01")  # serialization failure, deadlock detected
MAX_ATTEMPTS = 6
_CHUNK = "s.seq BETWEEN :lo AND :hi AND s.outcome IS NULL"


def chunk_bounds(connection: Connection, *, start: int, size: int, last: int) -> int:
    """The last seq of the chunk starting at ``start``, widened so one primary's rows stay
    together (its owner gets one email, and its row is locked once)."""
    end = min(start + size - 1, last)
    widened = connection.execute(sa.text(f"""
        SELECT MAX(seq) FROM {STAGE}
        WHERE primary_id = (SELECT primary_id FROM {STAGE} WHERE seq = :end)"""),
        {"end": end}).scalar()
    return max(end, widened or end)


def apply_chunk_with_retry(engine_or_connection: Connection, *, lo: int, hi: int,
                           batch_id: int | None, operator: str, now_fn: Callable[[], datetime],
                           notify: bool) -> dict[str, int]:
    """One chunk in its own transaction, retried when the database picks it as a deadlock or
    serialization victim (the transaction rolled back whole, the stage included)."""
    connection = engine_or_connection
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            with connection.begin():
                return apply_chunk(connection, lo=lo, hi=hi, batch_id=batch_id,
                                   operator=operator, now=now_fn(), notify=notify)
        except sa.exc.DBAPIError as error:
            state = getattr(getattr(error, "orig", None), "sqlstate", None)
            if state not in RETRYABLE_SQLSTATES or attempt == MAX_ATTEMPTS:
                raise
            time.sleep(0.05 * attempt)
    raise AssertionError("unreachable")


def apply_chunk(connection: Connection, *, lo: int, hi: int, batch_id: int | None,
                operator: str, now: datetime, notify: bool = False) -> dict[str, int]:
    """Apply the planned merges numbered lo..hi in the caller's transaction; outcome counts."""
    params = {"lo": lo, "hi": hi, "now": now, "operator": operator, "batch": batch_id}

    def run(sql: str):
        statement = sa.text(sql)
        if ":now" in sql:
            statement = statement.bindparams(sa.bindparam("now", type_=UTCDateTime))
        return connection.execute(statement, params)

    if connection.dialect.name == "postgresql":
        # Fixed order (by id): two overlapping runs queue on the same rows instead of deadlocking.
        run(f"""SELECT id FROM accounts WHERE id = ANY(ARRAY(
                    SELECT primary_id FROM {STAGE} s WHERE {_CHUNK}
                    UNION SELECT secondary_id FROM {STAGE} s WHERE {_CHUNK}))
                ORDER BY id FOR UPDATE""")
    secondaries = f"SELECT s.secondary_id FROM {STAGE} s WHERE {_CHUNK}"
    # On PostgreSQL "= ANY(ARRAY(...))" probes the index for each id instead of hashing a scan
    # of the whole table once per chunk.
    postgres = connection.dialect.name == "postgresql"
    in_secondaries = f"= ANY(ARRAY({secondaries}))" if postgres else f"IN ({secondaries})"

    def probe(column: str) -> str:
        return f"AND {column} = ANY(ARRAY({secondaries}))" if postgres else ""

    # The plan was made without locks; another run may have changed these accounts since.
    changed = run(f"""
        UPDATE {STAGE} SET
            outcome = CASE WHEN sec.merged_into = p.id THEN 'already_merged' ELSE 'refused' END,
            code = CASE WHEN sec.merged_into = p.id THEN 0 ELSE 4 END,
            detail = CASE
                WHEN sec.merged_into = p.id THEN 'already merged into ' || p.username
                WHEN sec.merged_into IS NOT NULL THEN 'secondary ' || {STAGE}.secondary_name
                     || ' was merged into another account meanwhile'
                WHEN p.status <> 'active' THEN 'primary ' || {STAGE}.final_key || ' is '
                     || p.status || ', not active'
                ELSE 'secondary ' || {STAGE}.secondary_name || ' no longer holds TIN *****'
                     || substr({STAGE}.tin, 6, 4) END
        FROM accounts sec, accounts p
        WHERE sec.id = {STAGE}.secondary_id AND p.id = {STAGE}.primary_id
          AND {STAGE}.seq BETWEEN :lo AND :hi AND {STAGE}.outcome IS NULL {probe("sec.id")}
          AND (sec.merged_into IS NOT NULL OR p.status <> 'active'
               OR ({STAGE}.tin IS NOT NULL AND NOT EXISTS (
                   SELECT 1 FROM account_tins t
                   WHERE t.account_id = {STAGE}.secondary_id AND t.tin = {STAGE}.tin)))"""
                  ).rowcount
    already = changed and run(f"SELECT COUNT(*) FROM {STAGE} WHERE seq BETWEEN :lo AND :hi "
                              "AND outcome = 'already_merged'").scalar_one()
    # (only when something changed under us: that count does not depend on the chunk's size)
    merged = run(f"""
        INSERT INTO consolidations (batch_id, line, primary_id, secondary_id, tin,
                                    links_moved, operator, merged_at)
        SELECT CAST(:batch AS BIGINT), s.line, s.primary_id, s.secondary_id, s.tin,
               COALESCE(held.links, 0), :operator, :now
        FROM {STAGE} s LEFT JOIN (
            SELECT t.account_id, COUNT(*) AS links FROM account_tins t
            WHERE t.account_id {in_secondaries}
            GROUP BY t.account_id) held ON held.account_id = s.secondary_id
        WHERE {_CHUNK}""").rowcount
    json = _json_object(connection)
    run(f"""INSERT INTO audit_log (at, operator, action, target, account, details)
            SELECT :now, :operator, 'account.repoint', 'account:' || m.username, m.username,
                   {json}('from', sec.username, 'to', p.username)
            FROM {STAGE} s JOIN accounts m ON m.merged_into = s.secondary_id
            JOIN accounts sec ON sec.id = s.secondary_id JOIN accounts p ON p.id = s.primary_id
            WHERE {_CHUNK}""")
    run(f"""UPDATE accounts SET merged_into = s.primary_id, updated_at = :now
            FROM {STAGE} s WHERE accounts.merged_into = s.secondary_id AND {_CHUNK}
              {probe("accounts.merged_into")}""")
    # 'security_admin' sorts before 'user': MIN(role) is the higher role of the secondaries,
    # and the upsert keeps the higher of that and the primary's own.
    run(f"""INSERT INTO account_tins (account_id, tin, role, linked_at)
            SELECT s.primary_id, t.tin, MIN(t.role), MIN(t.linked_at)
            FROM {STAGE} s JOIN account_tins t ON t.account_id = s.secondary_id
            WHERE {_CHUNK} {probe("t.account_id")}
            GROUP BY s.primary_id, t.tin
            ORDER BY s.primary_id, t.tin
            ON CONFLICT (account_id, tin) DO UPDATE SET role = CASE
                WHEN excluded.role = 'security_admin' THEN 'security_admin'
                ELSE account_tins.role END""")
    run(f"DELETE FROM account_tins WHERE account_id {in_secondaries}")
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
    counts = {"merged": merged, "already_merged": already, "refused": changed - already}
    if batch_id is not None:
        connection.execute(sa.text("""
            UPDATE consolidation_batches SET merged = merged + :merged,
                   already_merged = already_merged + :already_merged,
                   refused = refused + :refused, heartbeat_at = :now
            WHERE id = :batch""").bindparams(sa.bindparam("now", type_=UTCDateTime)),
            {**counts, "now": now, "batch": batch_id})
    if notify and counts["merged"]:
        queue_consolidation_emails(connection, lo=lo, hi=hi, now=now)
    return counts


def _json_object(connection: Connection) -> str:
    return "jsonb_build_object" if connection.dialect.name == "postgresql" else "json_object"


def queue_consolidation_emails(connection: Connection, *, lo: int, hi: int, now: datetime
                               ) -> int:
    """One ``accounts_consolidated`` email to each surviving account of the chunk."""
    rows = connection.execute(sa.text(f"""
        SELECT p.id, p.username, p.email, p.full_name, s.secondary_username AS secondary
        FROM {STAGE} s JOIN accounts p ON p.id = s.primary_id
        WHERE {_CHUNK} ORDER BY p.id, s.line"""), {"lo": lo, "hi": hi}).mappings().all()
    by_primary: dict[int, list[Any]] = {}
    for row in rows:
        by_primary.setdefault(row["id"], []).append(row)
    for account_id, merged in by_primary.items():
        first = merged[0]
        subject, body = consolidation_email(first["full_name"], first["username"],
                                            [row["secondary"] for row in merged])
        queue_email(connection, kind="accounts_consolidated", recipient=first["email"],
                    recipient_name=first["full_name"], subject=subject, body=body,
                    account_id=account_id, now=now)
    return len(by_primary)


def consolidation_email(full_name: str, username: str, merged: list[str]) -> tuple[str, str]:
    """Subject and body telling the surviving account's owner what was merged into it."""
    listing = "\n".join(f"  - {name}" for name in merged)
    body = (f"Hello {full_name},\n\n"
            f"Your provider portal accounts have been consolidated. From now on, sign in as\n"
            f"{username}; it holds the Tax IDs and roles of these accounts, which can no longer\n"
            f"be used:\n\n{listing}\n\n"
            "If you did not ask for this, please call Provider Services.\n\n"
            "To maintain HIPAA compliance, please do not share your username or password with "
            "anyone.\n")
    return "Your provider portal accounts have been consolidated", body
