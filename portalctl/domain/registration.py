"""The "Registering Additional Tax IDs" flow: link a TIN to an account with a registration code
(or by a rep's decision), and register a new account from a TIN and its code."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from portalctl.core.clock import utc_now
from portalctl.core.errors import NotFound as PortalNotFound
from portalctl.core.errors import Refused
from portalctl.core.schema import accounts
from portalctl.core.tin import Tin
from portalctl.domain.accounts import account_records, create_account, get_account_row
from portalctl.domain.audit import record_audit
from portalctl.domain.codes import check_registration_code, consume_registration_code
from portalctl.domain.emails import registration_blocked_body, registration_blocked_subject
from portalctl.domain.links import (
    add_link,
    get_organisation,
    link_tin_manually,
    require_linkable_account,
    show_tin,
    unlink_tin,
)
from portalctl.domain.outbox import queue_email
from portalctl.domain.validation import clean_email, clean_full_name, clean_username


@dataclass
class FlowOutcome:
    """What a flow step did. A refusal that had to record something (a failed attempt counted,
    an email queued) is returned rather than raised, so its transaction still commits."""

    record: dict[str, Any] = field(default_factory=dict)
    refusal: str | None = None


def show_tin_text(connection: Connection, *, tin: str) -> dict[str, Any]:
    return show_tin(connection, Tin.parse(tin))


def unlink_tin_text(connection: Connection, *, tin: str, **options: Any) -> dict[str, Any]:
    return unlink_tin(connection, tin=Tin.parse(tin), **options)


def link_tin_text(
    connection: Connection,
    *,
    operator: str,
    username: str,
    tin: str,
    code: str | None,
    reason: str | None,
    role: str,
    settings,
) -> FlowOutcome:
    """``tins link``: with a code, check and use it; without, a manual link with a reason."""
    parsed = Tin.parse(tin)
    if code is None:
        return FlowOutcome(
            link_tin_manually(
                connection,
                operator=operator,
                username=username,
                tin=parsed,
                role=role,
                reason=reason or "",
            )
        )
    now = utc_now()
    get_organisation(connection, parsed)
    account = require_linkable_account(connection, username, parsed)
    check = check_registration_code(
        connection,
        operator=operator,
        tin=parsed,
        code=code,
        secret_key=settings.secret_key,
        max_attempts=settings.code_max_attempts,
        now=now,
    )
    if not check.valid:
        return FlowOutcome(refusal=_code_refusal(check))
    consume_registration_code(connection, code_id=check.code_id, account_id=account["id"], now=now)
    return FlowOutcome(
        add_link(
            connection,
            operator=operator,
            account=account,
            tin=parsed,
            role="security_admin",
            now=now,
            via="registration_code",
            code_id=check.code_id,
        )
    )


def _code_refusal(check) -> str:
    text = f"registration code refused: {check.reason} ({check.failed_attempts} failed attempt(s)"
    return text + (", the TIN's codes are now locked: reissue one)" if check.locked else ")")


def oops_message(settings) -> str:
    """The portal's own words when a registration is refused because the email has an account."""
    return (
        "Oops! Your registration could not be completed at this time. Please try again, or "
        "contact Provider Services at: For Commercial Services call: "
        f"{settings.get('PORTALCTL_COMMERCIAL_PHONES')}; For Medicare Services call: "
        f"{settings.get('PORTALCTL_MEDICARE_PHONE')} (an account already uses this email; "
        "an email was sent to it explaining how to add the Tax ID to that account)"
    )


def register_account(
    connection: Connection,
    *,
    operator: str,
    tin: str,
    code: str,
    username: str,
    email: str,
    full_name: str,
    password: str | None,
    settings,
) -> FlowOutcome:
    """The new-user path: a new account from a TIN and its registration code.

    If an active account already uses the email, the registration is refused with the portal's
    "Oops!" message, a ``registration_blocked`` email goes to that account's address, and the
    code stays usable (for linking the TIN to that account instead).
    """
    now = utc_now()
    parsed = Tin.parse(tin)
    username, email = clean_username(username), clean_email(email)
    full_name = clean_full_name(full_name)
    get_organisation(connection, parsed)
    try:
        get_account_row(connection, username)
    except PortalNotFound:
        pass
    else:
        raise Refused(f"username {username!r} is already taken")
    check = check_registration_code(
        connection,
        operator=operator,
        tin=parsed,
        code=code,
        secret_key=settings.secret_key,
        max_attempts=settings.code_max_attempts,
        now=now,
    )
    if not check.valid:
        return FlowOutcome(refusal=_code_refusal(check))
    existing = (
        connection.execute(
            sa.select(accounts)
            .where(sa.func.lower(accounts.c.email) == email.lower(), accounts.c.status == "active")
            .order_by(accounts.c.id)
            .limit(1)
        )
        .mappings()
        .first()
    )
    if existing is not None:
        queue_email(
            connection,
            kind="registration_blocked",
            recipient=existing["email"],
            recipient_name=existing["full_name"],
            subject=registration_blocked_subject(settings),
            body=registration_blocked_body(settings, recipient_name=existing["full_name"]),
            account_id=existing["id"],
            tin=parsed,
            now=now,
        )
        record_audit(
            connection,
            operator=operator,
            action="account.register_blocked",
            target=f"account:{existing['username']}",
            account=existing["username"],
            tin=parsed,
            now=now,
            details={"requested_username": username, "code_id": check.code_id},
        )
        return FlowOutcome(refusal=oops_message(settings))
    create_account(
        connection,
        operator=operator,
        username=username,
        email=email,
        full_name=full_name,
        password=password,
        now=now,
    )
    account = get_account_row(connection, username)
    consume_registration_code(connection, code_id=check.code_id, account_id=account["id"], now=now)
    add_link(
        connection,
        operator=operator,
        account=account,
        tin=parsed,
        role="security_admin",
        now=now,
        via="registration_code",
        code_id=check.code_id,
    )
    return FlowOutcome(account_records(connection, [get_account_row(connection, username)])[0])
