"""What a person at a terminal sees: progress bars on long commands, prompts without echo;
and what cron sees without one: neither."""

from __future__ import annotations

import pytest
from consolidation_support import make_groups, write_pairs
from mail_support import issue_many, make_due
from terminal import run_in_terminal


def test_a_long_run_shows_a_progress_bar_at_a_terminal_and_none_without(cli, backend, tmp_path):
    make_groups(backend, 300)
    path = write_pairs(tmp_path / "f.csv", [(f"p{i}", f"s{i}") for i in range(1, 301)])
    code, shown = run_in_terminal(
        ["consolidate", "run", str(path), "--chunk-size", "50"], backend.env
    )
    assert code == 0, shown
    assert "consolidating" in shown and "300/300" in shown and "rows/s" in shown
    path2 = write_pairs(tmp_path / "g.csv", [(f"q{i}", f"r{i}") for i in range(1, 3)])
    quiet = cli("consolidate", "run", str(path2), "--skip-invalid")
    assert "consolidating" not in quiet.stderr and "rows/s" not in quiet.stderr


def _accounts_file(directory, rows):
    path = directory / "accounts.csv"
    lines = ["username,email,full_name"]
    lines += [f"user{n},user{n}@example.org,User {n}" for n in range(rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return ["accounts", "import", str(path)]


def _credentialing_file(directory, rows):
    path = directory / "credentialing.csv"
    lines = ["tin,admin_name,admin_email,provider_name"]
    lines += [f"{100000000 + n},Admin {n},admin{n}@example.org,Provider {n}" for n in range(rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return ["codes", "issue", "--csv", str(path), "--chunk-size", "40"]


def _due_emails(directory, rows, backend):
    issue_many(backend, rows)
    make_due(backend)
    return ["mail", "send"]


@pytest.mark.parametrize(
    ("make_command", "label", "unit"),
    [
        (_accounts_file, "importing", "rows/s"),
        (_credentialing_file, "issuing codes", "rows/s"),
        (_due_emails, "sending", "emails/s"),
    ],
    ids=["accounts import", "codes issue --csv", "mail send"],
)
def test_every_long_command_shows_the_shared_bar_only_at_a_terminal(
    cli, backend, tmp_path, make_command, label, unit
):
    arguments = (backend,) if make_command is _due_emails else ()
    command = make_command(tmp_path, 120, *arguments)
    code, shown = run_in_terminal(command, backend.env)
    assert code == 0, shown
    assert label in shown and "120/120" in shown and unit in shown, shown


def test_a_secret_typed_at_a_terminal_is_not_echoed(cli, backend):
    created = cli(
        "accounts",
        "create",
        "-u",
        "amy",
        "-e",
        "amy@example.org",
        "-n",
        "Amy",
        "--security-question",
        "Colour?",
        "--security-answer",
        "Teal-Blue",
    )
    assert created.exit_code == 0, created.stderr
    code, shown = run_in_terminal(["accounts", "verify", "amy"], backend.env, answers=["Teal-Blue"])
    assert code == 0, shown
    assert "Security answer:" in shown and "Teal-Blue" not in shown


def test_disabling_asks_at_a_terminal_and_no_changes_nothing(cli, backend):
    from consolidation_support import make_account

    make_account(backend, "amy")
    code, shown = run_in_terminal(
        ["accounts", "disable", "amy", "--reason", "left"], backend.env, answers=["n"]
    )
    assert code == 0 and "disable account 'amy': it can no longer be used? [y/N]" in shown
    assert "cancelled: nothing was changed" in shown
    assert backend.scalar("SELECT status FROM accounts") == "active"
    code, shown = run_in_terminal(
        ["accounts", "disable", "amy", "--reason", "left"], backend.env, answers=["y"]
    )
    assert code == 0 and backend.scalar("SELECT status FROM accounts") == "disabled"
