"""The email outbox: every email is queued here in the transaction of the change that causes it,
then delivered by ``mail send``."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy.engine import Connection

from portalctl.core.clock import utc_now
from portalctl.core.schema import outbox
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
MESSAGE_ID_DOMAIN = "portalctl.invalid"


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
    """
    if kind not in EMAIL_KINDS:
        raise ValueError(f"unknown email kind {kind!r}")
    if secret is not None and secret_key is None:
        raise ValueError("a secret needs the secret key to be stored encrypted")
    now = now or utc_now()
    return connection.execute(
        outbox.insert()
        .values(
            kind=kind,
            message_id=new_message_id(),
            recipient=recipient,
            recipient_name=recipient_name,
            subject=subject,
            body=body,
            secret_ciphertext=encrypt_secret(secret_key, secret) if secret is not None else None,
            status="queued",
            attempts=0,
            next_attempt_at=now,
            code_id=code_id,
            account_id=account_id,
            tin=tin.reveal() if tin else None,
            created_at=now,
        )
        .returning(outbox.c.id)
    ).scalar_one()
