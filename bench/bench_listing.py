"""Listings stream: ``audit`` of 10,000 and of 300,000 records, in each streaming format, needs
the same memory (peak resident size of the process), and its first line comes as soon for both."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta

from bench.support import PORTALCTL, base_env, fresh_postgres_schema
from bench.support import run as command

SIZES = (10_000, 300_000)
FORMATS = ("jsonl", "json", "csv", "table")
INSERT_CHUNK = 20_000


def run(context) -> None:
    sqlite_url = f"sqlite:///{context.work_dir / 'bench-listing.db'}"
    _figures("SQLite", sqlite_url, context)
    if context.postgres_url:
        with fresh_postgres_schema(context.postgres_url) as url:
            _figures("PostgreSQL", url, context)


def _figures(name: str, url: str, context) -> None:
    env = base_env(url, context.work_dir)
    command([PORTALCTL, "db", "init"], env)
    present = 0
    peaks: dict[str, list[float]] = {fmt: [] for fmt in FORMATS}
    for size in SIZES:
        started = time.perf_counter()
        _add_audit_records(url, present, size - present)
        print(f"   (filling: {time.perf_counter() - started:.1f} s)")
        present = size
        listing = [PORTALCTL, "audit", "--limit", str(size), "--format"]
        for fmt in FORMATS:
            peaks[fmt].append(_peak_mib([*listing, fmt], env))
        first = _seconds_to_first_line([*listing, "jsonl"], env)
        print(f"   {name}: audit of {size:>7,} records: first line after {first * 1000:5.0f} ms")
    for fmt in FORMATS:
        small, large = peaks[fmt]
        print(
            f"   {name}: audit --format {fmt:<5} peak memory {small:6.1f} MiB at {SIZES[0]:,}, "
            f"{large:6.1f} MiB at {SIZES[1]:,} ({large / small:.2f}x for {SIZES[1] // SIZES[0]}x "
            f"the records)"
        )


def _add_audit_records(url: str, start: int, count: int) -> None:
    import sqlalchemy as sa

    from portalctl.core.clock import utc_now
    from portalctl.core.database import create_engine
    from portalctl.core.schema import audit_log

    engine = create_engine(url)
    base = utc_now() - timedelta(days=30)
    try:
        for offset in range(start, start + count, INSERT_CHUNK):
            rows = [
                {
                    "at": base + timedelta(seconds=n),
                    "operator": "bench",
                    "action": "account.update",
                    "target": f"account:user{n}",
                    "account": f"user{n}",
                    "tin": None,
                    "details": {"field": "email", "n": n},
                }
                for n in range(offset, min(offset + INSERT_CHUNK, start + count))
            ]
            with engine.begin() as connection:
                connection.execute(sa.insert(audit_log), rows)
    finally:
        engine.dispose()


# A child's peak resident size, as the kernel counts it, includes the memory of the process it
# was forked from; so a small launcher starts the command, and reports its peak alone.
_LAUNCHER = (
    "import os, subprocess, sys\n"
    "process = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
    "_, status, usage = os.wait4(process.pid, 0)\n"
    "print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)\n"
)


def _peak_mib(args: list[str], env: dict[str, str]) -> float:
    """The command's own peak resident size, in MiB."""
    launched = command([sys.executable, "-c", _LAUNCHER, *args], env)
    exit_code, peak_kib = launched.stdout.split()
    if exit_code != "0":
        raise RuntimeError(f"{' '.join(args)} failed ({exit_code})")
    return int(peak_kib) / 1024


def _seconds_to_first_line(args: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    process = subprocess.Popen(args, env={**os.environ, **env}, stdout=subprocess.PIPE)
    assert process.stdout is not None
    process.stdout.readline()
    seconds = time.perf_counter() - started
    process.kill()
    process.wait()
    return seconds
