"""Seed 001's "Oops!": a registration whose email an account that is not merged (active, locked
or disabled) already uses is refused, naming that account, and its owner is emailed (at most
once an hour). ``accounts register`` and ``flow add-tin`` both end here."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, NoReturn

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from portalctl.core.config import Settings
from portalctl.core.errors import RecordedRefusal
from portalctl.core.schema import accounts, outbox
from portalctl.core.text import quoted
from portalctl.core.tin import Tin
from portalctl.domain.audit import record_audit
from portalctl.domain.emails import registration_blocked_body, registration_blocked_subject
from portalctl.domain.outbox import queue_email
from portalctl.domain.validation import clean_email

# A second "Oops!" for the same account within this time queues no second email.
BLOCKED_EMAIL_INTERVAL = timedelta(hours=1)


def accounts_using_email(connection: Connection, email: str) -> list[RowMapping]:
    """The accounts that are not merged and use ``email``, active ones first: the first is the
    account a registration with that address is refused for."""
    return list(
        connection.execute(
            sa.select(accounts)
            .where(
                sa.func.lower(accounts.c.email) == clean_email(email).lower(),
                accounts.c.status != "merged",
            )
            .order_by(sa.case((accounts.c.status == "active", 0), else_=1), accounts.c.id)
        )
        .mappings()
        .all()
    )


def oops_message(settings: Settings, existing_username: str) -> str:
    """The portal's own words when a registration is refused because the email has an account."""
    return (
        "Oops! Your registration could not be completed at this time. Please try again, or "
        "contact Provider Services at: For Commercial Services call: "
        f"{settings.get('PORTALCTL_COMMERCIAL_PHONES')}; For Medicare Services call: "
        f"{settings.get('PORTALCTL_MEDICARE_PHONE')} (account {quoted(existing_username)} "
        "already uses this email; link the Tax ID to it instead)"
    )


def refuse_registration(
    connection: Connection,
    *,
    operator: str,
    existing: RowMapping,
    tin: Tin,
    requested_username: str | None,
    code_id: int | None,
    settings: Settings,
    flow_id: str | None = None,
    now: datetime,
) -> NoReturn:
    """The "Oops!" for a registration whose email ``existing`` already uses: a
    ``registration_blocked`` email to that account's address (once an hour at most), an audit
    record, and the refusal (``RecordedRefusal``: both commit). The code stays usable, for
    linking the TIN to that account instead."""
    emailed = _queue_blocked_email(connection, existing, tin=tin, settings=settings, now=now)
    record_audit(
        connection,
        operator=operator,
        action="account.register_blocked",
        target=f"account:{existing['username']}",
        account=existing["username"],
        tin=tin,
        now=now,
        details={"requested_username": requested_username, "code_id": code_id, "emailed": emailed},
        flow_id=flow_id,
    )
    raise RecordedRefusal(oops_message(settings, existing["username"]))


def _queue_blocked_email(
    connection: Connection, existing: Any, *, tin: Tin, settings: Settings, now: datetime
) -> bool:
    """Queue the "Oops!" email to the existing account, unless one went within the hour."""
    recent = connection.execute(
        sa.select(outbox.c.id).where(
            outbox.c.kind == "registration_blocked",
            outbox.c.account_id == existing["id"],
            outbox.c.created_at > now - BLOCKED_EMAIL_INTERVAL,
        )
    ).first()
    if recent is not None:
        return False
    queue_email(
        connection,
        kind="registration_blocked",
        recipient=existing["email"],
        recipient_name=existing["full_name"],
        subject=registration_blocked_subject(settings),
        body=registration_blocked_body(settings, recipient_name=existing["full_name"]),
        account_id=existing["id"],
        tin=tin,
        now=now,
    )
    return True
