"""Turning one claimed outbox row into the bytes that go on the wire.

Whatever is wrong with one row (an address that got in by old data or direct SQL, a secret that
no longer decrypts after a key change, a header that cannot be encoded) raises ``Poison`` with
the reason, so that this email alone is marked ``dead`` and the run goes on.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any

from portalctl.core.config import Settings
from portalctl.core.email_address import email_address_problem, parse_email_address
from portalctl.core.errors import ConfigurationError, InvalidInput
from portalctl.core.secrets import decrypt_secret
from portalctl.core.text import quoted
from portalctl.domain.emails import SECRET_PLACEHOLDER, render_message
from portalctl.domain.mail.transport import OutgoingMessage


class Poison(Exception):
    """This one message cannot be built; ``reason`` goes to its ``last_error``."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Composer:
    """The run-wide parts of every message, checked once before anything is claimed."""

    from_header: str
    envelope_from: str
    secret_key: bytes

    @classmethod
    def from_settings(cls, settings: Settings) -> Composer:
        header = " ".join((settings.get("PORTALCTL_MAIL_FROM") or "").split())
        try:
            envelope = parse_email_address(parseaddr(header)[1], what="PORTALCTL_MAIL_FROM")
        except InvalidInput as error:
            raise ConfigurationError(error.message) from None
        return cls(header, envelope, settings.secret_key)

    def compose(self, row: Any) -> OutgoingMessage:
        problem = email_address_problem(row.recipient.strip())
        if problem:
            raise Poison(f"invalid recipient address {quoted(row.recipient)}: {problem}")
        body = row.body
        if row.secret_ciphertext is not None:
            try:
                secret = decrypt_secret(self.secret_key, row.secret_ciphertext)
            except Exception:  # cryptography's InvalidToken, or a mangled value
                raise Poison(
                    "its code cannot be decrypted with PORTALCTL_SECRET_KEY (was the key "
                    "changed since it was queued?)"
                ) from None
            body = body.replace(SECRET_PLACEHOLDER, secret)
        try:
            data = render_message(
                sender=self.from_header,
                recipient=row.recipient.strip(),
                recipient_name=row.recipient_name,
                subject=row.subject,
                body=body,
                message_id=row.message_id,
            )
        except Exception as error:  # e.g. a value the header encoders cannot take
            raise Poison(f"the message cannot be built: {type(error).__name__}") from None
        return OutgoingMessage(row.message_id, self.envelope_from, row.recipient.strip(), data)
