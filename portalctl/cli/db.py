"""``portalctl db``: create or migrate the schema, show its state, load demo data."""

from typing import Annotated

import typer

from portalctl.cli.runtime import FormatOption, OutputFormat, command_group, emit, runtime

app = command_group("db")


@app.command("init")
def init(ctx: typer.Context, fmt: FormatOption = OutputFormat.table) -> None:
    """Create the schema, or apply the migrations it is missing (safe to re-run).

    Refuses to run when an applied migration file was edited since. On a new embedded
    (SQLite) database without PORTALCTL_SECRET_KEY, writes a random one to ./.env (or
    --env-file), mode 600, and says so; on PostgreSQL without one, says how to make one.

    \b
    Example: portalctl db init
    """
    from pathlib import Path

    from portalctl.core.clock import utc_now
    from portalctl.domain.database_admin import initialise_database

    rt = runtime(ctx)
    result = initialise_database(
        rt.engine(check_schema=False),
        now=utc_now(),
        settings=rt.settings,
        env_file=rt.env_file or Path(".env"),
    )
    if result["secret_key"] != "set":
        typer.echo(f"portalctl: {result['secret_key']}", err=True)
    emit(result, fmt)


@app.command("status")
def status(ctx: typer.Context, fmt: FormatOption = OutputFormat.table) -> None:
    """Show the backend, the URL (password hidden), migrations applied and pending, row counts.

    \b
    Example: portalctl db status --format json
    """
    from portalctl.domain.database_admin import database_status

    emit(database_status(runtime(ctx).engine(check_schema=False)), fmt)


@app.command("demo")
def demo(
    ctx: typer.Context,
    generated: Annotated[
        int,
        typer.Option("--generated", min=0, max=100_000, help="How many generated accounts to add."),
    ] = 200,
    seed: Annotated[int, typer.Option("--seed", help="Seed for the generated data.")] = 7,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Load a small realistic data set from the portal guides' examples (refuses if loaded).

    Adds johnsmith@gmail.com holding TIN 836576879 with the security question "What's your
    maiden name?" (answer: Smith, password: Portal-Demo-2021), TIN 061137531, the provider Ruth
    Goneh and her administrator James Smith, duplicate accounts to consolidate, and generated
    accounts.

    \b
    Example: portalctl db demo --generated 500
    """
    from portalctl.domain.demo import load_demo

    rt = runtime(ctx)
    with rt.transaction() as connection:
        summary = load_demo(connection, operator=rt.operator_name, generated=generated, seed=seed)
    emit(summary, fmt)
