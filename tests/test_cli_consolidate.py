"""`portalctl consolidate ...` end to end: exit codes and output, a kill -9 mid-run and the re-run
that finishes it, the same file started twice, and overlapping runs on PostgreSQL."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import Backend
from consolidation_support import (
    account,
    links_of,
    logical_state,
    make_account,
    make_groups,
    tin_for,
    write_pairs,
)

from portalctl.core.clock import utc_now
from portalctl.core.database import create_engine
from portalctl.core.migrations import apply_pending
from portalctl.core.readonly_db import readonly_connection
from portalctl.domain.consolidation import run_consolidation_file

PORTALCTL = str(Path(sys.executable).parent / "portalctl")


def test_run_prints_the_summary_and_writes_the_report(cli, backend, tmp_path):
    make_account(backend, "johnsmith@gmail.com", "836576879:security_admin")
    make_account(backend, "jsmith_old", "836576879", "223456781")
    make_account(backend, "john.smith.2019", "223456781:security_admin")
    path = write_pairs(
        tmp_path / "dups.csv",
        [("johnsmith@gmail.com", "jsmith_old"), ("johnsmith@gmail.com", "john.smith.2019")],
    )
    result = cli("consolidate", "run", str(path), "--report", str(tmp_path / "r.csv"), "-f", "json")
    assert result.exit_code == 0, result.stderr
    summary = result.json()
    assert {
        k: summary[k] for k in ("rows", "merged", "already_merged", "invalid", "refused", "dry_run")
    } == {"rows": 2, "merged": 2, "already_merged": 0, "invalid": 0, "refused": 0, "dry_run": False}
    assert (tmp_path / "r.csv").read_text().splitlines() == [
        "line,primary_username,secondary_username,outcome,detail",
        "2,johnsmith@gmail.com,jsmith_old,merged,",
        "3,johnsmith@gmail.com,john.smith.2019,merged,",
    ]
    assert links_of(backend, "johnsmith@gmail.com") == {
        "836576879": "security_admin",
        "223456781": "security_admin",
    }
    batches = cli("consolidate", "status", "-f", "json").json()
    assert [(b["id"], b["state"], b["merged"]) for b in batches] == [
        (summary["batch_id"], "completed", 2)
    ]
    shown = cli("consolidate", "status", str(summary["batch_id"]), "-f", "json").json()
    assert shown["consolidations_recorded"] == 2 and shown["file_name"] == "dups.csv"
    again = cli("consolidate", "run", str(path), "-f", "json").json()
    assert (again["merged"], again["already_merged"]) == (0, 2)


def test_run_with_a_bad_row_exits_5_naming_the_line(cli, backend, tmp_path):
    make_account(backend, "ann", "836576879")
    make_account(backend, "bob", "223456781")
    path = write_pairs(tmp_path / "f.csv", [("ann", "bob"), ("ann", "nobody")])
    result = cli("consolidate", "run", str(path))
    assert result.exit_code == 5 and result.stdout == ""
    assert f"{path}:3: refused: no account nobody" in result.stderr
    assert "Traceback" not in result.stderr
    assert account(backend, "bob") == ("active", None)
    skipped = cli("consolidate", "run", str(path), "--skip-invalid", "-f", "json")
    assert skipped.exit_code == 7 and skipped.json()["merged"] == 1
    assert "1 row(s) not applied" in skipped.stderr


def test_run_with_an_unknown_column_exits_5(cli, backend, tmp_path):
    path = tmp_path / "f.csv"
    path.write_text("primary,secondary_username\nann,bob\n")
    result = cli("consolidate", "run", str(path))
    assert result.exit_code == 5
    assert result.stderr.startswith(f"portalctl: {path}:1: unknown column 'primary'")


def test_one_maps_rules_to_exit_codes(cli, backend):
    make_account(backend, "ann", "836576879")
    make_account(backend, "bob", "223456781")
    assert cli("consolidate", "one", "-p", "ann", "-s", "ann").exit_code == 4
    assert cli("consolidate", "one", "-p", "ann", "-s", "ghost").exit_code == 3
    bad_tin = cli("consolidate", "one", "-p", "ann", "-s", "bob", "--tin", "12")
    assert bad_tin.exit_code == 5 and "invalid TIN" in bad_tin.stderr
    moved = cli(
        "consolidate",
        "one",
        "-p",
        "ann",
        "-s",
        "bob",
        "--tin",
        "22-3456781",
        "-f",
        "json",
        "--override-reason",
        "verified by phone",
    )
    assert moved.exit_code == 0
    assert moved.json()["links_moved"] == [{"tin": "*****6781", "role": "user"}]
    assert cli("consolidate", "status", "99").exit_code == 3


def _start_run(backend, path: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [PORTALCTL, "consolidate", "run", str(path), "-f", "json", *extra],
        env={**os.environ, **backend.env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_merges(backend, process: subprocess.Popen, at_least: int = 1) -> int:
    """Poll with plain reads: the engine's SQLite transactions begin IMMEDIATE, and a poller
    queueing for the write lock between the run's back-to-back chunks may only get it at the end."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with readonly_connection(backend.url) as connection:
            done = connection.rows("SELECT COUNT(*) AS done FROM consolidations")[0]["done"]
        if done >= at_least:
            return done
        assert process.poll() is None, process.communicate()
        time.sleep(0.01)
    raise AssertionError("the run never committed a chunk")


