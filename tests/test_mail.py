"""`mail send` against a real SMTP server on loopback, on both backends: what arrives, the
summary, outcomes per message, `.eml` files, cron log lines, and kill -9."""

import email
import json
import os
import re
import signal
import stat
import subprocess
import time
from email.policy import default as default_policy
from pathlib import Path

import pytest
import sqlalchemy as sa
from mail_support import (
    PORTALCTL,
    issue,
    issue_many,
    make_due,
    send,
    start_send,
    statuses,
    subprocess_env,
)
from smtp_server import ScriptedHandler, SmtpServer, self_signed_certificate


def body_of(message):
    return message.get_payload(decode=True).decode()


def all_text(backend):
    text = []
    for table in sa.inspect(backend.engine).get_table_names():
        for row in backend.rows(f"SELECT * FROM {table}"):
            text.extend(str(value) for value in row.values())
    return "\n".join(text)


def test_message_arrives_with_recipient_subject_and_code(cli, backend):
    issued = issue(cli)
    with SmtpServer(ScriptedHandler()) as server:
        assert send(cli, server.url) == {
            "sent": 1,
            "failed": 0,
            "dead": 0,
            "cancelled": 0,
            "remaining": 0,
        }
    [message] = server.handler.received
    assert server.handler.envelopes[0][1] == ["james.smith@example.org"]
    assert message["To"] == "James Smith <james.smith@example.org>"
    assert message["Subject"] == "ConnectiCare provider portal registration code"
    body = body_of(message)
    assert body.startswith("Hi James Smith,")
    assert "Ruth Goneh has successfully completed our credentialing process" in body
    assert f"Registration Code: {issued['code']}." in body
    assert "860-674-5850 or 800-828-3407" in body and "877-224-8230" in body
    row = backend.rows("SELECT status, secret_ciphertext, claimed_by, claim_token FROM outbox")[0]
    assert row == {
        "status": "sent",
        "secret_ciphertext": None,
        "claimed_by": None,
        "claim_token": None,
    }


def test_no_plain_code_in_any_table_after_issue_and_send(cli, backend):
    codes = [issue(cli)["code"], issue(cli, email="ann@example.org", name="Ann")["code"]]
    with SmtpServer(ScriptedHandler()) as server:
        send(cli, server.url)
    assert len(server.handler.received) == 2
    dump = all_text(backend)
    for code in codes:
        assert code not in dump


def test_one_connection_for_a_run(cli, backend):
    issue_many(backend, 5)
    with SmtpServer(ScriptedHandler()) as server:
        assert send(cli, server.url, env={"PORTALCTL_MAIL_CHUNK_SIZE": "2"})["sent"] == 5
    assert server.handler.connections == 1


def test_remaining_counts_due_emails_left_under_limit(cli, backend):
    issue_many(backend, 5)
    with SmtpServer(ScriptedHandler()) as server:
        first = send(cli, server.url, "--limit", "2")
        assert (first["sent"], first["remaining"]) == (2, 3)
        second = send(cli, server.url, "--limit", "10")
        assert (second["sent"], second["remaining"]) == (3, 0)
    assert len(server.handler.received) == 5


def test_451_then_250_delivers_on_the_second_attempt(cli, backend):
    issue(cli)
    with SmtpServer(ScriptedHandler(["451 4.3.0 try again later"])) as server:
        summary = send(cli, server.url)
        assert (summary["failed"], summary["remaining"]) == (1, 0)  # not due again yet
        row = backend.rows(
            "SELECT status, attempts, next_attempt_at, created_at, last_error FROM outbox"
        )[0]
        assert row["status"] == "failed" and row["attempts"] == 1 and "451" in row["last_error"]
        assert send(cli, server.url)["failed"] == 0  # backoff: not tried again yet
        make_due(backend)
        assert send(cli, server.url)["sent"] == 1
    assert len(server.handler.received) == 1
    assert backend.scalar("SELECT attempts FROM outbox") == 2


