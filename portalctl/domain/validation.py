"""The account fields' rules (SPEC section 1), shared by single-record commands, prompts and bulk
imports: each rule is written here once. Lengths and control characters are ``core.fields``'s."""

from __future__ import annotations

import re

from portalctl.core.email_address import parse_email_address
from portalctl.core.errors import InvalidInput
from portalctl.core.fields import clean_text
from portalctl.core.text import quoted
from portalctl.core.tin import Tin

ROLES = ("security_admin", "user")
ACCOUNT_STATUSES = ("active", "locked", "disabled", "merged")
IMPORTABLE_STATUSES = ("active", "locked", "disabled")
_USERNAME = re.compile(r"[A-Za-z0-9._%+@'-]{3,254}")
PASSWORD_LENGTH = (12, 128)
PIN_DIGITS = (4, 8)


def clean_username(value: str) -> str:
    username = (value or "").strip()
    if not _USERNAME.fullmatch(username):
        raise InvalidInput(
            f"invalid username {quoted(username)}: 3 to 254 characters of letters, "
            "digits and . _ % + @ ' -"
        )
    return username


def clean_email(value: str, *, what: str = "email address") -> str:
    return parse_email_address(value or "", what=what)


def clean_name(value: str, label: str = "full name") -> str:
    """A person's name (an account's full name, a code's admin contact): required."""
    name = clean_text(value, label)
    assert name is not None
    return name


def clean_role(value: str) -> str:
    role = (value or "").strip().lower()
    if role not in ROLES:
        raise InvalidInput(f"invalid role {quoted(role)}: use security_admin or user")
    return role


def clean_status(value: str, *, allowed: tuple[str, ...] = IMPORTABLE_STATUSES) -> str:
    status = (value or "").strip().lower()
    if status not in allowed:
        raise InvalidInput(f"invalid status {quoted(status)}: use {', '.join(allowed)}")
    return status


def parse_tin_with_role(text: str, *, default_role: str = "user") -> tuple[Tin, str]:
    """``836576879`` or ``836576879:security_admin``, as ``accounts create --tin`` takes it."""
    tin_text, _, role = text.partition(":")
    return Tin.parse(tin_text), clean_role(role) if role else default_role


def clean_new_password(password: str, *, username: str, email: str) -> str:
    """A password an account may be given (SPEC 1): 12 to 128 characters, containing neither
    the username nor the email address's local part, compared case-insensitively. The one rule
    for create, register, set-password and import; the message names the rule, never the
    password."""
    shortest, longest = PASSWORD_LENGTH
    if len(password) < shortest:
        raise InvalidInput(f"the password must be at least {shortest} characters long")
    if len(password) > longest:
        raise InvalidInput(f"the password must be at most {longest} characters long")
    folded = password.casefold()
    if username.strip().casefold() in folded:
        raise InvalidInput("the password must not contain the username")
    local_part = email.strip().rpartition("@")[0]
    if local_part and local_part.casefold() in folded:
        raise InvalidInput("the password must not contain the email address's local part")
    return password


def clean_pin(pin: str) -> str:
    """A PIN as typed (spaces around ignored): 4 to 8 ASCII digits."""
    text = pin.strip() if isinstance(pin, str) else ""
    fewest, most = PIN_DIGITS
    if not (fewest <= len(text) <= most and text.isascii() and text.isdigit()):
        raise InvalidInput(f"invalid PIN: expected {fewest} to {most} digits")
    return text
