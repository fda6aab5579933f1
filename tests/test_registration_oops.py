"""Seed 001's "Oops!": a registration whose email an account that is not merged already has is
refused naming that account, whatever its status, and its owner is emailed at most once an
hour; a merged account's email does not block."""

import pytest
from credentials_support import audit_details

EMAIL = "james.smith@goneh-practice.example"
OOPS = (
    "portalctl: Oops! Your registration could not be completed at this time. Please try again, "
    "or contact Provider Services at: For Commercial Services call: 860-674-5850 or "
    "800-828-3407; For Medicare Services call: 877-224-8230 (account 'james.smith' already "
    "uses this email; link the Tax ID to it instead)\n"
)


def create(cli, username, email=EMAIL, *extra):
    result = cli("accounts", "create", "-u", username, "-e", email, "-n", "James Smith", *extra)
    assert result.exit_code == 0, result.stderr


def registration_code(cli) -> str:
    result = cli(
        "codes",
        "issue",
        "--tin",
        "061137531",
        "--admin-name",
        "James Smith",
        "--admin-email",
        EMAIL,
        "--no-email",
        "-f",
        "json",
    )
    assert result.exit_code == 0, result.stderr
    return result.json()["code"]


def register(cli, code, username="jsmith.new"):
    return cli(
        "accounts",
        "register",
        "--tin",
        "061137531",
        "--code",
        code,
        "-u",
        username,
        "-e",
        EMAIL.upper().replace("@GONEH-PRACTICE.EXAMPLE", "@goneh-practice.example"),
        "-n",
        "James Smith",
    )


def make_status(cli, status):
    if status == "disabled":
        assert cli("accounts", "disable", "--yes", "james.smith", "--reason", "left").exit_code == 0
    elif status == "locked":
        result = cli(
            "accounts",
            "verify",
            "james.smith",
            "--answer",
            "wrong",
            env={"PORTALCTL_ACCOUNT_MAX_FAILURES": "1"},
        )
        assert "account now locked" in result.stderr


@pytest.mark.parametrize("status", ["active", "locked", "disabled"])
def test_an_account_that_is_not_merged_blocks_registration_naming_it(cli, backend, status):
    create(cli, "james.smith", EMAIL, "--security-question", "City?", "--security-answer", "X")
    make_status(cli, status)
    assert backend.scalar("SELECT status FROM accounts") == status
    code = registration_code(cli)
    blocked = register(cli, code)
    assert (blocked.exit_code, blocked.stderr) == (4, OOPS)
    assert backend.scalar("SELECT count(*) FROM accounts") == 1
    assert backend.rows("SELECT kind, recipient FROM outbox") == [
        {"kind": "registration_blocked", "recipient": EMAIL}
    ]
    assert backend.scalar("SELECT status FROM registration_codes") == "active"


@pytest.mark.parametrize("status", ["active", "locked", "disabled"])
def test_a_retry_within_the_hour_queues_no_second_email(cli, backend, status):
    create(cli, "james.smith", EMAIL, "--security-question", "City?", "--security-answer", "X")
    make_status(cli, status)
    code = registration_code(cli)
    assert register(cli, code).exit_code == 4
    again = register(cli, code, username="jsmith.newer")
    assert (again.exit_code, again.stderr) == (4, OOPS)
    assert backend.scalar("SELECT count(*) FROM outbox WHERE kind = 'registration_blocked'") == 1
    emailed = [d["emailed"] for d in audit_details(backend, "account.register_blocked")]
    assert emailed == [True, False]


def test_a_merged_accounts_email_does_not_block(cli, backend):
    create(cli, "james.smith", EMAIL)
    create(cli, "james.primary", "james@primary.example")
    merged = cli(
        "consolidate",
        "one",
        "--primary",
        "james.primary",
        "--secondary",
        "james.smith",
        "--override-reason",
        "verified by phone",
    )
    assert merged.exit_code == 0, merged.stderr
    result = register(cli, registration_code(cli))
    assert result.exit_code == 0, result.stderr
    assert backend.scalar("SELECT count(*) FROM outbox WHERE kind = 'registration_blocked'") == 0
