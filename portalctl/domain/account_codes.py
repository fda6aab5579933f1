"""Codes emailed to an account: email verification codes (they prove that the caller controls
an address) and password reset codes ("Forgot Password"). One table and one set of rules
(SPEC section 1, "Email verification code"):

- numeric, ``PORTALCTL_EMAIL_CODE_DIGITS`` long, stored only as an HMAC bound to the purpose, the
  account and the address (``core.secrets.account_code_hmac``), compared in constant time;
- single use; ``expired`` derived from the clock; at most ``MAX_WRONG_ENTRIES`` wrong entries,
  then ``locked``; a new request ``replaced`` the account's earlier active code of that purpose
  and stops that code's email if it has not gone yet;
- at most ``PORTALCTL_EMAIL_CODE_MAX_PER_HOUR`` codes of a purpose an hour for an account.

Usage::

    issued = issue_account_code(connection, purpose=..., account=row, email=..., ...)
    code = check_account_code(connection, purpose=..., account=row, code=typed, ...)
    use_account_code(connection, code_id=code["id"], now=now)
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from portalctl.core.clock import utc_now
from portalctl.core.config import Settings
from portalctl.core.errors import NotFound, RecordedRefusal, Refused
from portalctl.core.schema import account_codes, outbox
from portalctl.core.secrets import account_code_hmac, generate_code, parse_code
from portalctl.core.text import quoted
from portalctl.domain.audit import record_audit
from portalctl.domain.immediate_mail import claim_for_immediate_delivery
from portalctl.domain.mail.claims import Claim
from portalctl.domain.outbox import CANCELLABLE_STATUSES, cancellation_values, queue_email

MAX_WRONG_ENTRIES = 5
# A typed code is compared with this many of the account's latest codes, so that an earlier
# code is refused as what it is (replaced, used...) rather than as a wrong one.
RECENT_CODES = 20
LABELS = {"email_verification": "email verification code", "password_reset": "reset code"}
_C = account_codes.c


@dataclass(frozen=True)
class EmailedCode:
    """A code just issued: its row, and the email carrying it (claimed for delivery now)."""

    id: int
    expires_at: datetime
    email_id: int
    claim: Claim


def issue_account_code(
    connection: Connection,
    *,
    operator: str,
    purpose: str,
    account: RowMapping,
    email: str,
    ttl: timedelta,
    subject: str,
    body: str,
    settings: Settings,
    now: datetime,
    flow_id: str | None = None,
) -> EmailedCode:
    """A new code of ``purpose`` for ``account``, sent to ``email`` (the ``{secret}`` of
    ``body``), replacing the account's active one; refused past the hourly limit."""
    _refuse_past_hourly_limit(
        connection, purpose=purpose, account=account, settings=settings, now=now
    )
    replaced = _replace_active_code(connection, purpose=purpose, account_id=account["id"], now=now)
    code = generate_code(settings.email_code_digits)
    email_id = queue_email(
        connection,
        kind=purpose,
        recipient=email,
        recipient_name=account["full_name"],
        subject=subject,
        body=body,
        secret=code,
        secret_key=settings.secret_key,
        account_id=account["id"],
        now=now,
    )
    claim = claim_for_immediate_delivery(connection, email_id=email_id, settings=settings, now=now)
    expires_at = now + ttl
    code_id = connection.execute(
        account_codes.insert()
        .values(
            purpose=purpose,
            account_id=account["id"],
            email=email,
            code_hmac=account_code_hmac(
                settings.secret_key,
                purpose=purpose,
                account_id=account["id"],
                email=email,
                code=code,
            ),
            status="active",
            attempts=0,
            issued_by=operator,
            issued_at=now,
            expires_at=expires_at,
            outbox_id=email_id,
        )
        .returning(_C.id)
    ).scalar_one()
    record_audit(
        connection,
        operator=operator,
        action="account_code.issue",
        target=f"account:{account['username']}",
        account=account["username"],
        now=now,
        details={
            "purpose": purpose,
            "code_id": code_id,
            "email": email,
            "email_id": email_id,
            "replaced": replaced,
        },
        flow_id=flow_id,
    )
    return EmailedCode(code_id, expires_at, email_id, claim)


