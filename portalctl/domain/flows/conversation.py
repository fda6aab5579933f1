"""How a guided flow talks to the rep, and how it starts, retries and ends.

The flow's steps never print: they ``tell`` and ``ask`` through a ``Conversation``, which the CLI
implements for a terminal (secrets without echo) and for standard input (one line an answer).
Words a rep can type at a prompt: ``cancel`` (anywhere: the flow ends, nothing changed beyond
its audited checks), ``back`` or ``previous`` (the portal's Previous, where a step allows it) and
``new`` (Request New Code, at the code prompt).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol, TypeVar

from sqlalchemy.engine import Engine

from portalctl.core.database import transaction
from portalctl.core.errors import (
    Cancelled,
    Interrupted,
    InvalidInput,
    NotFound,
    PortalError,
    RecordedRefusal,
    UsageError,
)
from portalctl.core.text import quoted
from portalctl.domain.audit import record_audit

T = TypeVar("T")
CANCEL = "cancel"
BACK = ("back", "previous")
NEW = "new"


class Conversation(Protocol):
    """The rep's side. ``ask`` and ``secret`` return the line typed (without its line end);
    they raise ``EOFError`` when there is no more input and ``KeyboardInterrupt`` on Ctrl-C.
    ``secret(twice=True)``: a new secret, typed twice at a terminal (once on stdin)."""

    def tell(self, message: str) -> None: ...

    def ask(self, prompt: str) -> str: ...

    def secret(self, prompt: str, *, twice: bool = False) -> str: ...


class GoBack(Exception):
    """``back`` at a prompt that allows it: the step before is asked again."""


@dataclass
class FlowRecord:
    """What the flow prints last: its id, kind, outcome, and the accounts and TIN involved."""

    flow_id: str
    flow: str
    involved: dict[str, Any]
    outcome: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "flow_id": self.flow_id,
            "flow": self.flow,
            "outcome": self.outcome,
            **self.involved,
        }


@dataclass
class Talk:
    """A flow's conversation: the guide's pages out, answers in, refusals told and retried."""

    conversation: Conversation
    flow_id: str
    last_error: PortalError | None = field(default=None)

    def tell(self, message: str) -> None:
        self.conversation.tell(message)

    def page(self, title: str, text: str) -> None:
        """A page of the portal's guide: its title and its words."""
        self.conversation.tell(f"\n{title}\n{text}")

    def ask(
        self,
        prompt: str,
        *,
        given: str | None = None,
        secret: bool = False,
        twice: bool = False,
        words: tuple[str, ...] = (),
    ) -> str:
        """The answer to ``prompt`` (``given``, when an option gave it: not asked). One of
        ``words`` typed is returned in lower case; ``cancel`` ends the flow."""
        if given is not None:
            return given
        try:
            answer = (
                self.conversation.secret(prompt, twice=twice)
                if secret
                else self.conversation.ask(prompt)
            )
        except EOFError:
            raise self._out_of_answers(prompt) from None
        word = answer.strip().lower()
        if word == CANCEL:
            raise Interrupted(f"flow {self.flow_id} cancelled")
        if word in words:
            return word
        return answer

    def attempt(
        self, action: Callable[[], T], *, retry: bool | Callable[[PortalError], bool] = True
    ) -> T | None:
        """``action()``; a refusal the caller can answer again is told and gives None, so the
        step asks again; other errors end the flow. Which can be answered again: ``retry``
        (a function of the error) decides, else ``can_retry`` unless ``retry`` is False (every
        answer came from an option: asking again would change nothing)."""
        try:
            result = action()
        except PortalError as error:
            allowed = retry(error) if callable(retry) else (retry and can_retry(error))
            if not allowed:
                raise
            self.tell(error.message)
            self.last_error = error
            return None
        self.last_error = None
        return result

    def ask_checked(
        self,
        prompt: str,
        check: Callable[[str], T],
        *,
        given: str | None = None,
        secret: bool = False,
        twice: bool = False,
        retry: Callable[[PortalError], bool] | None = None,
    ) -> T:
        """An answer as ``check`` (a domain rule) makes it; a refusal it can be asked again
        for (``retry``) is told and the question asked again, unless an option gave it."""
        while True:
            answer = self.ask(prompt, given=given, secret=secret, twice=twice)
            checked = self.attempt(
                partial(check, answer), retry=given is None and (retry or can_retry_input)
            )
            if checked is not None:
                return checked

    def confirm(self, prompt: str, *, yes: bool) -> None:
        """A yes/no before the change (``yes``: answered by ``--yes``); no ends the flow with
        nothing changed, as every confirmation answered no does (exit 0)."""
        while not yes:
            answer = self.ask(prompt).strip().lower()
            if answer in ("no", "n"):
                raise Cancelled(f"flow {self.flow_id} cancelled")
            yes = answer in ("yes", "y")
            if not yes:
                self.tell("Answer yes or no.")

    def _out_of_answers(self, prompt: str) -> PortalError:
        """No more input: the answer before was refused (that refusal ends the flow, with the
        exit code the single command would give), or a prompt was left unanswered (exit 2)."""
        if self.last_error is not None:
            return self.last_error
        return UsageError(
            f"no answer on standard input for {quoted(prompt.rstrip(' *:'))} (the flow reads "
            "one line for each answer it asks for, in order)"
        )


