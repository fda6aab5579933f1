"""``mail send``: claim due outbox rows, deliver them over one SMTP connection (or as ``.eml``
files), and record each outcome in its own transaction.

A run first claims rows (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; on SQLite the write lock
serialises the claim) by setting a lease (``claimed_by``/``claimed_until``), so overlapping
runs never take the same row. A row is marked ``sent`` only after the server accepted it; a run
killed in between leaves the lease to expire, and a later run resends it with the same
Message-ID."""

from __future__ import annotations

import random
import smtplib
import socket
import ssl
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from portalctl.core.clock import utc_now
from portalctl.core.config import Settings
from portalctl.core.errors import ConfigurationError
from portalctl.core.schema import outbox
from portalctl.core.secrets import decrypt_secret
from portalctl.domain.audit import record_audit
from portalctl.domain.emails import SECRET_PLACEHOLDER, build_message

CLAIM_CHUNK = 100  # rows leased at a time, so a lease only has to cover one chunk's delivery
_O = outbox.c


@dataclass
class SendSummary:
    """What one run did (SPEC section 3)."""

    claimed: int = 0
    sent: int = 0
    failed: int = 0
    dead: int = 0
    errors: list[str] = field(default_factory=list)


def retry_delay(attempts: int) -> timedelta:
    """Exponential backoff (1, 2, 4... minutes, capped at 6 hours) with up to 25% jitter."""
    minutes = min(2 ** max(attempts - 1, 0), 360)
    return timedelta(minutes=minutes * (1 + random.random() * 0.25))


def _claim(engine: Engine, *, run_id: str, limit: int, lease: timedelta) -> list[int]:
    """Lease up to ``limit`` due rows to this run in one statement, so it is atomic on SQLite
    (one writer) and skips rows another run holds on PostgreSQL."""
    now = utc_now()
    due = (
        sa.select(_O.id)
        .where(
            _O.status.in_(("queued", "failed")),
            _O.next_attempt_at <= now,
            sa.or_(_O.claimed_until.is_(None), _O.claimed_until < now),
        )
        .order_by(_O.next_attempt_at, _O.id)
        .limit(limit)
    )
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            due = due.with_for_update(skip_locked=True)
        connection.execute(
            outbox.update()
            .where(_O.id.in_(due.scalar_subquery()))
            .values(claimed_by=run_id, claimed_until=now + lease)
        )
        return [
            row.id
            for row in connection.execute(
                sa.select(_O.id)
                .where(_O.claimed_by == run_id, _O.status.in_(("queued", "failed")))
                .order_by(_O.next_attempt_at, _O.id)
            )
        ]


class _SmtpSender:
    """One SMTP connection for the whole run, opened on first use."""

    def __init__(self, url: str):
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps"):
            raise ConfigurationError("PORTALCTL_SMTP_URL must start with smtp:// or smtps://")
        self.parts = parts
        self.starttls = parse_qs(parts.query).get("starttls", ["false"])[0].lower() == "true"
        self.client: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        host, port = self.parts.hostname or "localhost", self.parts.port
        # smtplib's own default context checks neither certificate nor host name, and the
        # password in the URL would go to whoever answers; this one checks both (a private CA:
        # OpenSSL's SSL_CERT_FILE). STARTTLS that the server does not offer is an error, never
        # a fall-back to plain text.
        tls = ssl.create_default_context()
        if self.parts.scheme == "smtps":
            client = smtplib.SMTP_SSL(host, port or 465, timeout=30, context=tls)
        else:
            client = smtplib.SMTP(host, port or 25, timeout=30)
            if self.starttls:
                client.starttls(context=tls)
        if self.parts.username:
            client.login(unquote(self.parts.username), unquote(self.parts.password or ""))
        return client

    def send(self, message) -> None:
        if self.client is None:
            self.client = self._connect()
        try:
            self.client.send_message(message)
        except (smtplib.SMTPServerDisconnected, OSError):
            self.close()
            raise

    def close(self) -> None:
        if self.client is not None:
            try:
                self.client.quit()
            except (smtplib.SMTPException, OSError):
                pass
            self.client = None


class _FileSender:
    def __init__(self, directory: str):
        self.directory = Path(directory)

    def send(self, message) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        name = message["Message-ID"].strip("<>").replace("@", "_at_") + ".eml"
        target = self.directory / name
        partial = target.with_suffix(".eml.partial")
        partial.write_bytes(bytes(message))
        partial.replace(target)

    def close(self) -> None:
        pass


