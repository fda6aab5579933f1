"""Registration codes: issue, revoke and reissue (SPEC section 1).

A code is stored only as ``code_hmac(key, tin=, code=)``; the plain code is returned once by
``issue_registration_code`` / ``reissue_registration_code`` and, when an email is queued, kept
encrypted in the outbox until delivery. A contact holds at most one active code per TIN:
issuing a new one revokes theirs as replaced. Checking and using a code is ``code_checks``'s.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from portalctl.core.clock import utc_now
from portalctl.core.config import Settings, check_range
from portalctl.core.errors import Refused
from portalctl.core.fields import clean_reason, clean_text
from portalctl.core.schema import organisations, registration_codes
from portalctl.core.secrets import code_hmac, generate_code
from portalctl.core.tin import Tin
from portalctl.domain.audit import record_audit
from portalctl.domain.code_records import show_registration_code
from portalctl.domain.emails import credentialing_body, credentialing_subject
from portalctl.domain.organisations import ensure_organisation
from portalctl.domain.outbox import cancel_emails_of_codes, queue_email
from portalctl.domain.validation import clean_email, clean_name

_C = registration_codes.c
# The statuses a code can still be used or recovered from; revoking applies to these.
REVOCABLE = ("active", "locked")


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
    admin_name = clean_name(admin_name, "admin name")
    admin_email = clean_email(admin_email, what="admin email")
    provider_name = clean_text(provider_name, "provider name", required=False)
    ttl = settings.code_ttl_days if ttl_days is None else ttl_days
    check_range("PORTALCTL_CODE_TTL_DAYS", ttl, what="--ttl-days")
    key = settings.secret_key
    ensure_organisation(connection, tin, now=now, name=org_name)
    replaced = revoke_contact_codes(
        connection, tin=tin, admin_email=admin_email, reason="replaced", now=now
    )
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
            admin_name=admin_name,
            admin_email=admin_email,
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
            recipient=admin_email,
            recipient_name=admin_name,
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
            "admin_email": admin_email,
            "email_id": email_id,
            "replaces_id": replaces_id,
            "revoked_as_replaced": replaced,
        },
        now=now,
    )
    record = show_registration_code(connection, code_id=code_id, now=now)
    rest = {name: value for name, value in record.items() if name not in ("id", "tin")}
    return {"id": code_id, "tin": tin, "code": code, **rest, "email_id": email_id}


def revoke_contact_codes(
    connection: Connection, *, tin: Tin, admin_email: str, reason: str, now: datetime
) -> list[int]:
    """Revoke the contact's usable codes for ``tin`` (before a new one is issued to them)."""
    replaced = list(
        connection.execute(
            registration_codes.update()
            .where(
                _C.tin == tin.reveal(),
                sa.func.lower(_C.admin_email) == admin_email.lower(),
                _C.status.in_(REVOCABLE),
            )
            .values(status="revoked", revoked_at=now, revoke_reason=reason)
            .returning(_C.id)
        ).scalars()
    )
    cancel_emails_of_codes(connection, code_ids=replaced, reason=f"code {reason}", now=now)
    return replaced


def revoke_registration_code(
    connection: Connection,
    *,
    operator: str,
    code_id: int,
    reason: str | None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Revoke an active or locked code; a used or already revoked one is refused."""
    now = now or utc_now()
    reason = clean_reason(reason)
    record = show_registration_code(connection, code_id=code_id, now=now)
    done = connection.execute(
        registration_codes.update()
        .where(_C.id == code_id, _C.status.in_(REVOCABLE))
        .values(status="revoked", revoked_at=now, revoke_reason=reason)
    ).rowcount
    if done != 1:
        raise Refused(f"registration code {code_id} is {record['status']}, it cannot be revoked")
    cancel_emails_of_codes(connection, code_ids=[code_id], reason="code revoked", now=now)
    cancel_emails_of_codes(connection, code_ids=[code_id], reason="code revoked", now=now)
    record_audit(
        connection,
        operator=operator,
        action="code.revoke",
        target=f"code:{code_id}",
        tin=record["tin"],
        details={"reason": reason},
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
    """A new code for the same contact, replacing this one (revoked, with any other usable
    code of theirs for the TIN); a used code is refused. The TIN's failure count restarts."""
    now = now or utc_now()
    old = show_registration_code(connection, code_id=code_id, now=now)
    if old["status"] == "used":
        raise Refused(f"registration code {code_id} was used; issue a new code instead")
    connection.execute(
        registration_codes.update()
        .where(_C.id == code_id, _C.status.in_(REVOCABLE))
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
