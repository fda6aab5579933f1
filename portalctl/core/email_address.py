"""The one rule for an email address, used by every entry point (options, CSV columns, the
outbox), so an address that cannot be delivered is refused at input instead of poisoning the
queue later.

Accepted: an ASCII ``local@domain`` as RFC 5321 allows it on the wire without quoting (a
dot-atom local part of at most 64 characters) at a domain of two or more LDH labels whose last
is alphabetic; at most 254 characters in all. Refused: display names and angle brackets, lists,
quoted local parts, control characters, non-ASCII characters (SMTPUTF8 is not assumed of the
insurer's relay), IP-literal domains.
"""

from __future__ import annotations

import re

from portalctl.core.errors import InvalidInput
from portalctl.core.text import quoted

MAX_LENGTH = 254
MAX_LOCAL_LENGTH = 64
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL = re.compile(rf"{_ATOM}(?:\.{_ATOM})*")
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_TOP_LABEL = re.compile(r"[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def parse_email_address(text: str, *, what: str = "email address") -> str:
    """The address with surrounding spaces removed and its domain in lower case, or
    ``InvalidInput`` naming what is wrong with it."""
    address = text.strip() if isinstance(text, str) else ""
    problem = email_address_problem(address)
    if problem:
        raise InvalidInput(f"invalid {what} {quoted(address)}: {problem}")
    local, _, domain = address.rpartition("@")
    return f"{local}@{domain.lower()}"


def email_address_problem(address: str) -> str | None:
    """Why ``address`` (already trimmed) is not acceptable, or None."""
    if not address:
        return "it is empty"
    if not address.isascii() or not address.isprintable():
        return "only printable ASCII characters are accepted"
    if len(address) > MAX_LENGTH:
        return f"longer than {MAX_LENGTH} characters"
    if address.count("@") != 1:
        return "expected one address, as name@example.org"
    local, _, domain = address.partition("@")
    if not local or len(local) > MAX_LOCAL_LENGTH or not _LOCAL.fullmatch(local):
        return "the part before @ is not a plain mailbox name"
    labels = domain.split(".")
    if (
        len(labels) < 2
        or not all(_LABEL.fullmatch(label) for label in labels[:-1])
        or not _TOP_LABEL.fullmatch(labels[-1])
    ):
        return "the part after @ is not a domain name such as example.org"
    return None
