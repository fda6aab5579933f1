"""``portalctl codes``: issue, list, show, verify, revoke and reissue registration codes."""

from pathlib import Path
from typing import Annotated

import typer

from portalctl.cli.bulk_options import FailedRowsOption, SkipInvalidOption
from portalctl.cli.runtime import (
    FormatOption,
    OutputFormat,
    ReasonOption,
    RevealOption,
    command_group,
    emit,
    logged_run,
    printing_refused_record,
    read_secret,
    runtime,
)

app = command_group("codes")

CODE_COLUMNS = [
    "id",
    "tin",
    "status",
    "admin_name",
    "admin_email",
    "provider_name",
    "issued_at",
    "expires_at",
    "used_at",
    "used_by",
]
CodeIdArgument = Annotated[int, typer.Argument(help="The code's id (not the code).")]
NoEmailOption = Annotated[bool, typer.Option("--no-email", help="Do not queue the email.")]


@app.command("issue")
def issue(
    ctx: typer.Context,
    tin: Annotated[str | None, typer.Option("--tin")] = None,
    admin_name: Annotated[str | None, typer.Option("--admin-name")] = None,
    admin_email: Annotated[str | None, typer.Option("--admin-email")] = None,
    provider_name: Annotated[str | None, typer.Option("--provider-name")] = None,
    org_name: Annotated[str | None, typer.Option("--org-name")] = None,
    ttl_days: Annotated[
        int | None,
        typer.Option("--ttl-days", help="Lifetime in days (default PORTALCTL_CODE_TTL_DAYS)."),
    ] = None,
    no_email: NoEmailOption = False,
    csv_file: Annotated[
        Path | None,
        typer.Option(
            "--csv",
            help="Issue for every row of this CSV (tin,admin_name,admin_email, optional "
            "provider_name,org_name); all or nothing; prints counts, the codes go by email; "
            "'-' reads stdin.",
        ),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="With --csv: validate only.")] = False,
    chunk_size: Annotated[
        int, typer.Option("--chunk-size", min=1, help="With --csv: rows per transaction.")
    ] = 10_000,
    skip_invalid: SkipInvalidOption = False,
    failed_rows: FailedRowsOption = None,
    reveal: RevealOption = False,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Issue a registration code for a TIN and queue the credentialing email; prints the code once.

    Issuing a new code to a contact revokes their earlier usable code for the TIN.

    \b
    Example: portalctl codes issue --tin 061137531 --admin-name "James Smith" --admin-email james.smith@example.org --provider-name "Ruth Goneh"
    """
    from portalctl.cli.progress import progress_bar
    from portalctl.core.errors import UsageError
    from portalctl.core.tin import Tin
    from portalctl.domain.code_import import issue_codes_from_csv
    from portalctl.domain.codes import issue_registration_code

    rt = runtime(ctx)
    if csv_file is not None:
        with (
            logged_run("codes issue --csv") as log_summary,
            printing_refused_record(fmt),
            progress_bar("issuing codes") as progress,
        ):
            summary = issue_codes_from_csv(
                rt.writing_engine(),
                csv_file,
                operator=rt.operator_name,
                settings=rt.settings,
                dry_run=dry_run,
                send_email=not no_email,
                chunk_size=chunk_size,
                progress=progress,
                skip_invalid=skip_invalid,
                failed_rows_path=failed_rows,
            )
            log_summary(summary)
        emit(summary, fmt)
        return
    if tin is None or admin_name is None or admin_email is None:
        raise UsageError("give --tin, --admin-name and --admin-email, or --csv FILE")
    parsed = Tin.parse(tin)
    with rt.transaction() as connection:
        record = issue_registration_code(
            connection,
            operator=rt.operator_name,
            tin=parsed,
            admin_name=admin_name,
            admin_email=admin_email,
            provider_name=provider_name,
            org_name=org_name,
            ttl_days=ttl_days,
            send_email=not no_email,
            settings=rt.settings,
        )
    rt.show(record, fmt, reveal=reveal, command="codes issue")


@app.command("list")
def list_codes(
    ctx: typer.Context,
    tin: Annotated[str | None, typer.Option("--tin")] = None,
    status: Annotated[
        str | None, typer.Option("--status", help="active, used, revoked, locked or expired.")
    ] = None,
    email: Annotated[str | None, typer.Option("--email", help="Admin email.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=100_000)] = 100,
    reveal: RevealOption = False,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """List registration codes, newest first (never the codes themselves).

    \b
    Example: portalctl codes list --tin 061137531 --status active
    """
    from portalctl.core.tin import Tin
    from portalctl.domain.code_records import list_registration_codes

    rt = runtime(ctx)
    parsed = Tin.parse(tin) if tin is not None else None
    with rt.transaction(read_only=True) as connection:
        found = list_registration_codes(
            connection, tin=parsed, status=status, email=email, limit=limit + 1
        )
        rt.show_listing(
            found, fmt, limit=limit, reveal=reveal, command="codes list", columns=CODE_COLUMNS
        )


@app.command("show")
def show(
    ctx: typer.Context,
    code_id: CodeIdArgument,
    reveal: RevealOption = False,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Show one registration code's record.

    \b
    Example: portalctl codes show 1
    """
    from portalctl.domain.code_records import show_registration_code

    rt = runtime(ctx)
    with rt.transaction(read_only=True) as connection:
        record = show_registration_code(connection, code_id=code_id)
    rt.show(record, fmt, reveal=reveal, command="codes show")


@app.command("verify")
def verify(
    ctx: typer.Context,
    tin: Annotated[str, typer.Option("--tin")],
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
    """Check a code for a TIN without using it. Exit 0 valid, 4 with the reason otherwise.

    Failures count against the TIN; after PORTALCTL_CODE_MAX_ATTEMPTS (default 5) the TIN's
    active codes are locked. Input that cannot be a code is exit 5 and not counted.

    \b
    Example: portalctl codes verify --tin 061137531 --code 12345678
    """
    from portalctl.core.tin import Tin
    from portalctl.domain.code_checks import check_registration_code

    rt = runtime(ctx)
    parsed = Tin.parse(tin)
    if code is None:
        code = read_secret("Registration code", stdin_option="--code-stdin", from_stdin=code_stdin)
    with printing_refused_record(fmt), rt.transaction() as connection:
        result = check_registration_code(
            connection, operator=rt.operator_name, tin=parsed, code=code, settings=rt.settings
        )
    emit(result, fmt)


@app.command("revoke")
def revoke(
    ctx: typer.Context,
    code_id: CodeIdArgument,
    reason: ReasonOption = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Revoke a code so it can no longer be used.

    \b
    Example: portalctl codes revoke 1 --reason "sent to the wrong address"
    """
    from portalctl.domain.codes import revoke_registration_code

    rt = runtime(ctx)
    with rt.transaction() as connection:
        record = revoke_registration_code(
            connection, operator=rt.operator_name, code_id=code_id, reason=reason
        )
    emit(record, fmt)


@app.command("reissue")
def reissue(
    ctx: typer.Context,
    code_id: CodeIdArgument,
    no_email: NoEmailOption = False,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Revoke a code and issue a new one to the same contact; prints the new id and code once.

    \b
    Example: portalctl codes reissue 1
    """
    from portalctl.domain.codes import reissue_registration_code

    rt = runtime(ctx)
    with rt.transaction() as connection:
        record = reissue_registration_code(
            connection,
            operator=rt.operator_name,
            code_id=code_id,
            settings=rt.settings,
            send_email=not no_email,
        )
    emit(record, fmt)
