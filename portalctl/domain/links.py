"""Links between accounts and Tax IDs: a rep's manual link, unlink, and the TIN's page."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from portalctl.core.clock import utc_now
from portalctl.core.errors import InvalidInput, NotFound, Refused
from portalctl.core.schema import account_tins, accounts, organisations, registration_codes
from portalctl.core.tin import Tin
from portalctl.domain.accounts import get_account_row
from portalctl.domain.audit import record_audit
from portalctl.domain.validation import clean_role

ROLE_RANK = {"user": 1, "security_admin": 2}


def get_organisation(connection: Connection, tin: Tin) -> Any:
    row = (
        connection.execute(sa.select(organisations).where(organisations.c.tin == tin.reveal()))
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"no organisation with TIN {tin}")
    return row


def require_linkable_account(connection: Connection, username: str, tin: Tin) -> Any:
    """The active account that may receive ``tin``; refused if inactive or already holding it."""
    account = get_account_row(connection, username, for_update=True)
    if account["status"] != "active":
        raise Refused(
            f"account {account['username']!r} is {account['status']}; "
            "only an active account can be linked to a TIN"
        )
    held = connection.execute(
        sa.select(account_tins.c.role).where(
            account_tins.c.account_id == account["id"], account_tins.c.tin == tin.reveal()
        )
    ).scalar()
    if held is not None:
        raise Refused(f"account {account['username']!r} already holds TIN {tin} (as {held})")
    return account


def add_link(
    connection: Connection,
    *,
    operator: str,
    account: Any,
    tin: Tin,
    role: str,
    now: datetime,
    via: str,
    reason: str | None = None,
    code_id: int | None = None,
) -> dict[str, Any]:
    """Insert the link and its audit record (the caller has checked the rules)."""
    connection.execute(
        account_tins.insert().values(
            account_id=account["id"], tin=tin.reveal(), role=role, linked_at=now
        )
    )
    details: dict[str, Any] = {"role": role, "via": via}
    if reason:
        details["reason"] = reason
    if code_id is not None:
        details["code_id"] = code_id
    record_audit(
        connection,
        operator=operator,
        action="tin.link",
        target=f"account:{account['username']}",
        account=account["username"],
        tin=tin,
        details=details,
        now=now,
    )
    return {"username": account["username"], "tin": tin, "role": role, "via": via}


def link_tin_manually(
    connection: Connection,
    *,
    operator: str,
    username: str,
    tin: Tin,
    role: str = "user",
    reason: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """A rep links a TIN without a registration code; the reason goes in the audit log."""
    now = now or utc_now()
    if not reason or not reason.strip():
        raise InvalidInput("a link without --code needs --reason")
    role = clean_role(role)
    get_organisation(connection, tin)
    account = require_linkable_account(connection, username, tin)
    return add_link(
        connection,
        operator=operator,
        account=account,
        tin=tin,
        role=role,
        now=now,
        via="manual",
        reason=reason.strip(),
    )


def unlink_tin(
    connection: Connection,
    *,
    operator: str,
    username: str,
    tin: Tin,
    reason: str,
    force: bool = False,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Remove an account's access to a TIN; never silently the organisation's last administrator."""
    now = now or utc_now()
    if not reason or not reason.strip():
        raise InvalidInput("--reason is required")
    account = get_account_row(connection, username, for_update=True)
    link_query = sa.select(account_tins.c.role).where(
        account_tins.c.account_id == account["id"], account_tins.c.tin == tin.reveal()
    )
    if connection.dialect.name == "postgresql":
        link_query = link_query.with_for_update()
    role = connection.execute(link_query).scalar()
    if role is None:
        raise NotFound(f"account {account['username']!r} does not hold TIN {tin}")
    if role == "security_admin" and not force:
        others = _other_active_admins(connection, tin, account["id"])
        if others == 0:
            raise Refused(
                f"{account['username']!r} is the last security administrator of TIN "
                f"{tin}; link another administrator first, or use --force"
            )
    connection.execute(
        account_tins.delete().where(
            account_tins.c.account_id == account["id"], account_tins.c.tin == tin.reveal()
        )
    )
    record_audit(
        connection,
        operator=operator,
        action="tin.unlink",
        target=f"account:{account['username']}",
        account=account["username"],
        tin=tin,
        details={"role": role, "reason": reason.strip(), "forced": force},
        now=now,
    )
    return {"username": account["username"], "tin": tin, "removed_role": role}


def _other_active_admins(connection: Connection, tin: Tin, account_id: int) -> int:
    return connection.execute(
        sa.select(sa.func.count())
        .select_from(account_tins.join(accounts, accounts.c.id == account_tins.c.account_id))
        .where(
            account_tins.c.tin == tin.reveal(),
            account_tins.c.role == "security_admin",
            account_tins.c.account_id != account_id,
            accounts.c.status == "active",
        )
    ).scalar_one()


def show_tin(connection: Connection, tin: Tin, *, now: datetime | None = None) -> dict[str, Any]:
    """The organisation, its linked accounts with roles and status, and its codes with status."""
    now = now or utc_now()
    organisation = get_organisation(connection, tin)
    linked = (
        connection.execute(
            sa.select(
                accounts.c.username,
                accounts.c.full_name,
                accounts.c.email,
                accounts.c.status,
                account_tins.c.role,
                account_tins.c.linked_at,
            )
            .join(account_tins, account_tins.c.account_id == accounts.c.id)
            .where(account_tins.c.tin == tin.reveal())
            .order_by(
                sa.case((account_tins.c.role == "security_admin", 0), else_=1),
                sa.func.lower(accounts.c.username),
            )
        )
        .mappings()
        .all()
    )
    codes = (
        connection.execute(
            sa.select(
                registration_codes.c.id,
                registration_codes.c.status,
                registration_codes.c.admin_name,
                registration_codes.c.admin_email,
                registration_codes.c.issued_at,
                registration_codes.c.expires_at,
                registration_codes.c.used_at,
            )
            .where(registration_codes.c.tin == tin.reveal())
            .order_by(registration_codes.c.id.desc())
        )
        .mappings()
        .all()
    )
    return {
        "tin": tin,
        "organisation": organisation["name"],
        "created_at": organisation["created_at"],
        "failed_code_attempts": organisation["failed_code_attempts"],
        "accounts": [dict(row) for row in linked],
        "codes": [
            {
                **row,
                "status": "expired"
                if row["status"] == "active" and row["expires_at"] <= now
                else row["status"],
            }
            for row in codes
        ],
    }
