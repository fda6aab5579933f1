"""Verifying a caller (the portal's Account Verification step): the security answer or the
password, each failure counted against the account until it locks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Connection

from portalctl.core.clock import utc_now
from portalctl.core.errors import InvalidInput, RecordedRefusal, Refused
from portalctl.core.schema import accounts
from portalctl.core.secrets import normalise_answer, verify_secret
from portalctl.core.text import quoted
from portalctl.domain.accounts import get_account_row
from portalctl.domain.audit import record_audit


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
    """Check a caller's security answer or password. A failure is counted (and locks the
    account at ``max_failures``) and then refused: ``RecordedRefusal``, so the count commits."""
    now = now or utc_now()
    if (answer is None) == (password is None):
        raise InvalidInput("give exactly one of a security answer or a password")
    row = get_account_row(connection, username, for_update=True)
    name = quoted(row["username"])
    if row["status"] != "active":
        raise Refused(f"account {name} is {row['status']}; it cannot be verified")
    if answer is not None:
        if not row["security_answer_hash"]:
            raise Refused(f"account {name} has no security question")
        method = "security_answer"
        ok = verify_secret(normalise_answer(answer), row["security_answer_hash"])
    else:
        assert password is not None
        if not row["password_hash"]:
            raise Refused(f"account {name} has no password")
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
    result = VerificationResult(row["username"], ok, method, failures, status)
    if not ok:
        raise RecordedRefusal(
            f"not verified ({failures} failed attempt(s)"
            + (", account now locked)" if status == "locked" else ")"),
            record=result,
        )
    return result