def test_backoff_grows_with_jitter(backend):
    from datetime import timedelta

    from portalctl.domain.mail.run_settings import retry_delay

    for attempts, minutes in ((1, 1), (2, 2), (3, 4), (10, 360)):
        delays = {retry_delay(attempts) for _ in range(20)}
        assert all(
            timedelta(minutes=minutes) <= d <= timedelta(minutes=minutes * 1.25) for d in delays
        )
        assert len(delays) > 1  # jitter


@pytest.mark.parametrize("where", ["DATA", "RCPT"])
def test_a_5xx_to_this_message_makes_it_dead_after_one_attempt(cli, backend, where):
    issue(cli)
    issue(cli, email="ann@example.org", name="Ann")
    refusal = "550 5.1.1 no such user"
    handler = (
        ScriptedHandler([refusal])
        if where == "DATA"
        else ScriptedHandler(rcpt={"james.smith@example.org": refusal})
    )
    with SmtpServer(handler) as server:
        summary = send(cli, server.url)
    assert (summary["sent"], summary["dead"]) == (1, 1)
    dead = backend.rows("SELECT status, attempts, last_error FROM outbox WHERE status = 'dead'")
    assert len(dead) == 1 and dead[0]["attempts"] == 1 and "550 5.1.1" in dead[0]["last_error"]
    listed = cli("mail", "list", "--status", "dead", "--format", "json").json()
    assert cli("mail", "retry", str(listed[0]["id"])).exit_code == 0
    assert statuses(backend) == {"queued": 1, "sent": 1}


def test_a_4xx_to_rcpt_makes_it_failed_with_backoff(cli, backend):
    issue(cli)
    handler = ScriptedHandler(rcpt={"james.smith@example.org": "450 4.2.1 mailbox busy"})
    with SmtpServer(handler) as server:
        assert send(cli, server.url)["failed"] == 1
    row = backend.rows("SELECT status, attempts, next_attempt_at, last_attempt_at FROM outbox")[0]
    assert row["status"] == "failed" and row["attempts"] == 1
    assert row["next_attempt_at"] > row["last_attempt_at"]


def test_dropped_connection_fails_then_a_later_retry_succeeds(cli, backend):
    issue(cli)
    with SmtpServer(ScriptedHandler(["drop"])) as server:
        assert send(cli, server.url)["failed"] == 1
        assert backend.scalar("SELECT status FROM outbox") == "failed"
        make_due(backend)
        assert send(cli, server.url)["sent"] == 1
    assert len(server.handler.received) == 1


def test_attempt_limit_makes_the_email_dead(cli, backend):
    issue(cli)
    with SmtpServer(ScriptedHandler(["451 later"] * 3)) as server:
        for _ in range(2):
            make_due(backend)
            send(cli, server.url, env={"PORTALCTL_MAIL_MAX_ATTEMPTS": "2"})
    assert backend.scalar("SELECT status FROM outbox") == "dead"


@pytest.fixture
def open_umask():
    """The most permissive umask, so file modes come from how portalctl creates files."""
    previous = os.umask(0)
    yield
    os.umask(previous)


def test_without_smtp_url_writes_private_eml_files(cli, backend, open_umask):
    issued = issue(cli)
    result = cli("mail", "send", "--format", "json")
    assert result.exit_code == 0 and result.json()["sent"] == 1
    folder = Path(backend.env["PORTALCTL_MAIL_DIR"])
    [eml] = list(folder.glob("*.eml"))
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(eml.stat().st_mode) == 0o600
    assert list(folder.iterdir()) == [eml]  # no partial file left behind
    message = email.message_from_bytes(eml.read_bytes(), policy=default_policy)
    assert issued["code"] in message.get_content()
    assert message["Message-ID"] == backend.scalar("SELECT message_id FROM outbox")


