"""The "Registering Additional Tax IDs" guide (seed 001): link a TIN to an account with its
registration code (or by a rep's decision), and register a new account from a TIN and its
code, with the portal's "Oops!" (``registration_oops``) when the email already has an account."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection, RowMapping

from portalctl.core.clock import utc_now
from portalctl.core.config import Settings
from portalctl.core.errors import UsageError
from portalctl.core.tin import Tin
from portalctl.domain.account_changes import create_account, refuse_taken_username
from portalctl.domain.accounts import account_record, get_account_row
from portalctl.domain.code_checks import check_registration_code, consume_registration_code
from portalctl.domain.links import add_link, link_tin_manually, require_linkable_account
from portalctl.domain.organisations import get_organisation
from portalctl.domain.registration_oops import accounts_using_email, refuse_registration
from portalctl.domain.validation import (
    clean_email,
    clean_name,
    clean_new_password,
    clean_username,
)
from portalctl.domain.verification_gate import EMAIL_CODE, PASSWORD, Requirement, require_verified


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
    existing = accounts_using_email(connection, email)
    if existing:
        refuse_registration(
            connection,
            operator=operator,
            existing=existing[0],
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
