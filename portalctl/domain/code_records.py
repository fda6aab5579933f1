"""Registration codes as operators read them: the derived ``expired`` status, one code's
record, and listings. (The codes themselves are never stored: see ``codes``.)"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from portalctl.core.clock import utc_now
from portalctl.core.errors import InvalidInput, NotFound
from portalctl.core.fields import refuse_impossible_id
from portalctl.core.schema import accounts, registration_codes
from portalctl.core.text import quoted
from portalctl.core.tin import Tin

CODE_STATUSES = ("active", "used", "revoked", "locked", "expired")
_C = registration_codes.c


def shown_code_status(status: str, expires_at: datetime, now: datetime) -> str:
    """``expired`` is derived from the clock, never stored: an active code past its expiry."""
    return "expired" if status == "active" and expires_at <= now else status


def code_record(row: Row[Any], now: datetime) -> dict[str, Any]:
    return {
        "id": row.id,
        "tin": Tin(row.tin),
        "status": shown_code_status(row.status, row.expires_at, now),
        "admin_name": row.admin_name,
        "admin_email": row.admin_email,
        "provider_name": row.provider_name,
        "issued_by": row.issued_by,
        "issued_at": row.issued_at,
        "expires_at": row.expires_at,
        "used_at": row.used_at,
        "used_by": row.used_by_username,
        "revoked_at": row.revoked_at,
        "revoke_reason": row.revoke_reason,
        "replaces_id": row.replaces_id,
    }


def _with_user() -> sa.Select[Any]:

    return sa.select(registration_codes, accounts.c.username.label("used_by_username")).join(
        accounts, accounts.c.id == _C.used_by, isouter=True
    )


def show_registration_code(
    connection: Connection, *, code_id: int, now: datetime | None = None
) -> dict[str, Any]:
    refuse_impossible_id(code_id, "registration code")
    row = connection.execute(_with_user().where(_C.id == code_id)).first()
    if row is None:
        raise NotFound(f"no registration code {code_id}")
    return code_record(row, now or utc_now())


def list_registration_codes(
    connection: Connection,
    *,
    tin: Tin | None = None,
    status: str | None = None,
    email: str | None = None,
    limit: int = 100,
    now: datetime | None = None,
) -> Iterator[dict[str, Any]]:
    """Codes newest first, read as they are consumed; ``status`` may be ``expired`` (active
    but past its expiry)."""
    now = now or utc_now()
    if status is not None and status not in CODE_STATUSES:
        raise InvalidInput(f"unknown status {quoted(status)} (one of {', '.join(CODE_STATUSES)})")
    query = _with_user().order_by(_C.id.desc()).limit(limit)
    if tin is not None:
        query = query.where(_C.tin == tin.reveal())
    if email:
        query = query.where(sa.func.lower(_C.admin_email) == email.strip().lower())
    if status == "expired":
        query = query.where(_C.status == "active", _C.expires_at <= now)
    elif status == "active":
        query = query.where(_C.status == "active", _C.expires_at > now)
    elif status:
        query = query.where(_C.status == status)
    rows = connection.execute(query, execution_options={"yield_per": 1000})
    return (code_record(row, now) for row in rows)
