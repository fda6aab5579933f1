"""Faults of the server stop the run and charge no email (exit 8); faults of one message (a
refusal of its RCPT or DATA, an address or secret that cannot be used) are that message's
alone. Real servers on loopback: aiosmtpd, and a raw socket server for session faults."""

import time

import pytest
import sqlalchemy as sa
from mail_support import issue, issue_many, send, statuses
from smtp_server import RawSmtpServer, ScriptedHandler, SmtpServer, free_port


def assert_nothing_charged(backend, count):
    rows = backend.rows("SELECT status, attempts, claimed_by, claim_token, last_error FROM outbox")
    assert len(rows) == count
    assert all(
        row
        == {
            "status": "queued",
            "attempts": 0,
            "claimed_by": None,
            "claim_token": None,
            "last_error": None,
        }
        for row in rows
    ), rows


SESSION_FAULTS = [
    pytest.param({"greeting": "554 5.3.2 not accepting mail"}, "554 5.3.2", id="554-greeting"),
    pytest.param({"greeting": "421 4.3.2 too busy"}, "421 4.3.2", id="421-greeting"),
    pytest.param({"AUTH": "535 5.7.8 bad credentials"}, "refused the login: 535", id="535-auth"),
    pytest.param({"MAIL": "550 5.7.1 sender rejected"}, "refused the sender", id="550-mail-from"),
    pytest.param({"MAIL": "421 4.4.2 shutting down"}, "421 4.4.2", id="421-mail-from"),
    pytest.param({"RCPT": "421 4.4.2 closing"}, "is closing: 421", id="421-rcpt"),
]


@pytest.mark.parametrize(("replies", "reason"), SESSION_FAULTS)
def test_a_server_fault_stops_the_run_with_exit_8_and_marks_nothing(cli, backend, replies, reason):
    issue_many(backend, 5)
    with RawSmtpServer(**replies) as server:
        url = server.url.replace("smtp://", "smtp://portal:wrong-password@")
        result = cli("mail", "send", env={"PORTALCTL_SMTP_URL": url})
    assert result.exit_code == 8, result.stderr
    assert reason in result.stderr and "no email was marked dead" in result.stderr
    assert "wrong-password" not in result.stderr
    assert server.messages == 0
    assert_nothing_charged(backend, 5)
    assert backend.scalar("SELECT count(*) FROM audit_log WHERE action = 'mail.send'") == 1


def test_a_refused_port_stops_the_run_with_exit_8(cli, backend):
    issue_many(backend, 3)
    result = cli("mail", "send", env={"PORTALCTL_SMTP_URL": f"smtp://127.0.0.1:{free_port()}"})
    assert result.exit_code == 8 and "cannot be reached" in result.stderr
    assert_nothing_charged(backend, 3)


def test_the_reason_goes_to_stderr_as_a_log_line_too_without_a_terminal(cli, backend):
    issue_many(backend, 2)
    with RawSmtpServer(AUTH="535 5.7.8 bad credentials") as server:
        url = server.url.replace("smtp://", "smtp://portal:pw@")
        result = cli("mail", "send", env={"PORTALCTL_SMTP_URL": url})
    log_line, message = result.stderr.splitlines()
    assert " ERROR mail send: sent=0 failed=0 dead=0 cancelled=0 remaining=2 stopped: " in log_line
    assert "535 5.7.8" in log_line
    assert message.startswith("portalctl: the mail server at smtp://127.0.0.1:")


def test_a_server_failing_mid_run_keeps_what_was_sent_and_charges_nothing_else(cli, backend):
    issue_many(backend, 4)
    # The second message's connection is dropped; reconnecting then finds the server refusing.
    with SmtpServer(ScriptedHandler(["250 OK", "drop"])) as server:
        port = server.port
        first = send(cli, server.url, "--limit", "2")
    assert (first["sent"], first["failed"]) == (1, 1)
    result = cli("mail", "send", env={"PORTALCTL_SMTP_URL": f"smtp://127.0.0.1:{port}"})
    assert result.exit_code == 8
    assert statuses(backend) == {"sent": 1, "failed": 1, "queued": 2}
    assert backend.scalar("SELECT max(attempts) FROM outbox WHERE status = 'queued'") == 0


def test_a_hung_server_ends_the_run_at_its_deadline(cli, backend):
    issue_many(backend, 3)
    with RawSmtpServer(greeting="hang") as server:
        started = time.monotonic()
        result = cli("mail", "send", "--max-seconds", "2", env={"PORTALCTL_SMTP_URL": server.url})
        took = time.monotonic() - started
    assert result.exit_code == 8 and "did not answer" in result.stderr
    assert took < 4.5, took
    assert_nothing_charged(backend, 3)


def test_a_server_that_hangs_after_data_is_cut_by_the_smtp_timeout(cli, backend):
    issue_many(backend, 2)
    with RawSmtpServer(end="hang") as server:
        started = time.monotonic()
        result = cli(
            "mail",
            "send",
            env={"PORTALCTL_SMTP_URL": server.url, "PORTALCTL_SMTP_TIMEOUT_SECONDS": "1"},
        )
        took = time.monotonic() - started
    assert result.exit_code == 8 and "did not answer" in result.stderr
    assert took < 3.5, took
    assert_nothing_charged(backend, 2)


