"""The steps of a chunk that each backend does its own way: how the chunk's accounts are locked
and reached, and how the secondaries' links move to their primaries while each merge is
recorded with the number of links it moved."""

from __future__ import annotations

from typing import Protocol

from sqlalchemy.engine import Connection

from portalctl.domain.consolidation.chunk import (
    CHUNK_SECONDARIES,
    IN_CHUNK,
    Chunk,
    record_merges_sql,
)
from portalctl.domain.consolidation.plan import STAGE


class ChunkStrategy(Protocol):
    def lock_accounts(self, chunk: Chunk) -> tuple[str, str]:
        """Lock the chunk's accounts; the re-check's FROM and its join condition."""

    def probe(self, column: str) -> str:
        """A condition narrowing ``column`` to the chunk's secondaries, if it helps the plan."""

    def move_links_and_record(self, chunk: Chunk) -> int:
        """Move the secondaries' links, record the merges; how many merges."""


def strategy_for(connection: Connection) -> ChunkStrategy:
    return PostgresChunks() if connection.dialect.name == "postgresql" else SqliteChunks()


def outer_joined(row_id: str) -> tuple[str, str]:
    """The re-check's FROM and join condition keeping the chunk's rows whose primary or
    secondary no longer exists (``row_id``: the backend's name for a row's address)."""
    return (
        f"(SELECT s.{row_id} AS row, s.primary_id, s.secondary_id FROM {STAGE} s "
        f"WHERE {IN_CHUNK}) x LEFT JOIN accounts sec ON sec.id = x.secondary_id "
        "LEFT JOIN accounts p ON p.id = x.primary_id",
        f"{STAGE}.{row_id} = x.row",
    )


class PostgresChunks:
    """Row locks in id order; statements probe the chunk's ids by index (``= ANY(ARRAY(...))``
    instead of hashing a scan of the whole table once per chunk); links are upserted, then the
    secondaries' links are deleted and counted for their records in one statement."""

    in_secondaries = f"= ANY(ARRAY({CHUNK_SECONDARIES}))"

    def lock_accounts(self, chunk: Chunk) -> tuple[str, str]:
        # A fixed order (by id): two overlapping runs queue on the same rows instead of
        # deadlocking. Counted on the server, so the ids need not travel.
        expected, locked = list(
            chunk.run(f"""
            WITH ids AS MATERIALIZED (SELECT primary_id AS id FROM {STAGE} s WHERE {IN_CHUNK}
                                      UNION SELECT secondary_id FROM {STAGE} s WHERE {IN_CHUNK})
            SELECT (SELECT COUNT(*) FROM ids), (SELECT COUNT(*) FROM (
                SELECT id FROM accounts WHERE id = ANY(ARRAY(SELECT id FROM ids))
                ORDER BY id FOR UPDATE) locked)""").one()
        )
        if locked != expected:
            # An account deleted since the plan: the outer joins, so that its rows are refused
            # instead of failing the chunk on a foreign key.
            return outer_joined("ctid")
        return (
            "accounts sec, accounts p",
            f"sec.id = {STAGE}.secondary_id AND p.id = {STAGE}.primary_id "
            f"AND {STAGE}.primary_id BETWEEN :lo AND :hi {self.probe('sec.id')}",
        )

    def probe(self, column: str) -> str:
        return f"AND {column} {self.in_secondaries}"

    def move_links_and_record(self, chunk: Chunk) -> int:
        # One upsert of each (primary, TIN) with MIN(role), which is security_admin when any
        # secondary holds it so (the upsert keeps the higher of that and the primary's own).
        chunk.run(f"""
            INSERT INTO account_tins (account_id, tin, role, linked_at)
            SELECT s.primary_id, t.tin, MIN(t.role), MIN(t.linked_at)
            FROM {STAGE} s JOIN account_tins t ON t.account_id = s.secondary_id
            WHERE {IN_CHUNK} AND t.account_id {self.in_secondaries}
            GROUP BY s.primary_id, t.tin
            ORDER BY s.primary_id, t.tin
            ON CONFLICT (account_id, tin) DO UPDATE SET role = CASE
                WHEN excluded.role = 'security_admin' THEN 'security_admin'
                ELSE account_tins.role END""")
        removed = (
            f"WITH removed AS (DELETE FROM account_tins WHERE account_id {self.in_secondaries} "
            "RETURNING account_id)"
        )
        held = (
            "LEFT JOIN (SELECT account_id, COUNT(*) AS links FROM removed "
            "GROUP BY account_id) held ON held.account_id = s.secondary_id"
        )
        return chunk.run(
            removed + record_merges_sql(links_moved="COALESCE(held.links, 0)", joined=held)
        ).rowcount


class SqliteChunks:
    """SQLite's single write lock serialises chunks, and foreign keys are checked by the chunk
    itself (``keys_checked_by_chunks``), so the re-check always outer-joins the accounts. Links
    move by updating their account in place, which leaves the TIN index alone (a delete and an
    insert would touch it twice per link, at random places)."""

    def lock_accounts(self, chunk: Chunk) -> tuple[str, str]:
        return outer_joined("rowid")

    def probe(self, column: str) -> str:
        return ""

    def move_links_and_record(self, chunk: Chunk) -> int:
        merged = chunk.run(
            record_merges_sql(
                links_moved="(SELECT COUNT(*) FROM account_tins t "
                "WHERE t.account_id = s.secondary_id)"
            )
        ).rowcount
        # A link whose TIN the primary already holds (or has just received from another
        # secondary, which then keeps its date) stays behind, lends its role if higher, and goes.
        chunk.run(f"""
            UPDATE OR IGNORE account_tins SET account_id = s.primary_id
            FROM {STAGE} s WHERE account_tins.account_id = s.secondary_id AND {IN_CHUNK}""")
        chunk.run(f"""
            UPDATE account_tins SET role = 'security_admin'
            FROM {STAGE} s JOIN account_tins t ON t.account_id = s.secondary_id
            WHERE {IN_CHUNK} AND t.role = 'security_admin'
              AND account_tins.account_id = s.primary_id AND account_tins.tin = t.tin
              AND account_tins.role <> 'security_admin'""")
        chunk.run(f"DELETE FROM account_tins WHERE account_id IN ({CHUNK_SECONDARIES})")
        return merged
