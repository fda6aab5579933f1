"""An email whose code can no longer be used is cancelled in the transaction that made it so,
its secret erased, and never delivered; operators cancel and retry emails by hand (audited)."""

import threading
import time

import pytest
import sqlalchemy as sa
from mail_support import TIN, issue, issue_many, make_due, send, statuses
from smtp_server import ScriptedHandler, SmtpServer

from portalctl.core.config import Settings
from portalctl.domain.code_checks import consume_registration_code
from portalctl.domain.mail.delivery import send_due_emails
from portalctl.domain.outbox import queue_email


def email_of(backend, code_id):
    [row] = backend.rows(
        "SELECT id, status, secret_ciphertext, cancel_reason, cancelled_at FROM outbox "
        "WHERE code_id = :code_id",
        code_id=code_id,
    )
    return row


def assert_cancelled(row, reason):
    assert row["status"] == "cancelled" and row["cancel_reason"] == reason
    assert row["secret_ciphertext"] is None and row["cancelled_at"] is not None


def test_a_revoked_codes_email_is_cancelled_and_never_delivered(cli, backend):
    revoked = issue(cli)
    kept = issue(cli, email="ann@example.org", name="Ann")
    assert cli("codes", "revoke", str(revoked["id"]), "--reason", "wrong person").exit_code == 0
    assert_cancelled(email_of(backend, revoked["id"]), "code revoked")
    with SmtpServer(ScriptedHandler()) as server:
        summary = send(cli, server.url)
    assert (summary["sent"], summary["cancelled"]) == (1, 0)  # never even claimed
    [message] = server.handler.received
    assert kept["code"] in message.get_payload(decode=True).decode()
    assert revoked["code"] not in message.get_payload(decode=True).decode()


def test_a_reissued_codes_email_is_cancelled_and_the_new_one_goes(cli, backend):
    old = issue(cli)
    new = cli("codes", "reissue", str(old["id"]), "--format", "json").json()
    assert_cancelled(email_of(backend, old["id"]), "code reissued")
    with SmtpServer(ScriptedHandler()) as server:
        assert send(cli, server.url)["sent"] == 1
    [message] = server.handler.received
    assert new["code"] in message.get_payload(decode=True).decode()


def test_a_used_codes_email_is_cancelled(cli, backend):
    used = issue(cli)
    with backend.begin() as connection:
        consume_registration_code(connection, code_id=used["id"], account_id=None)
    assert_cancelled(email_of(backend, used["id"]), "code used")


def test_locking_a_tins_codes_cancels_their_emails(cli, backend):
    first = issue(cli)
    second = issue(cli, email="ann@example.org", name="Ann")
    other_tin = issue(cli, email="bob@example.org", name="Bob", tin="836576879")
    for _ in range(5):
        assert cli("codes", "verify", "--tin", TIN, "--code", "00000000").exit_code == 4
    for code in (first, second):
        assert_cancelled(email_of(backend, code["id"]), "code locked")
    assert email_of(backend, other_tin["id"])["status"] == "queued"


def test_a_failed_or_dead_email_of_a_revoked_code_is_cancelled_too(cli, backend):
    code = issue(cli)
    with SmtpServer(ScriptedHandler(["550 5.1.1 no such user"])) as server:
        assert send(cli, server.url)["dead"] == 1
    cli("codes", "revoke", str(code["id"]), "--reason", "typo in the address")
    assert_cancelled(email_of(backend, code["id"]), "code revoked")
    assert cli("mail", "retry", "1").exit_code == 4  # a cancelled email cannot come back


def test_an_email_cancelled_while_a_run_holds_it_is_not_delivered(cli, backend):
    issued = issue_many(backend, 6)
    settings = Settings({**backend.env})
    outcome = {}
    with SmtpServer(ScriptedHandler(delay=0.2)) as server:
        settings.values["PORTALCTL_SMTP_URL"] = server.url
        thread = threading.Thread(
            target=lambda: outcome.update(
                summary=send_due_emails(backend.engine, operator="cron", settings=settings)
            )
        )
        thread.start()
        while not server.handler.received:
            time.sleep(0.01)
        assert cli("codes", "revoke", str(issued[4]["id"]), "--reason", "left").exit_code == 0
        thread.join(30)
    summary = outcome["summary"]
    assert (summary.sent, summary.cancelled) == (5, 1)
    cancelled_id = email_of(backend, issued[4]["id"])["id"]
    sent_ids = {
        row["message_id"]
        for row in backend.rows("SELECT message_id FROM outbox WHERE id <> :id", id=cancelled_id)
    }
    assert set(server.handler.message_ids()) == sent_ids


