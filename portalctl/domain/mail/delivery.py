"""``mail send``: deliver due emails, each at most once per claim, within a deadline.

A run claims due rows in chunks (``claims``), renews their lease while it works, checks before
each send that it still holds the row (and that it was not cancelled), and records each outcome
by compare-and-set. So however slow the server, short the lease or many the overlapping runs, no
two runs hand the same message to the server, short of a crash between the server's acceptance
and the mark; then a later run resends it with the same Message-ID.

One message's problem (an address or secret that cannot be used, a refusal of its RCPT or DATA)
is that message's outcome; a problem of the server stops the run, releases its claims, charges
nobody, and raises ``MailServerUnavailable`` (exit 8).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection, Engine

from portalctl.core.clock import utc_now
from portalctl.core.config import Settings
from portalctl.core.database import DEFER_WRITE_LOCK
from portalctl.core.errors import MailServerUnavailable
from portalctl.core.logs import get_logger
from portalctl.domain.audit import record_audit
from portalctl.domain.mail import claims
from portalctl.domain.mail.compose import Composer, Poison
from portalctl.domain.mail.run_settings import (
    DeliveryOptions,
    SendSummary,
    open_sender,
    retry_delay,
)
from portalctl.domain.mail.transport import Sender

# (emails dealt with so far, how many the run will try); the CLI's progress bar
ProgressCallback = Callable[[int, int | None], None]

MIN_SEND_WINDOW = 1.0  # seconds: a run does not start a message with less time than this left
FRESH_CHECK_SECONDS = 0.05  # how old the database's word on an email may be when it is sent
CHECK_AHEAD = 50  # emails one check answers for
log = get_logger("mail send")


def count_due_emails(engine: Engine, *, now: datetime | None = None) -> int:
    """What a run would try now (``mail send --dry-run``); nothing is claimed."""
    with engine.connect() as connection:
        connection.execution_options(**{DEFER_WRITE_LOCK: True})
        return claims.count_claimable(connection, now=now or utc_now())


def send_due_emails(
    engine: Engine,
    *,
    operator: str,
    settings: Settings,
    limit: int = 1000,
    max_seconds: float | None = None,
    now_fn: Callable[[], datetime] = utc_now,
    progress: ProgressCallback | None = None,
) -> SendSummary:
    """Deliver up to ``limit`` due emails within ``max_seconds`` (default
    ``PORTALCTL_MAIL_MAX_SECONDS``); every setting is checked before anything is claimed.
    ``progress`` is told after each email (sent, failed, cancelled meanwhile or skipped)."""
    options = DeliveryOptions.from_settings(settings, max_seconds=max_seconds)
    composer = Composer.from_settings(settings)
    sender = open_sender(settings, options)
    run = _Run(engine, sender, composer, options, now_fn)
    if progress is not None:
        run.follow(progress, limit)
    try:
        run.deliver(limit)
    except MailServerUnavailable as error:
        run.finish(operator, stopped_by=error.message)
        raise MailServerUnavailable(
            f"{error.message}; the run stopped, no email was marked dead or charged an attempt "
            f"({run.summary.count_line()})"
        ) from None
    except BaseException:
        run.abandon()
        raise
    run.finish(operator)
    return run.summary


def deliver_claimed(
    engine: Engine,
    claim: claims.Claim,
    *,
    operator: str,
    settings: Settings,
    now_fn: Callable[[], datetime] = utc_now,
    flow_id: str | None = None,
) -> SendSummary:
    """Deliver the emails of a claim already made (``claims.claim_ids``, in the transaction
    that queued them), the way a ``mail send`` run does: fenced, charged only for their own
    failures, ``MailServerUnavailable`` when the server fails. ``flow_id``: the guided flow
    whose step queued them (for the run's audit record)."""
    options = DeliveryOptions.from_settings(settings, max_seconds=None)
    run = _Run(
        engine,
        open_sender(settings, options),
        Composer.from_settings(settings),
        options,
        now_fn,
        run_id=claim.run_id,
    )
    run.logging = False  # the command that queued the email says what became of it
    try:
        run.deliver_claim(claim)
    except MailServerUnavailable as error:
        run.finish(operator, stopped_by=error.message, flow_id=flow_id)
        raise
    except BaseException:
        run.abandon()
        raise
    run.finish(operator, flow_id=flow_id)
    return run.summary


@dataclass
class _Outcome:
    """What became of one message, to be recorded."""

    claim: claims.Claim
    row: Any
    status: str
    reason: str | None
    attempts: int
    at: datetime


class _Run:
    """One ``mail send``: its claims, its deadline, its counts, and its connection."""

    def __init__(
        self,
        engine: Engine,
        sender: Sender,
        composer: Composer,
        options: DeliveryOptions,
        now_fn: Callable[[], datetime],
        run_id: str | None = None,
    ):
        self.engine, self.sender, self.composer = engine, sender, composer
        self.options, self.now = options, now_fn
        self.run_id = run_id or claims.new_run_id()
        self.logging = True
        self.deadline = time.monotonic() + options.max_seconds
        self.summary = SendSummary()
        self.taken = 0
        self.order: list[int] = []
        self.known: dict[int, str] = {}
        self.known_at = 0.0
        self.progress: ProgressCallback | None = None
        self.expected: int | None = None
        self.dealt_with = 0
        self.connection = engine.connect()
        if engine.dialect.name == "postgresql":
            # Each statement commits by itself (a round trip each instead of four a message);
            # every statement of a run is fenced on its own, and a claim's UPDATE re-checks
            # that the rows are still due. Commits do not wait for the WAL flush: a crash may
            # lose the last marks, never record a send that did not happen, and those emails
            # are resent with their Message-ID (at-least-once holds).
            self.connection.execution_options(isolation_level="AUTOCOMMIT")
            self.connection.exec_driver_sql("SET synchronous_commit = off")
            self.connection.commit()

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        with self.connection.begin():
            yield self.connection

    def _time_left(self) -> float:
        return self.deadline - time.monotonic()

    def follow(self, progress: ProgressCallback, limit: int) -> None:
        """Report each email to ``progress``, against what is due now (at most ``limit``)."""
        with self._transaction() as connection:
            self.expected = min(limit, claims.count_claimable(connection, now=self.now()))
        self.progress = progress
        progress(0, self.expected)

    def deliver(self, limit: int) -> None:
        while self.taken < limit:
            if self._time_left() < MIN_SEND_WINDOW:
                self.summary.stopped = "deadline"
                return
            size = min(self.options.chunk_size, limit - self.taken)
            with self._transaction() as connection:
                claim = claims.claim_due(
                    connection,
                    run_id=self.run_id,
                    limit=size,
                    lease=self.options.lease,
                    now=self.now(),
                )
            if not claim.rows:
                return
            if not self.deliver_claim(claim):
                return

    def deliver_claim(self, claim: claims.Claim) -> bool:
        """Deliver the claim's rows in order; False when the deadline stopped it."""
        self.taken += len(claim.rows)
        self.order, self.known = [row.id for row in claim.rows], {}
        for row in claim.rows:
            if self._time_left() < MIN_SEND_WINDOW:
                self.summary.stopped = "deadline"
                return False
            self._keep_lease(claim)
            if row.id in claim.held:
                self._deliver_one(claim, row)
            if self.progress is not None:
                self.dealt_with += 1
                self.progress(self.dealt_with, max(self.expected or 0, self.dealt_with))
        return True

    def _lease_left(self, claim: claims.Claim) -> float:
        return (claim.lease_until - self.now()).total_seconds()

    def _keep_lease(self, claim: claims.Claim) -> None:
        if self._lease_left(claim) < self.options.lease.total_seconds() / 2:
            with self._transaction() as connection:
                claims.renew_lease(connection, claim, lease=self.options.lease, now=self.now())

    def _holding_state(self, claim: claims.Claim, row: Any) -> str:
        """Whether the run still holds ``row`` and it is still to go, as the database said at
        most ``FRESH_CHECK_SECONDS`` ago: one query answers for the next emails of the chunk.
        (That the lease has not run out is checked before every email, on the clock: see
        ``_keep_lease`` and the send window.)"""
        if row.id not in self.known or time.monotonic() - self.known_at > FRESH_CHECK_SECONDS:
            upcoming = [i for i in self.order[self.order.index(row.id) :] if i in claim.held]
            with self._transaction() as connection:
                self.known = claims.holding_states(connection, claim, upcoming[:CHECK_AHEAD])
            self.known_at = time.monotonic()
        return self.known.pop(row.id)

    def _deliver_one(self, claim: claims.Claim, row: Any) -> None:
        state = self._holding_state(claim, row)
        if state != "held":
            claim.held.discard(row.id)
            if state == "cancelled":
                self.summary.cancelled += 1
            return
        try:
            message = self.composer.compose(row)
        except Poison as poison:
            self._record(_Outcome(claim, row, "dead", poison.reason, row.attempts, self.now()))
            return
        window = min(self._time_left(), self._lease_left(claim) - self.options.lease_margin)
        rejection = self.sender.send(message, until=time.monotonic() + window)
        attempts = row.attempts + 1
        if rejection is None:
            self._record(_Outcome(claim, row, "sent", None, attempts, self.now()))
            return
        dead = rejection.permanent or attempts >= self.options.max_attempts
        status = "dead" if dead else "failed"
        self._record(_Outcome(claim, row, status, rejection.reason, attempts, self.now()))

    def _record(self, outcome: _Outcome) -> None:
        """Record an outcome at once, in its own transaction: a crash after the server took a
        message then resends at most that one."""
        with self._transaction() as connection:
            if outcome.status == "sent":
                self._record_sent(connection, outcome)
            else:
                self._record_failure(connection, outcome)

    def _record_sent(self, connection: Connection, outcome: _Outcome) -> None:
        self.summary.sent += 1
        email_id = outcome.row.id
        if claims.mark_sent(connection, outcome.claim, email_id, at=outcome.at):
            return
        if claims.note_delivered_after_cancel(connection, email_id, outcome.at):
            log.warning(f"email {email_id} was delivered, but cancelled while the server took it")
        else:
            log.warning(f"email {email_id} was delivered, but this run's lease on it had run out")

    def _record_failure(self, connection: Connection, outcome: _Outcome) -> None:
        recorded = claims.mark_outcome(
            connection,
            outcome.claim,
            outcome.row.id,
            outcome=outcome.status,
            attempts=outcome.attempts,
            reason=outcome.reason or "",
            at=outcome.at,
            next_attempt_at=outcome.at
            if outcome.status == "dead"
            else outcome.at + retry_delay(outcome.attempts),
        )
        if not recorded:
            return  # cancelled or taken over meanwhile: not this run's outcome to record
        if outcome.status == "dead":
            self.summary.dead += 1
        else:
            self.summary.failed += 1
        key = (outcome.status, outcome.reason or "")
        self.summary.reasons.setdefault(key, []).append(outcome.row.id)

    def finish(
        self, operator: str, *, stopped_by: str | None = None, flow_id: str | None = None
    ) -> None:
        """Release what is still held, count what remains, audit and log the run."""
        try:
            with self._transaction() as connection:
                claims.release_run(connection, run_id=self.run_id)
                self.summary.remaining = claims.count_remaining(connection, now=self.now())
                if self.taken or stopped_by:
                    details: dict[str, Any] = self.summary.counts()
                    if stopped_by:
                        details["stopped"] = stopped_by
                    record_audit(
                        connection,
                        operator=operator,
                        action="mail.send",
                        target="outbox",
                        details=details,
                        now=self.now(),
                        flow_id=flow_id,
                    )
        finally:
            self._close()
        if not self.logging:
            return
        for line in self.summary.reason_lines():
            log.warning(line)
        if stopped_by:
            log.error(f"{self.summary.count_line()} stopped: {stopped_by}")
        elif self.summary.stopped == "deadline":
            log.warning(
                f"{self.summary.count_line()} stopped at the deadline "
                f"({self.options.max_seconds:g} s)"
            )
        else:
            log.info(self.summary.count_line())

    def abandon(self) -> None:
        """After an unexpected error or an interrupt: let the claims go if the database still
        answers (else their lease expires), then close."""
        try:
            if self.connection.in_transaction():
                self.connection.rollback()
            with self._transaction() as connection:
                claims.release_run(connection, run_id=self.run_id)
        except Exception:  # the database itself may be what failed
            pass
        finally:
            self._close()

    def _close(self) -> None:
        self.sender.close()
        try:
            if self.engine.dialect.name == "postgresql" and not self.connection.invalidated:
                if self.connection.in_transaction():
                    self.connection.rollback()
                self.connection.exec_driver_sql("RESET synchronous_commit")
        finally:
            self.connection.close()
