"""The append-only audit log: one record for every change and every ``--reveal``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from portalctl.core.clock import utc_now
from portalctl.core.render import to_plain
from portalctl.core.schema import accounts, audit_log, consolidations
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
    flow_id: str | None = None,
) -> None:
    """Write one audit record in the caller's transaction; TINs in ``details`` are masked.
    ``flow_id``: the guided flow (``portalctl flow ...``) the record belongs to; the domain
    functions a flow calls take it as an argument and pass it down, so no record depends on
    state that is not in its call."""
    connection.execute(
        audit_log.insert().values(
            at=now or utc_now(),
            operator=without_line_breaks(operator),
            action=action,
            target=without_line_breaks(target) if target else None,
            account=account,
            tin=tin.reveal() if tin else None,
            details=to_plain(details or {}, reveal=False),
            flow_id=flow_id,
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
    flow_id: str | None = None
    limit: int = 100


def concerning_account(connection: Connection, username: str) -> sa.ColumnElement[bool]:
    """The records of an account: those filed under it, and its own merge, which is filed
    under the primary it was merged into (``account.consolidate``, target ``account:S``). Both
    are found through the index on ``lower(account)``."""
    key = username.strip().lower()
    secondary, primary = accounts.alias("secondary"), accounts.alias("primary")
    merged_into = (
        connection.execute(
            sa.select(sa.func.lower(primary.c.username))
            .select_from(consolidations)
            .join(secondary, secondary.c.id == consolidations.c.secondary_id)
            .join(primary, primary.c.id == consolidations.c.primary_id)
            .where(sa.func.lower(secondary.c.username) == key)
        )
        .scalars()
        .all()
    )
    account = sa.func.lower(audit_log.c.account)
    if not merged_into:
        return account == key
    return sa.and_(
        account.in_([key, *merged_into]),
        sa.or_(account == key, sa.func.lower(audit_log.c.target) == f"account:{key}"),
    )


def list_audit(connection: Connection, audit_filter: AuditFilter) -> Iterator[dict[str, Any]]:
    """Newest first, filters combined with AND; one flow's records (``flow_id``) in the order
    they were written, so they read as the call went. Read as it is consumed (a server-side
    cursor on PostgreSQL), so a long listing takes constant memory."""
    f = audit_filter
    order = (audit_log.c.at.asc(), audit_log.c.id.asc())
    if not f.flow_id:
        order = (audit_log.c.at.desc(), audit_log.c.id.desc())
    query = sa.select(audit_log).order_by(*order)
    if f.since:
        query = query.where(audit_log.c.at >= f.since)
    if f.until:
        query = query.where(audit_log.c.at < f.until)
    if f.operator:
        query = query.where(audit_log.c.operator == f.operator)
    if f.action:
        query = query.where(audit_log.c.action == f.action)
    if f.account:
        query = query.where(concerning_account(connection, f.account))
    if f.tin:
        query = query.where(audit_log.c.tin == f.tin.reveal())
    if f.flow_id:
        query = query.where(audit_log.c.flow_id == f.flow_id.strip())
    rows = connection.execute(query.limit(f.limit), execution_options={"yield_per": 1000})
    for row in rows.mappings():
        yield {
            "id": row["id"],
            "at": row["at"],
            "operator": row["operator"],
            "action": row["action"],
            "target": row["target"],
            "tin": Tin(row["tin"]) if row["tin"] else None,
            "details": row["details"],
            "flow_id": row["flow_id"],
        }
