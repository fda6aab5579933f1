"""Seed 001's Account Lookup page: the Tax ID and the registration code sent to its primary
contact, checked (``codes verify``'s check: failures counted against the TIN) and kept, not yet
used, for the link or the registration at the end of the flow."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from portalctl.core.database import transaction
from portalctl.core.errors import NotFound
from portalctl.core.tin import Tin
from portalctl.domain.code_checks import CodeCheck, check_registration_code
from portalctl.domain.flows.conversation import Talk, can_retry
from portalctl.domain.flows.steps import FlowContext

LOOKUP_TEXT = (
    "We need to look up your information before you begin. Enter your Tax ID number, and the "
    "registration code sent to the primary contact on your account."
)


@dataclass(frozen=True)
class Lookup:
    """The TIN and its code as the caller read it out, and the check that accepted it."""

    tin: Tin
    code: str
    check: CodeCheck


def look_up_registration_code(talk: Talk, context: FlowContext, *, given_tin: str | None) -> Lookup:
    """Asked until a code checks (each wrong one counted; the TIN's lockout ends the flow)."""
    talk.page("Account Lookup", LOOKUP_TEXT)
    while True:
        tin = talk.ask_checked("Tax ID Number *: ", Tin.parse, given=given_tin)
        code = talk.ask("Registration Code *: ", secret=True)
        check = talk.attempt(
            partial(_check_code, context, tin=tin, code=code),
            retry=lambda error: (
                can_retry(error) and not (given_tin is not None and isinstance(error, NotFound))
            ),
        )
        if check is not None:
            return Lookup(tin, code, check)


def _check_code(context: FlowContext, *, tin: Tin, code: str) -> CodeCheck:
    with transaction(context.engine) as connection:
        return check_registration_code(
            connection,
            operator=context.operator,
            tin=tin,
            code=code,
            settings=context.settings,
            flow_id=context.flow_id,
        )
