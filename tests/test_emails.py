"""Email texts and MIME form, without a database."""

from email import message_from_bytes
from email.policy import default as default_policy

from portalctl.core.config import Settings
from portalctl.domain.emails import (
    build_message,
    credentialing_body,
    email_verification_body,
    password_reset_body,
    registration_blocked_body,
    username_reminder_body,
)

ACME = Settings(
    {"PORTALCTL_INSURER_NAME": "Acme Health", "PORTALCTL_INSURER_ADDRESS": "1 Main St | Hartford"}
)
# The end of the seed's "Verification code" email (seed 000, step 5).
SEED_ENDING = (
    "If you don't recognize this request, someone may have used your email address by mistake. "
    "You can safely ignore this email.\n\nAcme Health\n\nTo maintain HIPAA compliance, please "
    "do not share your username or password with anyone.\n\nAcme Health\n1 Main St | Hartford\n"
)


def test_credentialing_text_follows_the_seed_with_configured_insurer():
    settings = Settings(
        {
            "PORTALCTL_INSURER_NAME": "Acme Health",
            "PORTALCTL_COMMERCIAL_PHONES": "555-0100",
            "PORTALCTL_MEDICARE_PHONE": "555-0199",
        }
    )
    body = credentialing_body(settings, admin_name="James\nSmith", provider_name="Ruth Goneh")
    assert body.startswith("Hi James Smith,\n\nWe are pleased to inform you, Ruth Goneh has")
    assert "Registration Code: {secret}." in body
    assert (
        "555-0100" in body
        and "555-0199" in body
        and body.rstrip().splitlines()[-2] == ("Acme Health")
    )


def test_registration_blocked_text():
    blocked = registration_blocked_body(Settings({}), recipient_name="Ann")
    assert "860-674-5850 or 800-828-3407" in blocked and "877-224-8230" in blocked


def test_verification_text_follows_the_seed_with_the_configured_insurer():
    body = email_verification_body(ACME, ttl_minutes=15)
    assert body.startswith("Hello,\n\nTo complete the verification of your email address")
    assert "\n\nVerification code: {secret}.\n\nThe code expires 15 minutes after" in body
    assert body.endswith(SEED_ENDING)


def test_reset_and_reminder_texts_end_like_the_seeds_email():
    reset = password_reset_body(ACME, username="jsmith\nBcc: x", ttl_minutes=30)
    assert "account jsmith Bcc: x," in reset and "Password reset code: {secret}." in reset
    assert reset.endswith(SEED_ENDING)
    reminder = username_reminder_body(ACME, usernames=["amy", "amy.old"])
    assert "address:\n\n    amy\n    amy.old\n\n" in reminder and "{secret}" not in reminder
    assert reminder.endswith(SEED_ENDING)


def test_header_values_cannot_carry_a_new_header():
    message = build_message(
        sender="Portal <no-reply@example.org>",
        recipient="a@example.org",
        recipient_name="Eve\r\nBcc: victim@example.org",
        subject="Hello\nX-Evil: 1",
        body="text",
        message_id="<1@x>",
    )
    parsed = message_from_bytes(bytes(message), policy=default_policy)
    assert parsed["Bcc"] is None and parsed["X-Evil"] is None
    assert parsed["Subject"] == "Hello X-Evil: 1"
