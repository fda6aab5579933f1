"""The texts of the emails portalctl sends, and their MIME form.

Bodies are stored in the outbox with ``{secret}`` where a code goes; the code itself is filled
in only at delivery (see ``portalctl.domain.outbox``)."""

from __future__ import annotations

import binascii
from datetime import UTC, datetime
from email import message_from_bytes
from email.header import Header
from email.message import EmailMessage
from email.policy import default
from email.utils import format_datetime, formataddr, parseaddr
from functools import lru_cache

from portalctl.core.config import Settings

SECRET_PLACEHOLDER = "{secret}"


def _one_line(text: str) -> str:
    """Header values never carry a line break, so a name cannot add a header."""
    return " ".join(str(text).split())


def credentialing_subject(settings: Settings) -> str:
    return f"{settings.get('PORTALCTL_INSURER_NAME')} provider portal registration code"


def credentialing_body(settings: Settings, *, admin_name: str, provider_name: str | None) -> str:
    """The seed's credentialing email; the code stays a placeholder until delivery."""
    insurer = settings.get("PORTALCTL_INSURER_NAME")
    provider = _one_line(provider_name) if provider_name else "your organisation"
    phones = settings.get("PORTALCTL_COMMERCIAL_PHONES")
    medicare = settings.get("PORTALCTL_MEDICARE_PHONE")
    return (
        f"Hi {_one_line(admin_name)},\n\n"
        f"We are pleased to inform you, {provider} has successfully completed our credentialing "
        "process. You have been identified as their Portal Security Administrator. You have been "
        "entrusted to set up and manage their secure provider portal account and oversee the "
        "Users who may access our portal(s) for this provider. We are looking to you to ensure "
        "HIPAA's minimally necessary requirement can be met by assigning the right security role "
        "to each User.\n\n"
        "If you have already set up an account for the practice/organization, no further action "
        "is needed. If you have not set up an account yet, please establish one using this "
        f"Registration Code: {SECRET_PLACEHOLDER}.\n\n"
        f"Go to {settings.get('PORTALCTL_PORTAL_URL')} to register and to see instructions for "
        "setting up other Users, for linking accounts, and to make the most of the functions "
        "available on our secure provider portal. If you need help setting up your account, "
        f"please call our Provider Customer Service team at {phones}; or Medicare Provider "
        f"Services at {medicare} and we will be happy to help you.\n\n"
        "We are looking forward to working with you.\n\n"
        f"{insurer}\n{settings.get('PORTALCTL_INSURER_ADDRESS')}\n"
    )


def registration_blocked_subject(settings: Settings) -> str:
    return f"{settings.get('PORTALCTL_INSURER_NAME')} provider portal registration"


def registration_blocked_body(settings: Settings, *, recipient_name: str) -> str:
    """Sent to the email of an existing account when a registration hit the seed's "Oops!"."""
    return (
        f"Hi {_one_line(recipient_name)},\n\n"
        "Someone tried to register a new provider portal account with this email address, but "
        "an account is already set up for it, so the registration could not be completed. "
        "If this was you, sign in with your existing account and add the Tax ID there.\n\n"
        "If you need help, please contact Provider Services at:\n"
        f"For Commercial Services call: {settings.get('PORTALCTL_COMMERCIAL_PHONES')}, "
        "available 8 a.m. to 6 p.m. Monday - Friday.\n"
        f"For Medicare Services call: {settings.get('PORTALCTL_MEDICARE_PHONE')}, "
        "available 8 a.m. to 6 p.m. Monday - Friday.\n\n"
        f"{settings.get('PORTALCTL_INSURER_NAME')}\n{settings.get('PORTALCTL_INSURER_ADDRESS')}\n"
    )


def email_verification_subject(settings: Settings) -> str:
    return f"{settings.get('PORTALCTL_INSURER_NAME')} provider portal: your verification code"


def email_verification_body(settings: Settings, *, ttl_minutes: int) -> str:
    """The seed's "Verification code" email (seed 000, step 5); the code is ``{secret}``."""
    return (
        "Hello,\n\n"
        "To complete the verification of your email address, please enter the code below where "
        "you were asked for it. It was sent to this email address.\n\n"
        f"Verification code: {SECRET_PLACEHOLDER}.\n\n"
        f"The code expires {ttl_minutes} minutes after it was sent.\n\n"
        + _ignore_and_footer(settings)
    )


def password_reset_subject(settings: Settings) -> str:
    return f"{settings.get('PORTALCTL_INSURER_NAME')} provider portal: reset your password"


