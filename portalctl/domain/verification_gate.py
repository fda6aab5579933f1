"""The gate before a caller's accounts change (SPEC section 1, "Verification and the verified
caller"): the steps of the portal's flows that change accounts need current verifications.

- ``consolidate one``: the secondary (the account looked up by username and TIN) verified by a
  knowledge factor (security answer or PIN) and by an email code; the primary (the caller's
  existing account) by its password;
- ``tins link --code``: the account verified by its password and by an email code.

Without them the change is refused (exit 4) naming each missing factor and account, before
anything is written. A rep who established the caller's identity another way gives an override
reason: the change goes ahead and its audit record says ``verification: override`` with the
reason and what was not verified. The one function here is called by the domain functions of
those commands; bulk ``consolidate run`` does not call it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Connection

from portalctl.core.errors import Refused, UsageError
from portalctl.core.fields import clean_reason
from portalctl.core.text import quoted
from portalctl.domain.verification_records import current_methods


@dataclass(frozen=True)
class Factor:
    """What the gate asks for: any one of ``methods``, named as a message names it."""

    label: str
    methods: tuple[str, ...]


KNOWLEDGE = Factor("a security answer or PIN", ("security_answer", "pin"))
EMAIL_CODE = Factor("an email code", ("email_code",))
PASSWORD = Factor("its password", ("password",))


@dataclass(frozen=True)
class Requirement:
    """An account (named by its part in the change: "secondary", "primary", "account") and the
    factors it must currently be verified by."""

    part: str
    account_id: int
    username: str
    factors: tuple[Factor, ...]


def missing_verifications(
    connection: Connection, requirements: Sequence[Requirement], *, now: datetime
) -> list[str]:
    """What is missing, one entry per account that lacks something:
    ``"secondary 'jsmith_old': a security answer or PIN and an email code"``."""
    current = current_methods(connection, [r.account_id for r in requirements], now=now)
    missing = []
    for requirement in requirements:
        lacking = [
            factor.label
            for factor in requirement.factors
            if not current[requirement.account_id].intersection(factor.methods)
        ]
        if lacking:
            missing.append(
                f"{requirement.part} {quoted(requirement.username)}: " + " and ".join(lacking)
            )
    return missing


def require_verified(
    connection: Connection,
    requirements: Sequence[Requirement],
    *,
    override_reason: str | None = None,
    now: datetime,
) -> dict[str, str]:
    """Refuse (exit 4) unless every requirement is met now, or an override reason is given;
    what the change's audit record says about it (``verification``: ``verified`` or
    ``override``, with ``override_reason`` and ``not_verified``)."""
    missing = missing_verifications(connection, requirements, now=now)
    if override_reason is not None:
        if not override_reason.strip():
            raise UsageError(
                "--override-reason must say how you established the caller's identity "
                "(it is kept in the audit log)"
            )
        return {
            "verification": "override",
            "override_reason": clean_reason(override_reason),
            "not_verified": "; ".join(missing) or "nothing",
        }
    if missing:
        raise Refused(
            "not verified: "
            + "; ".join(missing)
            + " (no current verification); verify the caller first "
            "(`accounts verify`, `accounts email-code` and `confirm-email`, or `portalctl flow`), "
            "or give --override-reason if you established their identity another way"
        )
    return {"verification": "verified"}