def check_account_code(
    connection: Connection,
    *,
    operator: str,
    purpose: str,
    account: RowMapping,
    code: str,
    settings: Settings,
    now: datetime,
    flow_id: str | None = None,
) -> RowMapping:
    """The account's active code of ``purpose`` that ``code`` is, or a refusal with the reason:
    input that cannot be a code is invalid input, not counted; no code ever issued is
    ``NotFound``; a wrong code counts against the active one (locked at the fifth); an expired,
    used, replaced or locked code is refused as such. Refusals are audited and committed
    (``RecordedRefusal``)."""
    label = LABELS[purpose]
    typed = parse_code(code, digits=settings.email_code_digits, what=label)
    name = quoted(account["username"])
    rows = (
        connection.execute(
            sa.select(account_codes)
            .where(_C.account_id == account["id"], _C.purpose == purpose)
            .order_by(_C.id.desc())
            .limit(RECENT_CODES)
        )
        .mappings()
        .all()
    )
    if not rows:
        raise NotFound(f"no {label} was issued for account {name}")
    matched = None
    for row in rows:
        digest = account_code_hmac(
            settings.secret_key,
            purpose=purpose,
            account_id=account["id"],
            email=row["email"],
            code=typed,
        )
        if hmac.compare_digest(digest, row["code_hmac"]) and matched is None:
            matched = row
    if matched is not None and code_status(matched, now) == "active":
        return matched
    target = matched if matched is not None else rows[0]
    reason, attempts, locked = code_status(target, now), target["attempts"], False
    if matched is None and reason == "active":
        reason, attempts = "wrong", attempts + 1
        locked = attempts >= MAX_WRONG_ENTRIES
        connection.execute(
            account_codes.update()
            .where(_C.id == target["id"])
            .values(attempts=attempts, status="locked" if locked else "active")
        )
        if locked:
            stop_code_email(connection, outbox_id=target["outbox_id"], reason="locked")
    record_audit(
        connection,
        operator=operator,
        action="account_code.check",
        target=f"account:{account['username']}",
        account=account["username"],
        now=now,
        details={
            "purpose": purpose,
            "code_id": target["id"],
            "valid": False,
            "reason": reason,
            "attempts": attempts,
            "locked": locked,
        },
        flow_id=flow_id,
    )
    raise RecordedRefusal(_refusal(label, reason, attempts, locked, matched is not None))


def _refusal(label: str, reason: str, attempts: int, locked: bool, typed_that_code: bool) -> str:
    if reason == "wrong":
        return f"{label} refused: wrong ({attempts} of {MAX_WRONG_ENTRIES} wrong entries" + (
            "; the code is now locked: request a new one)" if locked else ")"
        )
    if typed_that_code:
        return f"{label} refused: {reason}" + ("" if reason == "used" else "; request a new one")
    return f"{label} refused: the latest code is {reason}; request a new one"


def use_account_code(connection: Connection, *, code_id: int, now: datetime) -> None:
    """Mark a checked code used, exactly once (``Refused`` if it stopped being usable since)."""
    done = connection.execute(
        account_codes.update()
        .where(_C.id == code_id, _C.status == "active", _C.expires_at > now)
        .values(status="used", used_at=now)
    ).rowcount
    if done != 1:
        raise Refused(f"code {code_id} is no longer usable")
    outbox_id = connection.execute(sa.select(_C.outbox_id).where(_C.id == code_id)).scalar()
    stop_code_email(connection, outbox_id=outbox_id, reason="used")


def code_status(row: RowMapping, now: datetime) -> str:
    """The stored status, or ``expired`` for an active code past its time."""
    if row["status"] == "active" and row["expires_at"] <= now:
        return "expired"
    return str(row["status"])


def stop_code_email(connection: Connection, *, outbox_id: int | None, reason: str) -> None:
    """The email of a code that can no longer be used must not go if it has not gone yet:
    cancelled, its secret erased."""
    if outbox_id is None:
        return
    connection.execute(
        outbox.update()
        .where(outbox.c.id == outbox_id, outbox.c.status.in_(CANCELLABLE_STATUSES))
        .values(**cancellation_values(reason=f"code {reason}", now=utc_now()))
    )


def _replace_active_code(
    connection: Connection, *, purpose: str, account_id: int, now: datetime
) -> list[int]:
    rows = connection.execute(
        account_codes.update()
        .where(_C.account_id == account_id, _C.purpose == purpose, _C.status == "active")
        .values(status="replaced")
        .returning(_C.id, _C.outbox_id)
    ).all()
    for row in rows:
        stop_code_email(connection, outbox_id=row.outbox_id, reason="replaced")
    return [row.id for row in rows]


def _refuse_past_hourly_limit(
    connection: Connection, *, purpose: str, account: RowMapping, settings: Settings, now: datetime
) -> None:
    limit = settings.email_code_max_per_hour
    issued = (
        connection.execute(
            sa.select(_C.issued_at)
            .where(
                _C.account_id == account["id"],
                _C.purpose == purpose,
                _C.issued_at > now - timedelta(hours=1),
            )
            .order_by(_C.issued_at)
        )
        .scalars()
        .all()
    )
    if len(issued) >= limit:
        next_at = issued[-limit] + timedelta(hours=1)
        raise Refused(
            f"account {quoted(account['username'])} has had {len(issued)} "
            f"{LABELS[purpose]}s in the last hour (at most {limit}); ask again after "
            f"{next_at:%Y-%m-%d %H:%M} UTC"
        )