def test_an_existing_open_mail_folder_is_made_private(cli, backend, open_umask):
    folder = Path(backend.env["PORTALCTL_MAIL_DIR"])
    folder.mkdir(mode=0o755)
    issue(cli)
    assert cli("mail", "send").exit_code == 0
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert [stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()] == [0o600]


def test_a_stored_name_with_a_newline_cannot_add_a_header(cli, backend):
    """Input refuses such names (exit 5); a row that got one some other way still cannot."""
    issue(cli)
    with backend.begin() as connection:
        connection.execute(
            sa.text("UPDATE outbox SET recipient_name = :name"),
            {"name": "Eve\r\nBcc: victim@example.org"},
        )
    with SmtpServer(ScriptedHandler()) as server:
        send(cli, server.url)
    [message] = server.handler.received
    assert message["Bcc"] is None
    assert server.handler.envelopes[0][1] == ["james.smith@example.org"]


def test_show_masks_the_code(cli, backend):
    issued = issue(cli)
    shown = cli("mail", "show", "1", "--format", "json").json()
    assert "{secret}" in shown["body"] and issued["code"] not in shown["body"]
    assert shown["tin"] == "*****7531"


def test_list_filters_by_kind_and_status(cli, backend):
    issue(cli)
    from portalctl.domain.outbox import queue_email

    with backend.engine.begin() as connection:
        queue_email(
            connection,
            kind="accounts_consolidated",
            recipient="b@example.org",
            subject="s",
            body="b",
        )
    listed = cli("mail", "list", "--kind", "credentialing", "--format", "json").json()
    assert [row["kind"] for row in listed] == ["credentialing"]
    assert cli("mail", "list", "--kind", "nonsense").exit_code == 5
    assert cli("mail", "list", "--status", "cancelled", "--format", "json").json() == []


LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (INFO|WARNING|ERROR) mail send: ")


def test_without_a_terminal_a_run_logs_one_summary_line_and_one_line_per_reason(cli, backend):
    issued = [issue(cli, email=f"u{n}@example.org", name=f"U {n}") for n in range(4)]
    script = ["451 4.3.0 greylisted", "451 4.3.0 greylisted", "554 5.7.1 rejected"]
    with SmtpServer(ScriptedHandler(script)) as server:
        result = cli("mail", "send", "--format", "json", env={"PORTALCTL_SMTP_URL": server.url})
    assert result.exit_code == 0
    lines = result.stderr.splitlines()
    assert all(LOG_LINE.match(line) for line in lines), lines
    assert len(lines) == 3
    assert "failed=2 reason=451 4.3.0 greylisted emails=1, 2" in lines[0]
    assert "dead=1 reason=554 5.7.1 rejected emails=3" in lines[1]
    assert lines[2].endswith("INFO mail send: sent=1 failed=2 dead=1 cancelled=0 remaining=0")
    for code in (i["code"] for i in issued):
        assert code not in result.stderr


def test_kill_9_after_the_server_accepted_resends_with_the_same_message_id(backend, tmp_path):
    issue_many(backend, 1)
    signal_file = tmp_path / "accepted"
    with SmtpServer(ScriptedHandler(["hang"], signal_file=signal_file)) as server:
        lease = {"PORTALCTL_MAIL_LEASE_SECONDS": "2"}
        process = start_send(backend, server.url, tmp_path, **lease)
        deadline = time.monotonic() + 20
        while not signal_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert signal_file.exists(), process.stderr.read() if process.poll() is not None else ""
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        assert backend.scalar("SELECT status FROM outbox") == "queued"
        time.sleep(2.1)  # the killed run's lease expires
        second = start_send(backend, server.url, tmp_path, **lease)
        out, err = second.communicate(timeout=30)
        assert second.returncode == 0, err
    first, again = server.handler.received
    assert first["Message-ID"] == again["Message-ID"]
    assert backend.scalar("SELECT status FROM outbox") == "sent"


