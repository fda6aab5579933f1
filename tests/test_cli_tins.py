"""`portalctl tins ...`: a TIN's page, manual links by a rep, and unlinking."""

from datetime import timedelta

import pytest


@pytest.fixture
def practice(cli):
    """Ruth Goneh's practice (061137531) administered by james.smith, with ruth as a user."""
    for args in (
        [
            "-u",
            "james.smith",
            "-e",
            "james.smith@goneh-practice.example",
            "-n",
            "James Smith",
            "--tin",
            "061137531:security_admin",
        ],
        [
            "-u",
            "ruth.goneh",
            "-e",
            "ruth@goneh-practice.example",
            "-n",
            "Ruth Goneh",
            "--tin",
            "061137531:user",
        ],
        ["-u", "mgarcia", "-e", "maria@example.org", "-n", "Maria Garcia"],
    ):
        result = cli("accounts", "create", *args)
        assert result.exit_code == 0, result.stderr


def test_show_lists_accounts_with_roles_and_status(practice, cli):
    page = cli("tins", "show", "06-1137531", "-f", "json").json()
    assert page["tin"] == "*****7531"
    assert [(a["username"], a["role"], a["status"]) for a in page["accounts"]] == [
        ("james.smith", "security_admin", "active"),
        ("ruth.goneh", "user", "active"),
    ]
    assert page["codes"] == []


def test_show_unknown_tin_exits_3_and_invalid_exits_5(cli):
    assert cli("tins", "show", "111111111").exit_code == 3
    assert cli("tins", "show", "1111").exit_code == 5


def test_manual_link_needs_a_reason_and_is_audited(practice, cli, backend):
    missing = cli("tins", "link", "-u", "mgarcia", "--tin", "061137531")
    assert missing.exit_code == 2 and "--reason" in missing.stderr
    linked = cli(
        "tins",
        "link",
        "-u",
        "mgarcia",
        "--tin",
        "061137531",
        "--reason",
        "office manager confirmed by phone",
        "--role",
        "security_admin",
        "-f",
        "json",
    )
    assert linked.exit_code == 0, linked.stderr
    assert linked.json() == {
        "username": "mgarcia",
        "tin": "*****7531",
        "role": "security_admin",
        "via": "manual",
    }
    audit = backend.rows("SELECT operator, tin, details FROM audit_log WHERE action = 'tin.link'")
    assert audit[0]["operator"] == "test-operator" and audit[0]["tin"] == "061137531"
    assert "office manager" in str(audit[0]["details"])


def test_linking_a_tin_the_account_holds_is_refused(practice, cli, backend):
    result = cli("tins", "link", "-u", "ruth.goneh", "--tin", "061137531", "--reason", "x")
    assert result.exit_code == 4 and "already holds TIN *****7531" in result.stderr
    assert backend.scalar("SELECT count(*) FROM audit_log WHERE action = 'tin.link'") == 0


@pytest.mark.parametrize("status_command", ["disable", "merged"])
def test_inactive_accounts_cannot_be_linked(practice, cli, backend, status_command):
    if status_command == "merged":
        with backend.begin() as connection:
            connection.exec_driver_sql(
                "UPDATE accounts SET status = 'merged', merged_into = "
                "(SELECT id FROM accounts WHERE username = 'james.smith') "
                "WHERE username = 'mgarcia'"
            )
    else:
        cli("accounts", "disable", "--yes", "mgarcia", "--reason", "x")
    result = cli("tins", "link", "-u", "mgarcia", "--tin", "061137531", "--reason", "x")
    assert result.exit_code == 4 and "only an active account" in result.stderr


def test_manual_link_to_an_unknown_organisation_exits_3(practice, cli):
    result = cli("tins", "link", "-u", "mgarcia", "--tin", "222222222", "--reason", "x")
    assert result.exit_code == 3 and "no organisation with TIN *****2222" in result.stderr


def test_unlink_refuses_the_last_security_admin_unless_forced(practice, cli, backend):
    refused = cli("tins", "unlink", "-u", "james.smith", "--tin", "061137531", "--reason", "x")
    assert refused.exit_code == 4 and "last security administrator" in refused.stderr
    assert (
        cli(
            "tins", "unlink", "-u", "ruth.goneh", "--tin", "061137531", "--reason", "left"
        ).exit_code
        == 0
    )
    forced = cli(
        "tins",
        "unlink",
        "-u",
        "james.smith",
        "--tin",
        "061137531",
        "--reason",
        "practice closed",
        "--force",
        "--yes",
        "-f",
        "json",
    )
    assert forced.exit_code == 0 and forced.json()["removed_role"] == "security_admin"
    assert backend.scalar("SELECT count(*) FROM account_tins") == 0
    assert backend.scalar("SELECT count(*) FROM audit_log WHERE action = 'tin.unlink'") == 2


