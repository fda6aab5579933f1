"""`portalctl accounts ...` end to end through the CLI, re-checked in the database."""

import json

import pytest
from conftest import TEST_OPERATOR

from portalctl.domain.accounts import get_account_row


@pytest.fixture
def john(cli):
    result = cli(
        "accounts",
        "create",
        "-u",
        "johnsmith@gmail.com",
        "-e",
        "johnsmith@gmail.com",
        "-n",
        "John Smith",
        "--tin",
        "836576879:security_admin",
        "--tin",
        "06-1137531",
        "--security-question",
        "What's your maiden name?",
        "--security-answer",
        "Smith",
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.stderr
    return result.json()


def test_create_prints_the_account_with_masked_tins(john, backend):
    assert john == {
        "username": "johnsmith@gmail.com",
        "email": "johnsmith@gmail.com",
        "full_name": "John Smith",
        "status": "active",
        "merged_into": None,
        "tins": [
            {"tin": "*****7531", "role": "user"},
            {"tin": "*****6879", "role": "security_admin"},
        ],
    }
    assert backend.scalar("SELECT count(*) FROM account_tins") == 2
    stored = backend.scalar("SELECT security_answer_hash FROM accounts")
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$") and "Smith" not in stored
    audit = backend.rows("SELECT operator, action, details FROM audit_log")
    assert [(a["operator"], a["action"]) for a in audit] == [("test-operator", "account.create")]
    assert "836576879" not in str(audit[0]["details"])


def test_create_refuses_a_username_taken_in_another_case(john, cli, backend):
    result = cli(
        "accounts", "create", "-u", "JohnSmith@Gmail.com", "-e", "x@example.org", "-n", "X"
    )
    assert result.exit_code == 4 and "already taken" in result.stderr
    assert backend.scalar("SELECT count(*) FROM accounts") == 1


@pytest.mark.parametrize("tin", ["12345678", "1234567890", "12345678A", "000000000"])
def test_create_with_an_invalid_tin_exits_5_and_writes_nothing(cli, backend, tin):
    result = cli(
        "accounts", "create", "-u", "amy", "-e", "amy@example.org", "-n", "Amy", "--tin", tin
    )
    assert result.exit_code == 5
    assert result.stderr.startswith("portalctl: invalid TIN") and "Traceback" not in result.stderr
    assert backend.scalar("SELECT count(*) FROM accounts") == 0
    assert backend.scalar("SELECT count(*) FROM audit_log") == 0


def test_create_with_an_invalid_email_exits_5(cli):
    result = cli("accounts", "create", "-u", "amy", "-e", "not-an-email", "-n", "Amy")
    assert result.exit_code == 5 and "invalid email address 'not-an-email'" in result.stderr


def test_find_combines_filters_and_matches_substrings(john, cli):
    cli(
        "accounts",
        "create",
        "-u",
        "jsmith_old",
        "-e",
        "old@example.org",
        "-n",
        "John Smith",
        "--tin",
        "836576879",
    )
    cli(
        "accounts",
        "create",
        "-u",
        "mgarcia",
        "-e",
        "maria@example.org",
        "-n",
        "Maria Garcia",
        "--tin",
        "836576879",
    )
    found = cli("accounts", "find", "--name", "SMITH", "--tin", "836-57-6879", "-f", "json").json()
    assert [a["username"] for a in found] == ["johnsmith@gmail.com", "jsmith_old"]
    found = cli("accounts", "find", "--email", "example.org", "--name", "garc", "-f", "json").json()
    assert [a["username"] for a in found] == ["mgarcia"]


def test_find_exact_and_limit_and_status(john, cli):
    cli("accounts", "create", "-u", "johnsmith2", "-e", "j2@example.org", "-n", "John Smith")
    assert cli("accounts", "find", "--username", "johnsmith", "--exact", "-f", "json").json() == []
    assert len(cli("accounts", "find", "--name", "john", "--limit", "1", "-f", "json").json()) == 1
    assert cli("accounts", "find", "--status", "locked", "-f", "json").json() == []


def test_find_treats_like_wildcards_literally(john, cli):
    assert cli("accounts", "find", "--username", "%", "-f", "json").json() == []
    assert cli("accounts", "find", "--username", "_", "-f", "json").json() == []


def test_find_without_a_filter_asks_for_one(cli):
    result = cli("accounts", "find")
    assert result.exit_code == 5 and "at least one filter" in result.stderr


def test_find_output_formats(john, cli):
    table = cli("accounts", "find", "--name", "john")
    assert table.exit_code == 0 and "*****6879 (security_admin)" in table.stdout
    csv_out = cli("accounts", "find", "--name", "john", "-f", "csv").stdout.splitlines()
    assert csv_out[0] == "username,email,full_name,status,merged_into,tins"
    assert "836576879" not in table.stdout + "".join(csv_out)


def test_lookup_finds_exactly_that_username_holding_that_tin(john, cli):
    found = cli(
        "accounts",
        "lookup",
        "--username",
        "JOHNSMITH@gmail.com",
        "--tin",
        "836576879",
        "-f",
        "json",
    )
    assert found.exit_code == 0 and found.json()["username"] == "johnsmith@gmail.com"
    missing = cli("accounts", "lookup", "--username", "johnsmith@gmail.com", "--tin", "111111111")
    assert missing.exit_code == 3 and "*****1111" in missing.stderr
    partial = cli("accounts", "lookup", "--username", "johnsmith", "--tin", "836576879")
    assert partial.exit_code == 3


def test_lookup_record_is_the_same_record_find_shows(john, cli):
    """The look-up runs plain SQL on the driver; its record must match the engine path's."""
    cli(
        "accounts",
        "create",
        "-u",
        "old.john",
        "-e",
        "old@example.org",
        "-n",
        "Old John",
        "--tin",
        "836576879",
    )
    looked_up = cli(
        "accounts", "lookup", "-u", "johnsmith@gmail.com", "--tin", "061137531", "-f", "json"
    ).json()
    found = cli("accounts", "find", "-u", "johnsmith@gmail.com", "--exact", "-f", "json").json()
    assert looked_up == found[0] == john
    assert [link["role"] for link in looked_up["tins"]] == ["user", "security_admin"]


def test_lookup_reveal_shows_digits_and_is_audited(john, cli, backend):
    shown = cli(
        "accounts",
        "lookup",
        "-u",
        "johnsmith@gmail.com",
        "--tin",
        "836576879",
        "--reveal",
        "-f",
        "json",
    )
    assert shown.exit_code == 0 and "836576879" in shown.stdout
    reveals = backend.rows("SELECT operator, details FROM audit_log WHERE action = 'tin.reveal'")
    assert len(reveals) == 1 and reveals[0]["operator"] == TEST_OPERATOR
    hidden = cli("accounts", "lookup", "-u", "johnsmith@gmail.com", "--tin", "836576879")
    assert "836576879" not in hidden.stdout
    assert backend.scalar("SELECT count(*) FROM audit_log WHERE action = 'tin.reveal'") == 1


def test_lookup_ignores_accounts_that_are_not_active(john, cli):
    cli("accounts", "disable", "--yes", "johnsmith@gmail.com", "--reason", "test")
    assert (
        cli(
            "accounts", "lookup", "--username", "johnsmith@gmail.com", "--tin", "836576879"
        ).exit_code
        == 3
    )


def test_lookup_many_queries_from_csv_on_stdin(john, cli):
    queries = "username,tin\njohnsmith@gmail.com,836576879\nnobody,836576879\n"
    rows = cli("accounts", "lookup", "--csv", "-", "-f", "json", input=queries).json()
    assert [(r["line"], r["found"], r.get("username")) for r in rows] == [
        (2, True, "johnsmith@gmail.com"),
        (3, False, None),
    ]


def test_lookup_csv_across_statement_chunks_keeps_order_and_repeats(john, cli, tmp_path):
    path = tmp_path / "many.csv"
    wanted = []
    with open(path, "w") as handle:
        handle.write("username,tin\n")
        for index in range(1203):
            hit = index % 3 == 0
            handle.write(
                f"{'JohnSmith@gmail.com' if hit else f'user{index}'},"
                f"{'06-1137531' if index % 2 else '836576879'}\n"
            )
            wanted.append((index + 2, hit))
    rows = cli("accounts", "lookup", "--csv", str(path), "-f", "json").json()
    assert [(row["line"], row["found"]) for row in rows] == wanted
    assert {row["username"] for row in rows if row["found"]} == {"johnsmith@gmail.com"}


def test_lookup_csv_with_a_bad_tin_names_the_line(john, cli, tmp_path):
    path = tmp_path / "q.csv"
    path.write_text("username,tin\njohnsmith@gmail.com,836576879\nx,12\n")
    result = cli("accounts", "lookup", "--csv", str(path))
    assert result.exit_code == 5 and f"{path}:3: invalid TIN" in result.stderr


def test_find_many_queries_from_csv(john, cli, tmp_path):
    path = tmp_path / "q.csv"
    path.write_text("name,tin\nsmith,\n,836576879\nnobody,\n")
    rows = cli("accounts", "find", "--csv", str(path), "-f", "json").json()
    assert [(r["query_line"], r["username"]) for r in rows] == [
        (2, "johnsmith@gmail.com"),
        (3, "johnsmith@gmail.com"),
    ]


def test_show_has_links_merged_accounts_and_recent_audit(john, cli):
    shown = cli("accounts", "show", "JohnSmith@gmail.com", "-f", "json").json()
    assert shown["username"] == "johnsmith@gmail.com"
    assert shown["security_question"] == "What's your maiden name?"
    assert shown["merged_accounts"] == []
    assert [a["action"] for a in shown["recent_audit"]] == ["account.create"]


def test_show_unknown_user_exits_3(cli):
    result = cli("accounts", "show", "ghost")
    assert (
        result.exit_code == 3 and result.stderr == "portalctl: no account with username 'ghost'\n"
    )


def test_reveal_shows_digits_and_is_audited(john, cli, backend):
    shown = cli("accounts", "show", "johnsmith@gmail.com", "--reveal", "-f", "json").json()
    assert {t["tin"] for t in shown["tins"]} == {"836576879", "061137531"}
    reveals = backend.rows("SELECT operator, target FROM audit_log WHERE action = 'tin.reveal'")
    assert [(r["operator"], r["target"]) for r in reveals] == [
        ("test-operator", "account:johnsmith@gmail.com")
    ]


def test_verify_with_the_right_answer_ignores_case_and_spaces(john, cli, backend):
    result = cli("accounts", "verify", "johnsmith@gmail.com", "--answer", "  smith ")
    assert result.exit_code == 0, result.stderr
    assert backend.scalar("SELECT failed_verifications FROM accounts") == 0


def test_verify_reads_the_answer_from_stdin_and_never_prints_it(john, cli):
    result = cli(
        "accounts",
        "verify",
        "johnsmith@gmail.com",
        "--answer-stdin",
        "-f",
        "json",
        input="Smith\n",
    )
    assert result.exit_code == 0 and '"verified": true' in result.stdout
    assert "Smith" not in result.stdout.replace("johnsmith", "").replace("John Smith", "")


def test_a_prompt_without_a_terminal_is_a_usage_error_naming_the_stdin_form(john, cli, backend):
    result = cli("accounts", "verify", "johnsmith@gmail.com", input="Smith\n")
    assert result.exit_code == 2
    assert result.stderr == (
        "portalctl: the Security answer is asked for at a terminal; without one, give it with "
        "--answer-stdin\n"
    )
    assert backend.scalar("SELECT count(*) FROM audit_log WHERE action = 'account.verify'") == 0


def test_wrong_answers_are_counted_and_lock_the_account(john, cli, backend):
    for attempt in range(1, 4):
        result = cli(
            "accounts",
            "verify",
            "johnsmith@gmail.com",
            "--answer",
            "Jones",
            env={"PORTALCTL_ACCOUNT_MAX_FAILURES": "3"},
        )
        assert result.exit_code == 4
        assert f"{attempt} failed attempt" in result.stderr
    assert "account now locked" in result.stderr
    assert backend.scalar("SELECT status FROM accounts") == "locked"
    refused = cli("accounts", "verify", "johnsmith@gmail.com", "--answer", "Smith")
    assert refused.exit_code == 4 and "is locked" in refused.stderr
    unlocked = cli(
        "accounts", "unlock", "johnsmith@gmail.com", "--reason", "called in", "-f", "json"
    )
    assert unlocked.exit_code == 0 and unlocked.json()["status"] == "active"
    assert backend.scalar("SELECT failed_verifications FROM accounts") == 0


def test_verify_checks_the_password_read_from_stdin(cli, backend):
    cli(
        "accounts",
        "create",
        "-u",
        "amy",
        "-e",
        "amy@example.org",
        "-n",
        "Amy",
        "--password-stdin",
        input="Correct-Horse-9\n",
    )
    verify = ("accounts", "verify", "amy", "--password-stdin")
    assert cli(*verify, input="Correct-Horse-9\n").exit_code == 0
    assert cli(*verify, input="wrong\n").exit_code == 4
    assert "Correct-Horse-9" not in json.dumps(
        [dict(r) for r in backend.rows("SELECT * FROM accounts")], default=str
    )


def test_disable_enable_and_refusals(john, cli, backend):
    assert cli("accounts", "enable", "johnsmith@gmail.com", "--reason", "x").exit_code == 4
    assert (
        cli("accounts", "disable", "--yes", "johnsmith@gmail.com", "--reason", "left").exit_code
        == 0
    )
    assert backend.scalar("SELECT status FROM accounts") == "disabled"
    assert cli("accounts", "unlock", "johnsmith@gmail.com", "--reason", "x").exit_code == 4
    assert cli("accounts", "enable", "johnsmith@gmail.com", "--reason", "back").exit_code == 0
    actions = [r["action"] for r in backend.rows("SELECT action FROM audit_log ORDER BY id")]
    assert actions == ["account.create", "account.disable", "account.enable"]


def test_status_change_needs_a_reason(john, cli):
    result = cli("accounts", "disable", "--yes", "johnsmith@gmail.com")
    assert result.exit_code == 2 and "--reason" in result.stderr


def test_domain_row_agrees_with_cli(john, backend):
    with backend.engine.connect() as connection:
        assert get_account_row(connection, "JOHNSMITH@GMAIL.COM")["full_name"] == "John Smith"
