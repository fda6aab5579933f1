"""``portalctl accounts``: the commands that make accounts (create, register, import)."""

from pathlib import Path
from typing import Annotated

import typer

from portalctl.cli.accounts import app
from portalctl.cli.bulk_options import (
    DryRunOption,
    FailedRowsOption,
    ReportOption,
    SkipInvalidOption,
)
from portalctl.cli.runtime import (
    FormatOption,
    OutputFormat,
    RevealOption,
    emit,
    logged_run,
    printing_refused_record,
    read_secret,
    runtime,
    say,
)

SecurityQuestionOption = Annotated[
    str | None,
    typer.Option(
        "--security-question",
        help="Its answer is prompted without echo, or read from stdin with --answer-stdin.",
    ),
]
SecurityAnswerOption = Annotated[
    str | None,
    typer.Option(
        "--security-answer",
        help="The answer as the caller reads it out (stored only as an Argon2id hash).",
    ),
]
AnswerStdinOption = Annotated[
    bool, typer.Option("--answer-stdin", help="Read the security answer from one line of stdin.")
]
PasswordPrompt = Annotated[
    bool, typer.Option("--password-prompt", help="Ask for a password (twice, without echo).")
]
PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from one line of stdin.")
]


def _new_password(prompt: bool, stdin: bool) -> str | None:
    if not (prompt or stdin):
        return None
    return read_secret("Password", stdin_option="--password-stdin", from_stdin=stdin, confirm=True)


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
    security_question: SecurityQuestionOption = None,
    security_answer: SecurityAnswerOption = None,
    answer_stdin: AnswerStdinOption = False,
    password_prompt: PasswordPrompt = False,
    password_stdin: PasswordStdin = False,
    reveal: RevealOption = False,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Create an active account, optionally holding TINs.

    With --answer-stdin and --password-stdin both, stdin holds the answer's line first.

    \b
    Example: portalctl accounts create -u mgarcia -e maria.garcia@example.org -n "Maria Garcia" --tin 061137531:user
    """
    from portalctl.domain.account_changes import create_account
    from portalctl.domain.validation import parse_tin_with_role

    rt = runtime(ctx)
    links = [parse_tin_with_role(text) for text in tin or []]
    security_answer = _security_answer(security_question, security_answer, answer_stdin)
    password = _new_password(password_prompt, password_stdin)
    with rt.transaction() as connection:
        record = create_account(
            connection,
            operator=rt.operator_name,
            username=username,
            email=email,
            full_name=full_name,
            tins=links,
            password=password,
            security_question=security_question,
            security_answer=security_answer,
        )
    say(f"created account {record['username']}")
    rt.show(record, fmt, reveal=reveal, command="accounts create")


@app.command("register")
def register(
    ctx: typer.Context,
    tin: Annotated[str, typer.Option("--tin", help="The TIN the registration code was sent for.")],
    username: Annotated[str, typer.Option("--username", "-u")],
    email: Annotated[str, typer.Option("--email", "-e")],
    full_name: Annotated[str, typer.Option("--full-name", "-n")],
    code: Annotated[
        str | None,
        typer.Option(
            "--code",
            help="The registration code as the caller reads it out (prompted without "
            "echo when left out).",
        ),
    ] = None,
    code_stdin: Annotated[
        bool,
        typer.Option("--code-stdin", help="Read the registration code from one line of stdin."),
    ] = False,
    security_question: SecurityQuestionOption = None,
    security_answer: SecurityAnswerOption = None,
    answer_stdin: AnswerStdinOption = False,
    password_prompt: PasswordPrompt = False,
    password_stdin: PasswordStdin = False,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Register a new account from a TIN and its registration code (the new-user path).

    The account becomes the TIN's security_admin and the code is used up. If an account that
    is not merged already uses the email, exit 4 with the portal's "Oops!" message naming it,
    an email goes to that account explaining how to add the TIN to it, and the code stays
    usable. With several --*-stdin options, stdin holds the code's line, then the answer's,
    then the password's.

    \b
    Example: portalctl accounts register --tin 061137531 --code 48213377 -u mgarcia -e maria.garcia@example.org -n "Maria Garcia" --security-question "First pet?" --password-prompt
    """
    from portalctl.core.tin import Tin
    from portalctl.domain.registration import register_account

    rt = runtime(ctx)
    parsed = Tin.parse(tin)
    if code is None:
        code = read_secret("Registration code", stdin_option="--code-stdin", from_stdin=code_stdin)
    security_answer = _security_answer(security_question, security_answer, answer_stdin)
    password = _new_password(password_prompt, password_stdin)
    with rt.transaction() as connection:
        record = register_account(
            connection,
            operator=rt.operator_name,
            tin=parsed,
            code=code,
            username=username,
            email=email,
            full_name=full_name,
            password=password,
            settings=rt.settings,
            security_question=security_question,
            security_answer=security_answer,
        )
    say(f"registered account {record['username']}")
    emit(record, fmt)


@app.command("import")
def import_accounts(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV: username,email,full_name[,tins,status,"
            "security_question,security_answer,password]; "
            "'-' reads stdin."
        ),
    ],
    dry_run: DryRunOption = False,
    report: ReportOption = None,
    skip_invalid: SkipInvalidOption = False,
    failed_rows: FailedRowsOption = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Import accounts from a CSV: the whole file is validated first, then loaded all or nothing.

    With --skip-invalid the good rows are imported and the run exits 7 naming how many were
    not; --failed-rows keeps those rows in a file to fix and import again.

    \b
    Example: portalctl accounts import new-accounts.csv --dry-run --report check.csv
    """
    from portalctl.cli.progress import progress_bar
    from portalctl.domain.account_import import ImportOptions, import_accounts_csv

    rt = runtime(ctx)
    options = ImportOptions(
        dry_run=dry_run, skip_invalid=skip_invalid, report_path=report, failed_rows_path=failed_rows
    )
    with (
        logged_run("accounts import") as log_summary,
        printing_refused_record(fmt),
        progress_bar("importing") as progress,
    ):
        summary = import_accounts_csv(
            rt.writing_engine(),
            file,
            operator=rt.operator_name,
            options=options,
            progress=progress,
        )
        log_summary(summary)
    emit(summary, fmt)


def _security_answer(question: str | None, answer: str | None, from_stdin: bool) -> str | None:
    if question is None or answer is not None:
        return answer
    return read_secret("Security answer", stdin_option="--answer-stdin", from_stdin=from_stdin)
