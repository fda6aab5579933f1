"""The account directory: create, find, look up, show, verify, and change an account's status."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from portalctl.core.clock import utc_now
from portalctl.core.errors import InvalidInput, NotFound, Refused
from portalctl.core.schema import account_tins, accounts, audit_log, organisations
from portalctl.core.secrets import hash_secret, normalise_answer, verify_secret
from portalctl.core.tin import Tin
from portalctl.domain.audit import record_audit
from portalctl.domain.validation import (
    clean_email,
    clean_full_name,
    clean_role,
    clean_status,
    clean_username,
)

_CHUNK = 500


@dataclass(frozen=True)
class AccountQuery:
    """Filters for ``find``; every given filter must match."""

    username: str | None = None
    email: str | None = None
    name: str | None = None
    tin: Tin | None = None
    status: str | None = None
    exact: bool = False
    limit: int = 50

    def is_empty(self) -> bool:
        return not any([self.username, self.email, self.name, self.tin, self.status])


def get_account_row(connection: Connection, username: str, *, for_update: bool = False):
    """The account row by username (case-insensitive), or NotFound."""
    query = sa.select(accounts).where(
        sa.func.lower(accounts.c.username) == username.strip().lower()
    )
    if for_update and connection.dialect.name == "postgresql":
        query = query.with_for_update()
    row = connection.execute(query).mappings().first()
    if row is None:
        raise NotFound(f"no account with username {username.strip()!r}")
    return row


def account_records(connection: Connection, rows: Sequence[Any]) -> list[dict[str, Any]]:
    """The SPEC's account objects for account rows, with their links, in two queries per chunk."""
    ids = [row["id"] for row in rows]
    links: dict[int, list[dict]] = {account_id: [] for account_id in ids}
    merged_ids = {row["merged_into"] for row in rows if row["merged_into"] is not None}
    usernames: dict[int, str] = {}
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        for link in connection.execute(
            sa.select(account_tins.c.account_id, account_tins.c.tin, account_tins.c.role)
            .where(account_tins.c.account_id.in_(chunk))
            .order_by(account_tins.c.account_id, account_tins.c.tin)
        ):
            links[link.account_id].append({"tin": Tin(link.tin), "role": link.role})
    merged_list = list(merged_ids)
    for start in range(0, len(merged_list), _CHUNK):
        for target in connection.execute(
            sa.select(accounts.c.id, accounts.c.username).where(
                accounts.c.id.in_(merged_list[start : start + _CHUNK])
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


def create_account(
    connection: Connection,
    *,
    operator: str,
    username: str,
    email: str,
    full_name: str,
    tins: Iterable[tuple[Tin, str]] = (),
    password: str | None = None,
    security_question: str | None = None,
    security_answer: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Create an active account (and any organisations its TINs need), audited."""
    now = now or utc_now()
    username = clean_username(username)
    email = clean_email(email)
    full_name = clean_full_name(full_name)
    links = [(tin, clean_role(role)) for tin, role in tins]
    if len({tin for tin, _ in links}) != len(links):
        raise InvalidInput("the same TIN is given twice")
    if bool(security_question) != bool(security_answer):
        raise InvalidInput("give both a security question and its answer, or neither")
    if _username_taken(connection, username):
        raise Refused(f"username {username!r} is already taken")
    account_id = connection.execute(
        accounts.insert()
        .values(
            username=username,
            email=email,
            full_name=full_name,
            status="active",
            password_hash=hash_secret(password) if password else None,
            security_question=security_question.strip() if security_question else None,
            security_answer_hash=(
                hash_secret(normalise_answer(security_answer)) if security_answer else None
            ),
            created_at=now,
            updated_at=now,
        )
        .returning(accounts.c.id)
    ).scalar_one()
    for tin, role in links:
        ensure_organisation(connection, tin, now=now)
        connection.execute(
            account_tins.insert().values(
                account_id=account_id, tin=tin.reveal(), role=role, linked_at=now
            )
        )
    record_audit(
        connection,
        operator=operator,
        action="account.create",
        target=f"account:{username}",
        account=username,
        now=now,
        details={"email": email, "tins": [{"tin": t, "role": r} for t, r in links]},
    )
    return account_records(connection, [get_account_row(connection, username)])[0]


def ensure_organisation(
    connection: Connection, tin: Tin, *, now: datetime, name: str | None = None
) -> bool:
    """Create the organisation for a TIN if it is new; True when it was created."""
    exists = connection.execute(
        sa.select(organisations.c.tin).where(organisations.c.tin == tin.reveal())
    ).first()
    if exists:
        return False
    connection.execute(organisations.insert().values(tin=tin.reveal(), name=name, created_at=now))
    return True


def _username_taken(connection: Connection, username: str) -> bool:
    return (
        connection.execute(
            sa.select(accounts.c.id).where(sa.func.lower(accounts.c.username) == username.lower())
        ).first()
        is not None
    )


def find_accounts(connection: Connection, query: AccountQuery) -> list[dict[str, Any]]:
    """Accounts matching every filter: case-insensitive substrings, or exact with ``exact``."""
    if query.is_empty():
        raise InvalidInput(
            "give at least one filter: --username, --email, --name, --tin or --status"
        )
    statement = sa.select(accounts)

    def match(column, value: str):
        value = value.strip().lower()
        if query.exact:
            return sa.func.lower(column) == value
        escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return sa.func.lower(column).like(f"%{escaped}%", escape="\\")

    if query.username:
        statement = statement.where(match(accounts.c.username, query.username))
    if query.email:
        statement = statement.where(match(accounts.c.email, query.email))
    if query.name:
        statement = statement.where(match(accounts.c.full_name, query.name))
    if query.status:
        statement = statement.where(
            accounts.c.status
            == clean_status(query.status, allowed=("active", "locked", "disabled", "merged"))
        )
    if query.tin:
        statement = statement.where(
            accounts.c.id.in_(
                sa.select(account_tins.c.account_id).where(account_tins.c.tin == query.tin.reveal())
            )
        )
    rows = (
        connection.execute(
            statement.order_by(sa.func.lower(accounts.c.username)).limit(query.limit)
        )
        .mappings()
        .all()
    )
    return account_records(connection, rows)


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
            .where(sa.func.lower(audit_log.c.account) == row["username"].lower())
            .order_by(audit_log.c.at.desc(), audit_log.c.id.desc())
            .limit(audit_limit)
        )
        .mappings()
        .all()
    )
    record.update(
        {
            "security_question": row["security_question"],
            "has_password": row["password_hash"] is not None,
            "failed_verifications": row["failed_verifications"],
            "created_at": row["created_at"],
            "updated_at": row["updated_at"],
            "merged_accounts": list(merged_in),
            "recent_audit": [dict(entry) for entry in recent],
        }
    )
    return record


@dataclass(frozen=True)
class VerificationResult:
    username: str
    verified: bool
    method: str
    failed_verifications: int
    status: str


def verify_account(
    connection: Connection,
    *,
    operator: str,
    username: str,
    answer: str | None = None,
    password: str | None = None,
    max_failures: int = 5,
    now: datetime | None = None,
) -> VerificationResult:
    """Check a caller's security answer or password; failures are counted and lock the account."""
    now = now or utc_now()
    if (answer is None) == (password is None):
        raise InvalidInput("give exactly one of a security answer or a password")
    row = get_account_row(connection, username, for_update=True)
    if row["status"] != "active":
        raise Refused(f"account {row['username']!r} is {row['status']}; it cannot be verified")
    if answer is not None:
        if not row["security_answer_hash"]:
            raise Refused(f"account {row['username']!r} has no security question")
        method, ok = (
            "security_answer",
            verify_secret(normalise_answer(answer), row["security_answer_hash"]),
        )
    else:
        if not row["password_hash"]:
            raise Refused(f"account {row['username']!r} has no password")
        method, ok = "password", verify_secret(password, row["password_hash"])
    failures = 0 if ok else row["failed_verifications"] + 1
    status = "locked" if failures >= max_failures else row["status"]
    connection.execute(
        accounts.update()
        .where(accounts.c.id == row["id"])
        .values(failed_verifications=failures, status=status, updated_at=now)
    )
    record_audit(
        connection,
        operator=operator,
        action="account.verify",
        target=f"account:{row['username']}",
        account=row["username"],
        now=now,
        details={
            "method": method,
            "verified": ok,
            "failed_verifications": failures,
            "locked": status == "locked",
        },
    )
    return VerificationResult(row["username"], ok, method, failures, status)


_STATUS_CHANGES = {
    # action: (statuses it applies to, new status)
    "unlock": (("locked",), "active"),
    "disable": (("active", "locked"), "disabled"),
    "enable": (("disabled",), "active"),
}


def change_account_status(
    connection: Connection,
    *,
    operator: str,
    username: str,
    action: str,
    reason: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """unlock (locked -> active), disable (-> disabled) or enable (disabled -> active), audited."""
    now = now or utc_now()
    if not reason or not reason.strip():
        raise InvalidInput("--reason is required")
    applies_to, new_status = _STATUS_CHANGES[action]
    row = get_account_row(connection, username, for_update=True)
    if row["status"] not in applies_to:
        raise Refused(f"account {row['username']!r} is {row['status']}; cannot {action} it")
    connection.execute(
        accounts.update()
        .where(accounts.c.id == row["id"])
        .values(status=new_status, failed_verifications=0, updated_at=now)
    )
    record_audit(
        connection,
        operator=operator,
        action=f"account.{action}",
        target=f"account:{row['username']}",
        account=row["username"],
        now=now,
        details={"reason": reason.strip(), "from": row["status"], "to": new_status},
    )
    return account_records(connection, [get_account_row(connection, username)])[0]


def record_reveal(
    connection: Connection, *, operator: str, command: str, target: str, now: datetime | None = None
) -> None:
    """``--reveal`` shows full TINs: that itself is audited."""
    record_audit(
        connection,
        operator=operator,
        action="tin.reveal",
        target=target,
        now=now,
        details={"command": command},
    )
