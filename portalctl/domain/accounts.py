"""The account directory as reps read it: one account by username, the SPEC's account records,
searches, and the page ``accounts show`` prints."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from portalctl.core.errors import InvalidInput, NotFound
from portalctl.core.fields import clean_search_term
from portalctl.core.schema import account_tins, accounts, audit_log
from portalctl.core.text import quoted
from portalctl.core.tin import Tin
from portalctl.domain.audit import concerning_account, record_audit
from portalctl.domain.validation import ACCOUNT_STATUSES, clean_status

_CHUNK = 500


@dataclass(frozen=True)
class AccountQuery:
    """Filters for ``find``; every given filter must match."""

    username: str | None = None
    email: str | None = None
    name: str | None = None
    tin: Tin | None = None
    tin_last4: str | None = None
    status: str | None = None
    exact: bool = False
    limit: int = 50

    def is_empty(self) -> bool:
        filters = [self.username, self.email, self.name, self.tin, self.tin_last4, self.status]
        return not any(filters)


def get_account_row(
    connection: Connection, username: str, *, for_update: bool = False
) -> RowMapping:
    """The account row by username (case-insensitive), or NotFound."""
    key = username.strip().lower()
    query = sa.select(accounts).where(sa.func.lower(accounts.c.username) == key)
    if for_update and connection.dialect.name == "postgresql":
        query = query.with_for_update()
    row = connection.execute(query).mappings().first()
    if row is None:
        raise NotFound(f"no account with username {quoted(username.strip())}")
    return row


def account_records(connection: Connection, rows: Sequence[RowMapping]) -> list[dict[str, Any]]:
    """The SPEC's account objects for account rows, with their links, in two queries per chunk."""
    ids = [row["id"] for row in rows]
    links: dict[int, list[dict[str, Any]]] = {account_id: [] for account_id in ids}
    merged_ids = sorted({row["merged_into"] for row in rows if row["merged_into"] is not None})
    usernames: dict[int, str] = {}
    for start in range(0, len(ids), _CHUNK):
        for link in connection.execute(
            sa.select(account_tins.c.account_id, account_tins.c.tin, account_tins.c.role)
            .where(account_tins.c.account_id.in_(ids[start : start + _CHUNK]))
            .order_by(account_tins.c.account_id, account_tins.c.tin)
        ):
            links[link.account_id].append({"tin": Tin(link.tin), "role": link.role})
    for start in range(0, len(merged_ids), _CHUNK):
        for target in connection.execute(
            sa.select(accounts.c.id, accounts.c.username).where(
                accounts.c.id.in_(merged_ids[start : start + _CHUNK])
            )
        ):
            usernames[target.id] = target.username
    return [
        {
            "username": row["username"],
            "email": row["email"],
            "full_name": row["full_name"],
            "status": row["status"],
            "merged_into": usernames.get(row["merged_into"]) if row["merged_into"] else None,
            "tins": links[row["id"]],
        }
        for row in rows
    ]


def account_record(connection: Connection, username: str) -> dict[str, Any]:
    """One account's record, as every command that changes an account prints it."""
    return account_records(connection, [get_account_row(connection, username)])[0]


