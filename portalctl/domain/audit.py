"""The append-only audit log: one record for every change and every ``--reveal``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from portalctl.core.clock import utc_now
from portalctl.core.render import to_plain
from portalctl.core.schema import audit_log
from portalctl.core.text import without_line_breaks
from portalctl.core.tin import Tin


def record_audit(
    connection: Connection,
    *,
    operator: str,
    action: str,
    target: str | None,
    account: str | None = None,
    tin: Tin | None = None,
    details: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> None:
    """Write one audit record in the caller's transaction; TINs in ``details`` are masked."""
    connection.execute(
        audit_log.insert().values(
            at=now or utc_now(),
            operator=without_line_breaks(operator),
            action=action,
            target=without_line_breaks(target) if target else None,
            account=account,
            tin=tin.reveal() if tin else None,
            details=to_plain(details or {}, reveal=False),
        )
    )


@dataclass(frozen=True)
class AuditFilter:
    since: datetime | None = None
    until: datetime | None = None
    operator: str | None = None
    action: str | None = None
    account: str | None = None
    tin: Tin | None = None
    limit: int = 100


def list_audit(connection: Connection, audit_filter: AuditFilter) -> list[dict[str, Any]]:
    """Newest first, filters combined with AND."""
    query = sa.select(audit_log).order_by(audit_log.c.at.desc(), audit_log.c.id.desc())
    f = audit_filter
    if f.since:
        query = query.where(audit_log.c.at >= f.since)
    if f.until:
        query = query.where(audit_log.c.at < f.until)
    if f.operator:
        query = query.where(audit_log.c.operator == f.operator)
    if f.action:
        query = query.where(audit_log.c.action == f.action)
    if f.account:
        query = query.where(sa.func.lower(audit_log.c.account) == f.account.lower())
    if f.tin:
        query = query.where(audit_log.c.tin == f.tin.reveal())
    rows = connection.execute(query.limit(f.limit)).mappings().all()
    return [
        {
            "id": row["id"],
            "at": row["at"],
            "operator": row["operator"],
            "action": row["action"],
            "target": row["target"],
            "tin": Tin(row["tin"]) if row["tin"] else None,
            "details": row["details"],
        }
        for row in rows
    ]