def test_unlink_with_another_admin_present_is_allowed(practice, cli):
    cli(
        "tins",
        "link",
        "-u",
        "mgarcia",
        "--tin",
        "061137531",
        "--reason",
        "x",
        "--role",
        "security_admin",
    )
    assert (
        cli(
            "tins", "unlink", "-u", "james.smith", "--tin", "061137531", "--reason", "handover"
        ).exit_code
        == 0
    )


def test_unlink_a_tin_not_held_exits_3(practice, cli):
    result = cli("tins", "unlink", "-u", "mgarcia", "--tin", "061137531", "--reason", "x")
    assert result.exit_code == 3 and "does not hold TIN *****7531" in result.stderr


def issue_code(cli, tin="061137531", email="james.smith@goneh-practice.example"):
    result = cli(
        "codes",
        "issue",
        "--tin",
        tin,
        "--admin-name",
        "James Smith",
        "--admin-email",
        email,
        "--provider-name",
        "Ruth Goneh",
        "-f",
        "json",
    )
    assert result.exit_code == 0, result.stderr
    return result.json()


def test_seed_flow_existing_account_links_the_tin_with_a_code(cli, backend):
    """Registering Additional Tax IDs: the email has an account, so register is refused with the
    portal's Oops!, that account is emailed, and the same code then links the TIN to it."""
    cli(
        "accounts",
        "create",
        "-u",
        "james.smith",
        "-e",
        "james.smith@goneh-practice.example",
        "-n",
        "James Smith",
        "--tin",
        "223456781:user",
    )
    issued = issue_code(cli)
    blocked = cli(
        "accounts",
        "register",
        "--tin",
        "061137531",
        "--code",
        issued["code"],
        "-u",
        "jsmith2",
        "-e",
        "James.Smith@goneh-practice.example",
        "-n",
        "James Smith",
    )
    assert blocked.exit_code == 4 and blocked.stderr.startswith(
        "portalctl: Oops! Your registration"
    )
    assert backend.scalar("SELECT count(*) FROM accounts WHERE username = 'jsmith2'") == 0
    assert backend.rows(
        "SELECT kind, recipient FROM outbox WHERE kind = 'registration_blocked'"
    ) == [{"kind": "registration_blocked", "recipient": "james.smith@goneh-practice.example"}]
    linked = cli(
        "tins",
        "link",
        "-u",
        "james.smith",
        "--tin",
        "061137531",
        "--code",
        issued["code"],
        "--override-reason",
        "verified by phone",
        "-f",
        "json",
    )
    assert linked.exit_code == 0, linked.stderr
    assert linked.json()["role"] == "security_admin"
    assert backend.scalar("SELECT status FROM registration_codes") == "used"
    assert backend.scalar("SELECT count(*) FROM outbox WHERE kind = 'credentialing'") == 1
    page = cli("tins", "show", "061137531", "-f", "json").json()
    assert [(a["username"], a["role"]) for a in page["accounts"]] == [
        ("james.smith", "security_admin")
    ]
    assert [c["status"] for c in page["codes"]] == ["used"]
    again = cli("tins", "link", "-u", "james.smith", "--tin", "061137531", "--code", issued["code"])
    assert again.exit_code == 4 and "already holds" in again.stderr


def test_seed_flow_new_email_registers_a_new_account(cli, backend):
    issued = issue_code(cli)
    result = cli(
        "accounts",
        "register",
        "--tin",
        "061137531",
        "--code",
        issued["code"],
        "-u",
        "mgarcia",
        "-e",
        "maria@example.org",
        "-n",
        "Maria Garcia",
        "--password-stdin",
        "-f",
        "json",
        input="Pw-123456-Garden\n",
    )
    assert result.exit_code == 0, result.stderr
    assert result.json()["tins"] == [{"tin": "*****7531", "role": "security_admin"}]
    assert backend.scalar("SELECT status FROM registration_codes") == "used"
    reuse = cli(
        "accounts",
        "register",
        "--tin",
        "061137531",
        "--code",
        issued["code"],
        "-u",
        "other",
        "-e",
        "other@example.org",
        "-n",
        "Other",
    )
    assert reuse.exit_code == 4 and "refused: used" in reuse.stderr


