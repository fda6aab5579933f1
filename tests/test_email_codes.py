"""The Email Address Verification of the guides (seed 000 steps 4-5, seed 001 step 3): a code
emailed at once over a real SMTP server on loopback, confirmed, replaced, locked, expired and
limited, on both backends."""

from datetime import UTC, datetime, timedelta

import pytest
from conftest import TEST_OPERATOR
from credentials_support import body_of, code_in, eml_messages, make_account, settings_for
from smtp_server import ScriptedHandler, SmtpServer, free_port

from portalctl.core.database import transaction
from portalctl.core.errors import RecordedRefusal, Refused
from portalctl.domain.email_codes import confirm_email, issue_email_code

USER = "johnsmith@gmail.com"


def email_code(cli, server_url, address=USER, *, user=USER, env=None):
    return cli(
        "accounts",
        "email-code",
        user,
        "--email",
        address,
        "-f",
        "json",
        env={"PORTALCTL_SMTP_URL": server_url, **(env or {})},
    )


def confirm(cli, code, user=USER):
    return cli("accounts", "confirm-email", user, "--code", code, "-f", "json")


def wrong(code: str) -> str:
    return str((int(code) + 1) % 10 ** len(code)).zfill(len(code))


@pytest.fixture
def john(cli):
    make_account(cli, USER, "john.smith@old-practice.example")


@pytest.fixture
def server():
    with SmtpServer(ScriptedHandler()) as running:
        yield running


def test_the_code_is_emailed_at_once_in_the_seeds_words(john, cli, backend, server):
    before = datetime.now(UTC)
    result = email_code(cli, server.url)
    assert result.exit_code == 0, result.stderr
    record = result.json()
    assert set(record) == {"id", "username", "email", "expires_at", "accounts_using_email"}
    assert (record["username"], record["email"], record["accounts_using_email"]) == (USER, USER, 0)
    expires = datetime.fromisoformat(record["expires_at"].replace("Z", "+00:00"))
    assert timedelta(minutes=14) < expires - before <= timedelta(minutes=15, seconds=5)
    [message] = server.handler.received
    assert server.handler.envelopes[0][1] == [USER]
    assert message["To"] == f"John Smith <{USER}>"
    code = code_in(message)
    assert len(code) == 6
    body = body_of(message)
    assert body.startswith("Hello,\n\nTo complete the verification of your email address")
    assert f"Verification code: {code}.\n" in body
    assert (
        "If you don't recognize this request, someone may have used your email address by "
        "mistake. You can safely ignore this email." in body
    )
    assert (
        "To maintain HIPAA compliance, please do not share your username or password with "
        "anyone." in body
    )
    assert body.rstrip().endswith("ConnectiCare\n175 Scott Swamp Road | Farmington, CT 06032")
    assert code not in result.stdout + result.stderr
    [row] = backend.rows("SELECT status, secret_ciphertext, claimed_by, kind FROM outbox")
    assert dict(row) == {
        "status": "sent",
        "secret_ciphertext": None,
        "claimed_by": None,
        "kind": "email_verification",
    }


def test_confirming_sets_the_email_and_its_verification_time(john, cli, backend, server):
    assert email_code(cli, server.url).exit_code == 0
    code = code_in(server.handler.received[0])
    result = confirm(cli, code)
    assert result.exit_code == 0, result.stderr
    record = result.json()
    assert set(record) == {"username", "email", "email_verified_at"}
    assert (record["username"], record["email"]) == (USER, USER)
    row = backend.rows("SELECT email, email_verified_at FROM accounts")[0]
    assert row["email"] == USER and row["email_verified_at"] is not None
    assert backend.scalar("SELECT status FROM account_codes") == "used"
    again = confirm(cli, code)
    assert (again.exit_code, again.stderr) == (
        4,
        "portalctl: email verification code refused: used\n",
    )
    actions = [r["action"] for r in backend.rows("SELECT action FROM audit_log ORDER BY id")]
    assert actions[-4:] == [
        "account_code.issue",
        "mail.send",
        "account.confirm_email",
        "account_code.check",
    ]


