"""Consolidation: `consolidate run` against a hand-written set-based SQL baseline on PostgreSQL
(same data, same file), SQLite at 1,000,000 merges, and the peak memory of a large run.

Sizes can be changed with PORTALCTL_BENCH_CONSOLIDATE_PG_ROWS (default 100,000 merges over
200,000 accounts), PORTALCTL_BENCH_CONSOLIDATE_SQLITE_ROWS (default 1,000,000 merges) and
PORTALCTL_BENCH_CONSOLIDATE_ROUNDS (PostgreSQL rounds, default 3)."""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from pathlib import Path

import sqlalchemy as sa

from bench.support import PORTALCTL, base_env, fresh_postgres_schema, timed
from bench.support import run as command

PG_ROWS = int(os.environ.get("PORTALCTL_BENCH_CONSOLIDATE_PG_ROWS", "100000"))
SQLITE_ROWS = int(os.environ.get("PORTALCTL_BENCH_CONSOLIDATE_SQLITE_ROWS", "1000000"))
ROUNDS = int(os.environ.get("PORTALCTL_BENCH_CONSOLIDATE_ROUNDS", "3"))
TIN_POOL = 50_000


def run(context) -> None:
    if context.postgres_url:
        _postgres(context)
    else:
        print("   PostgreSQL figures skipped (no server)")
    _sqlite(context)


def _postgres(context) -> None:
    """Baseline and `consolidate run` on identical fresh data, ROUNDS times, alternating which
    goes first; medians, because this shared machine's speed drifts by a third within minutes."""
    path = _write_file(context.work_dir / "merges-pg.csv", PG_ROWS)
    baselines, runs, peaks = [], [], []
    for round_number in range(ROUNDS):
        with (
            fresh_postgres_schema(context.postgres_url) as baseline_url,
            fresh_postgres_schema(context.postgres_url) as portalctl_url,
        ):
            for url in (baseline_url, portalctl_url):
                command([PORTALCTL, "db", "init"], base_env(url, context.work_dir))
                _populate(url, PG_ROWS)
            if round_number % 2:
                seconds, peak = _portalctl_run(portalctl_url, path, context)
                baseline = _baseline(baseline_url, path)
            else:
                baseline = _baseline(baseline_url, path)
                seconds, peak = _portalctl_run(portalctl_url, path, context)
            baselines.append(baseline)
            runs.append(seconds)
            peaks.append(peak)
            if round_number == 0:
                _check_same_outcome(baseline_url, portalctl_url)
    baseline, seconds = statistics.median(baselines), statistics.median(runs)
    timed(
        f"PostgreSQL: baseline SQL, {PG_ROWS:,} merges, {2 * PG_ROWS:,} accounts",
        baseline,
        f"(median of {ROUNDS})",
    )
    timed(
        f"PostgreSQL: consolidate run, {PG_ROWS:,} merges",
        seconds,
        f"(median of {ROUNDS}; {PG_ROWS / seconds:,.0f} merges/s, peak {max(peaks):.0f} MB)",
    )
    ratios = [r / b for r, b in zip(runs, baselines)]
    print(
        f"   PostgreSQL: ratio consolidate run / baseline = {statistics.median(ratios):.2f}, "
        "the median of the rounds' ratios (target <= 1.5; by round: "
        + ", ".join(f"{ratio:.2f}" for ratio in ratios)
        + f"; ratio of the medians {seconds / baseline:.2f})"
    )


def _sqlite(context) -> None:
    url = f"sqlite:///{context.work_dir / 'bench-consolidate.db'}"
    command([PORTALCTL, "db", "init"], base_env(url, context.work_dir))
    started = time.perf_counter()
    _populate(url, SQLITE_ROWS)
    print(
        f"   (SQLite: {2 * SQLITE_ROWS:,} accounts made in {time.perf_counter() - started:.0f} s)"
    )
    path = _write_file(context.work_dir / "merges-sqlite.csv", SQLITE_ROWS)
    seconds, peak = _portalctl_run(url, path, context)
    timed(
        f"SQLite: consolidate run, {SQLITE_ROWS:,} merges (target < 20 s)",
        seconds,
        f"({SQLITE_ROWS / seconds:,.0f} merges/s)",
    )
    print(f"   SQLite: peak memory of that run (max RSS): {peak:.0f} MB (target < 300 MB)")


def _write_file(path: Path, rows: int) -> Path:
    with open(path, "w") as handle:
        handle.write("primary_username,secondary_username\n")
        for index in range(1, rows + 1):
            handle.write(f"p{index},s{index}\n")
    return path


