"""The batch forms of a rep's single changes: ``accounts disable|enable|unlock --csv`` and
``tins link --csv`` (manual links, each with its reason). The file is read and checked whole,
then applied by a fixed set of statements in one transaction: every row or none, unless
``skip_invalid`` applies the good rows (``PartlyApplied``, exit 7, names how many were not).
The rules are the single commands' (``STATUS_CHANGES``, the field rules, a link's)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from portalctl.core.clock import utc_now
from portalctl.core.csvio import CsvErrors, open_csv_text, read_csv
from portalctl.core.errors import InvalidInput, PartlyApplied, PortalError
from portalctl.core.fields import clean_reason
from portalctl.core.schema import UTCDateTime
from portalctl.core.staging import create_staging_table, load_rows
from portalctl.core.tin import masked_tin_sql, parse_tin_digits
from portalctl.domain.account_changes import STATUS_CHANGES
from portalctl.domain.validation import clean_role

STAGE = "batch_changes"
_COLUMNS = [
    ("line", "INTEGER"),
    ("username_key", "VARCHAR(254)"),
    ("reason", "VARCHAR(500)"),
    ("tin", "CHAR(9)"),
    ("role", "VARCHAR(16)"),
    ("problem", "VARCHAR(500)"),
]


@dataclass(frozen=True)
class BatchOptions:
    skip_invalid: bool = False
    reason: str | None = None  # for every row without a reason of its own


@dataclass
class BatchFile:
    """A batch file read and checked row by row (nothing staged yet): what a confirmation can
    tell before the change is made."""

    source: str
    rows: list[tuple[Any, ...]]
    errors: CsvErrors

    @property
    def applicable(self) -> int:
        return sum(1 for row in self.rows if row[-1] is None)


def read_batch_file(path: str | Path, options: BatchOptions, *, link: bool) -> BatchFile:
    """Read the whole file; rows breaking a rule of their own are marked with the problem."""
    stream, source = open_csv_text(path)
    errors = CsvErrors(source)
    required = ("username", "tin") if link else ("username",)
    optional = ("role", "reason") if link else ("reason",)
    rows: list[tuple[Any, ...]] = []
    seen: dict[tuple[str, str | None], int] = {}
    with stream:
        for record in read_csv(stream, source, required=required, optional=optional):
            key = record.values.get("username", "").lower()
            try:
                if record.problem:
                    raise InvalidInput(record.problem)
                reason = clean_reason(record.values.get("reason") or options.reason)
                tin = parse_tin_digits(record.values["tin"]) if link else None
                role = clean_role(record.values.get("role") or "user") if link else None
                if (key, tin) in seen:
                    raise InvalidInput(
                        f"the same {'link' if link else 'account'} as line {seen[(key, tin)]}"
                    )
                seen[(key, tin)] = record.line
                rows.append((record.line, key, reason, tin, role, None))
            except PortalError as error:
                errors.add(record.line, error.message)
                rows.append((record.line, key, None, None, None, error.message[:500]))
    if not rows:
        raise InvalidInput(f"{source}: no rows")
    return BatchFile(source, rows, errors)


def change_statuses_from_csv(
    connection: Connection,
    batch: BatchFile,
    *,
    operator: str,
    action: str,
    options: BatchOptions = BatchOptions(),
    now: datetime | None = None,
) -> dict[str, Any]:
    """unlock, disable or enable every account the file names (``username``, optional
    ``reason``)."""
    now = now or utc_now()
    applies_to, new_status = STATUS_CHANGES[action]
    source, errors = _stage(connection, batch)
    statuses = ", ".join(f"'{status}'" for status in applies_to)
    _mark(
        connection,
        errors,
        "'no account'",
        f"""NOT EXISTS (SELECT 1 FROM accounts a
              WHERE lower(a.username) = {STAGE}.username_key)""",
    )
    _mark(
        connection,
        errors,
        f"'is ' || a.status || '; cannot {action} it'",
        f"""EXISTS (
              SELECT 1 FROM accounts a WHERE lower(a.username) = {STAGE}.username_key
              AND a.status NOT IN ({statuses}))""",
        account_in_detail=True,
    )
    _finish_checks(errors, options)
    json = "jsonb_build_object" if connection.dialect.name == "postgresql" else "json_object"
    run = _runner(connection, now=now, operator=operator, new_status=new_status)
    run(f"""INSERT INTO audit_log (at, operator, action, target, account, details)
            SELECT :now, :operator, 'account.{action}', 'account:' || a.username, a.username,
                   {json}('reason', s.reason, 'from', a.status, 'to', CAST(:new_status AS TEXT),
                          'batch', 'csv')
            FROM {STAGE} s JOIN accounts a ON lower(a.username) = s.username_key
            WHERE s.problem IS NULL""")
    changed = run(f"""UPDATE accounts SET status = :new_status, failed_verifications = 0,
                             updated_at = :now
                      WHERE lower(username) IN (SELECT username_key FROM {STAGE}
                                                WHERE problem IS NULL)""").rowcount
    return _summary(source, errors, action=action, changed=changed)


def link_tins_from_csv(
    connection: Connection,
    batch: BatchFile,
    *,
    operator: str,
    options: BatchOptions = BatchOptions(),
    now: datetime | None = None,
) -> dict[str, Any]:
    """Manual links (``username,tin``, optional ``role`` (default user) and ``reason``), with
    the single ``tins link --reason``'s rules: an active account, a known organisation, a TIN
    the account does not hold yet."""
    now = now or utc_now()
    source, errors = _stage(connection, batch)
    account = f"accounts a WHERE lower(a.username) = {STAGE}.username_key"
    _mark(connection, errors, "'no account'", f"NOT EXISTS (SELECT 1 FROM {account})")
    _mark(
        connection,
        errors,
        "'account ' || a.username || ' is ' || a.status",
        f"""EXISTS (
              SELECT 1 FROM {account} AND a.status <> 'active')""",
        account_in_detail=True,
    )
    _mark(
        connection,
        errors,
        f"'no organisation with TIN ' || {masked_tin_sql(STAGE + '.tin')}",
        f"NOT EXISTS (SELECT 1 FROM organisations o WHERE o.tin = {STAGE}.tin)",
    )
    _mark(
        connection,
        errors,
        f"'already holds TIN ' || {masked_tin_sql(STAGE + '.tin')}",
        f"""EXISTS (SELECT 1 FROM account_tins t JOIN accounts a ON a.id = t.account_id
              WHERE lower(a.username) = {STAGE}.username_key AND t.tin = {STAGE}.tin)""",
    )
    _finish_checks(errors, options)
    json = "jsonb_build_object" if connection.dialect.name == "postgresql" else "json_object"
    run = _runner(connection, now=now, operator=operator)
    run(f"""INSERT INTO audit_log (at, operator, action, target, account, tin, details)
            SELECT :now, :operator, 'tin.link', 'account:' || a.username, a.username, s.tin,
                   {json}('role', s.role, 'via', 'manual', 'reason', s.reason, 'batch', 'csv')
            FROM {STAGE} s JOIN accounts a ON lower(a.username) = s.username_key
            WHERE s.problem IS NULL""")
    linked = run(f"""INSERT INTO account_tins (account_id, tin, role, linked_at)
                     SELECT a.id, s.tin, s.role, :now
                     FROM {STAGE} s JOIN accounts a ON lower(a.username) = s.username_key
                     WHERE s.problem IS NULL ORDER BY a.id, s.tin""").rowcount
    return _summary(source, errors, action="link", changed=linked)


def _stage(connection: Connection, batch: BatchFile) -> tuple[str, CsvErrors]:
    create_staging_table(connection, STAGE, _COLUMNS)
    load_rows(connection, STAGE, [name for name, _ in _COLUMNS], batch.rows)
    return batch.source, batch.errors


def _mark(
    connection: Connection,
    errors: CsvErrors,
    detail: str,
    condition: str,
    *,
    account_in_detail: bool = False,
) -> None:
    """Mark the rows (not yet marked) that break a rule; ``detail`` is the reason's SQL
    (over the row's account ``a`` with ``account_in_detail``)."""
    detail_sql = (
        f"(SELECT {detail} FROM accounts a WHERE lower(a.username) = {STAGE}.username_key)"
        if account_in_detail
        else detail
    )
    for line, problem in connection.exec_driver_sql(
        f"UPDATE {STAGE} SET problem = {detail_sql} WHERE problem IS NULL AND {condition} "
        "RETURNING line, problem"
    ).all():
        errors.add(line, problem)


def _finish_checks(errors: CsvErrors, options: BatchOptions) -> None:
    if not options.skip_invalid:
        errors.raise_if_any()


def _runner(connection: Connection, **params: Any) -> Any:
    def run(sql: str) -> Any:
        statement = sa.text(sql)
        if ":now" in sql:
            statement = statement.bindparams(sa.bindparam("now", type_=UTCDateTime))
        return connection.execute(statement, params)

    return run


def _summary(source: str, errors: CsvErrors, *, action: str, changed: int) -> dict[str, Any]:
    summary = {"file": source, "action": action, "changed": changed, "invalid": errors.count}
    if errors.count:
        raise PartlyApplied(f"{errors.count} row(s) not applied", record=summary)
    return summary
