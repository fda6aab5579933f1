"""``codes issue --csv``: a credentialing file is issued once however often it runs; a re-run
after a crash issues exactly the rest; two runs of one file at once: the second is refused."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from portalctl.core.readonly_db import readonly_connection
from portalctl.core.schema import code_batches
from portalctl.domain.file_claims import lock_key

ROOT = Path(__file__).resolve().parent.parent
PORTALCTL = str(ROOT / ".venv" / "bin" / "portalctl")


def credentialing_file(path: Path, rows: int) -> Path:
    lines = ["tin,admin_name,admin_email,provider_name"]
    lines += [f"{100000000 + n},Admin {n},admin{n}@example.org,Provider {n}" for n in range(rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def issued_by_contact(backend) -> dict[str, int]:
    rows = backend.rows(
        "SELECT admin_email, COUNT(*) AS n FROM registration_codes GROUP BY admin_email"
    )
    return {row["admin_email"]: row["n"] for row in rows}


def test_a_file_run_again_issues_nothing_and_says_already_issued(cli, backend, tmp_path):
    path = credentialing_file(tmp_path / "c.csv", 30)
    first = cli("codes", "issue", "--csv", str(path), "--chunk-size", "7", "-f", "json")
    assert first.exit_code == 0, first.stderr
    assert first.json()["codes_issued"] == 30 and first.json()["already_issued"] == 0
    again = cli("codes", "issue", "--csv", str(path), "-f", "json")
    assert again.exit_code == 0, again.stderr
    assert (again.json()["codes_issued"], again.json()["already_issued"]) == (0, 30)
    assert again.json()["emails_queued"] == 0
    assert backend.scalar("SELECT COUNT(*) FROM registration_codes") == 30
    assert backend.scalar("SELECT COUNT(*) FROM outbox") == 30
    assert set(issued_by_contact(backend).values()) == {1}


def test_a_contact_twice_in_one_file_is_invalid_and_nothing_is_written(cli, backend, tmp_path):
    path = tmp_path / "twice.csv"
    path.write_text(
        "tin,admin_name,admin_email\n061137531,Ann,ann@example.org\n"
        "836576879,Bob,bob@example.org\n061-13-7531,Ann A,ANN@example.org\n"
    )
    result = cli("codes", "issue", "--csv", str(path))
    assert result.exit_code == 5
    assert result.stderr == (
        f"portalctl: {path}:4: the same admin email and TIN as line 2 (one code per contact)\n"
    )
    assert backend.scalar("SELECT COUNT(*) FROM registration_codes") == 0
    assert backend.scalar("SELECT COUNT(*) FROM code_batches") == 0


def test_a_second_run_of_a_running_file_is_refused(cli, backend, tmp_path):
    """The first run's claim is held (PostgreSQL: its advisory lock, held here by another
    session; SQLite: its running record, naming a live process): exit 4, nothing issued."""
    path = credentialing_file(tmp_path / "c.csv", 3)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    holder = backend.engine.connect()
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        if backend.name == "postgresql":
            holder.execute(
                sa.text("SELECT pg_advisory_lock(:k)"), {"k": lock_key(code_batches, sha)}
            )
            holder.commit()
        else:
            with backend.begin() as connection:
                connection.execute(
                    sa.text(
                        "INSERT INTO code_batches (file_name, file_sha256, state, operator, runner, "
                        "started_at) VALUES ('c.csv', :sha, 'running', 'x', :runner, "
                        "CURRENT_TIMESTAMP)"
                    ),
                    {"sha": sha, "runner": f"{sleeper.pid}@{os.uname()[1]}"},
                )
        refused = cli("codes", "issue", "--csv", str(path))
        assert refused.exit_code == 4 and "batch already running for c.csv" in refused.stderr
        assert backend.scalar("SELECT COUNT(*) FROM registration_codes") == 0
    finally:
        holder.invalidate()  # the session ends, as a dead runner's would
        holder.close()
        sleeper.kill()
        sleeper.wait()
    # Its holder gone, the next run proceeds (SQLite: the crashed record is marked failed).
    finished = cli("codes", "issue", "--csv", str(path), "-f", "json")
    assert finished.exit_code == 0, finished.stderr
    assert finished.json()["codes_issued"] == 3


@pytest.mark.parametrize("kill_after", [1, 3])
def test_kill_9_mid_run_then_a_re_run_issues_exactly_the_rest(backend, tmp_path, kill_after):
    rows = 600
    path = credentialing_file(tmp_path / "c.csv", rows)
    env = {**os.environ, **backend.env}
    run = subprocess.Popen(
        [PORTALCTL, "codes", "issue", "--csv", str(path), "--chunk-size", "20"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with readonly_connection(backend.url) as connection:
            issued = connection.rows("SELECT COUNT(*) AS n FROM registration_codes")[0]["n"]
        if issued >= 20 * kill_after or run.poll() is not None:
            break
        time.sleep(0.005)
    run.send_signal(signal.SIGKILL)
    run.wait()
    before = backend.scalar("SELECT COUNT(*) FROM registration_codes")
    assert before % 20 == 0  # whole chunks only
    again = subprocess.run(
        [PORTALCTL, "codes", "issue", "--csv", str(path), "-f", "json"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert again.returncode == 0, again.stderr
    assert '"already_issued": ' + str(before) in again.stdout
    assert issued_by_contact(backend) == {f"admin{n}@example.org": 1 for n in range(rows)}
    assert backend.scalar("SELECT COUNT(*) FROM outbox WHERE kind = 'credentialing'") == rows
    assert backend.scalar("SELECT COUNT(*) FROM audit_log WHERE action = 'code.issue'") == rows
    states = [r["state"] for r in backend.rows("SELECT state FROM code_batches ORDER BY id")]
    assert states[-1] == "completed" and set(states[:-1]) <= {"failed", "running"}


def test_a_file_replacing_a_contacts_code_cancels_its_unsent_email(cli, backend, tmp_path):
    single = cli(
        "codes",
        "issue",
        "--tin",
        "100000000",
        "--admin-name",
        "Admin 0",
        "--admin-email",
        "admin0@example.org",
        "-f",
        "json",
    )
    assert single.exit_code == 0, single.stderr
    path = credentialing_file(tmp_path / "c.csv", 2)
    assert cli("codes", "issue", "--csv", str(path)).exit_code == 0
    rows = backend.rows(
        "SELECT c.status AS code, o.status AS email, o.secret_ciphertext "
        "FROM registration_codes c JOIN outbox o ON o.code_id = c.id "
        "WHERE c.id = :id",
        id=single.json()["id"],
    )
    assert [(r["code"], r["email"], r["secret_ciphertext"]) for r in rows] == [
        ("revoked", "cancelled", None)
    ]
    assert backend.scalar("SELECT COUNT(*) FROM registration_codes WHERE status = 'active'") == 2


def test_skip_invalid_issues_the_good_rows_and_keeps_the_rest_as_they_were(cli, backend, tmp_path):
    path = tmp_path / "c.csv"
    header = "tin,admin_name,admin_email\n"
    good = ["061137531,Ann,ann@example.org\n", "836576879,Bob,bob@example.org\n"]
    bad = ["12345,Cal,cal@example.org\n", "061-13-7531,Ann A, ANN@example.org\n"]
    path.write_text(header + good[0] + bad[0] + good[1] + bad[1])
    failed = tmp_path / "failed.csv"
    result = cli(
        "codes",
        "issue",
        "--csv",
        str(path),
        "--skip-invalid",
        "--failed-rows",
        str(failed),
        "-f",
        "json",
    )
    assert result.exit_code == 7, result.stderr
    assert (result.json()["codes_issued"], result.json()["invalid"]) == (2, 2)
    assert failed.read_text() == header + bad[0] + bad[1]
    refused = cli("codes", "issue", "--csv", str(failed), "--failed-rows", str(tmp_path / "f2"))
    assert refused.exit_code == 5
    assert (tmp_path / "f2").read_text() == header + bad[0] + bad[1]  # none issued: every row
    assert backend.scalar("SELECT COUNT(*) FROM registration_codes") == 2
