"""Listings stream: the first rows reach a reader at once, a reader that leaves (``| head``)
ends the command quietly, and a listing the limit cut says so."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PORTALCTL = str(ROOT / ".venv" / "bin" / "portalctl")


def _many_audit_rows(backend, count: int) -> None:
    with backend.begin() as connection:
        if backend.name == "postgresql":
            connection.exec_driver_sql(
                "INSERT INTO audit_log (at, operator, action, target, details) "
                "SELECT now() - (g * interval '1 second'), 'op', 'test.row', 'row:' || g, '{}' "
                f"FROM generate_series(1, {count}) g"
            )
        else:
            connection.exec_driver_sql(
                "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < "
                f"{count}) INSERT INTO audit_log (at, operator, action, target, details) "
                "SELECT datetime('now', '-' || n || ' seconds'), 'op', 'test.row', "
                "'row:' || n, '{}' FROM g"
            )


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "json"])
def test_a_reader_that_leaves_after_one_line_ends_the_listing_quietly(backend, fmt):
    _many_audit_rows(backend, 50_000)
    started = time.monotonic()
    run = subprocess.run(
        f"{PORTALCTL} audit --limit 1000000 -f {fmt} | head -n 1",
        shell=True,
        env={**os.environ, **backend.env},
        capture_output=True,
        text=True,
        executable="/bin/bash",
    )
    assert run.returncode == 0 and run.stderr == ""
    assert run.stdout.count("\n") == 1
    assert time.monotonic() - started < 20


def test_jsonl_is_one_object_a_line_and_a_cut_listing_says_so(backend, cli):
    _many_audit_rows(backend, 30)
    result = cli("audit", "--action", "test.row", "--limit", "10", "-f", "jsonl")
    assert result.exit_code == 0
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 10 and rows[0]["target"] == "row:1"
    assert result.stderr == "portalctl: only the first 10 shown; --limit N shows more\n"
    whole = cli("audit", "--action", "test.row", "--limit", "30", "-f", "json")
    assert len(whole.json()) == 30 and whole.stderr == ""
