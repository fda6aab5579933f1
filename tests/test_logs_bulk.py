"""Cron logs of the bulk commands: without a terminal, one timestamped summary line a run
(a warning when rows were not applied); nothing with -q."""

from __future__ import annotations

import re

import pytest
from consolidation_support import make_account, write_pairs

LINE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (INFO|WARNING) (\w+ \w+[ -]*[\w-]*): (.*)")


def log_lines(stderr: str) -> list[tuple[str, str, str]]:
    return [match.groups() for line in stderr.splitlines() if (match := LINE.fullmatch(line))]


@pytest.mark.parametrize("command", ["accounts import", "codes issue --csv", "consolidate run"])
def test_a_bulk_run_without_a_terminal_logs_one_summary_line(cli, backend, tmp_path, command):
    make_account(backend, "keep")
    make_account(backend, "old")
    path = tmp_path / "in.csv"
    args = {
        "accounts import": (["accounts", "import"], "username,email,full_name\nann,a@x.org,Ann\n"),
        "codes issue --csv": (
            ["codes", "issue", "--csv"],
            "tin,admin_name,admin_email\n061137531,Ann,a@x.org\n",
        ),
        "consolidate run": (
            ["consolidate", "run"],
            "primary_username,secondary_username\nkeep,old\n",
        ),
    }[command]
    path.write_text(args[1])
    result = cli(*args[0], str(path), "-f", "json")
    assert result.exit_code == 0, result.stderr
    [(level, logged_command, message)] = log_lines(result.stderr)
    assert (level, logged_command) == ("INFO", command)
    assert "=" in message and "file=" not in message
    quiet = cli("-q", *args[0], str(path), "-f", "json")
    assert log_lines(quiet.stderr) == []


def test_a_run_that_skipped_rows_logs_a_warning_with_its_counts(cli, backend, tmp_path):
    make_account(backend, "keep")
    make_account(backend, "old")
    path = write_pairs(tmp_path / "f.csv", [("keep", "old"), ("keep", "nobody")])
    result = cli("consolidate", "run", str(path), "--skip-invalid", "-f", "json")
    assert result.exit_code == 7
    [(level, _command, message)] = log_lines(result.stderr)
    assert level == "WARNING" and "merged=1" in message and "refused=1" in message
    assert (
        result.stderr.splitlines()[-1]
        == "portalctl: 1 row(s) not applied; use --report to list them"
    )