def test_five_wrong_entries_lock_the_code(john, cli, backend, server):
    assert email_code(cli, server.url).exit_code == 0
    code = code_in(server.handler.received[0])
    for attempt in range(1, 5):
        result = confirm(cli, wrong(code))
        assert (result.exit_code, result.stderr) == (
            4,
            f"portalctl: email verification code refused: wrong ({attempt} of 5 wrong entries)\n",
        )
    fifth = confirm(cli, wrong(code))
    assert fifth.stderr == (
        "portalctl: email verification code refused: wrong (5 of 5 wrong entries; the code is "
        "now locked: request a new one)\n"
    )
    assert backend.scalar("SELECT status FROM account_codes") == "locked"
    right = confirm(cli, code)
    assert (right.exit_code, right.stderr) == (
        4,
        "portalctl: email verification code refused: locked; request a new one\n",
    )
    assert backend.scalar("SELECT email_verified_at FROM accounts") is None
    assert email_code(cli, server.url).exit_code == 0
    assert confirm(cli, code_in(server.handler.received[1])).exit_code == 0


def test_request_new_code_replaces_the_earlier_one(john, cli, backend, server):
    assert email_code(cli, server.url).exit_code == 0
    assert email_code(cli, server.url).exit_code == 0
    first, second = (code_in(message) for message in server.handler.received)
    if first == second:
        pytest.skip("the two random codes happen to be equal")
    refused = confirm(cli, first)
    assert (refused.exit_code, refused.stderr) == (
        4,
        "portalctl: email verification code refused: replaced; request a new one\n",
    )
    statuses = [r["status"] for r in backend.rows("SELECT status FROM account_codes ORDER BY id")]
    assert statuses == ["replaced", "active"]
    assert confirm(cli, second).exit_code == 0


def test_a_corrected_address_replaces_the_code_sent_to_the_wrong_one(john, cli, backend, server):
    assert email_code(cli, server.url, "johnsmith@gmial.com").exit_code == 0
    assert email_code(cli, server.url, USER).exit_code == 0
    assert [envelope[1] for envelope in server.handler.envelopes] == [
        ["johnsmith@gmial.com"],
        [USER],
    ]
    typo_code, right_code = (code_in(message) for message in server.handler.received)
    if typo_code != right_code:
        assert confirm(cli, typo_code).exit_code == 4
    result = confirm(cli, right_code)
    assert result.exit_code == 0 and result.json()["email"] == USER
    assert backend.scalar("SELECT email FROM accounts") == USER


def test_a_code_only_confirms_the_address_it_was_sent_to(john, backend):
    """The HMAC binds the code to its account and address: the same digits for another
    address, or another account, are a wrong code."""
    from portalctl.core.secrets import account_code_hmac

    key = settings_for(backend).secret_key
    made = account_code_hmac(key, purpose="email_verification", account_id=1, email=USER, code="1")
    assert made == account_code_hmac(
        key, purpose="email_verification", account_id=1, email=USER.upper(), code="1"
    )
    for other in (
        {"purpose": "password_reset", "account_id": 1, "email": USER},
        {"purpose": "email_verification", "account_id": 2, "email": USER},
        {"purpose": "email_verification", "account_id": 1, "email": "other@example.org"},
    ):
        assert account_code_hmac(key, code="1", **other) != made


