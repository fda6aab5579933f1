"""Whether the audit log's append-only protection is in place: the triggers of migration 0002
present and enabled. ``db status`` reports it; a command refuses to write without it (exit 6),
since every change it made would go into a log anyone could rewrite."""

from __future__ import annotations

from sqlalchemy.engine import Connection

from portalctl.core.errors import DatabaseUnavailable

EXPECTED_TRIGGERS = {
    "sqlite": ("audit_log_no_update", "audit_log_no_delete"),
    "postgresql": ("audit_log_no_update_delete", "audit_log_no_truncate"),
}


def audit_protection_problems(connection: Connection) -> list[str]:
    """What differs from the protection the migrations created; empty when it is intact."""
    dialect = connection.dialect.name
    if dialect == "postgresql":
        found = dict(
            connection.exec_driver_sql(
                "SELECT tgname, tgenabled FROM pg_trigger "
                "WHERE tgrelid = 'audit_log'::regclass AND NOT tgisinternal"
            ).all()
        )
    else:
        found = {
            name: "O"
            for (name,) in connection.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_log'"
            ).all()
        }
    problems = []
    for name in EXPECTED_TRIGGERS[dialect]:
        if name not in found:
            problems.append(f"trigger {name} is missing")
        elif found[name] == "D":
            problems.append(f"trigger {name} is disabled")
    return problems


def refuse_unprotected_audit(connection: Connection) -> None:
    problems = audit_protection_problems(connection)
    if problems:
        raise DatabaseUnavailable(
            "the audit log is not protected (" + "; ".join(problems) + "): refusing to write; "
            "an administrator must restore it (`portalctl db status` shows what differs)"
        )
