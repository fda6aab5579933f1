"""Setting a caller's credentials: the password (with an emailed reset code, or by a rep with a
reason), the security question with its answer, and the PIN. Each is stored only as an Argon2id
hash and each change is audited without the secret."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection, RowMapping

from portalctl.core.clock import utc_now
from portalctl.core.config import Settings
from portalctl.core.errors import InvalidInput, Refused, UsageError
from portalctl.core.fields import clean_reason, clean_text
from portalctl.core.schema import accounts
from portalctl.core.secrets import hash_secret, normalise_answer
from portalctl.core.text import quoted
from portalctl.domain.account_codes import check_account_code, use_account_code
from portalctl.domain.accounts import account_record, get_account_row
from portalctl.domain.audit import record_audit
from portalctl.domain.validation import clean_new_password, clean_pin


def set_password(
    connection: Connection,
    *,
    operator: str,
    username: str,
    password: str,
    settings: Settings,
    reset_code: str | None = None,
    reason: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Give the account a new password: with the reset code the owner was emailed (checked and
    used up) or, by a rep, with a reason. The password rules are checked first, so a password
    they refuse costs the code nothing."""
    now = now or utc_now()
    if (reset_code is None) == (reason is None):
        raise UsageError("give --reset-code (from `accounts reset-password`) or --reason")
    if reason is not None:
        reason = clean_reason(reason)
    account = _changeable_account(connection, username)
    password = clean_new_password(password, username=account["username"], email=account["email"])
    details: dict[str, Any] = {"via": "rep", "reason": reason}
    if reset_code is not None:
        checked = check_account_code(
            connection,
            operator=operator,
            purpose="password_reset",
            account=account,
            code=reset_code,
            settings=settings,
            now=now,
        )
        use_account_code(connection, code_id=checked["id"], now=now)
        details = {"via": "reset_code", "code_id": checked["id"]}
    connection.execute(
        accounts.update()
        .where(accounts.c.id == account["id"])
        .values(password_hash=hash_secret(password), updated_at=now)
    )
    record_audit(
        connection,
        operator=operator,
        action="account.set_password",
        target=f"account:{account['username']}",
        account=account["username"],
        now=now,
        details=details,
    )
    return account_record(connection, account["username"])


def set_security(
    connection: Connection,
    *,
    operator: str,
    username: str,
    question: str | None = None,
    answer: str | None = None,
    pin: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Set the security question with its answer, and/or the PIN (the Account Verification
    step's alternative to the question)."""
    now = now or utc_now()
    if question is None and pin is None:
        raise UsageError("give --question (its answer is asked for) and/or --pin")
    values: dict[str, Any] = {}
    details: dict[str, Any] = {}
    if question is not None:
        cleaned = clean_text(question, "security question")
        normalised = normalise_answer(answer or "")
        if not normalised:
            raise InvalidInput("the security answer must not be empty")
        values.update(security_question=cleaned, security_answer_hash=hash_secret(normalised))
        details["security_question"] = cleaned
    if pin is not None:
        values["pin_hash"] = hash_secret(clean_pin(pin))
        details["pin_set"] = True
    account = _changeable_account(connection, username)
    connection.execute(
        accounts.update().where(accounts.c.id == account["id"]).values(**values, updated_at=now)
    )
    record_audit(
        connection,
        operator=operator,
        action="account.set_security",
        target=f"account:{account['username']}",
        account=account["username"],
        now=now,
        details=details,
    )
    return account_record(connection, account["username"])


def _changeable_account(connection: Connection, username: str) -> RowMapping:
    account = get_account_row(connection, username, for_update=True)
    if account["status"] == "merged":
        raise Refused(
            f"account {quoted(account['username'])} is merged; it can no longer be changed"
        )
    return account
