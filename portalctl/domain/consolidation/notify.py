"""``--notify``: one ``accounts_consolidated`` email to each surviving account of a chunk,
queued in the chunk's transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from portalctl.domain.consolidation.plan import STAGE
from portalctl.domain.outbox import queue_email


def queue_consolidation_emails(connection: Connection, *, lo: int, hi: int, now: datetime) -> int:
    """Queue the emails of the merges of primaries ``lo``..``hi``; how many were queued."""
    rows = (
        connection.execute(
            sa.text(f"""
            SELECT p.id, p.username, p.email, p.full_name, s.secondary_username AS secondary
            FROM {STAGE} s JOIN accounts p ON p.id = s.primary_id
            WHERE s.primary_id BETWEEN :lo AND :hi AND s.outcome IS NULL
            ORDER BY p.id, s.line"""),
            {"lo": lo, "hi": hi},
        )
        .mappings()
        .all()
    )
    by_primary: dict[int, list[Any]] = {}
    for row in rows:
        by_primary.setdefault(row["id"], []).append(row)
    for account_id, merged in by_primary.items():
        first = merged[0]
        subject, body = consolidation_email(
            first["full_name"], first["username"], [row["secondary"] for row in merged]
        )
        queue_email(
            connection,
            kind="accounts_consolidated",
            recipient=first["email"],
            recipient_name=first["full_name"],
            subject=subject,
            body=body,
            account_id=account_id,
            now=now,
        )
    return len(by_primary)


def consolidation_email(full_name: str, username: str, merged: list[str]) -> tuple[str, str]:
    """Subject and body telling the surviving account's owner what was merged into it."""
    listing = "\n".join(f"  - {name}" for name in merged)
    body = (
        f"Hello {full_name},\n\n"
        f"Your provider portal accounts have been consolidated. From now on, sign in as\n"
        f"{username}; it holds the Tax IDs and roles of these accounts, which can no longer\n"
        f"be used:\n\n{listing}\n\n"
        "If you did not ask for this, please call Provider Services.\n\n"
        "To maintain HIPAA compliance, please do not share your username or password with "
        "anyone.\n"
    )
    return "Your provider portal accounts have been consolidated", body