def _populate(url: str, rows: int) -> None:
    """``rows`` pairs p<i>/s<i>, each account holding two TINs (one shared within the pair)."""
    engine = sa.create_engine(url)
    now = "CURRENT_TIMESTAMP"
    series = (
        "generate_series(1, :n) AS g(i)"
        if engine.dialect.name == "postgresql"
        else "(WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :n) "
        "SELECT i FROM n) g"
    )
    with engine.begin() as connection:
        connection.execute(
            sa.text(f"""
            INSERT INTO organisations (tin, failed_code_attempts, created_at)
            SELECT CAST(100000000 + i AS VARCHAR(9)), 0, {now} FROM {series}"""),
            {"n": TIN_POOL},
        )
        for prefix in "ps":
            connection.execute(
                sa.text(f"""
                INSERT INTO accounts (username, email, full_name, status, failed_verifications,
                                      created_at, updated_at)
                SELECT '{prefix}' || i, '{prefix}' || i || '@example.org', 'User ' || i,
                       'active', 0, {now}, {now} FROM {series}"""),
                {"n": rows},
            )
        # tin(i) in both accounts of a pair (user / security_admin), and one TIN of their own.
        for first, p_role, s_role, p_step, s_step in (
            ("1", "user", "security_admin", 0, 0),
            ("0", "user", "user", 7, 13),
        ):
            connection.execute(
                sa.text(f"""
                INSERT INTO account_tins (account_id, tin, role, linked_at)
                SELECT id, CAST(100000001 + (CAST(substr(username, 2) AS INTEGER)
                        + CASE WHEN substr(username, 1, 1) = 'p' THEN {p_step} ELSE {s_step} END)
                        % {TIN_POOL} AS VARCHAR(9)),
                       CASE WHEN substr(username, 1, 1) = 'p' THEN '{p_role}' ELSE '{s_role}' END,
                       {now}
                FROM accounts WHERE {first} = {first} ORDER BY id""")
            )
        if engine.dialect.name == "postgresql":
            connection.exec_driver_sql("ANALYZE")
    engine.dispose()


def _baseline(url: str, path: Path) -> float:
    """The job by hand: COPY, then one statement per step, all in one transaction."""
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        started = time.perf_counter()
        with connection.begin():
            ex = connection.exec_driver_sql
            ex(
                "CREATE TEMPORARY TABLE raw (primary_username TEXT, secondary_username TEXT) "
                "ON COMMIT DROP"
            )
            cursor = connection.connection.driver_connection.cursor()
            with (
                open(path) as handle,
                cursor.copy("COPY raw FROM STDIN WITH (FORMAT csv, HEADER true)") as copy,
            ):
                while block := handle.read(1 << 20):
                    copy.write(block)
            ex("""CREATE TEMPORARY TABLE m ON COMMIT DROP AS
                  SELECT p.id AS primary_id, s.id AS secondary_id, s.username AS secondary
                  FROM raw r JOIN accounts p ON lower(p.username) = lower(r.primary_username)
                  JOIN accounts s ON lower(s.username) = lower(r.secondary_username)""")
            ex("""INSERT INTO account_tins (account_id, tin, role, linked_at)
                  SELECT m.primary_id, t.tin, MIN(t.role), MIN(t.linked_at)
                  FROM m JOIN account_tins t ON t.account_id = m.secondary_id
                  GROUP BY m.primary_id, t.tin
                  ON CONFLICT (account_id, tin) DO UPDATE SET role = CASE
                      WHEN excluded.role = 'security_admin' THEN 'security_admin'
                      ELSE account_tins.role END""")
            ex("DELETE FROM account_tins t USING m WHERE t.account_id = m.secondary_id")
            ex("""UPDATE accounts a SET status = 'merged', merged_into = m.primary_id,
                         updated_at = now()
                  FROM m WHERE a.id = m.secondary_id""")
            ex("""INSERT INTO audit_log (at, operator, action, target, account, details)
                  SELECT now(), 'bench', 'account.consolidate', 'account:' || m.secondary,
                         m.secondary, jsonb_build_object('primary_id', m.primary_id)
                  FROM m""")
        seconds = time.perf_counter() - started
    engine.dispose()
    return seconds


def _portalctl_run(url: str, path: Path, context) -> tuple[float, float]:
    """Wall time and peak RSS (MB) of `consolidate run` as its own process."""
    env = {**os.environ, **base_env(url, context.work_dir)}
    started = time.perf_counter()
    process = subprocess.Popen(
        [PORTALCTL, "consolidate", "run", str(path), "-f", "json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _, _, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = 0
    stdout, stderr = process.communicate()
    if '"merged"' not in stdout:
        raise RuntimeError(f"consolidate run failed: {stderr}")
    return seconds, usage.ru_maxrss / 1024


def _check_same_outcome(baseline_url: str, portalctl_url: str) -> None:
    query = """SELECT COUNT(*), COUNT(*) FILTER (WHERE role = 'security_admin')
               FROM account_tins"""
    figures = []
    for url in (baseline_url, portalctl_url):
        engine = sa.create_engine(url)
        with engine.connect() as connection:
            figures.append(tuple(connection.exec_driver_sql(query).one()))
        engine.dispose()
    print(
        f"   PostgreSQL: links afterwards (total, security_admin): baseline {figures[0]}, "
        f"portalctl {figures[1]}" + ("" if figures[0] == figures[1] else "  MISMATCH")
    )