def _reference_state(tmp_path: Path, groups: int, path: Path) -> dict:
    """The same data and file, run without interruption on a second, fresh database."""
    url = f"sqlite:///{tmp_path / 'reference.db'}"
    engine = create_engine(url)
    apply_pending(engine, now=utc_now())
    reference = Backend("sqlite", url, engine)
    make_groups(reference, groups)
    run_consolidation_file(engine, path, operator="test-operator", chunk_size=500)
    state = logical_state(reference)
    engine.dispose()
    return state


def test_kill_9_mid_run_then_the_rerun_finishes_exactly(cli, backend, tmp_path):
    groups = 20_000
    make_groups(backend, groups)
    path = write_pairs(tmp_path / "big.csv", [(f"p{i}", f"s{i}") for i in range(1, groups + 1)])
    process = _start_run(backend, path, "--chunk-size", "100")
    _wait_for_merges(backend, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done = backend.scalar("SELECT COUNT(*) FROM consolidations")
    assert 0 < done < groups, "the run ended before it could be killed"
    assert backend.scalar("SELECT state FROM consolidation_batches") == "running"

    result = cli("consolidate", "run", str(path), "-f", "json")
    assert result.exit_code == 0, result.stderr
    summary = result.json()
    assert (summary["already_merged"], summary["merged"]) == (done, groups - done)
    states = backend.rows("SELECT state FROM consolidation_batches ORDER BY id")
    assert [row["state"] for row in states] == ["failed", "completed"]
    assert logical_state(backend) == _reference_state(tmp_path, groups, path)
    assert links_of(backend, "p7") == {tin_for(7): "security_admin", tin_for(8): "user"}


def test_the_same_file_twice_at_once_is_refused(cli, backend, tmp_path):
    """SQLite: a running batch whose runner process is alive refuses a second run (exit 4);
    once that process is dead the batch counts as crashed and the re-run proceeds."""
    if backend.name == "postgresql":
        pytest.skip("PostgreSQL decides by advisory lock: see the test below")
    make_account(backend, "ann", "836576879")
    make_account(backend, "bob", "223456781")
    path = write_pairs(tmp_path / "f.csv", [("ann", "bob")])
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        first = cli("consolidate", "run", str(path), "--dry-run")
        assert first.exit_code == 0
        import hashlib

        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        with backend.begin() as connection:
            connection.execute(
                sa.text("""
                INSERT INTO consolidation_batches (file_name, file_sha256, state, operator,
                    runner, started_at, heartbeat_at)
                VALUES ('f.csv', :sha, 'running', 'someone', :runner, :now, :now)"""),
                {
                    "sha": sha,
                    "runner": f"{sleeper.pid}@{socket.gethostname()}",
                    "now": utc_now().replace(tzinfo=None),
                },
            )
        refused = cli("consolidate", "run", str(path))
        assert refused.exit_code == 4 and "batch already running" in refused.stderr
    finally:
        sleeper.kill()
        sleeper.wait()
    assert cli("consolidate", "run", str(path)).exit_code == 0
    assert account(backend, "bob") == ("merged", "ann")


def test_a_second_run_of_a_running_file_exits_4_and_a_killed_run_shows_as_crashed(
    cli, backend, tmp_path
):
    """Wherever the first run is stopped (between chunks or inside one, holding SQLite's write
    lock), a second run of its file is refused at once; killed, it shows as crashed (its
    advisory lock free, its process gone) until a re-run finishes the file."""
    make_groups(backend, 5000)
    path = write_pairs(tmp_path / "f.csv", [(f"p{i}", f"s{i}") for i in range(1, 5001)])
    process = _start_run(backend, path, "--chunk-size", "50")
    try:
        _wait_for_merges(backend, process)
        process.send_signal(signal.SIGSTOP)
        started = time.monotonic()
        refused = cli("consolidate", "run", str(path))
        assert refused.exit_code == 4 and "batch already running" in refused.stderr
        assert time.monotonic() - started < 10
        assert _shown_states(cli) == ["running"]
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert _shown_states(cli) == ["crashed"]
    finished = cli("consolidate", "run", str(path), "-f", "json")
    assert finished.exit_code == 0, finished.stderr
    assert finished.json()["merged"] + finished.json()["already_merged"] == 5000
    assert _shown_states(cli) == ["completed", "failed"]


def _shown_states(cli) -> list[str]:
    listed = cli("consolidate", "status", "-f", "json")
    assert listed.exit_code == 0, listed.stderr
    return [batch["state"] for batch in listed.json()]


@pytest.mark.postgres
def test_postgres_overlapping_runs_lose_nothing(backend, tmp_path):
    if backend.name != "postgresql":
        pytest.skip("PostgreSQL only")
    groups = 3000
    make_groups(backend, groups, prefixes="psq")
    forward = write_pairs(tmp_path / "a.csv", [(f"p{i}", f"s{i}") for i in range(1, groups + 1)])
    backward = write_pairs(tmp_path / "b.csv", [(f"q{i}", f"p{i}") for i in range(groups, 0, -1)])
    runs = [
        _start_run(backend, path, "--chunk-size", "100", "--skip-invalid")
        for path in (forward, backward)
    ]
    outputs = [run.communicate(timeout=120) for run in runs]
    for run, (_, stderr) in zip(runs, outputs):
        assert run.returncode in (0, 7), stderr
        assert "deadlock" not in stderr.lower() and "serializ" not in stderr.lower()
    assert (
        backend.scalar("""SELECT COUNT(*) FROM account_tins t JOIN accounts a
                             ON a.id = t.account_id WHERE a.status = 'merged'""")
        == 0
    )
    assert (
        backend.scalar("""SELECT COUNT(*) FROM accounts a JOIN accounts m
                             ON m.id = a.merged_into WHERE m.status <> 'active'""")
        == 0
    )
    assert backend.scalar(
        "SELECT COUNT(*) FROM accounts WHERE status = 'merged'"
    ) == backend.scalar("SELECT COUNT(*) FROM consolidations")
    # Every group keeps all its TINs with the highest role any of its accounts had.
    held = backend.rows("""
        SELECT CAST(substr(a.username, 2) AS INTEGER) AS grp, t.tin, MIN(t.role) AS role
        FROM account_tins t JOIN accounts a ON a.id = t.account_id
        GROUP BY CAST(substr(a.username, 2) AS INTEGER), t.tin""")
    expected = {(i, tin_for(i), "security_admin") for i in range(1, groups + 1)} | {
        (i, tin_for(i + 1), "user") for i in range(1, groups + 1)
    }
    assert {(r["grp"], r["tin"], r["role"]) for r in held} == expected
    actives = backend.rows("""SELECT CAST(substr(username, 2) AS INTEGER) AS grp, COUNT(*) AS n
                              FROM accounts WHERE status = 'active'
                              GROUP BY CAST(substr(username, 2) AS INTEGER)""")
    assert all(row["n"] in (1, 2) for row in actives)
