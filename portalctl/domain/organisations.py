"""Provider organisations: one row per TIN, made the first time a TIN is linked or coded."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from portalctl.core.errors import NotFound
from portalctl.core.fields import clean_text
from portalctl.core.schema import UTCDateTime, organisations
from portalctl.core.tin import Tin


def get_organisation(connection: Connection, tin: Tin) -> RowMapping:
    row = (
        connection.execute(sa.select(organisations).where(organisations.c.tin == tin.reveal()))
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"no organisation with TIN {tin}")
    return row


def ensure_organisation(
    connection: Connection, tin: Tin, *, now: datetime, name: str | None = None
) -> bool:
    """Create the organisation for a TIN if it is new; True when it was created. Two
    transactions creating the same one at once both succeed (the second creates nothing)."""
    created = connection.execute(
        sa.text(
            "INSERT INTO organisations (tin, name, failed_code_attempts, created_at) "
            "VALUES (:tin, :name, 0, :now) ON CONFLICT (tin) DO NOTHING"
        ).bindparams(sa.bindparam("now", type_=UTCDateTime)),
        {
            "tin": tin.reveal(),
            "name": clean_text(name, "organisation name", required=False),
            "now": now,
        },
    ).rowcount
    return created == 1
