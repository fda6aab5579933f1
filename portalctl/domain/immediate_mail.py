"""Delivering an email at once, while the caller waits on the phone (an email code, a password
reset code, a username reminder), the way ``mail send`` delivers: fenced by a claim, charged
only for its own failures.

The email is queued like every other, in the transaction that causes it, and claimed for this
delivery in that same transaction (``claim_for_immediate_delivery``), so no ``mail send`` run
can take it between the commit and ``deliver_now``. Not delivered, it stays queued (or
``failed``, retried with backoff) for the next ``mail send``, and the command says so.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Connection, Engine

from portalctl.core.config import Settings
from portalctl.core.errors import MailServerUnavailable
from portalctl.domain.mail import claims
from portalctl.domain.mail.delivery import deliver_claimed


def claim_for_immediate_delivery(
    connection: Connection, *, email_id: int, settings: Settings, now: datetime
) -> claims.Claim:
    """Lease the email just queued to the command that queued it."""
    lease = timedelta(seconds=settings.integer("PORTALCTL_MAIL_LEASE_SECONDS"))
    return claims.claim_ids(
        connection, [email_id], run_id=f"immediate:{claims.new_run_id()}", lease=lease, now=now
    )


def deliver_now(
    engine: Engine,
    *,
    email_id: int,
    claim: claims.Claim,
    operator: str,
    settings: Settings,
    record: Any = None,
    flow_id: str | None = None,
) -> None:
    """Deliver the claimed email over ``PORTALCTL_SMTP_URL`` or as an ``.eml`` file. Not
    delivered: ``MailServerUnavailable`` (exit 8) saying the email stays queued for ``mail
    send``, carrying ``record`` (what the command prints all the same: the code stands)."""
    try:
        summary = deliver_claimed(
            engine, claim, operator=operator, settings=settings, flow_id=flow_id
        )
    except MailServerUnavailable as error:
        raise MailServerUnavailable(
            f"email {email_id} could not be delivered now ({error.message}); it stays queued "
            "for `mail send`",
            record=record,
        ) from None
    if summary.sent or summary.cancelled or not claim.rows:
        return
    reasons = "; ".join(reason for (_status, reason) in summary.reasons) or "not delivered"
    raise MailServerUnavailable(
        f"email {email_id} could not be delivered now ({reasons}); "
        + ("it stays queued for `mail send`" if summary.failed else "it will not be retried"),
        record=record,
    )