def count_due_emails(engine: Engine) -> int:
    """What a run would try now (``mail send --dry-run``); nothing is claimed."""
    now = utc_now()
    with engine.connect() as connection:
        return connection.execute(
            sa.select(sa.func.count())
            .select_from(outbox)
            .where(
                _O.status.in_(("queued", "failed")),
                _O.next_attempt_at <= now,
                sa.or_(_O.claimed_until.is_(None), _O.claimed_until < now),
            )
        ).scalar_one()


def _permanent(error: Exception) -> bool:
    code = getattr(error, "smtp_code", None)
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [c for c, _ in error.recipients.values()]
        code = min(codes) if codes else None
    return code is not None and 500 <= code < 600


def send_due_emails(
    engine: Engine, *, operator: str, settings: Settings, limit: int = 1000
) -> SendSummary:
    """Deliver up to ``limit`` due emails; each outcome is committed as soon as it is known."""
    run_id = f"{socket.gethostname()[:60]}:{uuid.uuid4().hex[:12]}"
    max_attempts = settings.integer("PORTALCTL_MAIL_MAX_ATTEMPTS", minimum=1, maximum=100)
    lease = timedelta(
        seconds=settings.integer("PORTALCTL_MAIL_LEASE_SECONDS", minimum=1, maximum=86_400)
    )
    summary = SendSummary()
    smtp_url = settings.get("PORTALCTL_SMTP_URL")
    sender = _SmtpSender(smtp_url) if smtp_url else _FileSender(settings.get("PORTALCTL_MAIL_DIR"))
    try:
        while summary.claimed < limit:
            ids = _claim(
                engine, run_id=run_id, limit=min(CLAIM_CHUNK, limit - summary.claimed), lease=lease
            )
            if not ids:
                break
            summary.claimed += len(ids)
            with engine.connect() as connection:
                rows = connection.execute(
                    sa.select(outbox).where(_O.id.in_(ids), _O.claimed_by == run_id).order_by(_O.id)
                ).all()
            for row in rows:
                _deliver_one(
                    engine,
                    sender,
                    row,
                    settings=settings,
                    max_attempts=max_attempts,
                    summary=summary,
                )
    finally:
        sender.close()
    if summary.claimed:
        with engine.begin() as connection:
            record_audit(
                connection,
                operator=operator,
                action="mail.send",
                target="outbox",
                details={"sent": summary.sent, "failed": summary.failed, "dead": summary.dead},
            )
    return summary


def _deliver_one(
    engine: Engine, sender, row, *, settings: Settings, max_attempts: int, summary: SendSummary
) -> None:
    email_id = row.id
    body = row.body
    if row.secret_ciphertext is not None:
        body = body.replace(
            SECRET_PLACEHOLDER, decrypt_secret(settings.secret_key, row.secret_ciphertext)
        )
    message = build_message(
        sender=settings.get("PORTALCTL_MAIL_FROM"),
        recipient=row.recipient,
        recipient_name=row.recipient_name,
        subject=row.subject,
        body=body,
        message_id=row.message_id,
    )
    try:
        sender.send(message)
    except (smtplib.SMTPException, OSError) as error:
        attempts = row.attempts + 1
        dead = _permanent(error) or attempts >= max_attempts
        now = utc_now()
        values = {
            "attempts": attempts,
            "status": "dead" if dead else "failed",
            "last_error": str(error)[:500],
            "claimed_by": None,
            "claimed_until": None,
            "next_attempt_at": now if dead else now + retry_delay(attempts),
        }
        with engine.begin() as connection:
            connection.execute(outbox.update().where(_O.id == email_id).values(**values))
        if dead:
            summary.dead += 1
        else:
            summary.failed += 1
        summary.errors.append(f"email {email_id}: {str(error)[:200]}")
        return
    with engine.begin() as connection:
        connection.execute(
            outbox.update()
            .where(_O.id == email_id)
            .values(
                status="sent",
                sent_at=utc_now(),
                attempts=row.attempts + 1,
                secret_ciphertext=None,
                claimed_by=None,
                claimed_until=None,
                last_error=None,
            )
        )
    summary.sent += 1
