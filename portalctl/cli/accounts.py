"""``portalctl accounts``: find, look up, show, verify, create, import and change accounts."""

from pathlib import Path
from typing import Annotated

import typer

from portalctl.cli.runtime import (
    FormatOption,
    OutputFormat,
    ReasonOption,
    RevealOption,
    command_group,
    emit,
    fail,
    runtime,
    say,
)

app = command_group("accounts")

ACCOUNT_COLUMNS = ["username", "email", "full_name", "status", "merged_into", "tins"]
UsernameArgument = Annotated[str, typer.Argument(help="The account's username (any case).")]


@app.command("find")
def find(
    ctx: typer.Context,
    username: Annotated[str | None, typer.Option("--username", "-u")] = None,
    email: Annotated[str | None, typer.Option("--email", "-e")] = None,
    name: Annotated[str | None, typer.Option("--name", "-n", help="Full name.")] = None,
    tin: Annotated[str | None, typer.Option("--tin", help="Holds this TIN.")] = None,
    status: Annotated[
        str | None, typer.Option("--status", help="active, locked, disabled or merged.")
    ] = None,
    exact: Annotated[
        bool, typer.Option("--exact", help="Whole-value matches instead of substrings.")
    ] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, max=100_000)] = 50,
    csv_file: Annotated[
        Path | None,
        typer.Option(
            "--csv",
            help="Run one search per row of this CSV (columns: any of username, email, "
            "name, tin, status); '-' reads stdin.",
        ),
    ] = None,
    reveal: RevealOption = False,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Find accounts; filters combine, matching case-insensitive substrings unless --exact.

    \b
    Example: portalctl accounts find --name smith --tin 836576879 --status active
    """
    from portalctl.domain.account_queries import find_accounts_from_csv, find_accounts_matching

    rt = runtime(ctx)
    with rt.transaction(read_only=not reveal) as connection:
        if csv_file is not None:
            found = find_accounts_from_csv(connection, csv_file, exact=exact, limit=limit)
        else:
            found = find_accounts_matching(
                connection,
                username=username,
                email=email,
                name=name,
                tin=tin,
                status=status,
                exact=exact,
                limit=limit,
            )
        if reveal:
            rt.audit_reveal(connection, command="accounts find", target="accounts")
    columns = (["query_line"] if csv_file is not None else []) + ACCOUNT_COLUMNS
    emit(found, fmt, reveal=reveal, columns=columns)


@app.command("lookup")
def lookup(
    ctx: typer.Context,
    username: Annotated[str | None, typer.Option("--username", "-u")] = None,
    tin: Annotated[str | None, typer.Option("--tin")] = None,
    csv_file: Annotated[
        Path | None,
        typer.Option(
            "--csv",
            help="Look up every row of this CSV (columns: username, tin); '-' reads stdin; "
            "prints one row per query with found yes/no.",
        ),
    ] = None,
    reveal: RevealOption = False,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """The portal's Account Lookup: the active account with exactly this username holding this TIN.

    Exit 3 when there is none.

    \b
    Example: portalctl accounts lookup --username johnsmith@gmail.com --tin 836576879
    """
    from portalctl.domain.account_lookup import lookup_from_csv, lookup_one

    rt = runtime(ctx)
    if csv_file is None and (not username or not tin):
        fail("give --username and --tin, or --csv FILE", 2)
    with rt.read_only() as connection:
        if csv_file is not None:
            result = lookup_from_csv(connection, csv_file)
        else:
            result = lookup_one(connection, username=username, tin=tin)
    if reveal:
        with rt.transaction() as connection:
            rt.audit_reveal(connection, command="accounts lookup", target="accounts")
    columns = ["line", "query_username", "found"] + ACCOUNT_COLUMNS if csv_file else None
    emit(result, fmt, reveal=reveal, columns=columns)


@app.command("show")
def show(
    ctx: typer.Context,
    username: UsernameArgument,
    reveal: RevealOption = False,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Show one account: status, TINs and roles, accounts merged into it, recent audit.

    \b
    Example: portalctl accounts show johnsmith@gmail.com
    """
    from portalctl.domain.accounts import show_account

    rt = runtime(ctx)
    with rt.transaction(read_only=not reveal) as connection:
        record = show_account(connection, username)
        if reveal:
            rt.audit_reveal(connection, command="accounts show", target=f"account:{username}")
    emit(record, fmt, reveal=reveal)


