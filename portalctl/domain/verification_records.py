"""The verified caller (SPEC section 1): every successful check of a caller writes a
verification record, in the same transaction as the check's audit record, and the record counts
for its account for the verification window (``PORTALCTL_VERIFICATION_WINDOW_MINUTES``) from then.

The window is fixed when the record is written (``valid_until`` is stored), so what a rep was
told ("verified until 14:32") stays true if the setting changes later.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from portalctl.core.clock import utc_now
from portalctl.core.schema import verifications
from portalctl.core.text import without_line_breaks
from portalctl.core.tin import Tin
from portalctl.domain.accounts import get_account_row

# What each check is recorded as; the gate's factors are made of these.
METHODS = ("security_answer", "pin", "password", "email_code", "registration_code")
_V = verifications.c


def record_verification(
    connection: Connection,
    *,
    operator: str,
    method: str,
    account_id: int | None,
    window_minutes: int,
    tin: Tin | None = None,
    flow_id: str | None = None,
    now: datetime,
) -> dict[str, datetime]:
    """Record one successful check; when it was made and until when it counts."""
    assert method in METHODS, method
    valid_until = now + timedelta(minutes=window_minutes)
    connection.execute(
        verifications.insert().values(
            account_id=account_id,
            tin=tin.reveal() if tin else None,
            method=method,
            operator=without_line_breaks(operator),
            verified_at=now,
            valid_until=valid_until,
            flow_id=flow_id,
        )
    )
    return {"verified_at": now, "valid_until": valid_until}


def current_methods(
    connection: Connection, account_ids: list[int], *, now: datetime
) -> dict[int, set[str]]:
    """The methods each account is verified by now (one query for all of them)."""
    found: dict[int, set[str]] = {account_id: set() for account_id in account_ids}
    rows = connection.execute(
        sa.select(_V.account_id, _V.method)
        .where(_V.account_id.in_(account_ids), _V.valid_until > now)
        .distinct()
    ).all()
    for account_id, method in rows:
        found[account_id].add(method)
    return found


def current_verifications(
    connection: Connection, *, username: str, now: datetime | None = None
) -> list[dict[str, Any]]:
    """``accounts verified``: the account's current verifications, the latest of each method,
    in the order they were made."""
    now = now or utc_now()
    account = get_account_row(connection, username)
    latest = (
        sa.select(_V.method, sa.func.max(_V.id).label("id"))
        .where(_V.account_id == account["id"], _V.valid_until > now)
        .group_by(_V.method)
        .subquery()
    )
    rows = (
        connection.execute(
            sa.select(verifications)
            .join(latest, latest.c.id == _V.id)
            .order_by(_V.verified_at, _V.id)
        )
        .mappings()
        .all()
    )
    return [
        {
            "username": account["username"],
            "method": row["method"],
            "verified_at": row["verified_at"],
            "valid_until": row["valid_until"],
            "operator": row["operator"],
            "flow_id": row["flow_id"],
        }
        for row in rows
    ]
