"""``flow consolidate``: seed 000, "Consolidating Existing Accounts", page by page.

Account Lookup (username and Tax ID), Account Verification (the account's security question,
or its PIN), Email Address Verification (the address twice, the code sent at once and read
back), Verify Username and Password of the existing account, then what will merge (the dry run
of ``consolidate one``), a confirmation, the merge (gated like ``consolidate one``: the checks
above are what it asks for) and "Thank You". Every step is a single command's domain function;
this module only orders them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from sqlalchemy.engine import Engine

from portalctl.core.config import Settings
from portalctl.core.database import transaction
from portalctl.core.readonly_db import readonly_connection
from portalctl.core.text import quoted
from portalctl.core.tin import Tin
from portalctl.domain.account_lookup import lookup_one
from portalctl.domain.accounts import get_account_row
from portalctl.domain.consolidation import consolidate_one
from portalctl.domain.flows.conversation import (
    Conversation,
    FlowRecord,
    GoBack,
    Talk,
    can_retry,
    run_flow,
)
from portalctl.domain.flows.steps import (
    FlowContext,
    ask_email,
    reading,
    verify_email_code,
    verify_password,
    verify_secret,
)

TITLE = "Provider Portal - Existing User - Consolidating Existing Accounts"
LOOKUP_TEXT = (
    "We need to look up your information before you begin. Enter your username, and any Tax "
    "ID number associated with your account."
)
VERIFICATION_TEXT = (
    "Please enter the answer to your security question or your pin below to verify your account."
)
EMAIL_TEXT = (
    "Please enter your own email address and not a shared one. We will email you a code for "
    "verification. We will also use this email address in case you forget your username or "
    "need to reset your password."
)


@dataclass(frozen=True)
class ConsolidateAnswers:
    """The answers an option gave (the flow asks for the rest). ``username`` and ``tin`` look
    up the account to consolidate; ``existing_username`` is the caller's existing account."""

    username: str | None = None
    tin: str | None = None
    email: str | None = None
    existing_username: str | None = None
    use_pin: bool = False
    yes: bool = False
    notify: bool = False


def run_consolidate_flow(
    engine: Engine,
    conversation: Conversation,
    *,
    operator: str,
    settings: Settings,
    answers: ConsolidateAnswers,
) -> dict[str, Any]:
    """Walk the rep through seed 000; the flow's record (``outcome``: ``merged``)."""
    return run_flow(
        engine,
        conversation,
        flow="consolidate",
        title=TITLE,
        operator=operator,
        involved={"secondary": None, "primary": None, "tin": None, "links_moved": []},
        steps=partial(_steps, engine, operator, settings, answers),
    )


def _steps(
    engine: Engine,
    operator: str,
    settings: Settings,
    answers: ConsolidateAnswers,
    talk: Talk,
    record: FlowRecord,
) -> str:
    context = FlowContext(engine, operator, settings, talk.flow_id)
    secondary, tin = _account_lookup(talk, context, answers)
    record.involved.update(secondary=secondary, tin=tin)
    _account_verification(talk, context, secondary, use_pin=answers.use_pin)
    given_email = answers.email
    while True:
        email = ask_email(talk, given=given_email, text=EMAIL_TEXT)
        try:
            verify_email_code(talk, context, username=secondary, email=email)
            break
        except GoBack:
            given_email = None
    primary = verify_password(talk, context, given_username=answers.existing_username)
    record.involved["primary"] = primary
    merge = partial(_merge, context, primary=primary, secondary=secondary, tin=tin)
    plan = merge(dry_run=True, notify=False)
    talk.page("Consolidating Existing Accounts", _what_will_merge(plan))
    talk.confirm(f"Merge {quoted(secondary)} into {quoted(primary)}? (yes/no): ", yes=answers.yes)
    done = merge(dry_run=False, notify=answers.notify)
    record.involved["links_moved"] = done["links_moved"]
    talk.page(
        "Thank You",
        f"{quoted(secondary)} is merged into {quoted(primary)}"
        + (f": {_tins(done['links_moved'])} now belong to it." if done["links_moved"] else ".")
        + f" Flow {talk.flow_id}.",
    )
    return "merged"


def _account_lookup(
    talk: Talk, context: FlowContext, answers: ConsolidateAnswers
) -> tuple[str, Tin]:
    talk.page("Account Lookup", LOOKUP_TEXT)
    every_answer_given = answers.username is not None and answers.tin is not None
    while True:
        username = talk.ask("Username *: ", given=answers.username)
        tin = talk.ask_checked("Tax ID Number *: ", Tin.parse, given=answers.tin)
        found = talk.attempt(
            partial(_lookup, context, username=username, tin=tin), retry=not every_answer_given
        )
        if found is not None:
            return found["username"], tin


def _lookup(context: FlowContext, *, username: str, tin: Tin) -> dict[str, Any]:
    with readonly_connection(context.settings.database_url) as connection:
        return lookup_one(connection, username=username, tin=tin.reveal())


def _account_verification(
    talk: Talk, context: FlowContext, username: str, *, use_pin: bool
) -> None:
    """The security question's answer (case and spacing ignored), or the PIN with ``use_pin``
    or when the account has no question; every failure counted, the account locked at the
    limit (which ends the flow)."""
    talk.page("Account Verification", VERIFICATION_TEXT)
    with reading(context) as connection:
        question = get_account_row(connection, username)["security_question"]
    use_pin = use_pin or question is None
    while True:
        secret = talk.ask("PIN *: " if use_pin else f"{question} *: ", secret=True)
        given = {"pin": secret} if use_pin else {"answer": secret}
        if talk.attempt(
            partial(verify_secret, context, username=username, **given), retry=can_retry
        ):
            return


def _merge(
    context: FlowContext, *, primary: str, secondary: str, tin: Tin, dry_run: bool, notify: bool
) -> dict[str, Any]:
    with transaction(context.engine) as connection:
        return consolidate_one(
            connection,
            operator=context.operator,
            primary=primary,
            secondary=secondary,
            tin=tin,
            dry_run=dry_run,
            notify=notify,
            flow_id=context.flow_id,
        )


def _what_will_merge(plan: dict[str, Any]) -> str:
    text = f"{quoted(plan['secondary'])} will be merged into {quoted(plan['primary'])}"
    text += f": {_tins(plan['links_moved'])} move to it." if plan["links_moved"] else "."
    text += f" {quoted(plan['secondary'])} can no longer be used; its username stays reserved."
    if plan["not_verified"]:
        text += "\nNot verified (the merge will be refused): " + "; ".join(plan["not_verified"])
    return text


def _tins(links: list[dict[str, Any]]) -> str:
    return "Tax IDs " + ", ".join(f"{link['tin']} ({link['role']})" for link in links)
