"""Changing the account directory: create an account, a rep's direct update of its name or
email, and the status changes a rep makes (unlock, disable, enable), each with its audit record
in the same transaction."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from portalctl.core.clock import utc_now
from portalctl.core.database import unique_violation
from portalctl.core.errors import InvalidInput, Refused, UsageError
from portalctl.core.fields import clean_reason, clean_text
from portalctl.core.schema import account_tins, accounts
from portalctl.core.secrets import hash_secret, normalise_answer
from portalctl.core.text import quoted
from portalctl.core.tin import Tin
from portalctl.domain.accounts import account_record, get_account_row
from portalctl.domain.audit import record_audit
from portalctl.domain.organisations import ensure_organisation
from portalctl.domain.validation import (
    clean_email,
    clean_name,
    clean_new_password,
    clean_role,
    clean_username,
)


def create_account(
    connection: Connection,
    *,
    operator: str,
    username: str,
    email: str,
    full_name: str,
    tins: Iterable[tuple[Tin, str]] = (),
    password: str | None = None,
    security_question: str | None = None,
    security_answer: str | None = None,
    flow_id: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Create an active account (and any organisations its TINs need), audited."""
    now = now or utc_now()
    username = clean_username(username)
    email = clean_email(email)
    full_name = clean_name(full_name)
    question = clean_text(security_question, "security question", required=False)
    links = [(tin, clean_role(role)) for tin, role in tins]
    if len({tin for tin, _ in links}) != len(links):
        raise InvalidInput("the same TIN is given twice")
    if bool(question) != bool(security_answer):
        raise InvalidInput("give both a security question and its answer, or neither")
    if password is not None:
        password = clean_new_password(password, username=username, email=email)
    refuse_taken_username(connection, username)
    try:
        account_id = connection.execute(
            accounts.insert()
            .values(
                username=username,
                email=email,
                full_name=full_name,
                status="active",
                password_hash=hash_secret(password) if password else None,
                security_question=question,
                security_answer_hash=(
                    hash_secret(normalise_answer(security_answer)) if security_answer else None
                ),
                created_at=now,
                updated_at=now,
            )
            .returning(accounts.c.id)
        ).scalar_one()
    except sa.exc.IntegrityError as error:
        if unique_violation(error) == "accounts_username_key":  # taken since it was checked
            raise Refused(f"username {quoted(username)} is already taken") from None
        raise
    for tin, role in links:
        ensure_organisation(connection, tin, now=now)
        connection.execute(
            account_tins.insert().values(
                account_id=account_id, tin=tin.reveal(), role=role, linked_at=now
            )
        )
    record_audit(
        connection,
        operator=operator,
        action="account.create",
        target=f"account:{username}",
        account=username,
        now=now,
        details={"email": email, "tins": [{"tin": t, "role": r} for t, r in links]},
        flow_id=flow_id,
    )
    return account_record(connection, username)


def refuse_taken_username(connection: Connection, username: str) -> None:
    """Usernames are unique compared case-insensitively, merged accounts' included."""
    taken = connection.execute(
        sa.select(accounts.c.id).where(sa.func.lower(accounts.c.username) == username.lower())
    ).first()
    if taken is not None:
        raise Refused(f"username {quoted(username)} is already taken")


STATUS_CHANGES = {
    # action: (statuses it applies to, new status)
    "unlock": (("locked",), "active"),
    "disable": (("active", "locked"), "disabled"),
    "enable": (("disabled",), "active"),
}


def change_account_status(
    connection: Connection,
    *,
    operator: str,
    username: str,
    action: str,
    reason: str | None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """unlock (locked -> active), disable (-> disabled) or enable (disabled -> active), audited."""
    now = now or utc_now()
    reason = clean_reason(reason)
    applies_to, new_status = STATUS_CHANGES[action]
    row = get_account_row(connection, username, for_update=True)
    if row["status"] not in applies_to:
        raise Refused(f"account {quoted(row['username'])} is {row['status']}; cannot {action} it")
    connection.execute(
        accounts.update()
        .where(accounts.c.id == row["id"])
        .values(status=new_status, failed_verifications=0, updated_at=now)
    )
    record_audit(
        connection,
        operator=operator,
        action=f"account.{action}",
        target=f"account:{row['username']}",
        account=row["username"],
        now=now,
        details={"reason": reason, "from": row["status"], "to": new_status},
    )
    return account_record(connection, username)


def update_account(
    connection: Connection,
    *,
    operator: str,
    username: str,
    full_name: str | None = None,
    email: str | None = None,
    reason: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """A rep's direct change of an account's full name and/or email. An email set this way is
    unverified (``email_verified_at`` cleared) and needs a reason; the audit record keeps the
    old and new values. Values equal to the stored ones change nothing."""
    now = now or utc_now()
    if full_name is None and email is None:
        raise UsageError("give --full-name and/or --email (with --reason)")
    new_name = clean_name(full_name) if full_name is not None else None
    new_email = clean_email(email) if email is not None else None
    if new_email is not None or reason is not None:
        reason = clean_reason(reason)
    row = get_account_row(connection, username, for_update=True)
    if row["status"] == "merged":
        raise Refused(f"account {quoted(row['username'])} is merged; it can no longer be changed")
    values: dict[str, Any] = {}
    changes: dict[str, Any] = {}
    if new_name is not None and new_name != row["full_name"]:
        values["full_name"] = new_name
        changes["full_name"] = {"from": row["full_name"], "to": new_name}
    if new_email is not None and new_email != row["email"]:
        values.update(email=new_email, email_verified_at=None)
        changes["email"] = {"from": row["email"], "to": new_email}
        changes["email_was_verified"] = row["email_verified_at"] is not None
    if values:
        connection.execute(
            accounts.update().where(accounts.c.id == row["id"]).values(**values, updated_at=now)
        )
        record_audit(
            connection,
            operator=operator,
            action="account.update",
            target=f"account:{row['username']}",
            account=row["username"],
            now=now,
            details={**changes, "reason": reason},
        )
    return account_record(connection, row["username"])