def find_accounts(connection: Connection, query: AccountQuery) -> Iterator[dict[str, Any]]:
    """Accounts matching every filter: case-insensitive substrings, or exact with ``exact``.
    The filters are checked at once; the accounts are read as they are consumed, a chunk of
    accounts (and their links) at a time."""
    if query.is_empty():
        raise InvalidInput(
            "give at least one filter: --username, --email, --name, --tin, --tin-last4 or --status"
        )
    statement = sa.select(accounts)

    def match(column: sa.ColumnElement[str], value: str, label: str) -> sa.ColumnElement[bool]:
        term = clean_search_term(value, label).lower()
        if query.exact:
            return sa.func.lower(column) == term
        escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return sa.func.lower(column).like(f"%{escaped}%", escape="\\")

    if query.username:
        statement = statement.where(match(accounts.c.username, query.username, "username"))
    if query.email:
        statement = statement.where(match(accounts.c.email, query.email, "email"))
    if query.name:
        statement = statement.where(match(accounts.c.full_name, query.name, "name"))
    if query.status:
        status = clean_status(query.status, allowed=ACCOUNT_STATUSES)
        statement = statement.where(accounts.c.status == status)
    if query.tin:
        statement = statement.where(
            accounts.c.id.in_(
                sa.select(account_tins.c.account_id).where(account_tins.c.tin == query.tin.reveal())
            )
        )
    if query.tin_last4:
        statement = statement.where(
            accounts.c.id.in_(
                sa.select(account_tins.c.account_id).where(
                    sa.func.substr(account_tins.c.tin, 6, 4) == clean_tin_last4(query.tin_last4)
                )
            )
        )
    ordered = statement.order_by(sa.func.lower(accounts.c.username)).limit(query.limit)
    return _records_as_read(connection, ordered)


def _records_as_read(connection: Connection, statement: sa.Select[Any]) -> Iterator[dict[str, Any]]:
    result = connection.execute(statement, execution_options={"yield_per": _CHUNK})
    for rows in result.mappings().partitions(_CHUNK):
        yield from account_records(connection, rows)


def clean_tin_last4(value: str) -> str:
    """The last four digits of a TIN, the only part of one a rep ever sees."""
    digits = value.strip()
    if len(digits) != 4 or not (digits.isascii() and digits.isdigit()):
        raise InvalidInput(f"invalid --tin-last4 {quoted(digits)}: expected four digits")
    return digits


def show_account(connection: Connection, username: str, *, audit_limit: int = 10) -> dict[str, Any]:
    """Everything a rep needs on one screen: status, links, merged-in accounts, recent audit."""
    row = get_account_row(connection, username)
    record = account_records(connection, [row])[0]
    merged_in = (
        connection.execute(
            sa.select(accounts.c.username)
            .where(accounts.c.merged_into == row["id"])
            .order_by(accounts.c.username)
        )
        .scalars()
        .all()
    )
    recent = (
        connection.execute(
            sa.select(audit_log.c.at, audit_log.c.operator, audit_log.c.action)
            .where(concerning_account(connection, row["username"]))
            .order_by(audit_log.c.at.desc(), audit_log.c.id.desc())
            .limit(audit_limit)
        )
        .mappings()
        .all()
    )
    record.update(
        {
            "email_verified_at": row["email_verified_at"],
            "security_question": row["security_question"],
            "has_password": row["password_hash"] is not None,
            "has_pin": row["pin_hash"] is not None,
            "failed_verifications": row["failed_verifications"],
            "created_at": row["created_at"],
            "updated_at": row["updated_at"],
            "merged_accounts": list(merged_in),
            "recent_audit": [dict(entry) for entry in recent],
        }
    )
    return record


REVEAL_LISTED = 100  # names a reveal record lists; beyond that it counts them


def record_reveal(connection: Connection, *, operator: str, command: str, shown: Any) -> None:
    """``--reveal`` shows full TINs: that itself is audited, naming (masked) the TINs and the
    accounts of what was shown."""
    tins: dict[str, None] = {}
    usernames: dict[str, None] = {}

    def walk(value: Any) -> None:
        if isinstance(value, Tin):
            tins.setdefault(value.masked, None)
        elif isinstance(value, dict):
            if isinstance(value.get("username"), str):
                usernames.setdefault(value["username"], None)
            for item in value.values():
                walk(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item)

    walk(shown)
    only_account = next(iter(usernames)) if len(usernames) == 1 else None
    target = f"account:{only_account}" if only_account else command
    if not usernames and len(tins) == 1:
        target = f"tin:{next(iter(tins))}"
    record_audit(
        connection,
        operator=operator,
        action="tin.reveal",
        target=target,
        account=only_account,
        details={
            "command": command,
            "tins": list(tins)[:REVEAL_LISTED],
            "tin_count": len(tins),
            "accounts": list(usernames)[:REVEAL_LISTED],
            "account_count": len(usernames),
        },
    )
