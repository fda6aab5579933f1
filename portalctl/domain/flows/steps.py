"""The pages both guides share: Email Address Verification (the address twice, the code sent at
once and read back, with Request New Code and Previous) and Verify Username and Password.
Each calls the domain functions of the single commands (``accounts email-code``,
``confirm-email``, ``verify``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

from sqlalchemy.engine import Connection, Engine

from portalctl.core.config import Settings
from portalctl.core.database import DEFER_WRITE_LOCK, transaction
from portalctl.core.errors import MailServerUnavailable, NotFound, PortalError, Refused
from portalctl.domain.email_codes import confirm_email, send_email_code
from portalctl.domain.flows.conversation import BACK, NEW, GoBack, Talk
from portalctl.domain.validation import clean_email
from portalctl.domain.verification import VerificationResult, verify_account

EMAIL_PAGE = "Email Address Verification"
CODE_PAGE = "Security Code Verification"
PASSWORD_PAGE = "Verify Username and Password"


@dataclass(frozen=True)
class FlowContext:
    """What every domain call of a flow is made with: the engine, the rep acting, the
    settings, and the flow's id for the audit records."""

    engine: Engine
    operator: str
    settings: Settings
    flow_id: str


@contextmanager
def reading(context: FlowContext) -> Iterator[Connection]:
    """A connection for a flow's reads (on SQLite it does not take the write lock)."""
    with context.engine.connect() as connection:
        connection.execution_options(**{DEFER_WRITE_LOCK: True})
        yield connection


def ask_email(talk: Talk, *, given: str | None, text: str) -> str:
    """The Email and Verify Email fields: the same valid address twice (``given``: an option
    gave it once)."""
    talk.page(EMAIL_PAGE, text)
    while True:
        email = talk.ask("Email *: ", given=given)
        again = talk.ask("Verify Email *: ", given=given)
        address = talk.attempt(partial(clean_email, email), retry=given is None)
        if address is None:
            continue
        if again.strip().lower() != email.strip().lower():
            talk.tell("The two email addresses differ: enter the address twice.")
            continue
        return address


def verify_email_code(
    talk: Talk, context: FlowContext, *, username: str, email: str, back: bool = True
) -> None:
    """The code emailed at once to ``email`` for ``username``, then read back: ``new`` sends
    another (the earlier one is replaced), ``back`` returns to the address (``GoBack``)."""
    send = partial(_send_code, talk, context, username=username, email=email, back=back)
    delivered = send(first=True, page=True)
    while True:
        words = (NEW, *BACK) if back else (NEW,)
        code = talk.ask("Verification Code *: ", secret=True, words=words)
        if code == NEW:
            delivered = send(first=False, page=not delivered) or delivered
            continue
        if code in BACK:
            raise GoBack
        if talk.attempt(partial(_confirm, context, username=username, code=code)) is not None:
            talk.tell(f"The email address {email} is verified.")
            return


def _send_code(
    talk: Talk,
    context: FlowContext,
    *,
    username: str,
    email: str,
    first: bool,
    page: bool,
    back: bool,
) -> bool:
    """Send a code (``first``: nothing was sent before, so a refusal ends the flow); whether
    it was delivered. ``page``: show the Security Code Verification page (no code arrived yet)."""
    try:
        record = send_email_code(
            context.engine,
            operator=context.operator,
            username=username,
            email=email,
            settings=context.settings,
            flow_id=context.flow_id,
        )
    except MailServerUnavailable as error:
        talk.tell(f"{error.message}: type 'new' to try again, or 'cancel'.")
        return False
    except PortalError as error:
        if first:  # nothing was sent: the flow cannot go on
            raise
        talk.tell(error.message)  # e.g. the hourly limit: the code sent before still stands
        return False
    if not page:
        talk.tell(f"We've sent a new code to your email address {email}.")
        return True
    if record["accounts_using_email"]:
        talk.tell(
            f"{record['accounts_using_email']} other active account(s) use this address: "
            "please enter your own email address and not a shared one."
        )
    talk.page(
        CODE_PAGE,
        f"We've sent a code to your email address {email}. Please enter it below. If you "
        "don't see the email, check your spam folder where automated messages sometimes "
        "filter.\n"
        + (
            "If you've entered an incorrect email address, you can go back and change it "
            "(type 'back'); or you can request a new code (type 'new')."
            if back
            else "You can request a new code (type 'new')."
        ),
    )
    return True


def _confirm(context: FlowContext, *, username: str, code: str) -> dict[str, Any]:
    with transaction(context.engine) as connection:
        return confirm_email(
            connection,
            operator=context.operator,
            username=username,
            code=code,
            settings=context.settings,
            flow_id=context.flow_id,
        )


def verify_password(
    talk: Talk,
    context: FlowContext,
    *,
    given_username: str | None,
    accept: Callable[[str], str | None] | None = None,
    back: bool = False,
) -> str:
    """Verify Username and Password of the caller's existing account; its username.
    ``accept(username)``: a message when that account is not the one this step is for
    (asked again). ``back``: ``back`` at the username returns to the step before."""
    talk.page(PASSWORD_PAGE, "Enter username and password for your existing account.")
    while True:
        username = talk.ask("Username *: ", given=given_username, words=BACK if back else ())
        if username in BACK and back:
            raise GoBack
        refusal = accept(username) if accept is not None else None
        if refusal:
            if given_username is not None:
                raise Refused(refusal)
            talk.tell(refusal)
            continue
        password = talk.ask("Password *: ", secret=True)
        verified = talk.attempt(
            partial(verify_secret, context, username=username, password=password),
            retry=lambda error: given_username is None or not isinstance(error, NotFound),
        )
        if verified is not None:
            return verified.username


def verify_secret(
    context: FlowContext,
    *,
    username: str,
    password: str | None = None,
    answer: str | None = None,
    pin: str | None = None,
) -> VerificationResult:
    """``accounts verify``'s check, in a transaction of its own (a failure's count commits)."""
    with transaction(context.engine) as connection:
        return verify_account(
            connection,
            operator=context.operator,
            username=username,
            password=password,
            answer=answer,
            pin=pin,
            max_failures=context.settings.account_max_failures,
            window_minutes=context.settings.verification_window_minutes,
            flow_id=context.flow_id,
        )
