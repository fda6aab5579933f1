"""The text fields portalctl stores, with their limits: one table, checked against the migrated
schema by ``tests/test_schema.py``, and one function that every entry point (options, CSV
columns, prompts) passes a value through before any SQL sees it.

A value too long for its column, or holding a control character (NUL among them, which
PostgreSQL refuses outright), is invalid input naming the field, never a database error.
"""

from __future__ import annotations

from dataclasses import dataclass

from portalctl.core.errors import InvalidInput, NotFound, UsageError
from portalctl.core.text import collapse_spaces, has_controls, quoted


@dataclass(frozen=True)
class TextField:
    """A stored text field: how messages name it, the column holding it, its maximum length."""

    label: str
    column: str
    max_length: int


FIELDS: dict[str, TextField] = {
    field.label: field
    for field in (
        TextField("username", "accounts.username", 254),
        TextField("email address", "accounts.email", 254),
        TextField("full name", "accounts.full_name", 200),
        TextField("security question", "accounts.security_question", 300),
        TextField("admin name", "registration_codes.admin_name", 200),
        TextField("admin email", "registration_codes.admin_email", 254),
        TextField("provider name", "registration_codes.provider_name", 200),
        TextField("organisation name", "organisations.name", 200),
        TextField("reason", "registration_codes.revoke_reason", 500),
        TextField("operator", "audit_log.operator", 100),
        TextField("file name", "consolidation_batches.file_name", 500),
    )
}

# Search terms are not stored, but SQLite refuses LIKE patterns past 50,000 bytes with an
# error that is not the user's to read; nothing portalctl stores is longer than this.
MAX_SEARCH_LENGTH = 254


def clean_text(value: str | None, label: str, *, required: bool = True) -> str | None:
    """``value`` with runs of spaces collapsed, checked against the field ``label``'s rules;
    None for an empty optional value."""
    field = FIELDS[label]
    text = collapse_spaces(value) if isinstance(value, str) else ""
    if not text:
        if required:
            raise InvalidInput(f"the {label} must not be empty")
        return None
    if has_controls(value or ""):
        raise InvalidInput(f"invalid {label} {quoted(value)}: control characters are not allowed")
    if len(text) > field.max_length:
        raise InvalidInput(
            f"invalid {label} {quoted(text)}: at most {field.max_length} characters, "
            f"not {len(text)}"
        )
    return text


def clean_reason(value: str | None) -> str:
    """Every change a person makes by hand says why (it goes in the audit log); a missing or
    blank reason is a usage error, the same for every command."""
    if value is None or not value.strip():
        raise UsageError("--reason is required: say why (it is kept in the audit log)")
    cleaned = clean_text(value, "reason")
    assert cleaned is not None
    return cleaned


def clean_search_term(value: str, label: str) -> str:
    """A filter as typed: trimmed, without control characters, of a length a stored value
    could have."""
    text = value.strip()
    if has_controls(text):
        raise InvalidInput(f"invalid {label} filter {quoted(text)}: control characters")
    if len(text) > MAX_SEARCH_LENGTH:
        raise InvalidInput(
            f"invalid {label} filter {quoted(text)}: at most {MAX_SEARCH_LENGTH} characters"
        )
    return text


# The largest id any table's 64-bit key can hold: an id typed beyond it names nothing.
MAX_ID = 2**63 - 1


def refuse_impossible_id(value: int, what: str) -> int:
    """``value`` if a record could have it, else not found (before any SQL, which could not
    even bind it)."""
    if not 1 <= value <= MAX_ID:
        raise NotFound(f"no {what} {value}")
    return value
