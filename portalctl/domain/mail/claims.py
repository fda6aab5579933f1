"""The outbox rows a run holds: claimed under a lease, renewed while the run works, checked
before each send and marked by compare-and-set, so a run never sends or overwrites a row it no
longer holds.

A claim writes ``claimed_by`` (the run), ``claim_token`` (new for every claim) and
``claimed_until`` (the lease). Every later statement of the run about the row requires the same
run, the same token and a pending status: if the lease ran out and another run claimed the row,
or the email was cancelled or retried by hand meanwhile, the statement changes nothing and the
run lets the row go. PostgreSQL claims with ``FOR UPDATE SKIP LOCKED``; on SQLite the write
lock serialises claims.
"""

from __future__ import annotations

import secrets
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from portalctl.core.schema import outbox
from portalctl.domain.outbox import PENDING_STATUSES, due_condition

_O = outbox.c
_CLAIMED_COLUMNS = (
    _O.id,
    _O.kind,
    _O.message_id,
    _O.recipient,
    _O.recipient_name,
    _O.subject,
    _O.body,
    _O.secret_ciphertext,
    _O.attempts,
    _O.next_attempt_at,
)


def new_run_id() -> str:
    """Names the run in ``claimed_by``: the host (where to look for it) and a random part."""
    return f"{socket.gethostname()[:60]}:{secrets.token_hex(6)}"


@dataclass
class Claim:
    """Rows leased to one run by one claim statement, in delivery order."""

    run_id: str
    token: str
    lease_until: datetime
    rows: list[Any]
    held: set[int] = field(default_factory=set)

    def fence(self) -> sa.ColumnElement[bool]:
        """The compare-and-set condition of every statement about a held row."""
        return sa.and_(
            _O.claimed_by == self.run_id,
            _O.claim_token == self.token,
            _O.status.in_(PENDING_STATUSES),
        )


def claim_due(
    connection: Connection, *, run_id: str, limit: int, lease: timedelta, now: datetime
) -> Claim:
    """Lease up to ``limit`` due emails to this run, in the caller's transaction.

    Two statements, not ``UPDATE ... WHERE id IN (SELECT ... LIMIT n)``: PostgreSQL may run such
    a subquery once per row it updates (a semi join) and so lease more than ``limit`` rows. The
    first locks the chosen rows (``SKIP LOCKED``: not those another run is claiming); on SQLite
    the transaction's write lock keeps the two together. The second re-checks that each row is
    still due, so a row another run leased in between (a run's connection on PostgreSQL commits
    each statement by itself) is never taken twice.
    """
    token = secrets.token_hex(16)
    due = sa.select(_O.id).where(due_condition(now)).order_by(_O.next_attempt_at, _O.id)
    due = due.limit(limit)
    if connection.dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    claimed: Sequence[Any] = []
    for _attempt in range(3):  # another run may lease the chosen rows first: choose again
        ids = connection.execute(due).scalars().all()
        if not ids:
            break
        claimed = connection.execute(
            outbox.update()
            .where(_O.id.in_(ids), due_condition(now))
            .values(claimed_by=run_id, claim_token=token, claimed_until=now + lease)
            .returning(*_CLAIMED_COLUMNS)
        ).all()
        if claimed:
            break
    rows = sorted(claimed, key=lambda row: (row.next_attempt_at, row.id))
    return Claim(run_id, token, now + lease, rows, {row.id for row in rows})


def claim_ids(
    connection: Connection, ids: Sequence[int], *, run_id: str, lease: timedelta, now: datetime
) -> Claim:
    """Lease these emails (just queued, in the caller's transaction) to ``run_id``, due or not,
    so that no ``mail send`` run takes them before the command that queued them delivers them
    at once. Cancelled or already sent emails are not taken."""
    token = secrets.token_hex(16)
    claimed = connection.execute(
        outbox.update()
        .where(_O.id.in_(list(ids)), _O.status.in_(PENDING_STATUSES))
        .values(claimed_by=run_id, claim_token=token, claimed_until=now + lease)
        .returning(*_CLAIMED_COLUMNS)
    ).all()
    rows = sorted(claimed, key=lambda row: row.id)
    return Claim(run_id, token, now + lease, rows, {row.id for row in rows})


def renew_lease(connection: Connection, claim: Claim, *, lease: timedelta, now: datetime) -> None:
    """Extend the lease of the rows the claim still holds; the others are let go."""
    until = now + lease
    still = connection.execute(
        outbox.update()
        .where(claim.fence(), _O.id.in_(sorted(claim.held)))
        .values(claimed_until=until)
        .returning(_O.id)
    ).all()
    claim.held = {row.id for row in still}
    claim.lease_until = until