def test_a_message_never_outlives_the_lease_however_long_the_smtp_timeout(cli, backend):
    issue_many(backend, 1)
    with RawSmtpServer(end="hang") as server:
        started = time.monotonic()
        result = cli(
            "mail",
            "send",
            env={"PORTALCTL_SMTP_URL": server.url, "PORTALCTL_MAIL_LEASE_SECONDS": "3"},
        )
        took = time.monotonic() - started
    assert result.exit_code == 8
    assert took < 3.0, took  # cut before the lease ran out, so no other run could take it


POISON_ADDRESSES = [
    pytest.param("<a@x.org>", id="angle-brackets"),
    pytest.param("a@x.org,b@y.org", id="list"),
    pytest.param("a\x07b@x.org", id="control-character"),
    pytest.param("jos\u00e9@x.org", id="non-ascii-local-part"),
    pytest.param("a@x.org\r\nBcc: victim@y.org", id="header-injection"),
    pytest.param("", id="empty"),
]


def _queue_good_bad_good(cli, backend, bad_address):
    issue(cli, email="first@example.org", name="First")
    issue(cli, email="poison@example.org", name="Poison")
    issue(cli, email="last@example.org", name="Last")
    with backend.begin() as connection:  # old data or direct SQL: not through any entry point
        connection.execute(
            sa.text("UPDATE outbox SET recipient = :bad WHERE recipient = 'poison@example.org'"),
            {"bad": bad_address},
        )


@pytest.mark.parametrize("bad_address", POISON_ADDRESSES)
def test_a_poison_address_is_dead_alone_and_the_rest_is_delivered(cli, backend, bad_address):
    _queue_good_bad_good(cli, backend, bad_address)
    with SmtpServer(ScriptedHandler()) as server:
        summary = send(cli, server.url)
    assert (summary["sent"], summary["dead"]) == (2, 1)
    assert [rcpt for _, rcpt in server.handler.envelopes] == [
        ["first@example.org"],
        ["last@example.org"],
    ]
    [dead] = backend.rows(
        "SELECT status, attempts, last_error, secret_ciphertext FROM outbox WHERE status = 'dead'"
    )
    assert dead["last_error"].startswith("invalid recipient address")
    assert dead["attempts"] == 0  # never offered to the server


def test_an_undecryptable_secret_is_dead_alone_and_the_rest_is_delivered(cli, backend):
    _queue_good_bad_good(cli, backend, "poison@example.org")
    with SmtpServer(ScriptedHandler()) as server:
        summary = send(cli, server.url, env={"PORTALCTL_SECRET_KEY": "another-key-0123456789abcd"})
        assert (summary["sent"], summary["dead"]) == (0, 3)  # all were queued under the old key
        assert "cannot be decrypted" in backend.scalar("SELECT min(last_error) FROM outbox")
        retried = cli("mail", "retry", "--status", "dead", "--format", "json").json()
        assert retried["retried"] == 3
        with backend.begin() as connection:
            connection.execute(
                sa.text(
                    "UPDATE outbox SET secret_ciphertext = 'gAAAA-not-a-token' "
                    "WHERE recipient = 'poison@example.org'"
                )
            )
        summary = send(cli, server.url)
    assert (summary["sent"], summary["dead"]) == (2, 1)
    assert len(server.handler.received) == 2


@pytest.mark.parametrize("bad_address", [p.values[0] for p in POISON_ADDRESSES])
def test_a_poison_address_is_refused_at_input_with_exit_5(cli, backend, bad_address):
    result = cli(
        "codes", "issue", "--tin", "061137531", "--admin-name", "A", "--admin-email", bad_address
    )
    assert result.exit_code in (5, 2), result.stderr  # 2: Click refuses an empty option itself
    assert backend.scalar("SELECT count(*) FROM outbox") == 0
    assert backend.scalar("SELECT count(*) FROM registration_codes") == 0


def test_a_poison_address_in_a_credentialing_file_is_refused_with_exit_5(cli, backend, tmp_path):
    path = tmp_path / "codes.csv"
    path.write_text(
        'tin,admin_name,admin_email\n061137531,A,a@example.org\n061137532,B,"a@x.org,b@y.org"\n'
    )
    result = cli("codes", "issue", "--csv", str(path))
    assert result.exit_code == 5 and "codes.csv:3" in result.stderr
    assert backend.scalar("SELECT count(*) FROM outbox") == 0


@pytest.mark.parametrize(
    "url",
    [
        "smtp://user:secret@mail.example.org:587",
        "smtp://user:secret@10.0.0.5",
        "smtp://user@mail.example.org?starttls=false",
    ],
)
def test_credentials_over_plain_smtp_are_refused_before_anything_is_claimed(cli, backend, url):
    issue(cli)
    result = cli("mail", "send", env={"PORTALCTL_SMTP_URL": url})
    assert result.exit_code == 2 and "without TLS" in result.stderr
    assert "secret" not in result.stderr
    assert_nothing_charged(backend, 1)


def test_credentials_to_a_loopback_server_in_plain_text_are_accepted(cli, backend):
    issue(cli)
    with RawSmtpServer() as server:
        url = server.url.replace("smtp://", "smtp://portal:pw@")
        assert send(cli, url)["sent"] == 1
    assert "AUTH" in server.commands and server.messages == 1
