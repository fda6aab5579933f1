"""``portalctl flow``: the portal's guides (seeds 000 and 001), one command each, guided.

The steps are the domain's (``domain/flows``); this module only gives them a conversation: at a
terminal, prompts on stderr and secrets typed without echo; without one, every answer the
options did not give is one line of stdin, in the order the flow asks (secrets too).
"""

import sys
from typing import Annotated

import typer

from portalctl.cli.runtime import (
    FormatOption,
    OutputFormat,
    command_group,
    emit,
    printing_refused_record,
    runtime,
)

app = command_group("flow")

EmailOption = Annotated[
    str | None,
    typer.Option("--email", "-e", help="The caller's email address (else asked for, twice)."),
]
YesOption = Annotated[
    bool, typer.Option("--yes", "-y", help="Answer the confirmation before the change: yes.")
]


class LineConversation:
    """Without a terminal: prompts and messages on stderr, each answer one line of stdin."""

    def tell(self, message: str) -> None:
        typer.echo(message, err=True)

    def ask(self, prompt: str) -> str:
        sys.stderr.write(prompt)
        sys.stderr.flush()
        line = sys.stdin.readline()
        sys.stderr.write("\n")  # what was read is not echoed: end the prompt's line
        if not line:
            raise EOFError
        return line.rstrip("\r\n")

    def secret(self, prompt: str, *, twice: bool = False) -> str:
        return self.ask(prompt)


class TerminalConversation(LineConversation):
    """At a terminal: answers typed after their prompt, secrets without echo (typed twice when
    new)."""

    def ask(self, prompt: str) -> str:
        sys.stderr.write(prompt)
        sys.stderr.flush()
        line = sys.stdin.readline()
        if not line:
            raise EOFError
        return line.rstrip("\r\n")

    def secret(self, prompt: str, *, twice: bool = False) -> str:
        import getpass

        while True:
            secret = getpass.getpass(prompt, stream=sys.stderr)
            if not twice or getpass.getpass("Again *: ", stream=sys.stderr) == secret:
                return secret
            self.tell("The two entries differ: type it again.")


def _conversation() -> LineConversation:
    return TerminalConversation() if sys.stdin.isatty() else LineConversation()


@app.command("consolidate")
def consolidate(
    ctx: typer.Context,
    username: Annotated[
        str | None,
        typer.Option("--username", "-u", help="Account Lookup: the account to consolidate."),
    ] = None,
    tin: Annotated[
        str | None, typer.Option("--tin", help="Account Lookup: a Tax ID that account holds.")
    ] = None,
    email: EmailOption = None,
    existing_username: Annotated[
        str | None,
        typer.Option(
            "--existing-username", help="The caller's existing account (its password is asked)."
        ),
    ] = None,
    pin: Annotated[
        bool, typer.Option("--pin", help="Account Verification by the PIN, not the question.")
    ] = False,
    yes: YesOption = False,
    notify: Annotated[
        bool,
        typer.Option("--notify", help="Queue an accounts_consolidated email to the caller."),
    ] = False,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Seed 000, guided: merge the caller's old account into their existing one.

    Account Lookup, Account Verification (security answer or PIN), Email Address Verification
    (the code emailed at once; 'new' at the code sends another, 'back' changes the address),
    Verify Username and Password of the existing account, what will merge, a confirmation,
    the merge, Thank You. 'cancel' (or Ctrl-C) at any prompt ends it, exit 130. Without a
    terminal, each answer not given by an option is one line of stdin, in the order asked.
    Prints the flow's record: flow_id, flow, outcome, secondary, primary, tin, links_moved.

    \b
    Example: portalctl flow consolidate --username jsmith_old --tin 836576879
    """
    from portalctl.domain.flows import ConsolidateAnswers, run_consolidate_flow

    rt = runtime(ctx)
    answers = ConsolidateAnswers(
        username=username,
        tin=tin,
        email=email,
        existing_username=existing_username,
        use_pin=pin,
        yes=yes,
        notify=notify,
    )
    with printing_refused_record(fmt):
        record = run_consolidate_flow(
            rt.writing_engine(),
            _conversation(),
            operator=rt.operator_name,
            settings=rt.settings,
            answers=answers,
        )
    emit(record, fmt)


@app.command("add-tin")
def add_tin(
    ctx: typer.Context,
    tin: Annotated[
        str | None, typer.Option("--tin", help="Account Lookup: the Tax ID of the code.")
    ] = None,
    email: EmailOption = None,
    existing_username: Annotated[
        str | None,
        typer.Option(
            "--existing-username",
            help="The existing account that uses the address (its password is asked).",
        ),
    ] = None,
    new_username: Annotated[
        str | None, typer.Option("--new-username", help="A new account's username.")
    ] = None,
    full_name: Annotated[
        str | None, typer.Option("--full-name", "-n", help="A new account's full name.")
    ] = None,
    security_question: Annotated[
        str | None,
        typer.Option("--security-question", help="A new account's security question."),
    ] = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Seed 001, guided: add a Tax ID to the caller's account with its registration code.

    Account Lookup (Tax ID, Registration Code), Email Address Verification; an active account
    with that address: its email code, its username and password, the Tax ID linked as
    security_admin; only a locked or disabled one: the Oops! (exit 4, its owner emailed); none:
    a new account registered with the code, then its address verified. 'cancel' (or Ctrl-C) at
    any prompt ends it, exit 130. Without a terminal, each answer not given by an option is one
    line of stdin, in the order asked. Prints the flow's record: flow_id, flow, outcome,
    account, tin, email, email_verified.

    \b
    Example: portalctl flow add-tin --tin 061137531 --email james.smith@goneh-practice.example
    """
    from portalctl.domain.flows import AddTinAnswers, run_add_tin_flow

    rt = runtime(ctx)
    answers = AddTinAnswers(
        tin=tin,
        email=email,
        existing_username=existing_username,
        new_username=new_username,
        full_name=full_name,
        security_question=security_question,
    )
    with printing_refused_record(fmt):
        record = run_add_tin_flow(
            rt.writing_engine(),
            _conversation(),
            operator=rt.operator_name,
            settings=rt.settings,
            answers=answers,
        )
    emit(record, fmt)
