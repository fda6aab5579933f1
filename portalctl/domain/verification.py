"""Verifying a caller (the portal's Account Verification step): the security answer, the PIN or
the password, each failure counted against the account until it locks. A hash of an older
scheme that verifies is replaced by an Argon2id one in the same transaction; a success is a
verification record (``verification_records``) beside its audit record."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Connection

from portalctl.core.clock import utc_now
from portalctl.core.errors import InvalidInput, RecordedRefusal, Refused
from portalctl.core.schema import accounts
from portalctl.core.secrets import hash_secret, needs_rehash, normalise_answer, verify_secret
from portalctl.core.text import quoted
from portalctl.domain.accounts import get_account_row
from portalctl.domain.audit import record_audit
from portalctl.domain.validation import clean_pin
from portalctl.domain.verification_records import record_verification


@dataclass(frozen=True)
class VerificationResult:
    username: str
    verified: bool
    method: str
    failed_verifications: int
    status: str
    verified_at: datetime | None = None
    valid_until: datetime | None = None


# method -> (the column holding its hash, what an account without one lacks)
_METHODS = {
    "security_answer": ("security_answer_hash", "security question"),
    "pin": ("pin_hash", "PIN"),
    "password": ("password_hash", "password"),
}


def verify_account(
    connection: Connection,
    *,
    operator: str,
    username: str,
    answer: str | None = None,
    password: str | None = None,
    pin: str | None = None,
    max_failures: int = 5,
    window_minutes: int = 30,
    flow_id: str | None = None,
    now: datetime | None = None,
) -> VerificationResult:
    """Check a caller's security answer, PIN or password. A success counts as a verification
    for ``window_minutes``; a failure is counted (and locks the account at ``max_failures``)
    and then refused: ``RecordedRefusal``, so the count commits."""
    now = now or utc_now()
    given = {"security_answer": answer, "pin": pin, "password": password}
    methods = [method for method, value in given.items() if value is not None]
    if len(methods) != 1:
        raise InvalidInput("give exactly one of a security answer, a PIN or a password")
    method = methods[0]
    plain = str(given[method])
    if method == "security_answer":
        plain = normalise_answer(plain)
    elif method == "pin":
        plain = clean_pin(plain)  # input that cannot be a PIN is not counted
    row = get_account_row(connection, username, for_update=True)
    name = quoted(row["username"])
    if row["status"] != "active":
        raise Refused(f"account {name} is {row['status']}; it cannot be verified")
    column, lacking = _METHODS[method]
    stored = row[column]
    if not stored:
        raise Refused(f"account {name} has no {lacking}")
    ok = verify_secret(plain, stored)
    failures = 0 if ok else row["failed_verifications"] + 1
    status = "locked" if failures >= max_failures else row["status"]
    values = {"failed_verifications": failures, "status": status, "updated_at": now}
    if ok and needs_rehash(stored):
        values[column] = hash_secret(plain)
    connection.execute(accounts.update().where(accounts.c.id == row["id"]).values(**values))
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
            "hash_upgraded": column in values,
        },
        flow_id=flow_id,
    )
    if ok:
        window = record_verification(
            connection,
            operator=operator,
            method=method,
            account_id=row["id"],
            window_minutes=window_minutes,
            flow_id=flow_id,
            now=now,
        )
        return VerificationResult(row["username"], ok, method, failures, status, **window)
    raise RecordedRefusal(
        f"not verified ({failures} failed attempt(s)"
        + (", account now locked)" if status == "locked" else ")"),
        record=VerificationResult(row["username"], ok, method, failures, status),
    )
