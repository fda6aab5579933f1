"""``portalctl tins``: a Tax ID's page, linking it to an account, and unlinking it."""

from pathlib import Path
from typing import Annotated, Any

import typer

from portalctl.cli.bulk_options import SkipInvalidOption
from portalctl.cli.runtime import (
    HANDFUL,
    FormatOption,
    OutputFormat,
    OverrideReasonOption,
    ReasonOption,
    RevealOption,
    YesOption,
    command_group,
    confirm,
    confirmed,
    emit,
    printing_refused_record,
    read_secret,
    runtime,
)

app = command_group("tins")

TinArgument = Annotated[str, typer.Argument(help="The TIN: 061137531, 06-1137531 or 061-13-7531.")]
UsernameOption = Annotated[str, typer.Option("--username", "-u", help="The account's username.")]
TinOption = Annotated[str, typer.Option("--tin", help="The TIN.")]


@app.command("show")
def show(
    ctx: typer.Context,
    tin: TinArgument,
    reveal: RevealOption = False,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Show a TIN's organisation, linked accounts (roles, status) and registration codes.

    \b
    Example: portalctl tins show 061137531
    """
    from portalctl.core.tin import Tin
    from portalctl.domain.links import show_tin

    rt = runtime(ctx)
    parsed = Tin.parse(tin)
    with rt.transaction(read_only=True) as connection:
        page = show_tin(connection, parsed)
    rt.show(page, fmt, reveal=reveal, command="tins show")


@app.command("link")
def link(
    ctx: typer.Context,
    username: Annotated[
        str | None, typer.Option("--username", "-u", help="The account's username.")
    ] = None,
    tin: Annotated[str | None, typer.Option("--tin", help="The TIN.")] = None,
    code: Annotated[
        str | None,
        typer.Option(
            "--code",
            help="A registration code for this TIN, as the caller reads it out: links as "
            "security_admin and uses the code up. Prompted without echo when neither --code "
            "nor --reason is given.",
        ),
    ] = None,
    code_stdin: Annotated[
        bool, typer.Option("--code-stdin", help="Read the registration code from stdin.")
    ] = False,
    reason: Annotated[
        str | None,
        typer.Option("--reason", help="A manual link without a code: why (audited)."),
    ] = None,
    role: Annotated[
        str | None,
        typer.Option("--role", help="Manual links only: security_admin or user (default user)."),
    ] = None,
    override_reason: OverrideReasonOption = None,
    csv_file: Annotated[
        Path | None,
        typer.Option(
            "--csv",
            help="Manual links from this CSV (username,tin, optional role and reason: --reason "
            "is the reason of rows without one), checked whole, then in one transaction.",
        ),
    ] = None,
    skip_invalid: SkipInvalidOption = False,
    yes: YesOption = False,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Give an account access to a TIN, with a registration code or by a rep's decision.

    With a code, the account must be verified first (within
    PORTALCTL_VERIFICATION_WINDOW_MINUTES) by its password and an email code, else exit 4
    naming what is missing (unless --override-reason); the code is checked against the TIN
    (failures count towards the TIN's lockout), used exactly once, and the account becomes the
    TIN's security_admin. With --reason instead, a manual link with --role.

    \b
    Example: portalctl tins link -u james.smith --tin 061137531 --code 48213377
    """
    from portalctl.core.errors import UsageError
    from portalctl.core.tin import Tin
    from portalctl.domain.registration import link_tin

    rt = runtime(ctx)
    if csv_file is not None:
        from portalctl.domain.batch_changes import (
            BatchOptions,
            link_tins_from_csv,
            read_batch_file,
        )

        if username is not None or tin is not None or code is not None or override_reason:
            raise UsageError(
                "--csv takes every link from the file: no -u, --tin, --code or --override-reason"
            )
        options = BatchOptions(skip_invalid=skip_invalid, reason=reason)
        batch = read_batch_file(csv_file, options, link=True)
        if batch.applicable > HANDFUL:
            confirm(f"link the {batch.applicable} TINs of {batch.source} by hand", yes=yes)
        with printing_refused_record(fmt), rt.transaction() as connection:
            summary = link_tins_from_csv(
                connection, batch, operator=rt.operator_name, options=options
            )
        emit(summary, fmt)
        return
    if username is None or tin is None:
        raise UsageError("give -u USERNAME and --tin TIN, or --csv FILE")
    parsed = Tin.parse(tin)
    if code is None and (code_stdin or reason is None):
        code = read_secret(
            "Registration code",
            stdin_option="--code-stdin",
            from_stdin=code_stdin,
            otherwise=", or link by hand with --reason",
        )
    with rt.transaction() as connection:
        record = link_tin(
            connection,
            operator=rt.operator_name,
            username=username,
            tin=parsed,
            code=code,
            reason=reason,
            role=role,
            override_reason=override_reason,
            settings=rt.settings,
        )
    emit(record, fmt)


@app.command("unlink")
def unlink(
    ctx: typer.Context,
    username: UsernameOption,
    tin: TinOption,
    reason: ReasonOption = None,
    force: Annotated[
        bool, typer.Option("--force", help="Allow removing the TIN's last security_admin.")
    ] = False,
    yes: YesOption = False,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Remove an account's access to a TIN (refuses to remove its last security_admin).

    \b
    Example: portalctl tins unlink -u jsmith_old --tin 836576879 --reason "left the practice"
    """
    from portalctl.core.tin import Tin
    from portalctl.domain.links import unlink_tin

    rt = runtime(ctx)
    parsed = Tin.parse(tin)

    def unlink(confirmed: bool) -> dict[str, Any]:
        with rt.transaction() as connection:
            return unlink_tin(
                connection,
                operator=rt.operator_name,
                username=username,
                tin=parsed,
                reason=reason,
                force=force,
                confirmed=confirmed,
            )

    emit(confirmed(unlink, yes=yes), fmt)
