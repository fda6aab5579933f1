"""``portalctl flow add-tin`` (seed 001) driven without a terminal: each answer one line of stdin,
the email code read out of the ``.eml`` file just written to PORTALCTL_MAIL_DIR, as the caller
reads it out; the existing-account path, the Oops! path and the new-account path, on both
backends."""

import pytest
from credentials_support import PASSWORD, eml_messages
from flow_support import (
    ADMIN_EMAIL,
    NEW_TIN,
    create,
    emailed_code,
    flow_records,
    flow_runner,
    last_json,
    registration_code,
)

JAMES = "james.smith"
NEW_PASSWORD = "Harbour-Lights-77"
PAGES = [
    "Provider Portal - Registering Additional Tax IDs\nFlow ",
    "Account Lookup\nWe need to look up your information before you begin. Enter your Tax ID "
    "number, and the registration code sent to the primary contact on your account.",
    "Tax ID Number *: ",
    "Registration Code *: ",
    "Email Address Verification\nPlease enter your own email address and not a shared one. We "
    "will use it to send your security code and in case you forget your username or need to "
    "reset your password.",
    "Security Code Verification\nWe've sent a code to your email address "
    "james.smith@goneh-practice.example.",
    "Portal User Account Verification\nIt looks like there is already an account associated "
    "with this email address in our new portal.",
    "Verify Username and Password\nEnter username and password for your existing account.",
    "Thank You\nTax ID *****7531 is added to 'james.smith', its Portal Security Administrator "
    "(security_admin).",
]


@pytest.fixture
def flow_cli(backend, monkeypatch):
    return flow_runner(backend, monkeypatch)


@pytest.fixture
def code(cli):
    return registration_code(cli)


@pytest.fixture
def james(cli):
    create(cli, JAMES, ADMIN_EMAIL, "836576879:user")


@pytest.fixture
def add_tin(flow_cli):
    def run(answers, *options, env=None):
        return flow_cli("flow", "add-tin", "-f", "json", *options, answers=answers, env=env)

    return run


def existing_answers(backend, code):
    return [NEW_TIN, code, ADMIN_EMAIL, ADMIN_EMAIL, emailed_code(backend), JAMES, PASSWORD]


def links(backend, username):
    return backend.rows(
        "SELECT l.tin, l.role FROM account_tins l JOIN accounts a ON a.id = l.account_id "
        "WHERE a.username = :u ORDER BY l.tin",
        u=username,
    )


def code_status(backend):
    return backend.scalar("SELECT status FROM registration_codes")


def test_seed_001_end_to_end_links_the_tin_to_the_account_with_the_address(
    james, code, add_tin, backend, cli
):
    result = add_tin(existing_answers(backend, code))
    assert result.exit_code == 0, result.stderr
    record = last_json(result.stdout)
    assert record == {
        "flow_id": record["flow_id"],
        "flow": "add-tin",
        "outcome": "linked",
        "account": JAMES,
        "tin": "*****7531",
        "email": ADMIN_EMAIL,
        "email_verified": True,
    }
    positions = [result.stderr.find(page) for page in PAGES]
    assert -1 not in positions and positions == sorted(positions), positions
    assert links(backend, JAMES) == [
        {"tin": NEW_TIN, "role": "security_admin"},
        {"tin": "836576879", "role": "user"},
    ]
    assert code_status(backend) == "used"
    [message] = eml_messages(backend)
    assert message["To"] == f"John Smith <{ADMIN_EMAIL}>"
    assert code not in result.stdout + result.stderr and PASSWORD not in result.stderr
    assert [r["action"] for r in flow_records(backend, record["flow_id"])] == [
        "flow.start",
        "code.verify",
        "account_code.issue",
        "mail.send",
        "account.confirm_email",
        "account.verify",
        "code.verify",
        "tin.link",
        "flow.end",
    ]
    [link] = cli("audit", "--flow", record["flow_id"], "--action", "tin.link", "-f", "json").json()
    assert link["details"] == {
        "role": "security_admin",
        "via": "registration_code",
        "code_id": 1,
        "verification": "verified",
    }