@app.command("verify")
def verify(
    ctx: typer.Context,
    username: UsernameArgument,
    answer: Annotated[
        str | None,
        typer.Option(
            "--answer", help="The security answer (prompted without echo if neither is given)."
        ),
    ] = None,
    password: Annotated[
        bool,
        typer.Option(
            "--password", help="Check the password instead (always prompted without echo)."
        ),
    ] = False,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Verify a caller: check the security answer (or the password).

    Failures are counted; the account locks after PORTALCTL_ACCOUNT_MAX_FAILURES (default 5).
    Exit 0 verified, 4 not verified.

    \b
    Example: portalctl accounts verify johnsmith@gmail.com --answer Smith
    """
    from portalctl.domain.accounts import verify_account

    rt = runtime(ctx)
    secret = typer.prompt("Password", hide_input=True, err=True) if password else None
    if not password and answer is None:
        answer = typer.prompt("Security answer", hide_input=True, err=True)
    with rt.transaction() as connection:
        result = verify_account(
            connection,
            operator=rt.operator_name,
            username=username,
            answer=answer,
            password=secret,
            max_failures=rt.settings.account_max_failures,
        )
    emit(result, fmt)
    if not result.verified:
        fail(
            f"not verified ({result.failed_verifications} failed attempt(s)"
            + (", account now locked)" if result.status == "locked" else ")"),
            4,
        )


@app.command("create")
def create(
    ctx: typer.Context,
    username: Annotated[str, typer.Option("--username", "-u")],
    email: Annotated[str, typer.Option("--email", "-e")],
    full_name: Annotated[str, typer.Option("--full-name", "-n")],
    tin: Annotated[
        list[str] | None,
        typer.Option("--tin", help="TIN or TIN:role (security_admin or user); repeatable."),
    ] = None,
    security_question: Annotated[str | None, typer.Option("--security-question")] = None,
    security_answer: Annotated[
        str | None, typer.Option("--security-answer", help="Stored only as a slow salted hash.")
    ] = None,
    password_prompt: Annotated[
        bool, typer.Option("--password-prompt", help="Ask for a password (without echo).")
    ] = False,
    reveal: RevealOption = False,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Create an active account, optionally holding TINs.

    \b
    Example: portalctl accounts create -u mgarcia -e maria.garcia@example.org -n "Maria Garcia" --tin 061137531:user
    """
    from portalctl.domain.account_queries import create_account_from_options

    rt = runtime(ctx)
    password = (
        typer.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
        if password_prompt
        else None
    )
    with rt.transaction() as connection:
        record = create_account_from_options(
            connection,
            operator=rt.operator_name,
            username=username,
            email=email,
            full_name=full_name,
            tins=tin or [],
            password=password,
            security_question=security_question,
            security_answer=security_answer,
        )
        if reveal:
            rt.audit_reveal(connection, command="accounts create", target=f"account:{username}")
    say(f"created account {record['username']}")
    emit(record, fmt, reveal=reveal)


@app.command("register")
def register(
    ctx: typer.Context,
    tin: Annotated[str, typer.Option("--tin", help="The TIN the registration code was sent for.")],
    code: Annotated[str, typer.Option("--code", help="The registration code.")],
    username: Annotated[str, typer.Option("--username", "-u")],
    email: Annotated[str, typer.Option("--email", "-e")],
    full_name: Annotated[str, typer.Option("--full-name", "-n")],
    password_prompt: Annotated[
        bool, typer.Option("--password-prompt", help="Ask for a password (without echo).")
    ] = False,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Register a new account from a TIN and its registration code (the new-user path).

    The account becomes the TIN's security_admin and the code is used up. If an active account
    already uses the email, exit 4 with the portal's "Oops!" message, an email goes to that
    account explaining how to add the TIN to it, and the code stays usable.

    \b
    Example: portalctl accounts register --tin 061137531 --code 48213377 -u mgarcia -e maria.garcia@example.org -n "Maria Garcia"
    """
    from portalctl.domain.registration import register_account

    rt = runtime(ctx)
    password = (
        typer.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
        if password_prompt
        else None
    )
    with rt.transaction() as connection:
        outcome = register_account(
            connection,
            operator=rt.operator_name,
            tin=tin,
            code=code,
            username=username,
            email=email,
            full_name=full_name,
            password=password,
            settings=rt.settings,
        )
    if outcome.refusal:
        fail(outcome.refusal, 4)
    say(f"registered account {outcome.record['username']}")
    emit(outcome.record, fmt)


@app.command("import")
def import_accounts(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV: username,email,full_name[,tins,status,"
            "security_question,security_answer,password]."
        ),
    ],
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Import accounts from a CSV: the whole file is validated first, then loaded all or nothing.

    \b
    Example: portalctl accounts import new-accounts.csv
    """
    from portalctl.domain.account_import import import_accounts_csv

    rt = runtime(ctx)
    with rt.transaction() as connection:
        summary = import_accounts_csv(connection, file, operator=rt.operator_name)
    emit(summary, fmt)


def _status_command(action: str, example: str):
    def command(
        ctx: typer.Context,
        username: UsernameArgument,
        reason: ReasonOption,
        fmt: FormatOption = OutputFormat.table,
    ) -> None:
        from portalctl.domain.accounts import change_account_status

        rt = runtime(ctx)
        with rt.transaction() as connection:
            record = change_account_status(
                connection,
                operator=rt.operator_name,
                username=username,
                action=action,
                reason=reason,
            )
        emit(record, fmt)

    command.__doc__ = example
    return command


app.command("unlock")(
    _status_command(
        "unlock",
        """Unlock a locked account (resets its failure count).

    \b
    Example: portalctl accounts unlock johnsmith@gmail.com --reason "caller verified by phone"
    """,
    )
)
app.command("disable")(
    _status_command(
        "disable",
        """Disable an account: it can no longer be used.

    \b
    Example: portalctl accounts disable jsmith_old --reason "left the practice"
    """,
    )
)
app.command("enable")(
    _status_command(
        "enable",
        """Enable a disabled account again.

    \b
    Example: portalctl accounts enable jsmith_old --reason "returned to the practice"
    """,
    )
)
