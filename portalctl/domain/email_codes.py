"""The portal's Email Address Verification (seed 000 steps 4-5, seed 001 step 3): a code emailed
at once to the address the caller gives, and confirmed when the caller reads it back, which sets
the account's email and ``email_verified_at``. Asking again (the portal's "Request New Code", or
a corrected address after "Previous") replaces the earlier code."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, RowMapping

from portalctl.core.clock import utc_now
from portalctl.core.config import Settings
from portalctl.core.database import transaction
from portalctl.core.errors import Refused
from portalctl.core.schema import accounts
from portalctl.core.text import quoted
from portalctl.domain.account_codes import (
    EmailedCode,
    check_account_code,
    issue_account_code,
    use_account_code,
)
from portalctl.domain.accounts import get_account_row
from portalctl.domain.audit import record_audit
from portalctl.domain.emails import email_verification_body, email_verification_subject
from portalctl.domain.immediate_mail import deliver_now
from portalctl.domain.validation import clean_email
from portalctl.domain.verification_records import record_verification

PURPOSE = "email_verification"


def send_email_code(
    engine: Engine,
    *,
    operator: str,
    username: str,
    email: str,
    settings: Settings,
    flow_id: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Issue an email code (committed), then deliver its email at once; the SPEC's email-code
    record. Delivery failing: ``MailServerUnavailable`` carrying the record (the code stands and
    its email stays queued for ``mail send``)."""
    with transaction(engine) as connection:
        record, emailed = issue_email_code(
            connection,
            operator=operator,
            username=username,
            email=email,
            settings=settings,
            flow_id=flow_id,
            now=now,
        )
    deliver_now(
        engine,
        email_id=emailed.email_id,
        claim=emailed.claim,
        operator=operator,
        settings=settings,
        record=record,
        flow_id=flow_id,
    )
    return record


def issue_email_code(
    connection: Connection,
    *,
    operator: str,
    username: str,
    email: str,
    settings: Settings,
    flow_id: str | None = None,
    now: datetime | None = None,
) -> tuple[dict[str, Any], EmailedCode]:
    """A new email code for an active account and an address, its email queued (and claimed
    for delivery now), replacing the account's earlier code; the record and the email."""
    now = now or utc_now()
    address = clean_email(email)
    account = _active_account(connection, username)
    ttl = settings.email_code_ttl_minutes
    emailed = issue_account_code(
        connection,
        operator=operator,
        purpose=PURPOSE,
        account=account,
        email=address,
        ttl=timedelta(minutes=ttl),
        subject=email_verification_subject(settings),
        body=email_verification_body(settings, ttl_minutes=ttl),
        settings=settings,
        now=now,
        flow_id=flow_id,
    )
    record = {
        "id": emailed.id,
        "username": account["username"],
        "email": address,
        "expires_at": emailed.expires_at,
        "accounts_using_email": _other_active_accounts_using(connection, address, account["id"]),
    }
    return record, emailed


def confirm_email(
    connection: Connection,
    *,
    operator: str,
    username: str,
    code: str,
    settings: Settings,
    flow_id: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Check the code the caller reads back; valid, it is used up, the account's email is set
    to the address it was sent to, verified now, and the account is verified by an email code
    (a verification record)."""
    now = now or utc_now()
    account = _active_account(connection, username)
    checked = check_account_code(
        connection,
        operator=operator,
        purpose=PURPOSE,
        account=account,
        code=code,
        settings=settings,
        now=now,
        flow_id=flow_id,
    )
    use_account_code(connection, code_id=checked["id"], now=now)
    connection.execute(
        accounts.update()
        .where(accounts.c.id == account["id"])
        .values(email=checked["email"], email_verified_at=now, updated_at=now)
    )
    record_audit(
        connection,
        operator=operator,
        action="account.confirm_email",
        target=f"account:{account['username']}",
        account=account["username"],
        now=now,
        details={"code_id": checked["id"], "from": account["email"], "to": checked["email"]},
        flow_id=flow_id,
    )
    record_verification(
        connection,
        operator=operator,
        method="email_code",
        account_id=account["id"],
        window_minutes=settings.verification_window_minutes,
        flow_id=flow_id,
        now=now,
    )
    return {"username": account["username"], "email": checked["email"], "email_verified_at": now}


def _active_account(connection: Connection, username: str) -> RowMapping:
    account = get_account_row(connection, username, for_update=True)
    if account["status"] != "active":
        raise Refused(
            f"account {quoted(account['username'])} is {account['status']}; "
            "its email cannot be verified"
        )
    return account


def _other_active_accounts_using(connection: Connection, address: str, account_id: int) -> int:
    """One person often has several accounts: an address others use is accepted, and counted
    so the rep can ask for the caller's own address."""
    return int(
        connection.execute(
            sa.select(sa.func.count())
            .select_from(accounts)
            .where(
                sa.func.lower(accounts.c.email) == address.lower(),
                accounts.c.status == "active",
                accounts.c.id != account_id,
            )
        ).scalar_one()
    )
