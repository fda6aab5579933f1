"""Links between accounts and Tax IDs: the rules for adding one, a rep's manual link, unlink,
and the TIN's page."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from portalctl.core.clock import utc_now
from portalctl.core.errors import ConfirmationNeeded, NotFound, Refused
from portalctl.core.fields import clean_reason
from portalctl.core.schema import account_tins, accounts, registration_codes
from portalctl.core.text import quoted
from portalctl.core.tin import Tin
from portalctl.domain.accounts import get_account_row
from portalctl.domain.audit import record_audit
from portalctl.domain.code_records import shown_code_status
from portalctl.domain.organisations import get_organisation
from portalctl.domain.validation import clean_role


def require_linkable_account(connection: Connection, username: str, tin: Tin) -> RowMapping:
    """The active account that may receive ``tin`` (locked for the transaction); refused if
    it is not active or already holds the TIN."""
    account = get_account_row(connection, username, for_update=True)
    name = quoted(account["username"])
    if account["status"] != "active":
        raise Refused(
            f"account {name} is {account['status']}; only an active account can be linked to a TIN"
        )
    held = connection.execute(
        sa.select(account_tins.c.role).where(
            account_tins.c.account_id == account["id"], account_tins.c.tin == tin.reveal()
        )
    ).scalar()
    if held is not None:
        raise Refused(f"account {name} already holds TIN {tin} (as {held})")
    return account


def add_link(
    connection: Connection,
    *,
    operator: str,
    account: RowMapping,
    tin: Tin,
    role: str,
    now: datetime,
    via: str,
    reason: str | None = None,
    code_id: int | None = None,
    verification: dict[str, str] | None = None,
    flow_id: str | None = None,
) -> dict[str, Any]:
    """Insert the link and its audit record (``require_linkable_account`` has checked it);
    ``verification``: what the verification gate said, for the record."""
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
    details.update(verification or {})
    record_audit(
        connection,
        operator=operator,
        action="tin.link",
        target=f"account:{account['username']}",
        account=account["username"],
        tin=tin,
        details=details,
        now=now,
        flow_id=flow_id,
    )
    return {"username": account["username"], "tin": tin, "role": role, "via": via}


def link_tin_manually(
    connection: Connection,
    *,
    operator: str,
    username: str,
    tin: Tin,
    role: str = "user",
    reason: str | None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """A rep links a TIN without a registration code; the reason goes in the audit log."""
    now = now or utc_now()
    reason = clean_reason(reason)
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
        reason=reason,
    )


def unlink_tin(
    connection: Connection,
    *,
    operator: str,
    username: str,
    tin: Tin,
    reason: str | None,
    force: bool = False,
    confirmed: bool = True,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Remove an account's access to a TIN; never silently the organisation's last
    administrator: without ``force`` refused, with it (unless ``confirmed``) a question."""
    now = now or utc_now()
    reason = clean_reason(reason)
    account = get_account_row(connection, username, for_update=True)
    link_query = sa.select(account_tins.c.role).where(
        account_tins.c.account_id == account["id"], account_tins.c.tin == tin.reveal()
    )
    if connection.dialect.name == "postgresql":
        link_query = link_query.with_for_update()
    role = connection.execute(link_query).scalar()
    name = quoted(account["username"])
    if role is None:
        raise NotFound(f"account {name} does not hold TIN {tin}")
    if role == "security_admin" and not other_active_admins(connection, tin, account["id"]):
        if not force:
            raise Refused(
                f"{name} is the last security administrator of TIN {tin}; "
                "link another administrator first, or use --force"
            )
        if not confirmed:
            raise ConfirmationNeeded(f"remove {name}, the last security administrator of TIN {tin}")
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
        details={"role": role, "reason": reason, "forced": force},
        now=now,
    )
    return {"username": account["username"], "tin": tin, "removed_role": role}


def other_active_admins(connection: Connection, tin: Tin, account_id: int) -> int:
    """How many other active accounts administer ``tin``."""
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
    c = registration_codes.c
    codes = (
        connection.execute(
            sa.select(
                c.id, c.status, c.admin_name, c.admin_email, c.issued_at, c.expires_at, c.used_at
            )
            .where(c.tin == tin.reveal())
            .order_by(c.id.desc())
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
            {**row, "status": shown_code_status(row["status"], row["expires_at"], now)}
            for row in codes
        ],
    }
