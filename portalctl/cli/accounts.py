"""``portalctl accounts``: find, look up, show, verify, create, import and change accounts."""

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from portalctl.cli.bulk_options import SkipInvalidOption
from portalctl.cli.runtime import (
    HANDFUL,
    FormatOption,
    OutputFormat,
    ReasonOption,
    RevealOption,
    YesOption,
    command_group,
    confirm,
    emit,
    printing_refused_record,
    read_secret,
    runtime,
)
from portalctl.core.text import quoted

app = command_group("accounts")

ACCOUNT_COLUMNS = ["username", "email", "full_name", "status", "merged_into", "tins"]
UsernameArgument = Annotated[str, typer.Argument(help="The account's username (any case).")]


@app.command("find")
def find(
    ctx: typer.Context,
    username: Annotated[str | None, typer.Option("--username", "-u", help="Username.")] = None,
    email: Annotated[str | None, typer.Option("--email", "-e", help="Email address.")] = None,
    name: Annotated[str | None, typer.Option("--name", "-n", help="Full name.")] = None,
    tin: Annotated[str | None, typer.Option("--tin", help="Holds this TIN.")] = None,
    tin_last4: Annotated[
        str | None,
        typer.Option("--tin-last4", help="Holds a TIN ending in these four digits."),
    ] = None,
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
    from portalctl.core.tin import Tin
    from portalctl.domain.account_search import find_accounts_from_csv
    from portalctl.domain.accounts import AccountQuery, find_accounts

    rt = runtime(ctx)
    columns = (["query_line"] if csv_file is not None else []) + ACCOUNT_COLUMNS
    with rt.transaction(read_only=True) as connection:
        if csv_file is not None:
            found = find_accounts_from_csv(connection, csv_file, exact=exact, limit=limit)
            rt.show(found, fmt, reveal=reveal, command="accounts find", columns=columns)
            return
        query = AccountQuery(
            username=username,
            email=email,
            name=name,
            tin=Tin.parse(tin) if tin is not None else None,
            tin_last4=tin_last4,
            status=status,
            exact=exact,
            limit=limit + 1,
        )
        rt.show_listing(
            find_accounts(connection, query),
            fmt,
            limit=limit,
            reveal=reveal,
            command="accounts find",
            columns=columns,
        )


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
    from portalctl.core.errors import UsageError
    from portalctl.domain.account_lookup import lookup_from_csv, lookup_one

    rt = runtime(ctx)
    if csv_file is None and (username is None or tin is None):
        raise UsageError("give --username and --tin, or --csv FILE")
    result: list[dict[str, Any]] | dict[str, Any]
    with rt.read_only() as connection:
        if csv_file is not None:
            result = lookup_from_csv(connection, csv_file)
        else:
            assert username is not None and tin is not None
            result = lookup_one(connection, username=username, tin=tin)
    columns = ["line", "query_username", "found"] + ACCOUNT_COLUMNS if csv_file else None
    rt.show(result, fmt, reveal=reveal, command="accounts lookup", columns=columns)


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
    with rt.transaction(read_only=True) as connection:
        record = show_account(connection, username)
    rt.show(record, fmt, reveal=reveal, command="accounts show")


@app.command("verify")
def verify(
    ctx: typer.Context,
    username: UsernameArgument,
    answer: Annotated[
        str | None,
        typer.Option(
            "--answer",
            help="The security answer as the caller reads it out (prompted without "
            "echo when no other way is given).",
        ),
    ] = None,
    answer_stdin: Annotated[
        bool,
        typer.Option("--answer-stdin", help="Read the security answer from one line of stdin."),
    ] = False,
    pin: Annotated[
        bool, typer.Option("--pin", help="Check the PIN instead (prompted without echo).")
    ] = False,
    pin_stdin: Annotated[
        bool, typer.Option("--pin-stdin", help="Check the PIN, read from one line of stdin.")
    ] = False,
    password: Annotated[
        bool, typer.Option("--password", help="Check the password instead (prompted without echo).")
    ] = False,
    password_stdin: Annotated[
        bool,
        typer.Option("--password-stdin", help="Check the password, read from one line of stdin."),
    ] = False,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Verify a caller: check the security answer, the PIN or the password.

    Failures are counted; the account locks after PORTALCTL_ACCOUNT_MAX_FAILURES (default 5).
    Exit 0 verified (until valid_until: `accounts verified`), 4 not verified.

    \b
    Example: portalctl accounts verify johnsmith@gmail.com --answer Smith
    """
    from portalctl.domain.verification import verify_account

    rt = runtime(ctx)
    secret_pin = secret_password = None
    if pin or pin_stdin:
        secret_pin = read_secret("PIN", stdin_option="--pin-stdin", from_stdin=pin_stdin)
        answer = None
    elif password or password_stdin:
        secret_password = read_secret(
            "Password", stdin_option="--password-stdin", from_stdin=password_stdin
        )
        answer = None
    elif answer is None:
        answer = read_secret(
            "Security answer", stdin_option="--answer-stdin", from_stdin=answer_stdin
        )
    with printing_refused_record(fmt), rt.transaction() as connection:
        result = verify_account(
            connection,
            operator=rt.operator_name,
            username=username,
            answer=answer,
            pin=secret_pin,
            password=secret_password,
            max_failures=rt.settings.account_max_failures,
            window_minutes=rt.settings.verification_window_minutes,
        )
    emit(result, fmt)


@app.command("verified")
def verified(
    ctx: typer.Context, username: UsernameArgument, fmt: FormatOption = OutputFormat.table
) -> None:
    """Which verifications of the caller are current, and until when (each method's latest).

    A verification counts for PORTALCTL_VERIFICATION_WINDOW_MINUTES (default 30) from the
    check; `consolidate one` and `tins link --code` need current ones.

    \b
    Example: portalctl accounts verified jsmith_old
    """
    from portalctl.domain.verification_records import current_verifications

    rt = runtime(ctx)
    with rt.transaction(read_only=True) as connection:
        records = current_verifications(connection, username=username)
    columns = ["username", "method", "verified_at", "valid_until", "operator", "flow_id"]
    emit(records, fmt, columns=columns)


def _status_command(action: str, doc: str) -> Callable[..., None]:
    def command(
        ctx: typer.Context,
        username: Annotated[
            str | None, typer.Argument(help="The account's username (any case).")
        ] = None,
        reason: ReasonOption = None,
        csv_file: Annotated[
            Path | None,
            typer.Option(
                "--csv",
                help="Every account of this CSV (username, optional reason: --reason is the "
                "reason of rows without one), checked whole, then in one transaction; '-' "
                "reads stdin.",
            ),
        ] = None,
        skip_invalid: SkipInvalidOption = False,
        yes: YesOption = False,
        fmt: FormatOption = OutputFormat.table,
    ) -> None:
        from portalctl.core.errors import UsageError
        from portalctl.domain.account_changes import change_account_status
        from portalctl.domain.batch_changes import (
            BatchOptions,
            change_statuses_from_csv,
            read_batch_file,
        )

        rt = runtime(ctx)
        if (username is None) == (csv_file is None):
            raise UsageError("give a USERNAME, or --csv FILE")
        options = BatchOptions(skip_invalid=skip_invalid, reason=reason)
        batch = read_batch_file(csv_file, options, link=False) if csv_file else None
        if batch is not None and batch.applicable > HANDFUL:
            confirm(f"{action} the {batch.applicable} accounts of {batch.source}", yes=yes)
        elif action == "disable" and username is not None:
            confirm(f"disable account {quoted(username)}: it can no longer be used", yes=yes)
        with printing_refused_record(fmt), rt.transaction() as connection:
            if batch is not None:
                record = change_statuses_from_csv(
                    connection, batch, operator=rt.operator_name, action=action, options=options
                )
            else:
                assert username is not None
                record = change_account_status(
                    connection,
                    operator=rt.operator_name,
                    username=username,
                    action=action,
                    reason=reason,
                )
        emit(record, fmt)

    command.__doc__ = doc
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

# More commands of the same group, registered on ``app`` when their modules load.
from portalctl.cli import account_creation, account_credentials  # noqa: E402, F401
