"""Registration codes: issue, list, show, check, consume, revoke and reissue.

A code is stored only as ``code_hmac(key, tin=, code=)``; the plain code is returned once by
``issue_registration_code`` / ``reissue_registration_code`` and, when an email is queued, kept
encrypted in the outbox until delivery. Status ``expired`` is derived from ``expires_at`` and the
clock, never stored.

API for linking and registration (issue 3)::

    check = check_registration_code(connection, operator=..., tin=tin, code=code,
                                    secret_key=key, max_attempts=n, now=now)
    if not check.valid:          # the failure was counted: commit, then refuse (exit 4)
        ...check.reason...       # 'wrong', 'expired', 'used', 'revoked' or 'locked'
    consume_registration_code(connection, code_id=check.code_id, account_id=..., now=now)

``consume_registration_code`` raises ``Refused`` when the code is no longer active, so of two
concurrent uses of one code exactly one wins.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from portalctl.core.clock import utc_now
from portalctl.core.config import Settings
from portalctl.core.errors import InvalidInput, NotFound, Refused
from portalctl.core.schema import organisations, registration_codes
from portalctl.core.secrets import code_hmac, generate_code
from portalctl.core.tin import Tin
from portalctl.domain.accounts import ensure_organisation
from portalctl.domain.audit import record_audit
from portalctl.domain.emails import credentialing_body, credentialing_subject
from portalctl.domain.outbox import cancel_emails_of_codes, queue_email

CODE_STATUSES = ("active", "used", "revoked", "locked", "expired")
_C = registration_codes.c


@dataclass
class CodeCheck:
    """The outcome of checking a (TIN, code) pair; a failure has already been counted."""

    valid: bool
    reason: str | None = None
    code_id: int | None = None
    failed_attempts: int = 0
    locked: bool = False


def _shown_status(status: str, expires_at: datetime, now: datetime) -> str:
    return "expired" if status == "active" and expires_at <= now else status


def _record(row: Any, now: datetime) -> dict[str, Any]:
    return {
        "id": row.id,
        "tin": Tin(row.tin),
        "status": _shown_status(row.status, row.expires_at, now),
        "admin_name": row.admin_name,
        "admin_email": row.admin_email,
        "provider_name": row.provider_name,
        "issued_by": row.issued_by,
        "issued_at": row.issued_at,
        "expires_at": row.expires_at,
        "used_at": row.used_at,
        "revoked_at": row.revoked_at,
        "revoke_reason": row.revoke_reason,
        "replaces_id": row.replaces_id,
    }


def _validate_contact(admin_name: str, admin_email: str) -> None:
    if not admin_name or not admin_name.strip() or len(admin_name) > 200:
        raise InvalidInput(f"invalid admin name {admin_name!r}")
    email = admin_email.strip()
    if (
        "@" not in email
        or any(c.isspace() for c in email)
        or len(email) > 254
        or email.startswith("@")
        or email.endswith("@")
    ):
        raise InvalidInput(f"invalid admin email {admin_email!r}")


def issue_registration_code(
    connection: Connection,
    *,
    operator: str,
    tin: Tin,
    admin_name: str,
    admin_email: str,
    settings: Settings,
    provider_name: str | None = None,
    org_name: str | None = None,
    ttl_days: int | None = None,
    send_email: bool = True,
    replaces_id: int | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Issue one code for ``tin`` (creating the organisation if new) and queue its email.

    Returns the code's record plus ``code``: the plain code, which is nowhere else in clear.
    """
    now = now or utc_now()
    _validate_contact(admin_name, admin_email)
    ttl = settings.code_ttl_days if ttl_days is None else ttl_days
    if not 1 <= ttl <= 60:
        raise InvalidInput(f"--ttl-days must be between 1 and 60, not {ttl}")
    key = settings.secret_key
    ensure_organisation(connection, tin, now=now, name=org_name)
    while True:
        code = generate_code(settings.code_digits)
        digest = code_hmac(key, tin=tin.reveal(), code=code)
        if connection.execute(sa.select(_C.id).where(_C.code_hmac == digest)).first() is None:
            break
    code_id = connection.execute(
        registration_codes.insert()
        .values(
            tin=tin.reveal(),
            code_hmac=digest,
            status="active",
            admin_name=admin_name.strip(),
            admin_email=admin_email.strip(),
            provider_name=provider_name,
            issued_by=operator,
            issued_at=now,
            expires_at=now + timedelta(days=ttl),
            replaces_id=replaces_id,
        )
        .returning(_C.id)
    ).scalar_one()
    email_id = None
    if send_email:
        email_id = queue_email(
            connection,
            kind="credentialing",
            recipient=admin_email.strip(),
            recipient_name=admin_name.strip(),
            subject=credentialing_subject(settings),
            body=credentialing_body(settings, admin_name=admin_name, provider_name=provider_name),
            secret=code,
            secret_key=key,
            code_id=code_id,
            tin=tin,
            now=now,
        )
    record_audit(
        connection,
        operator=operator,
        action="code.issue",
        target=f"code:{code_id}",
        tin=tin,
        details={
            "admin_email": admin_email.strip(),
            "email_id": email_id,
            "replaces_id": replaces_id,
        },
        now=now,
    )
    record = show_registration_code(connection, code_id=code_id, now=now)
    return {
        "id": code_id,
        "tin": tin,
        "code": code,
        **{k: v for k, v in record.items() if k not in ("id", "tin")},
        "email_id": email_id,
    }


