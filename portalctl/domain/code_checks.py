"""Checking a registration code against its TIN, and using it up exactly once.

Usage (linking and registration)::

    check = check_registration_code(connection, operator=..., tin=tin, code=code,
                                    settings=settings, now=now)   # RecordedRefusal if not valid
    consume_registration_code(connection, code_id=check.code_id, account_id=..., now=now)
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from portalctl.core.clock import utc_now
from portalctl.core.config import Settings
from portalctl.core.errors import RecordedRefusal, Refused
from portalctl.core.schema import organisations, registration_codes
from portalctl.core.secrets import code_hmac, parse_code
from portalctl.core.tin import Tin
from portalctl.domain.audit import record_audit
from portalctl.domain.code_records import shown_code_status
from portalctl.domain.organisations import get_organisation
from portalctl.domain.outbox import cancel_emails_of_codes
from portalctl.domain.verification_records import record_verification

_C = registration_codes.c


@dataclass(frozen=True)
class CodeCheck:
    """The outcome of checking a (TIN, code) pair."""

    valid: bool
    reason: str | None = None
    code_id: int | None = None
    failed_attempts: int = 0
    locked: bool = False


def check_registration_code(
    connection: Connection,
    *,
    operator: str,
    tin: Tin,
    code: str,
    settings: Settings,
    account_id: int | None = None,
    flow_id: str | None = None,
    now: datetime | None = None,
) -> CodeCheck:
    """Check a (TIN, code) pair without using it. Input that cannot be a code is invalid input
    and not counted. A wrong, expired, used, revoked or locked code counts one failed attempt
    against the TIN; at ``PORTALCTL_CODE_MAX_ATTEMPTS`` failures every active code of the TIN
    becomes ``locked`` (reissue to recover); then the check is refused with the reason
    (``RecordedRefusal``: the count commits). A valid check resets the count.

    The organisation's row is locked first, so concurrent checks of one TIN take turns: none
    can call a code valid that another has just locked, or reset a count it just raised.

    A valid check is a verification record (``registration_code``) for the TIN and, when the
    account it is checked for is known (``account_id``: ``tins link``), for that account."""
    now = now or utc_now()
    typed = parse_code(code, digits=settings.code_digits)
    _lock_organisation(connection, tin)
    digest = code_hmac(settings.secret_key, tin=tin.reveal(), code=typed)
    row = connection.execute(
        sa.select(_C.id, _C.code_hmac, _C.status, _C.expires_at).where(
            _C.code_hmac == digest, _C.tin == tin.reveal()
        )
    ).first()
    reason = "wrong"
    if row is not None and hmac.compare_digest(row.code_hmac, digest):
        reason = shown_code_status(row.status, row.expires_at, now)
        if reason == "active":
            _set_failures(connection, tin, 0)
            record_audit(
                connection,
                operator=operator,
                action="code.verify",
                target=f"code:{row.id}",
                tin=tin,
                details={"valid": True},
                now=now,
                flow_id=flow_id,
            )
            record_verification(
                connection,
                operator=operator,
                method="registration_code",
                account_id=account_id,
                tin=tin,
                window_minutes=settings.verification_window_minutes,
                flow_id=flow_id,
                now=now,
            )
            return CodeCheck(valid=True, code_id=row.id)
    failures = _count_failure(connection, tin)
    locked = failures >= settings.code_max_attempts
    if locked:
        connection.execute(
            registration_codes.update()
            .where(_C.tin == tin.reveal(), _C.status == "active")
            .values(status="locked")
        )
        cancel_emails_of_codes(connection, tin=tin, reason="code locked", now=now)
    code_id = row.id if row is not None else None
    record_audit(
        connection,
        operator=operator,
        action="code.verify",
        target=f"code:{code_id}" if code_id is not None else f"tin:{tin}",
        tin=tin,
        details={"valid": False, "reason": reason, "failed_attempts": failures, "locked": locked},
        now=now,
        flow_id=flow_id,
    )
    check = CodeCheck(False, reason, code_id, failures, locked)
    raise RecordedRefusal(
        f"registration code refused: {reason} ({failures} failed attempt(s)"
        + (", the TIN's codes are now locked: reissue one)" if locked else ")"),
        record=check,
    )


def _lock_organisation(connection: Connection, tin: Tin) -> None:
    get_organisation(connection, tin)  # NotFound for a TIN nothing was issued for
    if connection.dialect.name == "postgresql":
        connection.execute(
            sa.select(organisations.c.tin)
            .where(organisations.c.tin == tin.reveal())
            .with_for_update()
        )


def _set_failures(connection: Connection, tin: Tin, failures: int) -> None:
    connection.execute(
        organisations.update()
        .where(organisations.c.tin == tin.reveal())
        .values(failed_code_attempts=failures)
    )


def _count_failure(connection: Connection, tin: Tin) -> int:
    failures = connection.execute(
        organisations.update()
        .where(organisations.c.tin == tin.reveal())
        .values(failed_code_attempts=organisations.c.failed_code_attempts + 1)
        .returning(organisations.c.failed_code_attempts)
    ).scalar_one()
    return int(failures)


def consume_registration_code(
    connection: Connection, *, code_id: int, account_id: int | None, now: datetime | None = None
) -> None:
    """Mark a checked code used, exactly once: ``Refused`` if it is no longer active (used,
    revoked, locked or expired meanwhile). The caller writes its own audit record."""
    now = now or utc_now()
    done = connection.execute(
        registration_codes.update()
        .where(_C.id == code_id, _C.status == "active", _C.expires_at > now)
        .values(status="used", used_at=now, used_by=account_id)
    ).rowcount
    if done != 1:
        raise Refused(f"registration code {code_id} is no longer usable")
    cancel_emails_of_codes(connection, code_ids=[code_id], reason="code used", now=now)
