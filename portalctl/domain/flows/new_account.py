"""The new-user path of seed 001: no account uses the verified address, so a new account
(username, full name, password, security question and answer) is registered with the
registration code (``accounts register``'s function), as the TIN's security_admin, and its
address is then verified by an email code. An email code belongs to an account, so it comes
after the registration here; a flow ended at that step leaves the account registered with its
address unverified, and says what to run."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from portalctl.core.database import transaction
from portalctl.core.errors import InvalidInput, PortalError, Refused
from portalctl.core.fields import clean_text
from portalctl.core.text import quoted
from portalctl.domain.account_changes import refuse_taken_username
from portalctl.domain.flows.conversation import BACK, FlowRecord, GoBack, Talk
from portalctl.domain.flows.registration_code import Lookup
from portalctl.domain.flows.steps import FlowContext, reading, verify_email_code
from portalctl.domain.registration import register_account
from portalctl.domain.validation import clean_name, clean_new_password, clean_username


@dataclass(frozen=True)
class NewAccountAnswers:
    """The new account's details an option gave (``--new-username``, ``--full-name``,
    ``--security-question``); the password and the answer are always asked for."""

    username: str | None = None
    full_name: str | None = None
    security_question: str | None = None


def register_new_account(
    talk: Talk,
    context: FlowContext,
    record: FlowRecord,
    given: NewAccountAnswers,
    lookup: Lookup,
    email: str,
) -> str:
    """The new account's details, its registration with the code, then its address verified;
    the outcome (``registered``)."""
    talk.page(
        "Portal User Registration",
        f"No account uses {email} yet: a new account is registered with the registration "
        "code, as the Tax ID's Portal Security Administrator (type 'back' at the username to "
        "enter another address).",
    )
    while True:
        details = _new_account_details(talk, context, given, email)
        account = talk.attempt(
            partial(_register, context, lookup, email, details),
            retry=lambda error: isinstance(error, InvalidInput),
        )
        if account is not None:
            break
    record.involved["account"] = account["username"]
    record.outcome = "registered"
    talk.tell(f"Account {quoted(account['username'])} is registered.")
    try:
        verify_email_code(talk, context, username=account["username"], email=email, back=False)
        record.involved["email_verified"] = True
    except (PortalError, KeyboardInterrupt) as error:  # the account stays: say what is left
        message = error.message if isinstance(error, PortalError) else "interrupted"
        talk.tell(
            f"{message}. The account is registered but its address is not verified: "
            f"`portalctl accounts email-code {account['username']} --email {email}`."
        )
        return "registered"
    talk.page(
        "Thank You",
        f"{quoted(account['username'])} is registered, the Portal Security Administrator of Tax "
        f"ID {lookup.tin}, with the address {email} verified. Flow {talk.flow_id}.",
    )
    return "registered"


def _new_account_details(
    talk: Talk, context: FlowContext, given: NewAccountAnswers, email: str
) -> dict[str, str]:
    """Each answer checked by the rule ``accounts register`` applies to it, as it is given."""
    username = talk.ask_checked(
        "Username *: ",
        partial(_fresh_username, context),
        given=given.username,
        retry=lambda error: isinstance(error, InvalidInput | Refused),
    )
    full_name = talk.ask_checked("Full Name *: ", clean_name, given=given.full_name)
    password = talk.ask_checked(
        "Password *: ",
        partial(_new_password, username=username, email=email),
        secret=True,
        twice=True,
    )
    question = talk.ask_checked(
        "Security Question *: ", _security_question, given=given.security_question
    )
    answer = talk.ask("Security Answer *: ", secret=True, twice=True)
    return {
        "username": username,
        "full_name": full_name,
        "password": password,
        "security_question": question,
        "security_answer": answer,
    }


def _fresh_username(context: FlowContext, typed: str) -> str:
    """A valid username no account has; ``back`` returns to the address."""
    if typed.strip().lower() in BACK:
        raise GoBack
    username = clean_username(typed)
    with reading(context) as connection:
        refuse_taken_username(connection, username)
    return username


def _new_password(typed: str, *, username: str, email: str) -> str:
    return clean_new_password(typed, username=username, email=email)


def _security_question(typed: str) -> str:
    question = clean_text(typed, "security question")
    assert question is not None  # required: an empty one is refused
    return question


def _register(
    context: FlowContext, lookup: Lookup, email: str, details: dict[str, str]
) -> dict[str, Any]:
    with transaction(context.engine) as connection:
        return register_account(
            connection,
            operator=context.operator,
            tin=lookup.tin,
            code=lookup.code,
            email=email,
            username=details["username"],
            full_name=details["full_name"],
            password=details["password"],
            security_question=details["security_question"],
            security_answer=details["security_answer"],
            settings=context.settings,
            flow_id=context.flow_id,
        )


#####
LOOKUP_TEXT = (
    "We need to look up your information before you begin. Enter your Tax ID number, and the "
    "registration code sent to the primary contact on your account."
)
