"""Reading the outbox and putting an email back in the queue (``mail list/show/retry``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from portalctl.core.clock import utc_now
from portalctl.core.errors import InvalidInput, NotFound, Refused
from portalctl.core.schema import outbox
from portalctl.core.tin import Tin
from portalctl.domain.audit import record_audit

EMAIL_STATUSES = ("queued", "sent", "failed", "dead")
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
        "sent_at": row.sent_at,
        "last_error": row.last_error,
        "tin": Tin(row.tin) if row.tin else None,
        "code_id": row.code_id,
        "message_id": row.message_id,
    }
    if with_body:
        record["body"] = row.body  # the code is only ever a {secret} placeholder here
    return record


def list_emails(
    connection: Connection,
    *,
    status: str | None = None,
    recipient: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    if status is not None and status not in EMAIL_STATUSES:
        raise InvalidInput(f"unknown status {status!r} (one of {', '.join(EMAIL_STATUSES)})")
    query = sa.select(outbox).order_by(_O.id.desc()).limit(limit)
    if status:
        query = query.where(_O.status == status)
    if recipient:
        query = query.where(sa.func.lower(_O.recipient) == recipient.strip().lower())
    return [_record(row) for row in connection.execute(query)]


def show_email(connection: Connection, *, email_id: int) -> dict[str, Any]:
    row = connection.execute(sa.select(outbox).where(_O.id == email_id)).first()
    if row is None:
        raise NotFound(f"no email {email_id}")
    return _record(row, with_body=True)


def retry_email(
    connection: Connection, *, operator: str, email_id: int, now: datetime | None = None
) -> dict[str, Any]:
    """Make a failed or dead email due now again (attempts restart from zero)."""
    now = now or utc_now()
    show_email(connection, email_id=email_id)
    done = connection.execute(
        outbox.update()
        .where(_O.id == email_id, _O.status.in_(("failed", "dead")))
        .values(
            status="queued", attempts=0, next_attempt_at=now, claimed_by=None, claimed_until=None
        )
    ).rowcount
    if done != 1:
        raise Refused(f"email {email_id} is not failed or dead")
    record_audit(
        connection, operator=operator, action="mail.retry", target=f"email:{email_id}", now=now
    )
    return show_email(connection, email_id=email_id)