def test_an_undelivered_email_stays_queued_and_is_stopped_when_replaced(john, cli, backend):
    down = f"smtp://127.0.0.1:{free_port()}"
    result = email_code(cli, down)
    assert result.exit_code == 8
    assert set(result.json()) == {"id", "username", "email", "expires_at", "accounts_using_email"}
    assert result.stderr.startswith("portalctl: email 1 could not be delivered now (")
    assert result.stderr.endswith("; it stays queued for `mail send`\n")
    row = backend.rows("SELECT * FROM outbox")[0]
    assert (row["status"], row["claimed_by"], row["attempts"]) == ("queued", None, 0)
    assert row["secret_ciphertext"]  # a server failure charges the email nothing
    with SmtpServer(ScriptedHandler()) as server:
        assert email_code(cli, server.url).exit_code == 0
        sent = cli("mail", "send", "-f", "json", env={"PORTALCTL_SMTP_URL": server.url})
    assert sent.json()["sent"] == 0
    first, second = backend.rows(
        "SELECT status, cancel_reason, secret_ciphertext FROM outbox ORDER BY id"
    )
    assert dict(first) == {
        "status": "cancelled",
        "cancel_reason": "code replaced",
        "secret_ciphertext": None,
    }
    assert second["status"] == "sent"
    assert len(server.handler.received) == 1


def test_mail_send_delivers_a_code_email_that_could_not_go_at_once(john, cli, backend):
    assert email_code(cli, f"smtp://127.0.0.1:{free_port()}").exit_code == 8
    with SmtpServer(ScriptedHandler()) as server:
        sent = cli("mail", "send", "-f", "json", env={"PORTALCTL_SMTP_URL": server.url})
    assert sent.json()["sent"] == 1
    assert confirm(cli, code_in(server.handler.received[0])).exit_code == 0


def test_without_an_smtp_url_the_eml_file_is_written_at_once(john, cli, backend):
    result = cli("accounts", "email-code", USER, "--email", USER)
    assert result.exit_code == 0, result.stderr
    [message] = eml_messages(backend)
    assert message["To"] == f"John Smith <{USER}>"
    assert confirm(cli, code_in(message)).exit_code == 0
    assert backend.scalar("SELECT status FROM outbox") == "sent"


def test_a_code_expires_after_its_lifetime(john, backend):
    settings = settings_for(backend, PORTALCTL_EMAIL_CODE_TTL_MINUTES="5")
    start = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    issued = []
    for offset in (0, 10):
        with transaction(backend.engine) as connection:
            record, _ = issue_email_code(
                connection,
                operator=TEST_OPERATOR,
                username=USER,
                email=USER,
                settings=settings,
                now=start + timedelta(minutes=offset),
            )
        issued.append(record)
    assert issued[0]["expires_at"] == start + timedelta(minutes=5)
    code = _plain_code_of_latest(backend, settings)
    with pytest.raises(RecordedRefusal) as refused, transaction(backend.engine) as connection:
        confirm_email(
            connection,
            operator=TEST_OPERATOR,
            username=USER,
            code=code,
            settings=settings,
            now=start + timedelta(minutes=15),
        )
    assert refused.value.message == "email verification code refused: expired; request a new one"
    assert backend.scalar("SELECT attempts FROM account_codes WHERE id = 2") == 0
    with transaction(backend.engine) as connection:
        confirmed = confirm_email(
            connection,
            operator=TEST_OPERATOR,
            username=USER,
            code=code,
            settings=settings,
            now=start + timedelta(minutes=14, seconds=59),
        )
    assert confirmed["email_verified_at"] == start + timedelta(minutes=14, seconds=59)


def _plain_code_of_latest(backend, settings) -> str:
    """The code of the newest email, read from the outbox as the delivery would."""
    from portalctl.core.secrets import decrypt_secret

    token = backend.scalar("SELECT secret_ciphertext FROM outbox ORDER BY id DESC LIMIT 1")
    return decrypt_secret(settings.secret_key, token)


def test_at_most_five_codes_an_hour(john, backend):
    settings = settings_for(backend)
    start = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)

    def issue(minutes: int):
        with transaction(backend.engine) as connection:
            return issue_email_code(
                connection,
                operator=TEST_OPERATOR,
                username=USER,
                email=USER,
                settings=settings,
                now=start + timedelta(minutes=minutes),
            )

    for minute in range(5):
        issue(minute * 10)
    with pytest.raises(Refused) as refused:
        issue(50)
    assert refused.value.message == (
        f"account '{USER}' has had 5 email verification codes in the last hour (at most 5); "
        "ask again after 2026-11-02 10:00 UTC"
    )
    assert backend.scalar("SELECT count(*) FROM account_codes") == 5
    issue(60)  # the first has left the hour
    assert backend.scalar("SELECT count(*) FROM account_codes") == 6