def test_mail_cancel_by_hand_is_audited_and_erases_the_secret(cli, backend):
    issue(cli)
    result = cli("mail", "cancel", "1", "--reason", "  address given by mistake ", "-f", "json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["status"] == "cancelled"
    assert_cancelled(email_of(backend, 1), "address given by mistake")
    [audit] = backend.rows(
        "SELECT operator, target, details FROM audit_log WHERE action = 'mail.cancel'"
    )
    assert audit["operator"] == "test-operator" and audit["target"] == "email:1"
    assert "address given by mistake" in str(audit["details"])
    with SmtpServer(ScriptedHandler()) as server:
        assert send(cli, server.url)["sent"] == 0
    assert server.handler.received == []


@pytest.mark.parametrize(
    ("args", "code"),
    [(("1", "--reason", "again"), 4), (("99", "--reason", "x"), 3), (("1", "--reason", " "), 2)],
)
def test_mail_cancel_refusals(cli, backend, args, code):
    issue(cli)
    cli("mail", "cancel", "1", "--reason", "first")
    result = cli("mail", "cancel", *args)
    assert result.exit_code == code, result.stderr


def test_a_sent_email_cannot_be_cancelled(cli, backend):
    issue(cli)
    with SmtpServer(ScriptedHandler()) as server:
        send(cli, server.url)
    result = cli("mail", "cancel", "1", "--reason", "too late")
    assert result.exit_code == 4 and "email 1 is sent" in result.stderr


def _dead_and_failed(cli, backend):
    issue(cli, email="a@example.org", name="A")
    issue(cli, email="b@example.org", name="B")
    issue(cli, email="c@example.org", name="C")
    with backend.begin() as connection:
        queue_email(
            connection,
            kind="accounts_consolidated",
            recipient="d@example.org",
            subject="s",
            body="b",
        )
    with SmtpServer(ScriptedHandler(["550 no"] * 2 + ["451 later", "550 no"])) as server:
        assert send(cli, server.url)["dead"] == 3


def test_bulk_retry_puts_back_every_email_of_a_status_and_kind_with_one_audit_record(cli, backend):
    _dead_and_failed(cli, backend)
    assert statuses(backend) == {"dead": 3, "failed": 1}
    result = cli("mail", "retry", "--status", "dead", "--kind", "credentialing", "-f", "json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["retried"] == 2
    assert statuses(backend) == {"queued": 2, "dead": 1, "failed": 1}
    assert backend.scalar("SELECT sum(attempts) FROM outbox WHERE status = 'queued'") == 0
    [audit] = backend.rows("SELECT target, details FROM audit_log WHERE action = 'mail.retry'")
    assert audit["target"] == "outbox" and '"retried": 2' in str(audit["details"]).replace("'", '"')
    again = cli("mail", "retry", "--status", "failed", "-f", "json").json()
    assert again["retried"] == 1
    assert statuses(backend) == {"queued": 3, "dead": 1}


def test_bulk_retry_since_takes_only_emails_last_tried_since(cli, backend):
    _dead_and_failed(cli, backend)
    with backend.begin() as connection:
        connection.execute(
            sa.text(
                "UPDATE outbox SET last_attempt_at = :old WHERE kind = 'accounts_consolidated'"
            ),
            {
                "old": "2020-01-01 00:00:00+00:00"
                if backend.name == "postgresql"
                else "2020-01-01 00:00:00"
            },
        )
    result = cli("mail", "retry", "--status", "dead", "--since", "2021-01-01", "-f", "json")
    assert result.json()["retried"] == 2
    assert (
        backend.scalar("SELECT status FROM outbox WHERE kind = 'accounts_consolidated'") == "dead"
    )


@pytest.mark.parametrize(
    ("args", "code"),
    [
        ((), 2),
        (("1", "--status", "dead"), 2),
        (("--status", "sent"), 2),
        (("--kind", "credentialing"), 2),
        (("1",), 4),  # queued: nothing to retry
        (("42",), 3),
    ],
)
def test_retry_refusals(cli, backend, args, code):
    issue(cli)
    result = cli("mail", "retry", *args)
    assert result.exit_code == code, result.stderr


def test_a_retried_dead_email_is_delivered(cli, backend):
    issue(cli)
    with SmtpServer(ScriptedHandler(["550 no such user"])) as server:
        assert send(cli, server.url)["dead"] == 1
        assert cli("mail", "retry", "--status", "dead").exit_code == 0
        make_due(backend)
        assert send(cli, server.url)["sent"] == 1
    assert len(server.handler.received) == 1
