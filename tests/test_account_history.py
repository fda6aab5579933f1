"""Look-ups that say why, an account's own history after a merge, and `--reveal` records that
name what was shown, on both backends."""

import pytest
from credentials_support import audit_details


def create(cli, username, *tins):
    args = [arg for tin in tins for arg in ("--tin", tin)]
    result = cli(
        "accounts",
        "create",
        "-u",
        username,
        "-e",
        f"{username}@example.org",
        "-n",
        "John Smith",
        *args,
    )
    assert result.exit_code == 0, result.stderr


def merge(cli, primary, secondary):
    result = cli(
        "consolidate",
        "one",
        "--primary",
        primary,
        "--secondary",
        secondary,
        "--override-reason",
        "verified by phone",
    )
    assert result.exit_code == 0, result.stderr


@pytest.fixture
def merged(cli):
    """jsmith_old merged into johnsmith; both held 836576879."""
    create(cli, "johnsmith", "836576879:security_admin")
    create(cli, "jsmith_old", "836576879", "223456781")
    merge(cli, "johnsmith", "jsmith_old")


def test_lookup_of_a_merged_account_says_into_which(merged, cli):
    result = cli("accounts", "lookup", "-u", "JSMITH_OLD", "--tin", "836576879")
    assert (result.exit_code, result.stderr) == (
        3,
        "portalctl: no active account 'JSMITH_OLD' holding TIN *****6879: that account is "
        "merged into 'johnsmith'\n",
    )


@pytest.mark.parametrize("status", ["disabled", "locked"])
def test_lookup_of_an_account_that_is_not_active_says_its_status(cli, backend, status):
    create(cli, "amy", "836576879")
    if status == "disabled":
        cli("accounts", "disable", "--yes", "amy", "--reason", "left")
    else:
        with backend.begin() as connection:
            connection.exec_driver_sql("UPDATE accounts SET status = 'locked'")
    result = cli("accounts", "lookup", "-u", "amy", "--tin", "836576879")
    assert (result.exit_code, result.stderr) == (
        3,
        f"portalctl: no active account 'amy' holding TIN *****6879: that account is {status}\n",
    )


def test_lookup_of_an_unknown_or_active_account_says_nothing_more(merged, cli):
    for username in ("nobody", "johnsmith"):
        result = cli("accounts", "lookup", "-u", username, "--tin", "111111111")
        assert result.stderr == (
            f"portalctl: no active account '{username}' holding TIN *****1111\n"
        )


def test_a_merged_accounts_history_shows_its_own_merge(merged, cli):
    history = cli("audit", "--account", "jsmith_old", "-f", "json").json()
    assert [(r["action"], r["target"]) for r in history] == [
        ("account.consolidate", "account:jsmith_old"),
        ("account.create", "account:jsmith_old"),
    ]
    primary = cli("audit", "--account", "johnsmith", "-f", "json").json()
    assert [r["action"] for r in primary] == ["account.consolidate", "account.create"]
    shown = cli("accounts", "show", "jsmith_old", "-f", "json").json()
    assert [r["action"] for r in shown["recent_audit"]] == ["account.consolidate", "account.create"]


def test_a_chain_of_merges_keeps_each_accounts_own_merge(cli):
    create(cli, "a_primary")
    create(cli, "b_middle")
    create(cli, "c_oldest")
    merge(cli, "b_middle", "c_oldest")
    merge(cli, "a_primary", "b_middle")
    oldest = cli("audit", "--account", "c_oldest", "-f", "json").json()
    assert [(r["action"], r["details"].get("primary")) for r in oldest] == [
        ("account.repoint", None),
        ("account.consolidate", "b_middle"),
        ("account.create", None),
    ]
    middle = cli("audit", "--account", "b_middle", "-f", "json").json()
    assert [(r["action"], r["target"]) for r in middle] == [
        ("account.consolidate", "account:b_middle"),
        ("account.consolidate", "account:c_oldest"),
        ("account.create", "account:b_middle"),
    ]


def test_reveal_records_name_the_accounts_and_tins_shown_masked(merged, cli, backend):
    issued = cli(
        "codes",
        "issue",
        "--tin",
        "836576879",
        "--admin-name",
        "J",
        "--admin-email",
        "j@example.org",
        "--no-email",
    )
    assert issued.exit_code == 0, issued.stderr
    commands = [
        ("accounts", "show", "johnsmith"),
        ("accounts", "find", "--name", "smith"),
        ("accounts", "lookup", "-u", "johnsmith", "--tin", "836576879"),
        ("tins", "show", "223456781"),
        ("audit", "--account", "jsmith_old"),
        ("audit", "--tin", "836576879"),
        ("codes", "list"),
    ]
    for command in commands:
        result = cli(*command, "--reveal")
        assert result.exit_code == 0, (command, result.stderr)
    records = audit_details(backend, "tin.reveal")
    assert [(r["command"], r["accounts"], r["tins"]) for r in records] == [
        ("accounts show", ["johnsmith"], ["*****6781", "*****6879"]),
        ("accounts find", ["johnsmith", "jsmith_old"], ["*****6781", "*****6879"]),
        ("accounts lookup", ["johnsmith"], ["*****6781", "*****6879"]),
        ("tins show", ["johnsmith"], ["*****6781"]),
        ("audit", [], []),
        ("audit", [], ["*****6879"]),
        ("codes list", [], ["*****6879"]),
    ]
    stored = str(backend.rows("SELECT details FROM audit_log WHERE action = 'tin.reveal'"))
    assert "836576879" not in stored and "223456781" not in stored
