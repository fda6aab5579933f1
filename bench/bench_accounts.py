"""Start-up, Account Lookup (one and many), and bulk account import."""

from __future__ import annotations

import sys
import time

from bench.support import PORTALCTL, base_env, fresh_postgres_schema, median_seconds, timed
from bench.support import run as command

IMPORT_ROWS_POSTGRES = 1_000_000
IMPORT_ROWS_SQLITE = 200_000
LOOKUP_QUERIES = 2_000


def run(context) -> None:
    empty = base_env("sqlite:///unused.db", context.work_dir)
    timed("python -c pass", median_seconds([sys.executable, "-c", "pass"], empty))
    timed("portalctl --help   (target <= 150 ms)", median_seconds([PORTALCTL, "--help"], empty))
    timed("portalctl --version (target <= 150 ms)", median_seconds([PORTALCTL, "--version"], empty))

    sqlite_url = f"sqlite:///{context.work_dir / 'bench-accounts.db'}"
    _backend_figures("SQLite", sqlite_url, context, IMPORT_ROWS_SQLITE)
    if context.postgres_url:
        with fresh_postgres_schema(context.postgres_url) as url:
            _backend_figures("PostgreSQL", url, context, IMPORT_ROWS_POSTGRES)


def _backend_figures(name: str, url: str, context, import_rows: int) -> None:
    env = base_env(url, context.work_dir)
    command([PORTALCTL, "db", "init"], env)
    command([PORTALCTL, "db", "demo", "--generated", "2000"], env)
    lookup = [
        PORTALCTL,
        "accounts",
        "lookup",
        "--username",
        "johnsmith@gmail.com",
        "--tin",
        "836576879",
    ]
    timed(f"{name}: accounts lookup, one query (target <= 400 ms)", median_seconds(lookup, env))

    queries = context.work_dir / "lookups.csv"
    with open(queries, "w") as handle:
        handle.write("username,tin\n")
        for index in range(LOOKUP_QUERIES):
            handle.write(f"johnsmith@gmail.com,{836576879 if index % 2 else 111111111}\n")
    many = median_seconds(
        [PORTALCTL, "accounts", "lookup", "--csv", str(queries), "-f", "csv"], env, runs=3
    )
    timed(
        f"{name}: accounts lookup --csv, {LOOKUP_QUERIES} queries",
        many,
        f"({many / LOOKUP_QUERIES * 1e6:.0f} us a query)",
    )

    path = context.work_dir / f"import-{name}.csv"
    _write_import_file(path, import_rows)
    started = time.perf_counter()
    command([PORTALCTL, "accounts", "import", str(path)], env)
    seconds = time.perf_counter() - started
    timed(
        f"{name}: accounts import, {import_rows:,} accounts with 2 TINs",
        seconds,
        f"({import_rows / seconds:,.0f} accounts/s)",
    )


def _write_import_file(path, rows: int) -> None:
    with open(path, "w") as handle:
        handle.write("username,email,full_name,tins,status\n")
        for index in range(rows):
            first, second = 100000000 + index % 50_000, 200000000 + index % 30_000
            handle.write(
                f"bulk{index},bulk{index}@example.org,Bulk User {index},"
                f"{first}:security_admin;{second},active\n"
            )
