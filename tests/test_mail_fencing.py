"""Each email is handed to the server at most once per claim, however slow the server, short the
lease or many the overlapping runs: claims are fenced (run + token), renewed while a run works,
checked before every send, and marked only by compare-and-set. Both backends."""

import json
import threading
import time
from datetime import timedelta

import pytest
from mail_support import issue_many, start_send, statuses
from smtp_server import ScriptedHandler, SmtpServer

from portalctl.core.clock import utc_now
from portalctl.core.config import Settings
from portalctl.domain.mail import claims
from portalctl.domain.mail.delivery import send_due_emails
from portalctl.domain.outbox_admin import cancel_email

LEASE = timedelta(seconds=10)


@pytest.mark.parametrize(("runs", "chunk"), [(2, 100), (3, 100), (3, 4)])
def test_a_server_slower_than_the_lease_with_overlapping_runs_delivers_each_once(
    backend, tmp_path, runs, chunk
):
    issue_many(backend, 30)
    settings = {"PORTALCTL_MAIL_LEASE_SECONDS": "2", "PORTALCTL_MAIL_CHUNK_SIZE": str(chunk)}
    with SmtpServer(ScriptedHandler(delay=0.1)) as server:
        started = [start_send(backend, server.url, tmp_path, **settings)]
        while len(server.handler.received) < 3:
            time.sleep(0.01)
        time.sleep(2.2)  # the first run's original lease has run out
        started += [start_send(backend, server.url, tmp_path, **settings) for _ in range(runs - 1)]
        outputs = [process.communicate(timeout=120) for process in started]
    assert [process.returncode for process in started] == [0] * runs, outputs
    ids = server.handler.message_ids()
    assert len(ids) == 30 and len(set(ids)) == 30
    assert sum(json.loads(out)["sent"] for out, _ in outputs) == 30
    assert statuses(backend) == {"sent": 30}


def _run_in_background(backend, url, **extra):
    settings = Settings({**backend.env, "PORTALCTL_SMTP_URL": url, **extra})
    outcome = {}

    def work():
        try:
            outcome["summary"] = send_due_emails(backend.engine, operator="cron", settings=settings)
        except Exception as error:  # reported by the test
            outcome["error"] = error

    thread = threading.Thread(target=work)
    thread.start()
    return thread, outcome


def test_a_run_whose_rows_were_taken_over_sends_none_of_them(backend):
    issue_many(backend, 10)
    with SmtpServer(ScriptedHandler(delay=0.2)) as server:
        thread, outcome = _run_in_background(backend, server.url)
        while len(server.handler.received) < 2:
            time.sleep(0.01)
        # Another run whose clock is past this run's lease takes every pending row.
        with backend.begin() as connection:
            thief = claims.claim_due(
                connection, run_id="thief", limit=100, lease=LEASE, now=utc_now() + timedelta(1)
            )
        thread.join(30)
        received_after = len(server.handler.received)
    assert "error" not in outcome, outcome
    assert len(thief.rows) >= 7
    assert received_after <= 10 - len(thief.rows) + 1  # at most the one already on the wire
    held = backend.rows("SELECT claimed_by, claim_token FROM outbox WHERE status <> 'sent'")
    assert len(held) == len(thief.rows)
    assert all(row == {"claimed_by": "thief", "claim_token": thief.token} for row in held)


def test_a_claim_takes_at_most_its_limit_and_never_rows_another_run_holds(backend):
    issue_many(backend, 5)
    now = utc_now()
    taken = []
    for run in "abcd":
        with backend.begin() as connection:
            claim = claims.claim_due(connection, run_id=run, limit=2, lease=LEASE, now=now)
        taken.append([row.id for row in claim.rows])
    assert [len(ids) for ids in taken] == [2, 2, 1, 0]
    assert sorted(sum(taken, [])) == [1, 2, 3, 4, 5]


def test_a_run_that_lost_its_lease_can_neither_mark_nor_renew_nor_release_the_row(backend):
    issue_many(backend, 1)
    now = utc_now()
    with backend.begin() as connection:
        first = claims.claim_due(connection, run_id="first", limit=1, lease=LEASE, now=now)
    later = now + LEASE + timedelta(seconds=1)
    with backend.begin() as connection:
        second = claims.claim_due(connection, run_id="second", limit=1, lease=LEASE, now=later)
    assert [row.id for row in second.rows] == [row.id for row in first.rows]
    with backend.begin() as connection:
        assert claims.holding_state(connection, first, 1) == "lost"
        assert claims.mark_sent(connection, first, 1, at=later) is False
        claims.renew_lease(connection, first, lease=LEASE, now=later)
        assert first.held == set()
        assert claims.release_run(connection, run_id="first") == 0
        assert claims.holding_state(connection, second, 1) == "held"
    [row] = backend.rows("SELECT status, claimed_by, claim_token FROM outbox")
    assert row == {"status": "queued", "claimed_by": "second", "claim_token": second.token}


def test_a_renewed_lease_keeps_other_runs_off(backend):
    issue_many(backend, 1)
    now = utc_now()
    with backend.begin() as connection:
        claim = claims.claim_due(connection, run_id="first", limit=1, lease=LEASE, now=now)
        claims.renew_lease(connection, claim, lease=LEASE, now=now + timedelta(seconds=8))
    assert claim.held == {1}
    with backend.begin() as connection:
        other = claims.claim_due(
            connection, run_id="other", limit=1, lease=LEASE, now=now + timedelta(seconds=12)
        )
    assert other.rows == []


def test_the_fenced_mark_never_resurrects_a_cancelled_email(backend):
    issue_many(backend, 1)
    now = utc_now()
    with backend.begin() as connection:
        claim = claims.claim_due(connection, run_id="run", limit=1, lease=LEASE, now=now)
        cancel_email(connection, operator="rep", email_id=1, reason="wrong person", now=now)
        assert claims.holding_state(connection, claim, 1) == "cancelled"
        assert claims.mark_sent(connection, claim, 1, at=now) is False
        assert claims.note_delivered_after_cancel(connection, 1, now) is True
    [row] = backend.rows("SELECT status, sent_at, secret_ciphertext, claimed_by FROM outbox")
    assert row["status"] == "cancelled" and row["sent_at"] is not None
    assert row["secret_ciphertext"] is None and row["claimed_by"] is None


def test_a_single_run_renews_its_lease_while_a_slow_server_works(backend, tmp_path):
    issue_many(backend, 25)
    with SmtpServer(ScriptedHandler(delay=0.1)) as server:
        process = start_send(backend, server.url, tmp_path, PORTALCTL_MAIL_LEASE_SECONDS="1")
        out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert json.loads(out)["sent"] == 25
    assert len(set(server.handler.message_ids())) == 25


def test_the_deadline_stops_a_run_between_messages_with_exit_0(cli, backend):
    issue_many(backend, 40)
    with SmtpServer(ScriptedHandler(delay=0.1)) as server:
        started = time.monotonic()
        result = cli(
            "mail",
            "send",
            "--max-seconds",
            "2",
            "--format",
            "json",
            env={"PORTALCTL_SMTP_URL": server.url},
        )
        took = time.monotonic() - started
    assert result.exit_code == 0, result.stderr
    summary = result.json()
    assert 3 <= summary["sent"] < 40 and summary["remaining"] == 40 - summary["sent"]
    assert took < 3.5, took
    assert "stopped at the deadline (2 s)" in result.stderr
    assert statuses(backend) == {"sent": summary["sent"], "queued": 40 - summary["sent"]}
    assert backend.scalar("SELECT count(*) FROM outbox WHERE claimed_by IS NOT NULL") == 0
