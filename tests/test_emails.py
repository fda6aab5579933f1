"""Email texts and MIME form, without a database."""

from email import message_from_bytes
from email.policy import default as default_policy

from portalctl.core.config import Settings
from portalctl.domain.emails import (
    build_message,
    credentialing_body,
    email_verification_body,
    registration_blocked_body,
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


def test_registration_blocked_and_verification_texts():
    settings = Settings({})
    blocked = registration_blocked_body(settings, recipient_name="Ann")
    assert "860-674-5850 or 800-828-3407" in blocked and "877-224-8230" in blocked
    assert "{secret}" in email_verification_body(settings, recipient_name="Ann")


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