def test_a_wrong_registration_code_is_counted_and_asked_again(james, code, add_tin, backend):
    answers = existing_answers(backend, code)
    answers[0:0] = [NEW_TIN, "12345678"]
    result = add_tin(answers)
    assert result.exit_code == 0, result.stderr
    assert "registration code refused: wrong (1 failed attempt(s))\nTax ID Number *: " in (
        result.stderr
    )


def test_the_registration_codes_lockout_ends_the_flow(james, code, add_tin, backend):
    result = add_tin(
        [NEW_TIN, "11111111", NEW_TIN, "22222222", NEW_TIN, code],
        env={"PORTALCTL_CODE_MAX_ATTEMPTS": "2"},
    )
    assert result.exit_code == 4
    assert result.stderr.endswith(
        "portalctl: registration code refused: wrong (2 failed attempt(s), the TIN's codes "
        "are now locked: reissue one)\n"
    )
    assert last_json(result.stdout)["outcome"] == "refused"
    assert code_status(backend) == "locked"


@pytest.mark.parametrize("status", ["locked", "disabled"])
def test_the_address_of_a_locked_or_disabled_account_ends_in_the_oops(
    james, code, add_tin, backend, cli, status
):
    if status == "disabled":
        assert cli("accounts", "disable", JAMES, "--reason", "left", "--yes").exit_code == 0
    else:
        locked = cli(
            "accounts",
            "verify",
            JAMES,
            "--password-stdin",
            input="not-the-password\n",
            env={"PORTALCTL_ACCOUNT_MAX_FAILURES": "1"},
        )
        assert locked.exit_code == 4 and "account now locked" in locked.stderr
    result = add_tin([NEW_TIN, code, ADMIN_EMAIL, ADMIN_EMAIL])
    assert result.exit_code == 4
    assert result.stderr.endswith(
        "portalctl: Oops! Your registration could not be completed at this time. Please try "
        "again, or contact Provider Services at: For Commercial Services call: 860-674-5850 or "
        "800-828-3407; For Medicare Services call: 877-224-8230 (account 'james.smith' already "
        "uses this email; link the Tax ID to it instead)\n"
    )
    record = last_json(result.stdout)
    assert (record["outcome"], record["tin"], record["email"]) == (
        "blocked",
        "*****7531",
        ADMIN_EMAIL,
    )
    assert backend.rows("SELECT kind, recipient FROM outbox") == [
        {"kind": "registration_blocked", "recipient": ADMIN_EMAIL}
    ]
    assert code_status(backend) == "active"
    assert "account.register_blocked" in [
        r["action"] for r in flow_records(backend, record["flow_id"])
    ]


def new_account_answers(backend, code, email="maria.garcia@example.org"):
    return [NEW_TIN, code, email, email, "mgarcia", "Maria Garcia", NEW_PASSWORD]


def test_a_new_account_is_registered_when_no_account_has_the_address(code, add_tin, backend, cli):
    answers = new_account_answers(backend, code) + ["First pet?", "Rex", emailed_code(backend)]
    result = add_tin(answers)
    assert result.exit_code == 0, result.stderr
    assert last_json(result.stdout) | {"flow_id": None} == {
        "flow_id": None,
        "flow": "add-tin",
        "outcome": "registered",
        "account": "mgarcia",
        "tin": "*****7531",
        "email": "maria.garcia@example.org",
        "email_verified": True,
    }
    assert "Portal User Registration\nNo account uses maria.garcia@example.org yet" in (
        result.stderr
    )
    assert links(backend, "mgarcia") == [{"tin": NEW_TIN, "role": "security_admin"}]
    assert code_status(backend) == "used"
    assert backend.scalar("SELECT email_verified_at FROM accounts") is not None
    assert cli("accounts", "verify", "mgarcia", "--answer", "rex").exit_code == 0
    verified = cli("accounts", "verify", "mgarcia", "--password-stdin", input=NEW_PASSWORD + "\n")
    assert verified.exit_code == 0


def test_the_new_accounts_details_can_come_from_options(code, add_tin, backend):
    options = ["--tin", NEW_TIN, "--email", "maria.garcia@example.org", "--new-username"]
    options += ["mgarcia", "--full-name", "Maria Garcia", "--security-question", "First pet?"]
    result = add_tin([code, NEW_PASSWORD, "Rex", emailed_code(backend)], *options)
    assert result.exit_code == 0, result.stderr
    assert last_json(result.stdout)["outcome"] == "registered"
    for prompt in ("Tax ID Number *", "Email *", "Username *", "Full Name *", "Question *"):
        assert prompt not in result.stderr


