"""Creating, migrating and describing the database (``db init`` and ``db status``)."""

from __future__ import annotations

import secrets
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from portalctl.core.audit_protection import audit_protection_problems
from portalctl.core.config import Settings
from portalctl.core.database import (
    create_private_sqlite_file,
    masked_url,
    translate_database_errors,
)
from portalctl.core.migrations import apply_pending, migration_state
from portalctl.core.schema import DATA_TABLES


def initialise_database(
    engine: Engine, *, now: datetime, settings: Settings, env_file: Path
) -> dict[str, Any]:
    """Apply pending migrations; report what was applied and what already was, and the secret
    key: an embedded (SQLite) database gets a random one in ``env_file`` when none is set; a
    server database is told how to make one (every process must share it, so it is not
    made in one place)."""
    create_private_sqlite_file(engine.url)
    with translate_database_errors(engine.url):
        applied = apply_pending(engine, now=now)
        with engine.connect() as connection:
            state = migration_state(connection)
    key = "set"
    if not settings.get("PORTALCTL_SECRET_KEY"):
        if engine.dialect.name == "sqlite" and ensure_secret_key(env_file):
            key = f"created PORTALCTL_SECRET_KEY in {env_file} (mode 600): keep that file private"
        else:
            key = (
                "PORTALCTL_SECRET_KEY is not set: make one with `portalctl secret-key` and give "
                "every portalctl process the same one (the variable, or a file named by "
                "PORTALCTL_SECRET_KEY_FILE)"
            )
    return {
        "backend": engine.dialect.name,
        "database": masked_url(engine.url),
        "applied_now": [m.file_name for m in applied],
        "applied_total": len(state.applied),
        "pending": [m.file_name for m in state.pending],
        "secret_key": key,
    }


def ensure_secret_key(env_file: Path) -> bool:
    """Write a random PORTALCTL_SECRET_KEY into ``env_file``; True if one was created."""
    from dotenv import dotenv_values

    if env_file.exists() and dotenv_values(env_file).get("PORTALCTL_SECRET_KEY"):
        return False
    existing = env_file.read_text(encoding="utf-8") if env_file.exists() else ""
    if existing and not existing.endswith("\n"):
        existing += "\n"
    env_file.write_text(
        existing + f"PORTALCTL_SECRET_KEY={secrets.token_urlsafe(32)}\n", encoding="utf-8"
    )
    env_file.chmod(0o600)
    return True


def database_status(engine: Engine) -> dict[str, Any]:
    """Backend, masked URL, applied and pending migrations, and row counts."""
    with translate_database_errors(engine.url), engine.connect() as connection:
        state = migration_state(connection)
        tables = set(sa.inspect(connection).get_table_names())
        protection = audit_protection_problems(connection) if "audit_log" in tables else []
        counts = {}
        for table in DATA_TABLES:
            if table.name in tables:
                counts[table.name] = connection.execute(
                    sa.select(sa.func.count()).select_from(table)
                ).scalar_one()
    return {
        "backend": engine.dialect.name,
        "database": masked_url(engine.url),
        "applied": [
            f"{row['version']}_{row['name']} ({row['applied_at']:%Y-%m-%d %H:%M}Z)"
            for row in state.applied
        ],
        "pending": [m.file_name for m in state.pending],
        "edited": state.edited,
        "up_to_date": bool(state.applied) and not state.pending and not state.edited,
        "audit_log_protected": not protection,
        "audit_log_problems": protection,
        "row_counts": counts,
    }
