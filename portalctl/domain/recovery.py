"""The portal's "Forgot Password" and "Forgot Username": a reset code emailed to the account's
address, and an email listing the active usernames registered to an address. Both go at once,
and neither tells the operator anything the email does not (no code, no usernames)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from portalctl.core.clock import utc_now
from portalctl.core.config import Settings
from portalctl.core.database import transaction
from portalctl.core.errors import NotFound, Refused
from portalctl.core.schema import accounts, outbox
from portalctl.core.text import quoted
from portalctl.domain.account_codes import issue_account_code
from portalctl.domain.accounts import get_account_row
from portalctl.domain.audit import record_audit
from portalctl.domain.emails import (
    password_reset_body,
    password_reset_subject,
    username_reminder_body,
    username_reminder_subject,
)
from portalctl.domain.immediate_mail import claim_for_immediate_delivery, deliver_now
from portalctl.domain.outbox import queue_email
from portalctl.domain.validation import clean_email

RESET_CODE_TTL = timedelta(minutes=30)
RESETTABLE_STATUSES = ("active", "locked")  # a locked owner is the usual one to forget


def send_password_reset(
    engine: Engine,
    *,
    operator: str,
    username: str,
    settings: Settings,
    now: datetime | None = None,
) -> dict[str, Any]:
    """A password reset code for the account, emailed at once to its address (replacing its
    earlier reset code); ``set_password(reset_code=...)`` consumes it."""
    now = now or utc_now()
    with transaction(engine) as connection:
        account = get_account_row(connection, username, for_update=True)
        if account["status"] not in RESETTABLE_STATUSES:
            raise Refused(
                f"account {quoted(account['username'])} is {account['status']}; "
                "its password cannot be reset"
            )
        minutes = int(RESET_CODE_TTL.total_seconds() // 60)
        emailed = issue_account_code(
            connection,
            operator=operator,
            purpose="password_reset",
            account=account,
            email=account["email"],
            ttl=RESET_CODE_TTL,
            subject=password_reset_subject(settings),
            body=password_reset_body(settings, username=account["username"], ttl_minutes=minutes),
            settings=settings,
            now=now,
        )
        record = {
            "id": emailed.id,
            "username": account["username"],
            "email_id": emailed.email_id,
            "expires_at": emailed.expires_at,
        }
    deliver_now(
        engine,
        email_id=emailed.email_id,
        claim=emailed.claim,
        operator=operator,
        settings=settings,
        record=record,
    )
    return record


def send_username_reminder(
    engine: Engine,
    *,
    operator: str,
    email: str,
    settings: Settings,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Email the active usernames registered to ``email``; ``NotFound`` when there is none.
    At most ``PORTALCTL_EMAIL_CODE_MAX_PER_HOUR`` reminders an hour go to one address."""
    now = now or utc_now()
    address = clean_email(email)
    with transaction(engine) as connection:
        email_id = _queue_username_reminder(connection, address=address, settings=settings, now=now)
        claim = claim_for_immediate_delivery(
            connection, email_id=email_id, settings=settings, now=now
        )
        record_audit(
            connection,
            operator=operator,
            action="account.send_username",
            target=f"email:{email_id}",
            now=now,
            details={"email": address, "email_id": email_id},
        )
    record = {"email": address, "email_id": email_id}
    deliver_now(
        engine, email_id=email_id, claim=claim, operator=operator, settings=settings, record=record
    )
    return record


def _queue_username_reminder(
    connection: Connection, *, address: str, settings: Settings, now: datetime
) -> int:
    usernames = (
        connection.execute(
            sa.select(accounts.c.username)
            .where(
                sa.func.lower(accounts.c.email) == address.lower(), accounts.c.status == "active"
            )
            .order_by(sa.func.lower(accounts.c.username))
        )
        .scalars()
        .all()
    )
    if not usernames:
        raise NotFound(f"no active account is registered to {quoted(address)}")
    limit = settings.email_code_max_per_hour
    recent = connection.execute(
        sa.select(sa.func.count())
        .select_from(outbox)
        .where(
            outbox.c.kind == "username_reminder",
            sa.func.lower(outbox.c.recipient) == address.lower(),
            outbox.c.created_at > now - timedelta(hours=1),
        )
    ).scalar_one()
    if recent >= limit:
        raise Refused(
            f"{recent} username reminders went to {quoted(address)} in the last hour "
            f"(at most {limit}); ask again later"
        )
    return queue_email(
        connection,
        kind="username_reminder",
        recipient=address,
        subject=username_reminder_subject(settings),
        body=username_reminder_body(settings, usernames=list(usernames)),
        now=now,
    )