# Statements a run makes once per email, built once: constructing a statement costs more than
# running it on a local database.
_HOLDING = sa.select(_O.status, _O.claimed_by, _O.claim_token).where(
    _O.id == sa.bindparam("email_id")
)
_PENDING_LITERALS: list[sa.ColumnElement[str]] = [
    sa.literal_column(f"'{status}'") for status in PENDING_STATUSES
]
_FENCED = (  # the statuses as literals: an expanding IN would re-render the SQL every time
    _O.id == sa.bindparam("email_id"),
    _O.claimed_by == sa.bindparam("run_id"),
    _O.claim_token == sa.bindparam("token"),
    _O.status.in_(_PENDING_LITERALS),
)
_RELEASED = {"claimed_by": None, "claimed_until": None, "claim_token": None}
_MARK_SENT = (
    outbox.update()
    .where(*_FENCED)
    .values(
        status="sent",
        sent_at=sa.bindparam("at"),
        last_attempt_at=sa.bindparam("at"),
        attempts=_O.attempts + 1,
        secret_ciphertext=None,
        last_error=None,
        **_RELEASED,
    )
)
_MARK_OUTCOME = (
    outbox.update()
    .where(*_FENCED)
    .values(
        status=sa.bindparam("outcome"),
        attempts=sa.bindparam("new_attempts"),
        last_error=sa.bindparam("reason"),
        last_attempt_at=sa.bindparam("at"),
        next_attempt_at=sa.bindparam("next_at"),
        **_RELEASED,
    )
)


def _state(row: Any, claim: Claim) -> str:
    if row.status == "cancelled":
        return "cancelled"
    held = (
        row.status in PENDING_STATUSES
        and row.claimed_by == claim.run_id
        and row.claim_token == claim.token
    )
    return "held" if held else "lost"


def holding_states(connection: Connection, claim: Claim, email_ids: list[int]) -> dict[int, str]:
    """For each email: ``held`` while it is still this claim's and pending; ``cancelled`` if
    it was cancelled meanwhile; ``lost`` otherwise (another run has it, it was retried by hand,
    or it is gone)."""
    rows = connection.execute(
        sa.select(_O.id, _O.status, _O.claimed_by, _O.claim_token).where(_O.id.in_(email_ids))
    ).all()
    states = dict.fromkeys(email_ids, "lost")
    states.update((row.id, _state(row, claim)) for row in rows)
    return states


def holding_state(connection: Connection, claim: Claim, email_id: int) -> str:
    """``holding_states`` of one email."""
    row = connection.execute(_HOLDING, {"email_id": email_id}).first()
    return "lost" if row is None else _state(row, claim)


def _fenced(claim: Claim, email_id: int) -> dict[str, Any]:
    claim.held.discard(email_id)
    return {"email_id": email_id, "run_id": claim.run_id, "token": claim.token}


def mark_sent(connection: Connection, claim: Claim, email_id: int, *, at: datetime) -> bool:
    """Record a delivery (the secret erased) and release the row, only if the claim still
    holds it."""
    done = connection.execute(_MARK_SENT, {**_fenced(claim, email_id), "at": at}).rowcount
    return bool(done == 1)


def mark_outcome(
    connection: Connection,
    claim: Claim,
    email_id: int,
    *,
    outcome: str,
    attempts: int,
    reason: str,
    at: datetime,
    next_attempt_at: datetime,
) -> bool:
    """Record ``failed`` or ``dead`` with its reason and release the row, only if the claim
    still holds it."""
    values = {
        "outcome": outcome,
        "new_attempts": attempts,
        "reason": reason[:500],
        "at": at,
        "next_at": next_attempt_at,
    }
    done = connection.execute(_MARK_OUTCOME, {**_fenced(claim, email_id), **values}).rowcount
    return bool(done == 1)


def note_delivered_after_cancel(connection: Connection, email_id: int, now: datetime) -> bool:
    """An email cancelled while the server was already taking it: it stays ``cancelled`` (the
    code is void anyway) and ``sent_at`` says it went."""
    done = connection.execute(
        outbox.update()
        .where(_O.id == email_id, _O.status == "cancelled", _O.sent_at.is_(None))
        .values(sent_at=now)
    ).rowcount
    return bool(done == 1)


def release_run(connection: Connection, *, run_id: str) -> int:
    """Let go of every row this run still holds (at its end, or when the server fails)."""
    released: int = connection.execute(
        outbox.update()
        .where(_O.claimed_by == run_id)
        .values(claimed_by=None, claimed_until=None, claim_token=None)
    ).rowcount
    return released


def count_claimable(connection: Connection, *, now: datetime) -> int:
    """What a run could claim now (``mail send --dry-run``)."""
    count: int = connection.execute(
        sa.select(sa.func.count()).select_from(outbox).where(due_condition(now))
    ).scalar_one()
    return count


def count_remaining(connection: Connection, *, now: datetime) -> int:
    """Due emails not delivered yet, whoever holds them: the summary's ``remaining``."""
    count: int = connection.execute(
        sa.select(sa.func.count())
        .select_from(outbox)
        .where(_O.status.in_(PENDING_STATUSES), _O.next_attempt_at <= now)
    ).scalar_one()
    return count