def can_retry_input(error: PortalError) -> bool:
    """Input that was malformed."""
    return isinstance(error, InvalidInput)


def can_retry(error: PortalError) -> bool:
    """Input that was malformed or matched nothing, or a check that failed and was counted,
    until it locks what it checked."""
    if isinstance(error, RecordedRefusal):
        record = error.record
        return not (getattr(record, "locked", False) or getattr(record, "status", "") == "locked")
    return isinstance(error, (InvalidInput, NotFound))


def run_flow(
    engine: Engine,
    conversation: Conversation,
    *,
    flow: str,
    title: str,
    operator: str,
    involved: dict[str, Any],
    steps: Callable[[Talk, FlowRecord], str],
) -> dict[str, Any]:
    """Run ``steps`` as one flow: a new flow id, told at the start and on every audit record
    (``flow.start`` and ``flow.end`` around the steps' own). The record when it ends; when it
    ends with an error, the error carries the record (``cancelled``, ``refused``, or the
    outcome the steps set, such as ``blocked``)."""
    flow_id = secrets.token_hex(6)
    record = FlowRecord(flow_id, flow, involved)
    _audit(engine, operator, flow_id, "flow.start", {"flow": flow})
    conversation.tell(
        f"{title}\nFlow {flow_id} (`portalctl audit --flow {flow_id}` shows its trail). "
        "Type 'cancel' at any prompt to end it."
    )
    talk = Talk(conversation, flow_id)
    ending: PortalError | None = None
    try:
        record.outcome = steps(talk, record)
    except KeyboardInterrupt:
        ending = Interrupted(f"flow {flow_id} interrupted")
    except PortalError as error:
        ending = error
    if ending is not None:
        if record.outcome is None:
            ended_early = isinstance(ending, Cancelled | Interrupted | UsageError)
            record.outcome = "cancelled" if ended_early else "refused"
        if isinstance(ending, Cancelled | Interrupted):
            ending.message += ": nothing was changed beyond its audited checks"
        ending.record = record.as_dict()
    _audit(engine, operator, flow_id, "flow.end", record.as_dict(), best_effort=ending is not None)
    if ending is not None:
        raise ending
    return record.as_dict()


def _audit(
    engine: Engine,
    operator: str,
    flow_id: str,
    action: str,
    details: dict[str, Any],
    *,
    best_effort: bool = False,
) -> None:
    try:
        with transaction(engine) as connection:
            record_audit(
                connection,
                operator=operator,
                action=action,
                target=f"flow:{flow_id}",
                details=details,
                flow_id=flow_id,
            )
    except Exception:
        # The flow is already ending with an error (the database may be what failed): that
        # error is the one to report, not a second one from recording the end.
        if not best_effort:
            raise
