"""``audit`` filters as typed on the command line."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Connection

from portalctl.core.tin import Tin
from portalctl.domain.audit import AuditFilter, list_audit


def list_audit_matching(
    connection: Connection,
    *,
    since: datetime | None,
    until: datetime | None,
    tin: str | None,
    **filters: Any,
) -> list[dict[str, Any]]:
    """Naive times are read as UTC, as the audit log stores them."""
    return list_audit(
        connection,
        AuditFilter(
            since=_as_utc(since),
            until=_as_utc(until),
            tin=Tin.parse(tin) if tin else None,
            **filters,
        ),
    )


def _as_utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