def test_kill_9_mid_run_loses_nothing_and_sends_nothing_twice(backend, tmp_path):
    issue_many(backend, 30)
    with SmtpServer(ScriptedHandler(delay=0.05)) as server:
        lease = {"PORTALCTL_MAIL_LEASE_SECONDS": "2"}
        process = start_send(backend, server.url, tmp_path, **lease)
        deadline = time.monotonic() + 30
        while len(server.handler.received) < 10 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        killed_at = len(server.handler.received)
        assert 10 <= killed_at < 30
        time.sleep(2.1)
        second = start_send(backend, server.url, tmp_path, **lease)
        out, err = second.communicate(timeout=60)
        assert second.returncode == 0, err
    ids = server.handler.message_ids()
    queued = {row["message_id"] for row in backend.rows("SELECT message_id FROM outbox")}
    assert set(ids) == queued  # nothing lost
    # At most the one message the server had accepted when the run died goes twice.
    assert len(ids) - len(set(ids)) <= 1
    assert statuses(backend) == {"sent": 30}


def test_two_concurrent_runs_send_each_email_once(backend, tmp_path):
    issue_many(backend, 300)
    with SmtpServer(ScriptedHandler()) as server:
        runs = [start_send(backend, server.url, tmp_path) for _ in range(2)]
        outputs = [run.communicate(timeout=120) for run in runs]
    assert all(run.returncode == 0 for run in runs), outputs
    assert sum(json.loads(out)["sent"] for out, _ in outputs) == 300
    ids = server.handler.message_ids()
    assert len(ids) == 300 and len(set(ids)) == 300
    assert statuses(backend) == {"sent": 300}


def test_dry_run_counts_due_emails_and_sends_nothing(cli, backend):
    issue(cli)
    issue(cli, email="ann@example.org", name="Ann")
    result = cli("mail", "send", "--dry-run", "--format", "json")
    assert result.exit_code == 0 and result.json() == {"due": 2, "dry_run": True}
    assert statuses(backend) == {"queued": 2}
    assert not Path(backend.env["PORTALCTL_MAIL_DIR"]).exists()


@pytest.mark.parametrize("tls", ["smtps", "starttls"])
def test_tls_delivers_only_to_a_server_whose_certificate_is_trusted(
    cli, backend, tmp_path, monkeypatch, tls
):
    certificate = self_signed_certificate(tmp_path)
    issue(cli)
    with SmtpServer(ScriptedHandler(), tls=tls, certificate=certificate) as server:
        untrusted = cli("mail", "send", env={"PORTALCTL_SMTP_URL": server.url})
        assert untrusted.exit_code == 8
        assert "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr
        assert server.handler.received == []
        row = backend.rows("SELECT status, attempts, claimed_by FROM outbox")[0]
        assert row == {"status": "queued", "attempts": 0, "claimed_by": None}
        monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))  # the operator's private CA
        assert send(cli, server.url)["sent"] == 1
    assert len(server.handler.received) == 1
    assert backend.scalar("SELECT status FROM outbox") == "sent"


def test_starttls_asked_for_but_not_offered_sends_nothing(cli, backend):
    issue(cli)
    with SmtpServer(ScriptedHandler()) as server:
        result = cli("mail", "send", env={"PORTALCTL_SMTP_URL": server.url + "?starttls=true"})
    assert result.exit_code == 8 and "STARTTLS" in result.stderr
    assert server.handler.received == []
    assert backend.rows("SELECT status, attempts FROM outbox") == [
        {"status": "queued", "attempts": 0}
    ]


def test_the_installed_program_runs_a_cron_line(backend, tmp_path):
    issue_many(backend, 2)
    with SmtpServer(ScriptedHandler()) as server:
        result = subprocess.run(
            [str(PORTALCTL), "mail", "send", "--limit", "5000"],
            env=subprocess_env(backend, server.url),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 0, result.stderr
    [line] = result.stderr.splitlines()
    assert LOG_LINE.match(line) and line.endswith("sent=2 failed=0 dead=0 cancelled=0 remaining=0")
