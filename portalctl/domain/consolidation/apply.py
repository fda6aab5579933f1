"""Applying planned merges, one chunk per transaction, with a fixed set of statements per chunk
whatever its size: lock the chunk's accounts, re-check the rules under the locks, re-point
earlier merges, move the links (the higher role wins) and record each merge, mark the
secondaries merged, audit, count. A chunk is a range of primary ids, so one primary's rows are
never split (its owner gets one email, and its row is locked once).

The steps that the two backends do differently are their ``ChunkStrategy``'s
(``strategies``); the steps here are the same SQL on both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from portalctl.core.database import driver_connection, retrying_conflicts
from portalctl.core.schema import UTCDateTime
from portalctl.core.tin import masked_tin_sql
from portalctl.domain.consolidation.chunk import IN_CHUNK, Chunk
from portalctl.domain.consolidation.notify import queue_consolidation_emails
from portalctl.domain.consolidation.plan import STAGE
from portalctl.domain.consolidation.rules import RuleColumns, any_rule_holds, rule_assignments
from portalctl.domain.consolidation.strategies import strategy_for

# The re-check reads both accounts as they are now, under the chunk's locks.
LOCKED = RuleColumns(
    primary_id="p.id",
    secondary_id="sec.id",
    secondary_merged_into="sec.merged_into",
    primary_status="p.status",
    stage=STAGE,
)


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

    def next_chunk() -> tuple[int, dict[str, int]] | None:
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
        chunk = Chunk(connection, start, end, batch_id, operator, now_fn())
        return end, apply_chunk(chunk, notify=notify)

    return retrying_conflicts(connection, next_chunk, what="consolidate run")


def apply_chunk(chunk: Chunk, *, notify: bool = False) -> dict[str, int]:
    """Apply the chunk's planned merges; its outcome counts."""
    strategy = strategy_for(chunk.connection)
    accounts_from, matched = strategy.lock_accounts(chunk)
    already, refused = recheck_rules(chunk, accounts_from, matched)
    audit_repoints(chunk, strategy.probe("m.merged_into"))
    repoint_earlier_merges(chunk, strategy.probe("accounts.merged_into"))
    merged = strategy.move_links_and_record(chunk)
    mark_secondaries_merged(chunk, strategy.probe("accounts.id"))
    audit_merges(chunk)
    counts = {"merged": merged, "already_merged": already, "refused": refused}
    if chunk.batch_id is not None:
        count_in_batch(chunk, counts)
    if notify and merged:
        queue_consolidation_emails(chunk.connection, lo=chunk.lo, hi=chunk.hi, now=chunk.now)
    return counts


def recheck_rules(chunk: Chunk, accounts_from: str, matched: str) -> tuple[int, int]:
    """The plan was made without locks; another run may have changed these accounts since.
    Rows the rules now stop leave the chunk: (already merged, refused)."""
    outcomes = (
        chunk.run(f"""
            UPDATE {STAGE} SET {rule_assignments(LOCKED)}
            FROM {accounts_from}
            WHERE {matched} AND {STAGE}.outcome IS NULL AND {any_rule_holds(LOCKED)}
            RETURNING {STAGE}.outcome""")
        .scalars()
        .all()
    )
    already = outcomes.count("already_merged")
    return already, len(outcomes) - already


def audit_repoints(chunk: Chunk, probe: str) -> None:
    chunk.run(f"""
        INSERT INTO audit_log (at, operator, action, target, account, details, flow_id)
        SELECT :now, :operator, 'account.repoint', 'account:' || m.username, m.username,
               {chunk.json_object()}('from', sec.username, 'to', p.username), :flow
        FROM {STAGE} s JOIN accounts m ON m.merged_into = s.secondary_id
        JOIN accounts sec ON sec.id = s.secondary_id JOIN accounts p ON p.id = s.primary_id
        WHERE {IN_CHUNK} {probe}""")


def repoint_earlier_merges(chunk: Chunk, probe: str) -> None:
    """Accounts merged into a secondary now point at its primary: ``merged_into`` always names
    an active account."""
    chunk.run(f"""
        UPDATE accounts SET merged_into = s.primary_id, updated_at = :now
        FROM {STAGE} s WHERE accounts.merged_into = s.secondary_id AND {IN_CHUNK} {probe}""")


def mark_secondaries_merged(chunk: Chunk, probe: str) -> None:
    chunk.run(f"""
        UPDATE accounts SET status = 'merged', merged_into = s.primary_id, updated_at = :now
        FROM {STAGE} s WHERE accounts.id = s.secondary_id AND {IN_CHUNK} {probe}""")


def audit_merges(chunk: Chunk) -> None:
    chunk.run(f"""
        INSERT INTO audit_log (at, operator, action, target, account, tin, details, flow_id)
        SELECT :now, :operator, 'account.consolidate', 'account:' || s.secondary_username,
               s.primary_username, s.tin,
               {chunk.json_object()}('primary', s.primary_username,
                                     'secondary', s.secondary_username, 'line', s.line,
                                     'batch_id', CAST(:batch AS BIGINT),
                                     'tin', {masked_tin_sql("s.tin")}{chunk.extra_details()}),
               :flow
        FROM {STAGE} s WHERE {IN_CHUNK}""")


def count_in_batch(chunk: Chunk, counts: dict[str, int]) -> None:
    chunk.connection.execute(
        sa.text("""
            UPDATE consolidation_batches SET merged = merged + :merged,
                   already_merged = already_merged + :already_merged,
                   refused = refused + :refused, heartbeat_at = :now
            WHERE id = :batch""").bindparams(sa.bindparam("now", type_=UTCDateTime)),
        {**counts, "now": chunk.now, "batch": chunk.batch_id},
    )


@contextmanager
def keys_checked_by_chunks(connection: Connection) -> Iterator[None]:
    """SQLite: the block's chunks write with foreign key enforcement off, on this connection.
    Enforced, every update of ``merged_into`` (a key into its own table) makes SQLite rewrite
    all of the row's index entries and probe the unique username index again: a large part of a
    large run. Each chunk checks, in its own transaction and under SQLite's single write lock,
    that every account it names exists, and its other keys are copied from rows that hold them;
    ``PRAGMA foreign_key_check`` stays clean (tested). Must be called outside a transaction."""
    if connection.dialect.name != "sqlite" or connection.in_transaction():
        yield
        return
    driver = driver_connection(connection)
    assert driver is not None
    driver.execute("PRAGMA foreign_keys = OFF")
    try:
        yield
    finally:
        driver.execute("PRAGMA foreign_keys = ON")
