"""The "Registering Additional Tax IDs" guide (seed 001): link a TIN to an account with its
registration code (or by a rep's decision), and register a new account from a TIN and its
code, with the portal's "Oops!" when the email already has an account."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, NoReturn

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from portalctl.core.clock import utc_now
from portalctl.core.config import Settings
from portalctl.core.errors import RecordedRefusal, UsageError
from portalctl.core.schema import accounts, outbox
from portalctl.core.text import quoted
from portalctl.core.tin import Tin
from portalctl.domain.account_changes import create_account, refuse_taken_username
from portalctl.domain.accounts import account_record, get_account_row
from portalctl.domain.audit import record_audit
from portalctl.domain.code_checks import check_registration_code, consume_registration_code
from portalctl.domain.emails import registration_blocked_body, registration_blocked_subject
from portalctl.domain.links import add_link, link_tin_manually, require_linkable_account
from portalctl.domain.organisations import get_organisation
from portalctl.domain.outbox import queue_email
from portalctl.domain.validation import (
    clean_email,
    clean_name,
    clean_new_password,
    clean_username,
)
from portalctl.domain.verification_gate import EMAIL_CODE, PASSWORD, Requirement, require_verified

# A second "Oops!" for the same account within this time queues no second email.
BLOCKED_EMAIL_INTERVAL = timedelta(hours=1)


def link_tin(
    connection: Connection,
    *,
    operator: str,
    username: str,
    tin: Tin,
    settings: Settings,
    code: str | None = None,
    role: str | None = None,
    reason: str | None = None,
    override_reason: str | None = None,
    flow_id: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """``tins link``: with a registration code, the account must be a verified caller (its
    password and an email code, or ``override_reason``: ``verification_gate``), then the code
    is checked, used and links as the TIN's security_admin; without one, a rep's manual link
    with a reason and a role."""
    now = now or utc_now()
    if code is None:
        if override_reason is not None:
            raise UsageError("--override-reason is for links with a registration code")
        return link_tin_manually(
            connection,
            operator=operator,
            username=username,
            tin=tin,
            role=role or "user",
            reason=reason,
            now=now,
        )
    if role is not None or reason is not None:
        raise UsageError(
            "--role and --reason are for manual links: a registration code links as security_admin"
        )
    get_organisation(connection, tin)
    account = require_linkable_account(connection, username, tin)
    gate = require_verified(
        connection,
        [Requirement("account", account["id"], account["username"], (PASSWORD, EMAIL_CODE))],
        override_reason=override_reason,
        now=now,
    )
    check = check_registration_code(
        connection,
        operator=operator,
        tin=tin,
        code=code,
        settings=settings,
        account_id=account["id"],
        flow_id=flow_id,
        now=now,
    )
    return _use_code_to_link(
        connection,
        operator=operator,
        account=account,
        tin=tin,
        code_id=check.code_id,
        verification=gate,
        flow_id=flow_id,
        now=now,
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


def register_account(
    connection: Connection,
    *,
    operator: str,
    tin: Tin,
    code: str,
    username: str,
    email: str,
    full_name: str,
    password: str | None,
    settings: Settings,
    security_question: str | None = None,
    security_answer: str | None = None,
    flow_id: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The new-user path: a new account from a TIN and its registration code, which it uses up.

    If an account that is not merged (active, locked or disabled) already uses the email, the
    registration is refused with the portal's "Oops!" (``refuse_registration``).
    """
    now = now or utc_now()
    username, email = clean_username(username), clean_email(email)
    full_name = clean_name(full_name)
    if password is not None:  # invalid input is refused before the code is checked (or counted)
        clean_new_password(password, username=username, email=email)
    get_organisation(connection, tin)
    refuse_taken_username(connection, username)
    check = check_registration_code(
        connection,
        operator=operator,
        tin=tin,
        code=code,
        settings=settings,
        flow_id=flow_id,
        now=now,
    )
    existing = account_using_email(connection, email)
    if existing is not None:
        refuse_registration(
            connection,
            operator=operator,
            existing=existing,
            tin=tin,
            requested_username=username,
            code_id=check.code_id,
            settings=settings,
            flow_id=flow_id,
            now=now,
        )
    create_account(
        connection,
        operator=operator,
        username=username,
        email=email,
        full_name=full_name,
        password=password,
        security_question=security_question,
        security_answer=security_answer,
        flow_id=flow_id,
        now=now,
    )
    account = get_account_row(connection, username)
    _use_code_to_link(
        connection,
        operator=operator,
        account=account,
        tin=tin,
        code_id=check.code_id,
        flow_id=flow_id,
        now=now,
    )
    return account_record(connection, username)


def account_using_email(connection: Connection, email: str) -> RowMapping | None:
    """The account that is not merged and uses ``email`` (an active one first): the account a
    registration with that address is refused for."""
    return (
        connection.execute(
            sa.select(accounts)
            .where(
                sa.func.lower(accounts.c.email) == clean_email(email).lower(),
                accounts.c.status != "merged",
            )
            .order_by(sa.case((accounts.c.status == "active", 0), else_=1), accounts.c.id)
            .limit(1)
        )
        .mappings()
        .first()
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
    """The portal's "Oops!" for a registration whose email ``existing`` already uses: a
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


def _use_code_to_link(
    connection: Connection,
    *,
    operator: str,
    account: RowMapping,
    tin: Tin,
    code_id: int | None,
    verification: dict[str, str] | None = None,
    flow_id: str | None,
    now: datetime,
) -> dict[str, Any]:
    """A checked code is used up (exactly once) and makes the account the TIN's
    security_admin."""
    assert code_id is not None
    consume_registration_code(connection, code_id=code_id, account_id=account["id"], now=now)
    return add_link(
        connection,
        operator=operator,
        account=account,
        tin=tin,
        role="security_admin",
        now=now,
        via="registration_code",
        code_id=code_id,
        verification=verification,
        flow_id=flow_id,
    )


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
