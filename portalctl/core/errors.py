"""One error hierarchy for user-facing failures, mapped once to the exit codes of SPEC section 4."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    BUG = 1
    USAGE = 2
    NOT_FOUND = 3
    REFUSED = 4
    INVALID_INPUT = 5
    DATABASE = 6
    PARTIAL = 7


class PortalError(Exception):
    """A failure the operator can act on; its message is shown as one line."""

    exit_code: ExitCode = ExitCode.BUG

    def __init__(self, message: str, *, details: list[str] | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or []


class UsageError(PortalError):
    """The command was called wrongly (missing filter, conflicting options)."""

    exit_code = ExitCode.USAGE


class NotFound(PortalError):
    """No such account, TIN, code, email or batch."""

    exit_code = ExitCode.NOT_FOUND


class Refused(PortalError):
    """A business rule refused the change (wrong code, inactive account, self-merge...)."""

    exit_code = ExitCode.REFUSED


class InvalidInput(PortalError):
    """Malformed input (TIN, email, CSV); nothing was written."""

    exit_code = ExitCode.INVALID_INPUT


class DatabaseUnavailable(PortalError):
    """The database cannot be reached, or its schema is missing or out of date."""

    exit_code = ExitCode.DATABASE


class ConfigurationError(PortalError):
    """A setting is missing or malformed (e.g. no PORTALCTL_SECRET_KEY)."""

    exit_code = ExitCode.USAGE