def password_reset_body(settings: Settings, *, username: str, ttl_minutes: int) -> str:
    """ "Forgot Password": a code that lets the account's owner set a new password."""
    return (
        "Hello,\n\n"
        "To reset the password of your provider portal account "
        f"{_one_line(username)}, please give the code below to Provider Services, or enter it "
        "where you were asked for it. Your password stays unchanged until then.\n\n"
        f"Password reset code: {SECRET_PLACEHOLDER}.\n\n"
        f"The code expires {ttl_minutes} minutes after it was sent.\n\n"
        + _ignore_and_footer(settings)
    )


def username_reminder_subject(settings: Settings) -> str:
    return f"{settings.get('PORTALCTL_INSURER_NAME')} provider portal: your username"


def username_reminder_body(settings: Settings, *, usernames: list[str]) -> str:
    """ "Forgot Username": the active usernames registered to this address."""
    listed = "".join(f"    {_one_line(name)}\n" for name in usernames)
    return (
        "Hello,\n\n"
        "You asked for the username of your provider portal account. These accounts are "
        f"registered to this email address:\n\n{listed}\n" + _ignore_and_footer(settings)
    )


def _ignore_and_footer(settings: Settings) -> str:
    """The end of the seed's verification email, shared by every email a caller asks for."""
    insurer = settings.get("PORTALCTL_INSURER_NAME")
    return (
        "If you don't recognize this request, someone may have used your email address by "
        "mistake. You can safely ignore this email.\n\n"
        f"{insurer}\n\n"
        "To maintain HIPAA compliance, please do not share your username or password with "
        "anyone.\n\n"
        f"{insurer}\n{settings.get('PORTALCTL_INSURER_ADDRESS')}\n"
    )


def _header_text(text: str) -> str:
    """One line; RFC 2047 encoded words when it is not ASCII."""
    flat = _one_line(text)
    return flat if flat.isascii() else Header(flat, "utf-8").encode(linesep="\r\n")


def _body_part(body: str) -> tuple[str, bytes]:
    """(Content-Transfer-Encoding, the encoded body with CRLF line ends): 7bit when every
    line is short ASCII, else quoted-printable of the UTF-8."""
    lines = body.splitlines()
    if all(line.isascii() and len(line) <= 78 for line in lines):
        return "7bit", "".join(line + "\r\n" for line in lines).encode("ascii")
    text = "".join(line + "\n" for line in lines).encode("utf-8")
    encoded = binascii.b2a_qp(text, quotetabs=False, istext=True, header=False)
    return "quoted-printable", encoded.replace(b"\n", b"\r\n")


@lru_cache(maxsize=8)
def _address_header(text: str) -> str:
    """``Name <address>`` as a header value (the From of every message: parsed once)."""
    return formataddr(parseaddr(_one_line(text)), charset="utf-8")


def render_message(
    *,
    sender: str,
    recipient: str,
    recipient_name: str | None,
    subject: str,
    body: str,
    message_id: str,
    date: datetime | None = None,
) -> bytes:
    """A plain-text MIME message as the bytes that go on the wire (CRLF), written directly:
    the email package's object model costs about a millisecond a message, as much as the SMTP
    exchange itself. Every header value is flattened to one line, so no value can add a
    header; names are quoted or encoded by ``formataddr``."""
    to = _one_line(recipient)
    encoding, payload = _body_part(body)
    headers = [
        f"From: {_address_header(sender)}",
        f"To: {formataddr((_one_line(recipient_name), to), charset='utf-8') if recipient_name else to}",
        f"Subject: {_header_text(subject)}",
        f"Message-ID: {_one_line(message_id)}",
        f"Date: {format_datetime(date or datetime.now(UTC), usegmt=True)}",
        "MIME-Version: 1.0",
        'Content-Type: text/plain; charset="utf-8"',
        f"Content-Transfer-Encoding: {encoding}",
    ]
    return ("\r\n".join(headers) + "\r\n\r\n").encode("ascii") + payload


def build_message(
    *,
    sender: str,
    recipient: str,
    recipient_name: str | None,
    subject: str,
    body: str,
    message_id: str,
) -> EmailMessage:
    """The message of ``render_message`` as an ``EmailMessage`` (for reading it back)."""
    rendered = render_message(
        sender=sender,
        recipient=recipient,
        recipient_name=recipient_name,
        subject=subject,
        body=body,
        message_id=message_id,
    )
    message = message_from_bytes(rendered, _class=EmailMessage, policy=default)
    assert isinstance(message, EmailMessage)
    return message
