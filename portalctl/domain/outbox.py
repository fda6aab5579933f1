"""The email outbox: every email is queued here in the transaction of the change that causes it,
then delivered by ``mail send`` (``portalctl.domain.mail``); an email whose code can no longer
be used is cancelled in the transaction that made it so."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from portalctl.core.clock import utc_now
from portalctl.core.email_address import parse_email_address
from portalctl.core.schema import outbox, registration_codes
from portalctl.core.secrets import encrypt_secret
from portalctl.core.tin import Tin

EMAIL_KINDS = (
    "credentialing",
    "email_verification",
    "password_reset",
    "username_reminder",
    "registration_blocked",
    "accounts_consolidated",
)
EMAIL_STATUSES = ("queued", "sent", "failed", "dead", "cancelled")
PENDING_STATUSES = ("queued", "failed")  # what a run may still deliver
CANCELLABLE_STATUSES = ("queued", "failed", "dead")  # dead ones could be retried: cancel them too
MESSAGE_ID_DOMAIN = "portalctl.invalid"
_O = outbox.c


def new_message_id() -> str:
    """Fixed at queue time, so a resend after a crash is recognisably the same message."""
    return f"<{secrets.token_hex(16)}@{MESSAGE_ID_DOMAIN}>"


def queue_email(
    connection: Connection,
    *,
    kind: str,
    recipient: str,
    subject: str,
    body: str,
    recipient_name: str | None = None,
    secret: str | None = None,
    secret_key: bytes | None = None,
    code_id: int | None = None,
    account_id: int | None = None,
    tin: Tin | None = None,
    now: datetime | None = None,
) -> int:
    """Queue one email; a ``secret`` (a code) is stored encrypted until the email is sent.

    ``body`` may contain ``{secret}`` where the code goes; it is filled in only at delivery.
    The recipient must pass the one address rule (``InvalidInput``, exit 5, otherwise): an
    address that cannot be delivered is refused here rather than poisoning the queue.
    """
    if kind not in EMAIL_KINDS:
        raise ValueError(f"unknown email kind {kind!r}")
    if secret is not None and secret_key is None:
        raise ValueError("a secret needs the secret key to be stored encrypted")
    address = parse_email_address(recipient, what="recipient email address")
    now = now or utc_now()
    email_id: int = connection.execute(
        outbox.insert()
        .values(
            kind=kind,
            message_id=new_message_id(),
            recipient=address,
            recipient_name=recipient_name,
            subject=subject,
            body=body,
            secret_ciphertext=encrypt_secret(secret_key, secret)
            if secret is not None and secret_key is not None
            else None,
            status="queued",
            attempts=0,
            next_attempt_at=now,
            code_id=code_id,
            account_id=account_id,
            tin=tin.reveal() if tin else None,
            created_at=now,
        )
        .returning(_O.id)
    ).scalar_one()
    return email_id


def cancellation_values(*, reason: str, now: datetime) -> dict[str, Any]:
    """What cancelling writes: the status, when and why, and the secret erased (SPEC 1: no
    plain or recoverable code remains once an email is cancelled)."""
    return {
        "status": "cancelled",
        "cancelled_at": now,
        "cancel_reason": reason[:500],
        "secret_ciphertext": None,
        "claimed_by": None,
        "claimed_until": None,
        "claim_token": None,
    }


def cancel_emails_of_codes(
    connection: Connection,
    *,
    code_ids: Sequence[int] = (),
    tin: Tin | None = None,
    reason: str,
    now: datetime | None = None,
) -> list[int]:
    """Cancel the undelivered emails of registration codes that can no longer be used, in the
    caller's transaction; returns the cancelled emails' ids.

    ``code_ids``: those codes (revoked, used, reissued). ``tin``: every code of that TIN that is
    no longer active (the lock of all its codes after too many failures). A run holding such
    an email never sends it: its pre-send check and its fenced mark both require a pending
    status.
    """
    now = now or utc_now()
    conditions = []
    if code_ids:
        conditions.append(_O.code_id.in_(list(code_ids)))
    if tin is not None:
        inactive = sa.select(registration_codes.c.id).where(
            registration_codes.c.tin == tin.reveal(), registration_codes.c.status != "active"
        )
        conditions.append(_O.code_id.in_(inactive.scalar_subquery()))
    if not conditions:
        return []
    rows = connection.execute(
        outbox.update()
        .where(sa.or_(*conditions), _O.status.in_(CANCELLABLE_STATUSES))
        .values(**cancellation_values(reason=reason, now=now))
        .returning(_O.id)
    ).all()
    return sorted(row.id for row in rows)


def due_condition(now: datetime) -> sa.ColumnElement[bool]:
    """An email a run may claim now: pending, due, and not leased to a run still in time."""
    return sa.and_(
        _O.status.in_(PENDING_STATUSES),
        _O.next_attempt_at <= now,
        sa.or_(_O.claimed_until.is_(None), _O.claimed_until < now),
    )