def show_registration_code(
    connection: Connection, *, code_id: int, now: datetime | None = None
) -> dict[str, Any]:
    row = connection.execute(sa.select(registration_codes).where(_C.id == code_id)).first()
    if row is None:
        raise NotFound(f"no registration code {code_id}")
    return _record(row, now or utc_now())


def list_registration_codes(
    connection: Connection,
    *,
    tin: Tin | None = None,
    status: str | None = None,
    email: str | None = None,
    limit: int = 100,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Codes newest first; ``status`` may be ``expired`` (active but past its expiry)."""
    now = now or utc_now()
    if status is not None and status not in CODE_STATUSES:
        raise InvalidInput(f"unknown status {status!r} (one of {', '.join(CODE_STATUSES)})")
    query = sa.select(registration_codes).order_by(_C.id.desc()).limit(limit)
    if tin is not None:
        query = query.where(_C.tin == tin.reveal())
    if email:
        query = query.where(sa.func.lower(_C.admin_email) == email.strip().lower())
    if status == "expired":
        query = query.where(_C.status == "active", _C.expires_at <= now)
    elif status == "active":
        query = query.where(_C.status == "active", _C.expires_at > now)
    elif status:
        query = query.where(_C.status == status)
    return [_record(row, now) for row in connection.execute(query)]


def check_registration_code(
    connection: Connection,
    *,
    operator: str,
    tin: Tin,
    code: str,
    secret_key: bytes,
    max_attempts: int,
    now: datetime | None = None,
) -> CodeCheck:
    """Check a (TIN, code) pair without consuming it; never raises for a bad code.

    A wrong, expired, used, revoked or locked code counts one failed attempt against the TIN;
    at ``max_attempts`` failures every active code of the TIN becomes ``locked`` (reissue to
    recover). A valid check resets the count. The caller must commit even when ``valid`` is
    False, then refuse (exit 4) with ``reason``.
    """
    now = now or utc_now()
    digest = code_hmac(secret_key, tin=tin.reveal(), code=code.strip())
    row = connection.execute(
        sa.select(_C.id, _C.code_hmac, _C.status, _C.expires_at).where(
            _C.code_hmac == digest, _C.tin == tin.reveal()
        )
    ).first()
    if row is not None and hmac.compare_digest(row.code_hmac, digest):
        reason = _shown_status(row.status, row.expires_at, now)
        if reason == "active":
            connection.execute(
                organisations.update()
                .where(organisations.c.tin == tin.reveal())
                .values(failed_code_attempts=0)
            )
            record_audit(
                connection,
                operator=operator,
                action="code.verify",
                target=f"code:{row.id}",
                tin=tin,
                details={"valid": True},
                now=now,
            )
            return CodeCheck(valid=True, code_id=row.id)
    else:
        reason = "wrong"
    failures = connection.execute(
        organisations.update()
        .where(organisations.c.tin == tin.reveal())
        .values(failed_code_attempts=organisations.c.failed_code_attempts + 1)
        .returning(organisations.c.failed_code_attempts)
    ).scalar()
    failures = failures or 0
    locked = failures >= max_attempts
    if locked:
        connection.execute(
            registration_codes.update()
            .where(_C.tin == tin.reveal(), _C.status == "active")
            .values(status="locked")
        )
        cancel_emails_of_codes(connection, tin=tin, reason="code locked", now=now)
    record_audit(
        connection,
        operator=operator,
        action="code.verify",
        target=f"code:{row.id}" if row is not None else f"tin:{tin}",
        tin=tin,
        details={"valid": False, "reason": reason, "failed_attempts": failures, "locked": locked},
        now=now,
    )
    return CodeCheck(
        valid=False,
        reason=reason,
        code_id=row.id if row is not None else None,
        failed_attempts=failures,
        locked=locked,
    )


def consume_registration_code(
    connection: Connection, *, code_id: int, account_id: int | None, now: datetime | None = None
) -> None:
    """Mark a checked code used, exactly once: raises ``Refused`` if it is no longer active
    (used, revoked, locked or expired meanwhile). The caller writes its own audit record."""
    now = now or utc_now()
    done = connection.execute(
        registration_codes.update()
        .where(
            _C.id == code_id,
            _C.status == "active",
            _C.expires_at > now,
        )
        .values(status="used", used_at=now, used_by=account_id)
    ).rowcount
    if done != 1:
        raise Refused(f"registration code {code_id} is no longer usable")
    cancel_emails_of_codes(connection, code_ids=[code_id], reason="code used", now=now)


def revoke_registration_code(
    connection: Connection, *, operator: str, code_id: int, reason: str, now: datetime | None = None
) -> dict[str, Any]:
    """Revoke an active or locked code; a used or already revoked one is refused."""
    now = now or utc_now()
    if not reason or not reason.strip():
        raise InvalidInput("--reason must not be empty")
    record = show_registration_code(connection, code_id=code_id, now=now)
    done = connection.execute(
        registration_codes.update()
        .where(
            _C.id == code_id,
            _C.status.in_(("active", "locked")),
        )
        .values(status="revoked", revoked_at=now, revoke_reason=reason.strip())
    ).rowcount
    if done != 1:
        raise Refused(f"registration code {code_id} is {record['status']}, it cannot be revoked")
    cancel_emails_of_codes(connection, code_ids=[code_id], reason="code revoked", now=now)
    record_audit(
        connection,
        operator=operator,
        action="code.revoke",
        target=f"code:{code_id}",
        tin=record["tin"],
        details={"reason": reason.strip()},
        now=now,
    )
    return show_registration_code(connection, code_id=code_id, now=now)


def reissue_registration_code(
    connection: Connection,
    *,
    operator: str,
    code_id: int,
    settings: Settings,
    send_email: bool = True,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Revoke a code (unless already revoked/expired) and issue a new one to the same contact."""
    now = now or utc_now()
    old = show_registration_code(connection, code_id=code_id, now=now)
    if old["status"] == "used":
        raise Refused(f"registration code {code_id} was used; issue a new code instead")
    if old["status"] in ("active", "locked", "expired"):
        connection.execute(
            registration_codes.update()
            .where(_C.id == code_id)
            .values(status="revoked", revoked_at=now, revoke_reason="reissued")
        )
    cancel_emails_of_codes(connection, code_ids=[code_id], reason="code reissued", now=now)
    connection.execute(
        organisations.update()
        .where(organisations.c.tin == old["tin"].reveal())
        .values(failed_code_attempts=0)
    )
    return issue_registration_code(
        connection,
        operator=operator,
        tin=old["tin"],
        admin_name=old["admin_name"],
        admin_email=old["admin_email"],
        provider_name=old["provider_name"],
        settings=settings,
        send_email=send_email,
        replaces_id=code_id,
        now=now,
    )
