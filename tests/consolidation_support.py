"""Test data for consolidation: accounts made with plain SQL (fast at 100,000 rows), files of
merges, and a dump of every table to compare database states."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from portalctl.core.clock import utc_now
from portalctl.core.schema import UTCDateTime
from portalctl.core.tin import Tin
from portalctl.domain.account_changes import create_account

TIN_POOL = 1000


def tin_for(index: int) -> str:
    return str(100000000 + index % TIN_POOL)


def make_account(backend, username: str, *tins: str, status: str = "active") -> None:
    """One account; ``tins`` as 'TIN' or 'TIN:role'."""
    links = [(Tin.parse(t.partition(":")[0]), t.partition(":")[2] or "user") for t in tins]
    with backend.begin() as connection:
        create_account(
            connection,
            operator="setup",
            username=username,
            email=username if "@" in username else f"{username}@example.org",
            full_name=username.title(),
            tins=links,
        )
        if status != "active":
            connection.execute(
                sa.text("UPDATE accounts SET status = :s WHERE username = :u"),
                {"s": status, "u": username},
            )


def make_groups(backend, count: int, prefixes: str = "ps") -> None:
    """``count`` groups of accounts named <prefix><i> for each prefix. Account p<i> holds
    tin(i) as user; the others hold tin(i) as security_admin and tin(i + 1) as user."""
    now = utc_now()
    params = {"count": count, "now": now}
    typed = [sa.bindparam("now", type_=UTCDateTime)]
    numbers = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :count)"
    with backend.begin() as connection:
        connection.execute(
            sa.text(f"""
            {numbers.replace(":count", str(TIN_POOL))}
            INSERT INTO organisations (tin, failed_code_attempts, created_at)
            SELECT CAST(100000000 + i - 1 AS VARCHAR(9)), 0, :now FROM n
            WHERE NOT EXISTS (SELECT 1 FROM organisations)""").bindparams(*typed),
            params,
        )
        for prefix in prefixes:
            connection.execute(
                sa.text(f"""
                {numbers}
                INSERT INTO accounts (username, email, full_name, status, failed_verifications,
                                      created_at, updated_at)
                SELECT '{prefix}' || i, '{prefix}' || i || '@example.org', 'User {prefix}' || i,
                       'active', 0, :now, :now FROM n""").bindparams(*typed),
                params,
            )
            role = "user" if prefix == "p" else "security_admin"
            for offset, link_role in [(0, role)] if prefix == "p" else [(0, role), (1, "user")]:
                connection.execute(
                    sa.text(f"""
                    INSERT INTO account_tins (account_id, tin, role, linked_at)
                    SELECT id, CAST(100000000 + (CAST(substr(username, 2) AS INTEGER) + {offset})
                                    % {TIN_POOL} AS VARCHAR(9)), '{link_role}', :now
                    FROM accounts WHERE username LIKE '{prefix}%'
                      AND status = 'active'""").bindparams(*typed),
                    params,
                )


def write_pairs(path: Path, pairs, *, header: str = "primary_username,secondary_username") -> Path:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(header + "\n")
        for pair in pairs:
            handle.write(",".join(pair) + "\n")
    return path


def dump_tables(backend) -> dict[str, list[tuple]]:
    """Every row of every table the database has, ordered, to compare two states exactly."""
    dump = {}
    with backend.engine.connect() as connection:
        for name in sorted(sa.inspect(connection).get_table_names()):
            rows = connection.exec_driver_sql(f"SELECT * FROM {name}").all()
            dump[name] = sorted((tuple(row) for row in rows), key=repr)
    return dump


def logical_state(backend) -> dict[str, list[tuple]]:
    """What a run decides, independent of ids, times and batch numbers."""
    return {
        "accounts": [
            tuple(r)
            for r in backend.rows("""
            SELECT a.username, a.status, m.username FROM accounts a
            LEFT JOIN accounts m ON m.id = a.merged_into ORDER BY a.username""")
        ],
        "links": [
            tuple(r)
            for r in backend.rows("""
            SELECT a.username, t.tin, t.role FROM account_tins t
            JOIN accounts a ON a.id = t.account_id ORDER BY a.username, t.tin""")
        ],
        "consolidations": [
            tuple(r)
            for r in backend.rows("""
            SELECT c.line, p.username, s.username, c.tin, c.links_moved FROM consolidations c
            JOIN accounts p ON p.id = c.primary_id JOIN accounts s ON s.id = c.secondary_id
            ORDER BY c.line""")
        ],
        "audits": [
            tuple(r)
            for r in backend.rows("""
            SELECT account, target FROM audit_log WHERE action = 'account.consolidate'
            ORDER BY target""")
        ],
    }


def links_of(backend, username: str) -> dict[str, str]:
    return {
        r["tin"]: r["role"]
        for r in backend.rows(
            "SELECT t.tin, t.role FROM account_tins t JOIN accounts a ON a.id = t.account_id "
            "WHERE a.username = :u",
            u=username,
        )
    }


def account(backend, username: str):
    rows = backend.rows(
        "SELECT a.status, m.username AS merged_into FROM accounts a "
        "LEFT JOIN accounts m ON m.id = a.merged_into WHERE a.username = :u",
        u=username,
    )
    return (rows[0]["status"], rows[0]["merged_into"])
