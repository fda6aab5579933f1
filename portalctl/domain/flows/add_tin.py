"""``flow add-tin``: seed 001, "Registering Additional Tax IDs", page by page.

Account Lookup (Tax ID and Registration Code: checked, not yet used), Email Address
Verification, then by who uses that address (``accounts_using_email``, the rule the "Oops!"
itself uses):

- an active account: its email code, "It looks like there is already an account associated
  with this email address", Verify Username and Password of that account, the TIN linked with
  the code (``tins link --code``, gated the same way) and "Thank You";
- only locked or disabled accounts: the "Oops!" (``refuse_registration``: its email queued);
- none: a new account registered with the code (``accounts register``), then its address
  verified by an email code: an email code belongs to an account, so here it comes after the
  registration, and a flow ended at that step leaves the account registered with its address
  unverified (the outcome says so).

When several active accounts use the address, the flow asks which one is the caller's before
sending the code (the code is the account's).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from sqlalchemy.engine import Engine, RowMapping

from portalctl.core.clock import utc_now
from portalctl.core.config import Settings
from portalctl.core.database import transaction
from portalctl.core.errors import RecordedRefusal, Refused
from portalctl.core.text import quoted
from portalctl.domain.flows.conversation import (
    Conversation,
    FlowRecord,
    GoBack,
    Talk,
    run_flow,
)
from portalctl.domain.flows.new_account import NewAccountAnswers, register_new_account
from portalctl.domain.flows.registration_code import Lookup, look_up_registration_code
from portalctl.domain.flows.steps import (
    FlowContext,
    ask_email,
    reading,
    verify_email_code,
    verify_password,
)
from portalctl.domain.registration import link_tin
from portalctl.domain.registration_oops import accounts_using_email, refuse_registration

TITLE = "Provider Portal - Registering Additional Tax IDs"
EMAIL_TEXT = (
    "Please enter your own email address and not a shared one. We will use it to send your "
    "security code and in case you forget your username or need to reset your password."
)
EXISTING_TEXT = (
    "It looks like there is already an account associated with this email address in our new "
    "portal. If you already have access to this portal and want to add a new Tax ID number, "
    "verify your username and password next. Otherwise, type 'back' to enter a new email "
    "address."
)


@dataclass(frozen=True)
class AddTinAnswers:
    """The answers an option gave (the flow asks for the rest)."""

    tin: str | None = None
    email: str | None = None
    existing_username: str | None = None
    new_username: str | None = None
    full_name: str | None = None
    security_question: str | None = None


def run_add_tin_flow(
    engine: Engine,
    conversation: Conversation,
    *,
    operator: str,
    settings: Settings,
    answers: AddTinAnswers,
) -> dict[str, Any]:
    """Walk the rep through seed 001; the flow's record (``linked`` or ``registered``)."""
    return run_flow(
        engine,
        conversation,
        flow="add-tin",
        title=TITLE,
        operator=operator,
        involved={"account": None, "tin": None, "email": None, "email_verified": False},
        steps=partial(_steps, engine, operator, settings, answers),
    )


def _steps(
    engine: Engine,
    operator: str,
    settings: Settings,
    answers: AddTinAnswers,
    talk: Talk,
    record: FlowRecord,
) -> str:
    context = FlowContext(engine, operator, settings, talk.flow_id)
    lookup = look_up_registration_code(talk, context, given_tin=answers.tin)
    record.involved["tin"] = lookup.tin
    given_email = answers.email
    while True:
        email = ask_email(talk, given=given_email, text=EMAIL_TEXT)
        record.involved["email"] = email
        with reading(context) as connection:
            using = accounts_using_email(connection, email)
        active = [account for account in using if account["status"] == "active"]
        try:
            if active:
                return _existing_account(talk, context, record, answers, lookup, email, active)
            if using:
                _oops(context, record, using[0], lookup)
            new = NewAccountAnswers(
                answers.new_username, answers.full_name, answers.security_question
            )
            return register_new_account(talk, context, record, new, lookup, email)
        except GoBack:
            given_email = None


def _existing_account(
    talk: Talk,
    context: FlowContext,
    record: FlowRecord,
    answers: AddTinAnswers,
    lookup: Lookup,
    email: str,
    active: list[RowMapping],
) -> str:
    by_key = {account["username"].lower(): account["username"] for account in active}
    chosen = answers.existing_username
    if chosen is not None and chosen.strip().lower() not in by_key:
        raise Refused(f"account {quoted(chosen.strip())} does not use the address {email}")
    if chosen is None and len(active) > 1:
        talk.tell(f"{len(active)} accounts use this address: which one is the caller's?")
        while (chosen := talk.ask("Username *: ").strip()).lower() not in by_key:
            talk.tell(f"account {quoted(chosen)} does not use this address")
    owner = by_key[(chosen or active[0]["username"]).strip().lower()]
    verify_email_code(talk, context, username=owner, email=email)
    record.involved["email_verified"] = True
    talk.page("Portal User Account Verification", EXISTING_TEXT)
    username = verify_password(
        talk,
        context,
        given_username=chosen,
        accept=lambda typed: (
            None
            if typed.strip().lower() == owner.lower()
            else f"account {quoted(typed.strip())} is not the account this address was verified for"
        ),
        back=True,
    )
    record.involved["account"] = username
    with transaction(context.engine) as connection:
        link_tin(
            connection,
            operator=context.operator,
            username=username,
            tin=lookup.tin,
            code=lookup.code,
            settings=context.settings,
            flow_id=context.flow_id,
        )
    talk.page(
        "Thank You",
        f"Tax ID {lookup.tin} is added to {quoted(username)}, its Portal Security "
        f"Administrator (security_admin). Flow {talk.flow_id}.",
    )
    return "linked"


def _oops(context: FlowContext, record: FlowRecord, existing: RowMapping, lookup: Lookup) -> None:
    """The "Oops!" of ``accounts register`` (its email queued): the flow ends ``blocked``."""
    try:
        with transaction(context.engine) as connection:
            refuse_registration(
                connection,
                operator=context.operator,
                existing=existing,
                tin=lookup.tin,
                requested_username=None,
                code_id=lookup.check.code_id,
                settings=context.settings,
                flow_id=context.flow_id,
                now=utc_now(),
            )
    except RecordedRefusal:
        record.outcome = "blocked"
        raise