def test_link_with_wrong_code_or_code_of_another_tin_is_refused_and_counted(practice, cli, backend):
    issue_code(cli, tin="061137531")
    other = issue_code(cli, tin="836576879")
    override = ("--override-reason", "verified by phone")
    wrong = cli(
        "tins", "link", "-u", "mgarcia", "--tin", "061137531", "--code", "12345678", *override
    )
    assert wrong.exit_code == 4 and "refused: wrong (1 failed attempt" in wrong.stderr
    crossed = cli(
        "tins", "link", "-u", "mgarcia", "--tin", "061137531", "--code", other["code"], *override
    )
    assert crossed.exit_code == 4 and "(2 failed attempt" in crossed.stderr
    assert (
        backend.scalar("SELECT failed_code_attempts FROM organisations WHERE tin = '061137531'")
        == 2
    )
    assert (
        backend.scalar(
            "SELECT count(*) FROM account_tins a JOIN accounts u "
            "ON u.id = a.account_id WHERE u.username = 'mgarcia'"
        )
        == 0
    )


def test_linking_an_inactive_account_with_a_code_does_not_use_the_code(practice, cli, backend):
    issued = issue_code(cli)
    cli("accounts", "disable", "--yes", "mgarcia", "--reason", "x")
    result = cli("tins", "link", "-u", "mgarcia", "--tin", "061137531", "--code", issued["code"])
    assert result.exit_code == 4
    assert backend.scalar("SELECT status FROM registration_codes") == "active"
    assert (
        backend.scalar("SELECT failed_code_attempts FROM organisations WHERE tin = '061137531'")
        == 0
    )


@pytest.mark.parametrize("state", ["revoked", "expired", "locked"])
def test_unusable_codes_are_refused_with_their_reason(practice, cli, backend, state):
    issued = issue_code(cli)
    with backend.begin() as connection:
        if state == "expired":
            import sqlalchemy as sa

            from portalctl.core.clock import utc_now
            from portalctl.core.schema import registration_codes

            past = utc_now() - timedelta(days=30)
            connection.execute(
                sa.update(registration_codes).values(
                    issued_at=past, expires_at=past + timedelta(days=14)
                )
            )
        else:
            connection.exec_driver_sql(f"UPDATE registration_codes SET status = '{state}'")
    result = cli(
        "tins",
        "link",
        "-u",
        "mgarcia",
        "--tin",
        "061137531",
        "--code",
        issued["code"],
        "--override-reason",
        "verified by phone",
    )
    assert result.exit_code == 4 and f"refused: {state}" in result.stderr


def test_two_concurrent_uses_of_one_code_one_wins(practice, cli, backend):
    """Two threads, each in its own transaction, link different accounts with one code."""
    import threading

    from portalctl.core.config import load_settings
    from portalctl.core.errors import Refused
    from portalctl.core.tin import Tin
    from portalctl.domain.registration import link_tin

    cli("accounts", "create", "-u", "dlee", "-e", "dlee@example.org", "-n", "David Lee")
    issued = issue_code(cli)
    settings = load_settings(overrides=backend.env)
    start = threading.Barrier(2)
    results: dict[str, str] = {}

    def use(username: str) -> None:
        start.wait()
        try:
            with backend.engine.begin() as connection:
                link_tin(
                    connection,
                    operator=username,
                    username=username,
                    tin=Tin.parse("061137531"),
                    code=issued["code"],
                    settings=settings,
                    override_reason="verified by phone",
                )
            results[username] = "linked"
        except Refused as error:
            results[username] = error.message

    threads = [threading.Thread(target=use, args=(name,)) for name in ("mgarcia", "dlee")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(results.values())[0] == "linked"
    assert sorted(results.values())[1] != "linked"
    winner = next(name for name, result in results.items() if result == "linked")
    assert backend.scalar("SELECT used_by FROM registration_codes") == backend.scalar(
        "SELECT id FROM accounts WHERE username = :u", u=winner
    )
    assert (
        backend.scalar(
            "SELECT count(*) FROM account_tins a JOIN accounts u ON "
            "u.id = a.account_id WHERE u.username IN ('mgarcia', 'dlee')"
        )
        == 1
    )
