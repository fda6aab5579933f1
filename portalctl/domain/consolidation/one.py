"""``consolidate one``: one merge, through the same planner and chunk as a file of them, so
every rule of SPEC section 1 is checked once, the same way; and, unlike a file, only for a
verified caller (``verification_gate``).

A dry run is not gated: it writes nothing, and a rep may look before verifying. It says what
the merge would still need (``not_verified``), so the guided flow and a rep both see it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from portalctl.core.clock import utc_now
from portalctl.core.tin import Tin
from portalctl.domain.consolidation.apply import apply_chunk
from portalctl.domain.consolidation.chunk import Chunk
from portalctl.domain.consolidation.plan import (
    STAGE,
    create_stage,
    drop_stage,
    plan_staged,
    stage_pairs,
)
from portalctl.domain.consolidation.rules import refusal_for
from portalctl.domain.verification_gate import (
    EMAIL_CODE,
    KNOWLEDGE,
    PASSWORD,
    Requirement,
    missing_verifications,
    require_verified,
)


def consolidate_one(
    connection: Connection,
    *,
    operator: str,
    primary: str,
    secondary: str,
    tin: Tin | None = None,
    dry_run: bool = False,
    notify: bool = False,
    override_reason: str | None = None,
    flow_id: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Merge one account into another; what moved (or, with ``dry_run``, would move). The
    secondary must be verified by a security answer or PIN and an email code, the primary by
    its password, or ``override_reason`` given (exit 4 otherwise, nothing written); a merge
    already made needs neither."""
    now = now or utc_now()
    create_stage(connection, keep_after_commit=False)
    stage_pairs(connection, [(primary.strip(), secondary.strip(), tin.reveal() if tin else None)])
    plan_staged(connection, source="consolidate one")
    row = _refuse_unless_applicable(connection)
    links = [
        {"tin": Tin(tin_), "role": role}
        for tin_, role in connection.execute(
            sa.text("SELECT tin, role FROM account_tins WHERE account_id = :id ORDER BY tin"),
            {"id": row["secondary_id"]},
        ).all()
    ]
    not_verified: list[str] = []
    if row["outcome"] is None:
        requirements = _verified_caller(row)
        not_verified = missing_verifications(connection, requirements, now=now)
        if not dry_run:
            gate = require_verified(
                connection, requirements, override_reason=override_reason, now=now
            )
            chunk = Chunk(
                connection,
                row["primary_id"],
                row["primary_id"],
                None,
                operator,
                now,
                flow_id=flow_id,
                audit_details=gate,
            )
            apply_chunk(chunk, notify=notify)
            row = _refuse_unless_applicable(connection)
    drop_stage(connection)
    outcome = row["outcome"] or ("would_merge" if dry_run else "merged")
    return {
        "primary": row["primary_username"],
        "secondary": row["secondary_username"],
        "outcome": outcome,
        "detail": row["detail"],
        "dry_run": dry_run,
        "links_moved": links if outcome != "already_merged" else [],
        "not_verified": not_verified,
    }


def _verified_caller(row: RowMapping) -> list[Requirement]:
    return [
        Requirement(
            "secondary", row["secondary_id"], row["secondary_username"], (KNOWLEDGE, EMAIL_CODE)
        ),
        Requirement("primary", row["primary_id"], row["primary_username"], (PASSWORD,)),
    ]


def _refuse_unless_applicable(connection: Connection) -> RowMapping:
    row = connection.execute(sa.text(f"SELECT * FROM {STAGE}")).mappings().one()
    if row["outcome"] in ("invalid", "refused"):
        raise refusal_for(row["outcome"], row["rule"], row["detail"])
    return row
