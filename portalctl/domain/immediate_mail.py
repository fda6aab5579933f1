"""Delivering one email at once, while the caller waits on the phone (an email code, a password
reset code, a username reminder), with the senders ``mail send`` uses.

The email is queued like every other, in the transaction that causes it, and claimed for this
delivery in that same transaction (``claim_for_immediate_delivery``), so no ``mail send`` run
can take it between the commit and ``deliver_now``. Delivered, it is marked ``sent`` and its
secret erased; not delivered, it stays ``queued``, unclaimed, with the reason in
``last_error``, for the next ``mail send``.
"""

from __future__ import annotations

import smtplib
import socket
import uuid
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from portalctl.core.clock import utc_now
from portalctl.core.config import Settings
from portalctl.core.database import transaction
from portalctl.core.errors import MailServerUnavailable
from portalctl.core.schema import outbox
from portalctl.core.secrets import decrypt_secret
from portalctl.core.text import without_line_breaks
from portalctl.domain.audit import record_audit
from portalctl.domain.emails import SECRET_PLACEHOLDER, build_message
from portalctl.domain.mail_delivery import _FileSender, _SmtpSender

_O = outbox.c
_PENDING = ("queued", "failed")


def claim_for_immediate_delivery(
    connection: Connection, *, email_id: int, settings: Settings, now: datetime
) -> str:
    """Lease the email just queued to the command that queued it; the claim's name."""
    claim = f"immediate:{socket.gethostname()[:40]}:{uuid.uuid4().hex[:12]}"
    lease = timedelta(seconds=settings.integer("PORTALCTL_MAIL_LEASE_SECONDS"))
    connection.execute(
        outbox.update().where(_O.id == email_id).values(claimed_by=claim, claimed_until=now + lease)
    )
    return claim


def deliver_now(
    engine: Engine,
    *,
    email_id: int,
    claim: str,
    operator: str,
    settings: Settings,
    record: Any = None,
    flow_id: str | None = None,
) -> None:
    """Deliver the email ``claim`` holds, over ``PORTALCTL_SMTP_URL`` or as an ``.eml`` file.
    When that fails: ``MailServerUnavailable`` (exit 8) saying the email stays queued, carrying
    ``record`` (what the command prints all the same: the code was issued)."""
    with engine.connect() as connection:
        row = connection.execute(
            sa.select(outbox).where(
                _O.id == email_id, _O.claimed_by == claim, _O.status.in_(_PENDING)
            )
        ).first()
    if row is None:
        return  # cancelled, or its lease ran out and `mail send` took it
    smtp_url = settings.get("PORTALCTL_SMTP_URL")
    try:
        message = _message_for(row, settings)
        sender = _SmtpSender(smtp_url) if smtp_url else _FileSender(_mail_dir(settings))
        try:
            sender.send(message)
        finally:
            sender.close()
    except (smtplib.SMTPException, OSError) as error:
        reason = without_line_breaks(str(error) or type(error).__name__)[:300]
        _release(engine, email_id=email_id, claim=claim, last_error=reason)
        raise MailServerUnavailable(
            f"email {email_id} could not be delivered now ({reason}); "
            "it stays queued for `mail send`",
            record=record,
        ) from None
    except BaseException:
        _release(engine, email_id=email_id, claim=claim, last_error="not delivered")
        raise
    _mark_sent(engine, email_id=email_id, claim=claim, operator=operator, flow_id=flow_id)


def _message_for(row: Any, settings: Settings) -> Any:
    body = row.body
    if row.secret_ciphertext is not None:
        body = body.replace(
            SECRET_PLACEHOLDER, decrypt_secret(settings.secret_key, row.secret_ciphertext)
        )
    return build_message(
        sender=str(settings.get("PORTALCTL_MAIL_FROM")),
        recipient=row.recipient,
        recipient_name=row.recipient_name,
        subject=row.subject,
        body=body,
        message_id=row.message_id,
    )


def _mail_dir(settings: Settings) -> str:
    return str(settings.get("PORTALCTL_MAIL_DIR"))


def _release(engine: Engine, *, email_id: int, claim: str, last_error: str) -> None:
    with transaction(engine) as connection:
        connection.execute(
            outbox.update()
            .where(_O.id == email_id, _O.claimed_by == claim)
            .values(claimed_by=None, claimed_until=None, last_error=last_error)
        )


def _mark_sent(
    engine: Engine, *, email_id: int, claim: str, operator: str, flow_id: str | None
) -> None:
    now = utc_now()
    with transaction(engine) as connection:
        connection.execute(
            outbox.update()
            .where(_O.id == email_id, _O.claimed_by == claim)
            .values(
                status="sent",
                sent_at=now,
                attempts=_O.attempts + 1,
                secret_ciphertext=None,
                claimed_by=None,
                claimed_until=None,
                last_error=None,
            )
        )
        record_audit(
            connection,
            operator=operator,
            action="mail.send",
            target=f"email:{email_id}",
            now=now,
            details={"sent": 1, "immediate": True},
            flow_id=flow_id,
        )
