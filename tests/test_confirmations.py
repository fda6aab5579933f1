"""Changes that ask first: without a terminal they need --yes (exit 2 saying so, nothing
changed); cron-safe commands never ask."""

from __future__ import annotations

import pytest
from consolidation_support import dump_tables, make_account


@pytest.fixture
def admin_of_a_tin(backend):
    make_account(backend, "amy", "061137531:security_admin")


def test_disable_without_a_terminal_needs_yes(cli, backend, admin_of_a_tin):
    before = dump_tables(backend)
    result = cli("accounts", "disable", "amy", "--reason", "left")
    assert result.exit_code == 2
    assert result.stderr == (
        "portalctl: disable account 'amy': it can no longer be used? Not "
        "without confirmation: give --yes (no terminal to ask)\n"
    )
    assert dump_tables(backend) == before
    assert cli("accounts", "disable", "amy", "--reason", "left", "--yes").exit_code == 0


def test_removing_the_last_administrator_needs_force_and_yes(cli, backend, admin_of_a_tin):
    args = ("tins", "unlink", "-u", "amy", "--tin", "061137531", "--reason", "left")
    assert cli(*args).exit_code == 4  # refused without --force
    before = dump_tables(backend)
    asked = cli(*args, "--force")
    assert asked.exit_code == 2 and "last security administrator" in asked.stderr
    assert "give --yes" in asked.stderr and dump_tables(backend) == before
    assert cli(*args, "--force", "--yes").exit_code == 0
    assert backend.scalar("SELECT COUNT(*) FROM account_tins") == 0


def test_a_batch_of_more_than_a_handful_asks_and_a_handful_does_not(cli, backend, tmp_path):
    for n in range(8):
        make_account(backend, f"user{n}")
    small = tmp_path / "small.csv"
    small.write_text("username\n" + "".join(f"user{n}\n" for n in range(5)))
    assert cli("accounts", "unlock", "--csv", str(small), "--reason", "r").exit_code == 5
    many = tmp_path / "many.csv"
    many.write_text("username\n" + "".join(f"user{n}\n" for n in range(8)))
    asked = cli("accounts", "disable", "--csv", str(many), "--reason", "r")
    assert asked.exit_code == 2 and "disable the 8 accounts of" in asked.stderr
    assert backend.scalar("SELECT COUNT(*) FROM accounts WHERE status = 'disabled'") == 0
    few = cli("accounts", "disable", "--csv", str(small), "--reason", "r")
    assert few.exit_code == 0, few.stderr
    assert backend.scalar("SELECT COUNT(*) FROM accounts WHERE status = 'disabled'") == 5