def test_the_hourly_limit_is_a_setting_and_refuses_with_exit_4(john, cli, backend, server):
    env = {"PORTALCTL_EMAIL_CODE_MAX_PER_HOUR": "2"}
    assert email_code(cli, server.url, env=env).exit_code == 0
    assert email_code(cli, server.url, env=env).exit_code == 0
    third = email_code(cli, server.url, env=env)
    assert third.exit_code == 4 and "has had 2 email verification codes" in third.stderr
    assert backend.scalar("SELECT count(*) FROM outbox") == 2


def test_no_code_issued_is_exit_3_and_input_that_is_no_code_exit_5_uncounted(john, cli, backend):
    missing = confirm(cli, "123456")
    assert (missing.exit_code, missing.stderr) == (
        3,
        f"portalctl: no email verification code was issued for account '{USER}'\n",
    )
    assert cli("accounts", "email-code", USER, "--email", USER).exit_code == 0
    for typed in ("12345", "1234567", "12345a", ""):
        result = confirm(cli, typed)
        assert (result.exit_code, result.stderr) == (
            5,
            "portalctl: invalid email verification code: expected 6 digits\n",
        )
    assert backend.scalar("SELECT attempts FROM account_codes") == 0


def test_the_code_is_prompted_for_or_read_from_stdin(john, cli, backend):
    assert cli("accounts", "email-code", USER, "--email", USER).exit_code == 0
    code = code_in(eml_messages(backend)[0])
    prompted = cli("accounts", "confirm-email", USER, input=code + "\n")
    assert prompted.exit_code == 2 and "--code-stdin" in prompted.stderr
    piped = cli("accounts", "confirm-email", USER, "--code-stdin", input=code + "\n")
    assert piped.exit_code == 0, piped.stderr


def test_the_code_length_is_a_setting(john, cli, backend):
    env = {"PORTALCTL_EMAIL_CODE_DIGITS": "8"}
    assert cli("accounts", "email-code", USER, "--email", USER, env=env).exit_code == 0
    assert len(code_in(eml_messages(backend)[0])) == 8
    too_long = cli(
        "accounts", "email-code", USER, "--email", USER, env={"PORTALCTL_EMAIL_CODE_DIGITS": "11"}
    )
    assert too_long.exit_code == 2
    assert "PORTALCTL_EMAIL_CODE_DIGITS must be between 6 and 10, not 11" in too_long.stderr


def test_accounts_using_the_address_are_counted(john, cli, server):
    make_account(cli, "john.smith.2019", USER)
    make_account(cli, "jsmith_old", USER)
    cli("accounts", "disable", "--yes", "jsmith_old", "--reason", "left")
    result = email_code(cli, server.url)
    assert result.json()["accounts_using_email"] == 1


@pytest.mark.parametrize("status_command", ["disable", "merged"])
def test_only_an_active_account_gets_a_code(john, cli, backend, server, status_command):
    if status_command == "merged":
        make_account(cli, "primary.john", "primary@example.org")
        cli(
            "consolidate",
            "one",
            "--primary",
            "primary.john",
            "--secondary",
            USER,
            "--override-reason",
            "verified by phone",
        )
        status = "merged"
    else:
        cli("accounts", "disable", "--yes", USER, "--reason", "left")
        status = "disabled"
    result = email_code(cli, server.url)
    assert (result.exit_code, result.stderr) == (
        4,
        f"portalctl: account '{USER}' is {status}; its email cannot be verified\n",
    )
    assert backend.scalar("SELECT count(*) FROM outbox") == 0
