"""Field rules for accounts, shared by single-record commands and bulk imports."""

from __future__ import annotations

import re

from portalctl.core.email_address import parse_email_address
from portalctl.core.errors import InvalidInput

ROLES = ("security_admin", "user")
ACCOUNT_STATUSES = ("active", "locked", "disabled", "merged")
_USERNAME = re.compile(r"[A-Za-z0-9._%+@'-]{3,254}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def clean_username(value: str) -> str:
    username = (value or "").strip()
    if not _USERNAME.fullmatch(username):
        raise InvalidInput(
            f"invalid username {_show(username)}: 3 to 254 characters of letters, "
            "digits and . _ % + @ ' -"
        )
    return username


def clean_email(value: str) -> str:
    return parse_email_address(value or "")


def clean_full_name(value: str) -> str:
    name = " ".join((value or "").split())
    if not name or len(name) > 200 or _CONTROL.search(name):
        raise InvalidInput(f"invalid full name {_show(name)}: 1 to 200 printable characters")
    return name


def clean_role(value: str) -> str:
    role = (value or "").strip().lower()
    if role not in ROLES:
        raise InvalidInput(f"invalid role {_show(role)}: use security_admin or user")
    return role


def clean_status(value: str, *, allowed: tuple[str, ...] = ("active", "locked", "disabled")) -> str:
    status = (value or "").strip().lower()
    if status not in allowed:
        raise InvalidInput(f"invalid status {_show(status)}: use {', '.join(allowed)}")
    return status


def _show(value: str) -> str:
    text = value if len(value) <= 60 else value[:57] + "..."
    return "'" + text.replace("\r", " ").replace("\n", " ") + "'"
