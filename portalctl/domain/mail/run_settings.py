"""What a run works with and what it reports: its settings, checked before anything is
claimed, the sender they name, the backoff of a failed email, and the summary (SPEC 3)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import timedelta

from portalctl.core.config import Settings
from portalctl.domain.mail.transport import FileSender, Sender, SmtpSender, parse_smtp_url


def retry_delay(attempts: int) -> timedelta:
    """Exponential backoff (1, 2, 4... minutes, capped at 6 hours) with up to 25% jitter, so
    emails that failed together are not all retried in the same second."""
    minutes = min(2 ** max(attempts - 1, 0), 360)
    return timedelta(minutes=minutes * (1 + random.random() * 0.25))


@dataclass
class SendSummary:
    """What one run did (SPEC section 3), and why emails failed, for the log."""

    sent: int = 0
    failed: int = 0
    dead: int = 0
    cancelled: int = 0
    remaining: int = 0
    reasons: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    stopped: str | None = None

    def counts(self) -> dict[str, int]:
        return {
            "sent": self.sent,
            "failed": self.failed,
            "dead": self.dead,
            "cancelled": self.cancelled,
            "remaining": self.remaining,
        }

    def count_line(self) -> str:
        return " ".join(f"{key}={value}" for key, value in self.counts().items())

    def reason_lines(self) -> list[str]:
        """One line per (outcome, reason): how many, which emails, why."""
        lines = []
        for (outcome, reason), ids in self.reasons.items():
            shown = ", ".join(str(i) for i in ids[:10]) + (" ..." if len(ids) > 10 else "")
            lines.append(f"{outcome}={len(ids)} reason={reason} emails={shown}")
        return lines


@dataclass(frozen=True)
class DeliveryOptions:
    max_attempts: int
    lease: timedelta
    chunk_size: int
    max_seconds: float
    smtp_timeout: float

    @classmethod
    def from_settings(cls, settings: Settings, *, max_seconds: float | None) -> DeliveryOptions:
        def setting(name: str, low: int, high: int) -> int:
            return settings.integer(name, minimum=low, maximum=high)

        return cls(
            max_attempts=setting("PORTALCTL_MAIL_MAX_ATTEMPTS", 1, 100),
            lease=timedelta(seconds=setting("PORTALCTL_MAIL_LEASE_SECONDS", 1, 86_400)),
            chunk_size=setting("PORTALCTL_MAIL_CHUNK_SIZE", 1, 10_000),
            max_seconds=max_seconds or setting("PORTALCTL_MAIL_MAX_SECONDS", 1, 86_400),
            smtp_timeout=setting("PORTALCTL_SMTP_TIMEOUT_SECONDS", 1, 600),
        )

    @property
    def lease_margin(self) -> float:
        """Seconds kept free at the end of a lease for recording the outcome."""
        return min(5.0, self.lease.total_seconds() / 3)


def open_sender(settings: Settings, options: DeliveryOptions) -> Sender:
    url = settings.get("PORTALCTL_SMTP_URL")
    if url:
        return SmtpSender(parse_smtp_url(url), command_timeout=options.smtp_timeout)
    return FileSender(settings.get("PORTALCTL_MAIL_DIR") or "outbox-mail")
