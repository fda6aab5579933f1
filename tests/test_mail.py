"""`mail send` against a real SMTP server on loopback, on both backends."""

import json
import os
import signal
import subprocess
import time
from email.policy import default as default_policy
from pathlib import Path

import pytest
import sqlalchemy as sa
from smtp_server import ScriptedHandler, SmtpServer, self_signed_certificate

from portalctl.core.config import Settings
from portalctl.core.tin import Tin
from portalctl.domain.codes import issue_registration_code

TIN = "061137531"
ROOT = Path(__file__).resolve().parent.parent
PORTALCTL = ROOT / ".venv" / "bin" / "portalctl"


def issue(cli, email="james.smith@example.org", name="James Smith"):
    result = cli(
        "codes",
        "issue",
        "--tin",
        TIN,
        "--admin-name",
        name,
        "--admin-email",
        email,
        "--provider-name",
        "Ruth Goneh",
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.stderr
    return result.json()


def send(cli, url, *args):
    result = cli("mail", "send", "--format", "json", *args, env={"PORTALCTL_SMTP_URL": url})
    assert result.exit_code == 0, result.stderr
    return result.json()


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
        assert send(cli, server.url) == {"claimed": 1, "sent": 1, "failed": 0, "dead": 0}
    [message] = server.handler.received
    assert server.handler.envelopes[0][1] == ["james.smith@example.org"]
    assert message["To"] == "James Smith <james.smith@example.org>"
    assert message["Subject"] == "ConnectiCare provider portal registration code"
    body = body_of(message)
    assert body.startswith("Hi James Smith,")
    assert "Ruth Goneh has successfully completed our credentialing process" in body
    assert f"Registration Code: {issued['code']}." in body
    assert "860-674-5850 or 800-828-3407" in body and "877-224-8230" in body
    assert backend.scalar("SELECT status FROM outbox") == "sent"
    assert backend.scalar("SELECT secret_ciphertext FROM outbox") is None


def test_no_plain_code_in_any_table_after_issue_and_send(cli, backend):
    codes = [issue(cli)["code"], issue(cli, email="ann@example.org", name="Ann")["code"]]
    with SmtpServer(ScriptedHandler()) as server:
        send(cli, server.url)
    assert len(server.handler.received) == 2
    dump = all_text(backend)
    for code in codes:
        assert code not in dump


def test_one_connection_for_a_run(cli, backend):
    for n in range(5):
        issue(cli, email=f"admin{n}@example.org", name=f"Admin {n}")
    with SmtpServer(ScriptedHandler()) as server:
        assert send(cli, server.url)["sent"] == 5
    assert server.handler.connections == 1


def test_451_then_250_delivers_on_the_second_attempt(cli, backend):
    issue(cli)
    with SmtpServer(ScriptedHandler(["451 4.3.0 try again later"])) as server:
        assert send(cli, server.url)["failed"] == 1
        row = backend.rows("SELECT status, attempts, next_attempt_at, last_error FROM outbox")[0]
        assert row["status"] == "failed" and row["attempts"] == 1 and "451" in row["last_error"]
        assert send(cli, server.url)["claimed"] == 0  # backoff: not due yet
        with backend.engine.begin() as connection:
            connection.execute(sa.text("UPDATE outbox SET next_attempt_at = created_at"))
        assert send(cli, server.url)["sent"] == 1
    assert len(server.handler.received) == 1
    assert backend.scalar("SELECT attempts FROM outbox") == 2


def test_550_makes_the_email_dead_after_one_attempt(cli, backend):
    issue(cli)
    with SmtpServer(ScriptedHandler(["550 5.1.1 no such user"])) as server:
        assert send(cli, server.url)["dead"] == 1
    assert backend.scalar("SELECT status FROM outbox") == "dead"
    assert backend.scalar("SELECT attempts FROM outbox") == 1
    listed = cli("mail", "list", "--status", "dead", "--format", "json").json()
    assert len(listed) == 1
    assert cli("mail", "retry", str(listed[0]["id"])).exit_code == 0
    assert backend.scalar("SELECT status FROM outbox") == "queued"


def test_dropped_connection_fails_then_a_later_retry_succeeds(cli, backend):
    issue(cli)
    with SmtpServer(ScriptedHandler(["drop"])) as server:
        assert send(cli, server.url)["failed"] == 1
        assert backend.scalar("SELECT status FROM outbox") == "failed"
        with backend.engine.begin() as connection:
            connection.execute(sa.text("UPDATE outbox SET next_attempt_at = created_at"))
        assert send(cli, server.url)["sent"] == 1
    assert len(server.handler.received) == 1


def test_attempt_limit_makes_the_email_dead(cli, backend):
    issue(cli)
    with SmtpServer(ScriptedHandler(["451 later"] * 3)) as server:
        for _ in range(2):
            with backend.engine.begin() as connection:
                connection.execute(sa.text("UPDATE outbox SET next_attempt_at = created_at"))
            cli(
                "mail",
                "send",
                env={"PORTALCTL_SMTP_URL": server.url, "PORTALCTL_MAIL_MAX_ATTEMPTS": "2"},
            )
    assert backend.scalar("SELECT status FROM outbox") == "dead"


def test_without_smtp_url_writes_eml_files(cli, backend):
    issued = issue(cli)
    result = cli("mail", "send", "--format", "json")
    assert result.exit_code == 0 and result.json()["sent"] == 1
    [eml] = list(Path(backend.env["PORTALCTL_MAIL_DIR"]).glob("*.eml"))
    import email

    message = email.message_from_bytes(eml.read_bytes(), policy=default_policy)
    assert issued["code"] in message.get_content()
    assert message["Message-ID"] == backend.scalar("SELECT message_id FROM outbox")


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


def _subprocess_env(backend, url, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTALCTL_")}
    return {**env, **backend.env, "PORTALCTL_SMTP_URL": url, **extra}


def test_kill_9_after_the_server_accepted_resends_with_the_same_message_id(cli, backend, tmp_path):
    issue(cli)
    signal_file = tmp_path / "accepted"
    with SmtpServer(ScriptedHandler(["hang"], signal_file=signal_file)) as server:
        env = _subprocess_env(backend, server.url, PORTALCTL_MAIL_LEASE_SECONDS="2")
        process = subprocess.Popen(
            [str(PORTALCTL), "mail", "send"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 20
        while not signal_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert signal_file.exists(), process.stderr.read() if process.poll() is not None else ""
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        assert backend.scalar("SELECT status FROM outbox") == "queued"
        time.sleep(2.1)  # the killed run's lease expires
        result = subprocess.run(
            [str(PORTALCTL), "mail", "send", "--format", "json"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 0, result.stderr
    first, second = server.handler.received
    assert first["Message-ID"] == second["Message-ID"]
    assert backend.scalar("SELECT status FROM outbox") == "sent"


def test_two_concurrent_runs_send_each_email_once(cli, backend, tmp_path):
    if backend.name != "postgresql":
        pytest.skip("concurrent runs are checked against PostgreSQL")
    settings = Settings(backend.env)
    with backend.engine.begin() as connection:
        for n in range(600):
            issue_registration_code(
                connection,
                operator="rep",
                tin=Tin.parse(TIN),
                admin_name=f"Admin {n}",
                admin_email=f"a{n}@example.org",
                settings=settings,
            )
    with SmtpServer(ScriptedHandler()) as server:
        env = _subprocess_env(backend, server.url)
        runs = [
            subprocess.Popen(
                [str(PORTALCTL), "mail", "send", "--format", "json"],
                env=env,
                cwd=tmp_path,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        outputs = [run.communicate(timeout=60) for run in runs]
    assert all(run.returncode == 0 for run in runs), outputs
    claimed = [json.loads(out)["claimed"] for out, _ in outputs]
    assert sum(claimed) == 600
    ids = [message["Message-ID"] for message in server.handler.received]
    assert len(ids) == 600 and len(set(ids)) == 600
    assert backend.scalar("SELECT count(*) FROM outbox WHERE status = 'sent'") == 600


def test_dry_run_counts_due_emails_and_sends_nothing(cli, backend):
    issue(cli)
    issue(cli, email="ann@example.org", name="Ann")
    result = cli("mail", "send", "--dry-run", "--format", "json")
    assert result.exit_code == 0 and result.json() == {"due": 2, "dry_run": True}
    assert backend.scalar("SELECT count(*) FROM outbox WHERE status = 'queued'") == 2
    assert not Path(backend.env["PORTALCTL_MAIL_DIR"]).exists()


@pytest.mark.parametrize("tls", ["smtps", "starttls"])
def test_tls_delivers_only_to_a_server_whose_certificate_is_trusted(
    cli, backend, tmp_path, monkeypatch, tls
):
    certificate = self_signed_certificate(tmp_path)
    issue(cli)
    with SmtpServer(ScriptedHandler(), tls=tls, certificate=certificate) as server:
        untrusted = send(cli, server.url)
        assert (untrusted["sent"], untrusted["failed"]) == (0, 1)
        assert "CERTIFICATE_VERIFY_FAILED" in backend.scalar("SELECT last_error FROM outbox")
        assert server.handler.received == []
        with backend.engine.begin() as connection:
            connection.execute(sa.text("UPDATE outbox SET next_attempt_at = created_at"))
        monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))  # the operator's private CA
        assert send(cli, server.url)["sent"] == 1
    assert len(server.handler.received) == 1
    assert backend.scalar("SELECT status FROM outbox") == "sent"


def test_starttls_asked_for_but_not_offered_sends_nothing(cli, backend):
    issue(cli)
    with SmtpServer(ScriptedHandler()) as server:
        result = send(cli, server.url + "?starttls=true")
    assert (result["sent"], result["failed"]) == (0, 1)
    assert "STARTTLS" in backend.scalar("SELECT last_error FROM outbox")
    assert server.handler.received == []