def test_a_new_accounts_answers_breaking_a_rule_are_told_and_asked_again(
    james, code, add_tin, backend, cli
):
    answers = [NEW_TIN, code, "maria.garcia@example.org", "maria.garcia@example.org"]
    answers += [JAMES, "mgarcia", "Maria Garcia", "short", "mgarcia-Garden-9", NEW_PASSWORD]
    answers += ["First pet?", "Rex", emailed_code(backend)]
    result = add_tin(answers)
    assert result.exit_code == 0, result.stderr
    assert "username 'james.smith' is already taken\nUsername *: " in result.stderr
    assert "the password must be at least 12 characters long\nPassword *: " in result.stderr
    assert "the password must not contain the username\nPassword *: " in result.stderr


def test_ending_at_the_new_accounts_code_leaves_it_registered_and_says_what_is_left(
    code, add_tin, backend
):
    result = add_tin(new_account_answers(backend, code) + ["First pet?", "Rex", "cancel"])
    assert result.exit_code == 0, result.stderr
    record = last_json(result.stdout)
    assert (record["outcome"], record["email_verified"]) == ("registered", False)
    assert (
        "The account is registered but its address is not verified: `portalctl accounts "
        "email-code mgarcia --email maria.garcia@example.org`." in result.stderr
    )
    assert backend.scalar("SELECT email_verified_at FROM accounts") is None


def test_back_at_the_username_enters_the_address_again(james, code, add_tin, backend):
    answers = [NEW_TIN, code, ADMIN_EMAIL, ADMIN_EMAIL, emailed_code(backend), "back"]
    answers += [ADMIN_EMAIL, ADMIN_EMAIL, emailed_code(backend), JAMES, PASSWORD]
    result = add_tin(answers)
    assert result.exit_code == 0, result.stderr
    assert result.stderr.count("Email Address Verification\n") == 2
    assert len(eml_messages(backend)) == 2
    assert last_json(result.stdout)["outcome"] == "linked"


def test_the_username_must_be_the_account_whose_address_was_verified(
    james, code, add_tin, backend, cli
):
    create(cli, "dlee", "dlee@example.org")
    answers = existing_answers(backend, code)
    answers[5:5] = ["dlee"]
    result = add_tin(answers)
    assert result.exit_code == 0, result.stderr
    assert "account 'dlee' is not the account this address was verified for\nUsername" in (
        result.stderr
    )
    assert links(backend, "dlee") == []


def test_when_several_accounts_use_the_address_the_flow_asks_which_first(
    james, code, add_tin, backend, cli
):
    create(cli, "james.s2", ADMIN_EMAIL)
    answers = [NEW_TIN, code, ADMIN_EMAIL, ADMIN_EMAIL, "ghost", "james.s2"]
    answers += [emailed_code(backend), PASSWORD]
    result = add_tin(answers)
    assert result.exit_code == 0, result.stderr
    assert "2 accounts use this address: which one is the caller's?\nUsername *: " in (
        result.stderr
    )
    assert "account 'ghost' does not use this address" in result.stderr
    assert last_json(result.stdout)["account"] == "james.s2"
    assert links(backend, "james.s2") == [{"tin": NEW_TIN, "role": "security_admin"}]


def test_an_existing_username_option_that_does_not_use_the_address_is_refused(
    james, code, add_tin, backend
):
    result = add_tin([NEW_TIN, code, ADMIN_EMAIL, ADMIN_EMAIL], "--existing-username", "ghost")
    assert result.exit_code == 4
    assert result.stderr.endswith(
        f"portalctl: account 'ghost' does not use the address {ADMIN_EMAIL}\n"
    )
    assert code_status(backend) == "active"


@pytest.mark.parametrize("at", [1, 2, 4, 5, 6])
def test_cancel_leaves_the_code_unused_and_the_tin_unlinked(james, code, add_tin, backend, at):
    result = add_tin(existing_answers(backend, code)[:at] + ["cancel"])
    assert result.exit_code == 130
    assert last_json(result.stdout)["outcome"] == "cancelled"
    assert code_status(backend) == "active"
    assert links(backend, JAMES) == [{"tin": "836576879", "role": "user"}]
