"""What an operator does with the outbox by hand: list and show emails, put failed or dead ones
back in the queue (one, or in bulk), and cancel one that must no longer go. Every change is
audited."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from portalctl.core.clock import utc_now
from portalctl.core.errors import InvalidInput, NotFound, Refused, UsageError
from portalctl.core.fields import clean_reason, refuse_impossible_id
from portalctl.core.schema import outbox
from portalctl.core.tin import Tin
from portalctl.domain.audit import record_audit
from portalctl.domain.outbox import (
    CANCELLABLE_STATUSES,
    EMAIL_KINDS,
    EMAIL_STATUSES,
    cancellation_values,
)

RETRYABLE_STATUSES = ("failed", "dead")
_O = outbox.c


def _record(row: Any, *, with_body: bool = False) -> dict[str, Any]:
    record = {
        "id": row.id,
        "kind": row.kind,
        "status": row.status,
        "recipient": row.recipient,
        "subject": row.subject,
        "attempts": row.attempts,
        "next_attempt_at": row.next_attempt_at,
        "last_attempt_at": row.last_attempt_at,
        "sent_at": row.sent_at,
        "last_error": row.last_error,
        "cancelled_at": row.cancelled_at,
        "cancel_reason": row.cancel_reason,
        "tin": Tin(row.tin) if row.tin else None,
        "code_id": row.code_id,
        "message_id": row.message_id,
    }
    if with_body:
        record["body"] = row.body  # the code is only ever a {secret} placeholder here
    return record


def _checked(value: str | None, allowed: tuple[str, ...], what: str) -> str | None:
    if value is not None and value not in allowed:
        raise InvalidInput(f"unknown {what} {value!r} (one of {', '.join(allowed)})")
    return value


def _as_utc(moment: datetime | None) -> datetime | None:
    """Times typed without a zone are UTC (SPEC 1: times are UTC)."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def list_emails(
    connection: Connection,
    *,
    status: str | None = None,
    kind: str | None = None,
    recipient: str | None = None,
    limit: int = 100,
) -> Iterator[dict[str, Any]]:
    """Emails newest first, filtered by status, kind and recipient; read as consumed."""
    query = sa.select(outbox).order_by(_O.id.desc()).limit(limit)
    if _checked(status, EMAIL_STATUSES, "status"):
        query = query.where(_O.status == status)
    if _checked(kind, EMAIL_KINDS, "kind"):
        query = query.where(_O.kind == kind)
    if recipient:
        query = query.where(sa.func.lower(_O.recipient) == recipient.strip().lower())
    rows = connection.execute(query, execution_options={"yield_per": 1000})
    return (_record(row) for row in rows)


def show_email(connection: Connection, *, email_id: int) -> dict[str, Any]:
    refuse_impossible_id(email_id, "email")
    row = connection.execute(sa.select(outbox).where(_O.id == email_id)).first()
    if row is None:
        raise NotFound(f"no email {email_id}")
    return _record(row, with_body=True)


def _requeue_values(now: datetime) -> dict[str, Any]:
    return {
        "status": "queued",
        "attempts": 0,
        "next_attempt_at": now,
        "claimed_by": None,
        "claimed_until": None,
        "claim_token": None,
    }


def retry_email(
    connection: Connection, *, operator: str, email_id: int, now: datetime | None = None
) -> dict[str, Any]:
    """Make a failed or dead email due now again (attempts restart from zero)."""
    now = now or utc_now()
    record = show_email(connection, email_id=email_id)
    done = connection.execute(
        outbox.update()
        .where(_O.id == email_id, _O.status.in_(RETRYABLE_STATUSES))
        .values(**_requeue_values(now))
    ).rowcount
    if done != 1:
        raise Refused(f"email {email_id} is {record['status']}, not failed or dead")
    record_audit(
        connection, operator=operator, action="mail.retry", target=f"email:{email_id}", now=now
    )
    return show_email(connection, email_id=email_id)


def retry_emails(
    connection: Connection,
    *,
    operator: str,
    email_id: int | None = None,
    status: str | None = None,
    kind: str | None = None,
    since: datetime | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """``mail retry``: one email by id (its record), or every ``status`` (failed or dead)
    email, narrowed by ``kind`` and ``since`` (last tried at or after), due now again in one
    statement with one audit record for the run (the count)."""
    now = now or utc_now()
    if email_id is not None:
        if status or kind or since:
            raise UsageError("give an email id or --status, not both")
        return retry_email(connection, operator=operator, email_id=email_id, now=now)
    if status is None:
        raise UsageError("give an email id, or --status failed|dead for many")
    if status not in RETRYABLE_STATUSES:
        raise UsageError(f"--status must be failed or dead, not {status!r}")
    conditions = [_O.status == status]
    if _checked(kind, EMAIL_KINDS, "kind"):
        conditions.append(_O.kind == kind)
    since = _as_utc(since)
    if since is not None:
        conditions.append(_O.last_attempt_at >= since)
    retried = connection.execute(
        outbox.update().where(*conditions).values(**_requeue_values(now))
    ).rowcount
    filters = {"status": status, "kind": kind, "since": since.isoformat() if since else None}
    record_audit(
        connection,
        operator=operator,
        action="mail.retry",
        target="outbox",
        details={**filters, "retried": retried},
        now=now,
    )
    return {"retried": retried, **filters}


def cancel_email(
    connection: Connection,
    *,
    operator: str,
    email_id: int,
    reason: str | None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Cancel one email that has not been sent: it will never go, and its secret is erased."""
    now = now or utc_now()
    reason = clean_reason(reason)
    record = show_email(connection, email_id=email_id)
    done = connection.execute(
        outbox.update()
        .where(_O.id == email_id, _O.status.in_(CANCELLABLE_STATUSES))
        .values(**cancellation_values(reason=reason, now=now))
    ).rowcount
    if done != 1:
        raise Refused(f"email {email_id} is {record['status']}, it cannot be cancelled")
    record_audit(
        connection,
        operator=operator,
        action="mail.cancel",
        target=f"email:{email_id}",
        tin=record["tin"],
        details={"reason": reason},
        now=now,
    )
    return show_email(connection, email_id=email_id)
