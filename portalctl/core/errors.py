"""One error hierarchy for user-facing failures, mapped once to the exit codes of SPEC section 4.

Every refusal a person can act on is one of these, raised where the rule lives; the CLI's one
handler (``cli/app.py``) turns it into one stderr line and its exit code.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any


class ExitCode(IntEnum):
    OK = 0
    BUG = 1
    USAGE = 2
    NOT_FOUND = 3
    REFUSED = 4
    INVALID_INPUT = 5
    DATABASE = 6
    PARTIAL = 7
    MAIL_SERVER = 8
    INTERRUPTED = 130


class PortalError(Exception):
    """A failure the operator can act on; its message is shown as one line. ``record``, when
    given, is what the command prints before ending with the error (a verification result
    with ``verified: false``, a bulk run's summary)."""

    exit_code: ExitCode = ExitCode.BUG
    # True for a failure that reports work done or recorded, which its transaction keeps.
    keeps_changes = False

    def __init__(self, message: str, *, details: list[str] | None = None, record: Any = None):
        super().__init__(message)
        self.message = message
        self.details = details or []
        self.record = record


class UsageError(PortalError):
    """The command was called wrongly (missing filter, conflicting options, no terminal)."""

    exit_code = ExitCode.USAGE


class ConfirmationNeeded(UsageError):
    """A change that must be confirmed first (``--yes``, or an answer at a terminal): nothing
    was changed; ``message`` is the question."""


class ConfigurationError(UsageError):
    """A setting is missing or malformed (e.g. no PORTALCTL_SECRET_KEY)."""


class Cancelled(PortalError):
    """The operator answered no to a confirmation: nothing was changed (exit 0)."""

    exit_code = ExitCode.OK


class NotFound(PortalError):
    """No such account, TIN, code, email or batch."""

    exit_code = ExitCode.NOT_FOUND


class Refused(PortalError):
    """A business rule refused the change (wrong code, inactive account, self-merge...)."""

    exit_code = ExitCode.REFUSED


class RecordedRefusal(Refused):
    """A refusal whose transaction must still commit: what led to it was itself recorded (a
    failed attempt counted, an account locked, the "Oops!" email queued, an audit record).

    The transaction helpers commit before re-raising it; every other error rolls back."""

    keeps_changes = True


class Interrupted(PortalError):
    """The operator ended a guided flow ("cancel" or Ctrl-C at a prompt) before its change;
    nothing was changed beyond the checks it had audited."""

    exit_code = ExitCode.INTERRUPTED


class InvalidInput(PortalError):
    """Malformed input (TIN, email, CSV, a value too long); nothing was written."""

    exit_code = ExitCode.INVALID_INPUT


class PartlyApplied(PortalError):
    """A bulk run applied the good rows and skipped the others (``--skip-invalid``): what it
    applied stays."""

    exit_code = ExitCode.PARTIAL
    keeps_changes = True


class DatabaseUnavailable(PortalError):
    """The database cannot be reached, or its schema is missing or out of date."""

    exit_code = ExitCode.DATABASE


class MailServerUnavailable(PortalError):
    """The mail server refused the connection, the TLS handshake or the login: no email was
    marked dead or charged an attempt for it."""

    exit_code = ExitCode.MAIL_SERVER
