"""``portalctl tins``: a Tax ID's page, linking it to an account, and unlinking it."""

from typing import Annotated

import typer

from portalctl.cli.runtime import (
    FormatOption,
    OutputFormat,
    OverrideReasonOption,
    ReasonOption,
    RevealOption,
    command_group,
    emit,
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
    username: UsernameOption,
    tin: TinOption,
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
    from portalctl.core.tin import Tin
    from portalctl.domain.registration import link_tin

    rt = runtime(ctx)
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
    with rt.transaction() as connection:
        result = unlink_tin(
            connection,
            operator=rt.operator_name,
            username=username,
            tin=parsed,
            reason=reason,
            force=force,
        )
    emit(result, fmt)
