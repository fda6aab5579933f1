"""``portalctl accounts``: the caller's email and credentials (email codes, update, password,
security question and PIN, "Forgot Password", "Forgot Username")."""

from typing import Annotated

import typer

from portalctl.cli.accounts import UsernameArgument, app
from portalctl.cli.runtime import (
    FormatOption,
    OutputFormat,
    ReasonOption,
    emit,
    printing_refused_record,
    read_secret,
    runtime,
    say,
)

EmailOption = Annotated[str, typer.Option("--email", "-e", help="The email address.")]
PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from one line of stdin.")
]


@app.command("email-code")
def email_code(
    ctx: typer.Context,
    username: UsernameArgument,
    email: EmailOption,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Email a verification code to this address now (again: the portal's Request New Code).

    The code replaces the account's earlier one and is never printed; the caller reads it
    back for `accounts confirm-email`. Exit 8 when the email cannot be delivered now: it
    stays queued for `mail send`.

    \b
    Example: portalctl accounts email-code johnsmith@gmail.com --email johnsmith@gmail.com
    """
    from portalctl.domain.email_codes import send_email_code

    rt = runtime(ctx)
    with printing_refused_record(fmt):
        record = send_email_code(
            rt.engine(),
            operator=rt.operator_name,
            username=username,
            email=email,
            settings=rt.settings,
        )
    if record["accounts_using_email"]:
        say(
            f"{record['accounts_using_email']} other active account(s) use this address: "
            "ask for the caller's own address, not a shared one"
        )
    say(f"a verification code was emailed to {record['email']}")
    emit(record, fmt)


@app.command("confirm-email")
def confirm_email(
    ctx: typer.Context,
    username: UsernameArgument,
    code: Annotated[
        str | None,
        typer.Option(
            "--code",
            help="The code as the caller reads it out (prompted without echo when left out).",
        ),
    ] = None,
    code_stdin: Annotated[
        bool, typer.Option("--code-stdin", help="Read the code from one line of stdin.")
    ] = False,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Confirm an email verification code: the account's email becomes that address, verified.

    Exit 4 for a wrong (counted; the fifth locks the code), expired, used, replaced or locked
    code; 3 when none was issued; 5 for input that is not a code.

    \b
    Example: portalctl accounts confirm-email johnsmith@gmail.com --code 123456
    """
    from portalctl.domain.email_codes import confirm_email as confirm

    rt = runtime(ctx)
    if code is None:
        code = read_secret("Verification code", stdin_option="--code-stdin", from_stdin=code_stdin)
    with rt.transaction() as connection:
        record = confirm(
            connection,
            operator=rt.operator_name,
            username=username,
            code=code,
            settings=rt.settings,
        )
    emit(record, fmt)


@app.command("update")
def update(
    ctx: typer.Context,
    username: UsernameArgument,
    full_name: Annotated[str | None, typer.Option("--full-name", "-n")] = None,
    email: Annotated[
        str | None,
        typer.Option("--email", "-e", help="Set directly (unverified); needs --reason."),
    ] = None,
    reason: ReasonOption = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Change an account's full name or email directly (a rep's change, audited).

    An email set this way is unverified; `accounts email-code` verifies one instead.

    \b
    Example: portalctl accounts update jsmith_old --email john@smithfamily.example --reason "caller's new address"
    """
    from portalctl.domain.account_changes import update_account

    rt = runtime(ctx)
    with rt.transaction() as connection:
        record = update_account(
            connection,
            operator=rt.operator_name,
            username=username,
            full_name=full_name,
            email=email,
            reason=reason,
        )
    emit(record, fmt)


@app.command("set-security")
def set_security(
    ctx: typer.Context,
    username: UsernameArgument,
    question: Annotated[
        str | None,
        typer.Option("--question", help="The security question; its answer is asked for."),
    ] = None,
    answer_stdin: Annotated[
        bool, typer.Option("--answer-stdin", help="Read the answer from one line of stdin.")
    ] = False,
    pin: Annotated[
        bool, typer.Option("--pin", help="Set the PIN (4 to 8 digits, asked for twice).")
    ] = False,
    pin_stdin: Annotated[
        bool, typer.Option("--pin-stdin", help="Set the PIN, read from one line of stdin.")
    ] = False,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Set the security question and answer, and/or the PIN.

    At a terminal the answer and the PIN are asked for twice without echo. With --answer-stdin
    and --pin-stdin both, stdin holds the answer's line first.

    \b
    Example: portalctl accounts set-security johnsmith@gmail.com --question "What's your maiden name?" --pin
    """
    from portalctl.domain.credentials import set_security as set_credentials

    rt = runtime(ctx)
    answer = new_pin = None
    if question is not None:
        answer = read_secret(
            "Security answer", stdin_option="--answer-stdin", from_stdin=answer_stdin, confirm=True
        )
    if pin or pin_stdin:
        new_pin = read_secret("PIN", stdin_option="--pin-stdin", from_stdin=pin_stdin, confirm=True)
    with rt.transaction() as connection:
        record = set_credentials(
            connection,
            operator=rt.operator_name,
            username=username,
            question=question,
            answer=answer,
            pin=new_pin,
        )
    emit(record, fmt)


@app.command("set-password")
def set_password(
    ctx: typer.Context,
    username: UsernameArgument,
    reset_code: Annotated[
        str | None,
        typer.Option(
            "--reset-code",
            help="The code from `accounts reset-password`, as the caller reads it out.",
        ),
    ] = None,
    reason: Annotated[
        str | None,
        typer.Option("--reason", help="A rep's reset without a code: why (audited)."),
    ] = None,
    password_stdin: PasswordStdin = False,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Set a new password, with a reset code or by a rep with a reason.

    The password (asked for twice without echo, or one line of stdin) has 12 to 128
    characters and contains neither the username nor the email's local part.

    \b
    Example: portalctl accounts set-password johnsmith@gmail.com --reset-code 123456
    """
    from portalctl.domain.credentials import set_password as set_new_password

    rt = runtime(ctx)
    password = read_secret(
        "New password", stdin_option="--password-stdin", from_stdin=password_stdin, confirm=True
    )
    with rt.transaction() as connection:
        record = set_new_password(
            connection,
            operator=rt.operator_name,
            username=username,
            password=password,
            reset_code=reset_code,
            reason=reason,
            settings=rt.settings,
        )
    emit(record, fmt)


@app.command("reset-password")
def reset_password(
    ctx: typer.Context, username: UsernameArgument, fmt: FormatOption = OutputFormat.table
) -> None:
    """Forgot Password: email a reset code (valid 30 minutes) to the account's address now.

    The code is never printed. Exit 8 when the email cannot be delivered now: it stays
    queued for `mail send`.

    \b
    Example: portalctl accounts reset-password johnsmith@gmail.com
    """
    from portalctl.domain.recovery import send_password_reset

    rt = runtime(ctx)
    with printing_refused_record(fmt):
        record = send_password_reset(
            rt.engine(), operator=rt.operator_name, username=username, settings=rt.settings
        )
    emit(record, fmt)


@app.command("send-username")
def send_username(
    ctx: typer.Context, email: EmailOption, fmt: FormatOption = OutputFormat.table
) -> None:
    """Forgot Username: email the active usernames registered to this address, now.

    The usernames are not printed. Exit 3 when no active account has the address.

    \b
    Example: portalctl accounts send-username --email johnsmith@gmail.com
    """
    from portalctl.domain.recovery import send_username_reminder

    rt = runtime(ctx)
    with printing_refused_record(fmt):
        record = send_username_reminder(
            rt.engine(), operator=rt.operator_name, email=email, settings=rt.settings
        )
    emit(record, fmt)
