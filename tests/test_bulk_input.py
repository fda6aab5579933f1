"""Bulk commands read, validate and stage their input before they write: a slow or big input
never keeps other writers waiting, and a file already applied says so."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PORTALCTL = str(ROOT / ".venv" / "bin" / "portalctl")

INPUTS = {
    "accounts import": (
        ["accounts", "import", "-"],
        "username,email,full_name\n",
        "ann,ann@example.org,Ann\n",
    ),
    "codes issue --csv": (
        ["codes", "issue", "--csv", "-"],
        "tin,admin_name,admin_email\n",
        "061137531,Ann,ann@example.org\n",
    ),
    "consolidate run": (
        ["consolidate", "run", "-"],
        "primary_username,secondary_username\n",
        "keep,old\n",
    ),
}


@pytest.mark.parametrize("command", INPUTS)
def test_a_slow_input_keeps_no_other_writer_waiting(cli, backend, command):
    for name in ("keep", "old"):
        assert (
            cli("accounts", "create", "-u", name, "-e", f"{name}@example.org", "-n", name).exit_code
            == 0
        )
    args, header, row = INPUTS[command]
    run = subprocess.Popen(
        [PORTALCTL, *args, "-f", "json"],
        env={**os.environ, **backend.env},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        run.stdin.write(header + row)
        run.stdin.flush()
        time.sleep(0.5)  # the run has its first rows and is waiting for more
        started = time.monotonic()
        other = cli("accounts", "create", "-u", "bob", "-e", "bob@example.org", "-n", "Bob")
        assert other.exit_code == 0, other.stderr
        assert time.monotonic() - started < 5
        run.stdin.close()
        run.wait(timeout=60)
        err = run.stderr.read()
    finally:
        run.kill()
    assert run.returncode == 0, err


def test_an_imported_file_run_again_says_it_was_already_imported(cli, backend, tmp_path):
    path = tmp_path / "new.csv"
    path.write_text(
        "username,email,full_name\n"
        + "".join(f"user{n},user{n}@example.org,User {n}\n" for n in range(60))
    )
    assert cli("accounts", "import", str(path)).exit_code == 0
    again = cli("accounts", "import", str(path))
    assert again.exit_code == 4
    assert again.stderr.startswith(f"portalctl: {path} was already imported (")
    assert again.stderr.endswith("by test-operator, 60 accounts): nothing was written\n")
    assert backend.scalar("SELECT COUNT(*) FROM accounts") == 60
