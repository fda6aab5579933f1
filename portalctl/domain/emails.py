"""The texts of the emails portalctl sends, and their MIME form.

Bodies are stored in the outbox with ``{secret}`` where a code goes; the code itself is filled
in only at delivery (see ``portalctl.domain.outbox``)."""

from __future__ import annotations

from email.headerregistry import Address
from email.message import EmailMessage

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


def build_message(
    *,
    sender: str,
    recipient: str,
    recipient_name: str | None,
    subject: str,
    body: str,
    message_id: str,
) -> EmailMessage:
    """A plain-text MIME message; every header value is flattened to one line."""
    message = EmailMessage()
    message["From"] = _one_line(sender)
    if recipient_name:
        message["To"] = Address(
            display_name=_one_line(recipient_name), addr_spec=_one_line(recipient)
        )
    else:
        message["To"] = _one_line(recipient)
    message["Subject"] = _one_line(subject)
    message["Message-ID"] = _one_line(message_id)
    message.set_content(body)
    return message
