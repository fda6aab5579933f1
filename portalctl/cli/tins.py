"""``portalctl tins``: a Tax ID's page, linking it to an account, and unlinking it."""

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
    from portalctl.domain.registration import show_tin_text

    rt = runtime(ctx)
    with rt.transaction(read_only=not reveal) as connection:
        page = show_tin_text(connection, tin=tin)
        if reveal:
            rt.audit_reveal(connection, command="tins show", target="tin")
    emit(page, fmt, reveal=reveal)


@app.command("link")
def link(
    ctx: typer.Context,
    username: UsernameOption,
    tin: TinOption,
    code: Annotated[
        str | None,
        typer.Option(
            "--code",
            help="A registration code for this TIN: links as security_admin and uses the code up.",
        ),
    ] = None,
    reason: Annotated[
        str | None,
        typer.Option(
            "--reason", help="Required without --code: why a rep links by hand (audited)."
        ),
    ] = None,
    role: Annotated[
        str, typer.Option("--role", help="Without --code: security_admin or user.")
    ] = "user",
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Give an account access to a TIN, with a registration code or by a rep's decision.

    With --code the code is checked against the TIN (failures count towards the TIN's lockout),
    used exactly once, and the account becomes the TIN's security_admin. Without it, --reason is
    required and --role chooses the role.

    \b
    Example: portalctl tins link -u james.smith --tin 061137531 --code 48213377
    """
    from portalctl.domain.registration import link_tin_text

    rt = runtime(ctx)
    if code is None and not reason:
        fail("give --code, or --reason for a manual link", 2)
    with rt.transaction() as connection:
        outcome = link_tin_text(
            connection,
            operator=rt.operator_name,
            username=username,
            tin=tin,
            code=code,
            reason=reason,
            role=role,
            settings=rt.settings,
        )
    if outcome.refusal:
        fail(outcome.refusal, 4)
    emit(outcome.record, fmt)


@app.command("unlink")
def unlink(
    ctx: typer.Context,
    username: UsernameOption,
    tin: TinOption,
    reason: ReasonOption,
    force: Annotated[
        bool, typer.Option("--force", help="Allow removing the TIN's last security_admin.")
    ] = False,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Remove an account's access to a TIN (refuses to remove its last security_admin).

    \b
    Example: portalctl tins unlink -u jsmith_old --tin 836576879 --reason "left the practice"
    """
    from portalctl.domain.registration import unlink_tin_text

    rt = runtime(ctx)
    with rt.transaction() as connection:
        result = unlink_tin_text(
            connection,
            operator=rt.operator_name,
            username=username,
            tin=tin,
            reason=reason,
            force=force,
        )
    emit(result, fmt)
