"""The ``portalctl`` program: global options, the command groups, and the one place where
errors become exit codes (SPEC section 4)."""

import importlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from portalctl import __version__
from portalctl.cli.groups import COMMAND_GROUPS

if TYPE_CHECKING:
    from portalctl.core.errors import ExitCode


class PortalGroup(TyperGroup):
    """Maps PortalError (and surprises) to one stderr line and an exit code; loads command
    groups lazily (Click's documented LazyGroup pattern)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._loaded_groups: dict[str, Any] = {}
        self._summaries_only = False

    def list_commands(self, ctx) -> list[str]:
        return sorted([*super().list_commands(ctx), *COMMAND_GROUPS])

    def get_command(self, ctx, name: str):
        if name not in COMMAND_GROUPS:
            return super().get_command(ctx, name)
        module, summary = COMMAND_GROUPS[name]
        if self._summaries_only:
            return TyperGroup(name=name, help=summary)
        if name not in self._loaded_groups:
            command = typer.main.get_command(importlib.import_module(module).app)
            command.name = name
            self._loaded_groups[name] = command
        return self._loaded_groups[name]

    def format_commands(self, ctx, formatter) -> None:
        """The listing shows each group's one-line help from ``cli.groups``, without importing
        or building the groups."""
        self._summaries_only = True
        try:
            super().format_commands(ctx, formatter)
        finally:
            self._summaries_only = False

    def invoke(self, ctx):
        # Imported here, not at the top: ``--help`` and ``--version`` end before ``invoke``.
        from portalctl.core.errors import ExitCode, PortalError

        try:
            return super().invoke(ctx)
        except PortalError as error:
            _report(ctx, error.message, error.details)
            ctx.exit(int(error.exit_code))
        except (typer.Exit, typer.Abort):
            raise
        except BrokenPipeError:
            _stop_writing_stdout()  # the reader left (`| head`): what it read is all it wanted
            ctx.exit(int(ExitCode.OK))
        except Exception as error:
            if _is_usage_error(error):  # Click prints these itself, with exit 2
                raise
            self._report_unexpected(ctx, error)
        except KeyboardInterrupt:
            typer.echo("portalctl: interrupted", err=True)
            ctx.exit(int(ExitCode.INTERRUPTED))
        finally:
            if ctx.obj is not None:  # the Runtime of main_options
                ctx.obj.close()

    @staticmethod
    def _report_unexpected(ctx, error: Exception) -> None:
        """A bug, or the database going away mid-command: one line, the traceback with --debug."""
        import traceback

        from portalctl.core.redaction import redact

        code, message = _classify_unexpected(error)
        if _debug(ctx):
            typer.echo(redact(traceback.format_exc()).rstrip("\n"), err=True)
        hint = "" if _debug(ctx) else " (run with --debug for details)"
        _report(ctx, redact(message) + hint, [])
        ctx.exit(int(code))


def _stop_writing_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush cannot fail again."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass  # not a real file (tests)
    finally:
        os.close(devnull)


def _is_usage_error(error: Exception) -> bool:
    """Typer's (vendored Click) usage errors, whatever module the installed Typer keeps them in."""
    return (
        hasattr(error, "exit_code")
        and hasattr(error, "show")
        and type(error).__module__.startswith(("typer", "click"))
    )


def _debug(ctx) -> bool:
    return ctx.obj is not None and bool(ctx.obj.debug)


def _report(ctx, message: str, details: list[str]) -> None:
    from portalctl.core.text import escape_controls

    typer.echo(f"portalctl: {escape_controls(message)}", err=True)
    for line in details[1:] if details and details[0] in message else details:
        typer.echo(f"  {escape_controls(line)}", err=True)


def _classify_unexpected(error: Exception) -> tuple["ExitCode", str]:
    """A database error is named by the driver's first line only: SQLAlchemy's own text
    carries the statement, and the driver's later lines (PostgreSQL's DETAIL) the values."""
    from portalctl.core.errors import ExitCode

    sqlalchemy_exc = sys.modules.get("sqlalchemy.exc")
    if sqlalchemy_exc and isinstance(error, sqlalchemy_exc.DBAPIError):
        from portalctl.core.database import database_failure

        failure = database_failure(error)
        if failure is not None:
            return failure.exit_code, failure.message
        first = (str(error.orig).strip().splitlines() or [type(error.orig).__name__])[0]
        return ExitCode.BUG, f"unexpected database error: {type(error.orig).__name__}: {first}"
    first = (str(error).strip().splitlines() or [""])[0]
    return ExitCode.BUG, f"unexpected error: {type(error).__name__}: {first}"


app = typer.Typer(
    cls=PortalGroup,
    name="portalctl",
    help="Administer the provider portal database: accounts, Tax IDs, registration codes, "
    "consolidation, email and the audit log.",
    no_args_is_help=True,
    add_completion=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"portalctl {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="Database URL (default: PORTALCTL_DATABASE_URL, else sqlite:///portal.db).",
            show_default=False,
        ),
    ] = None,
    env_file: Annotated[
        Path | None,
        typer.Option("--env-file", help="Read settings from this file instead of ./.env."),
    ] = None,
    operator: Annotated[
        str | None,
        typer.Option(
            "--operator",
            help="Who is acting, for the audit log (default: PORTALCTL_OPERATOR, "
            "else your login name).",
        ),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Only warnings and errors on stderr.")
    ] = False,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose", "-v", help="Log lines on stderr at a terminal too, with details."
        ),
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Administer the provider portal database.

    \b
    Example: portalctl --operator jdoe accounts find --name smith
    """
    from portalctl.cli.runtime import Runtime, configure_output

    ctx.obj = Runtime(database_url=database_url, env_file=env_file, operator=operator, debug=debug)
    configure_output(quiet=quiet, verbose=verbose)


@app.command("secret-key")
def secret_key() -> None:
    """Print a new random key for PORTALCTL_SECRET_KEY (nothing is stored or changed).

    Keep it where the other secrets of the deployment are kept (a secrets manager, or a file
    named by PORTALCTL_SECRET_KEY_FILE); every server and job must use the same key.

    \b
    Example: portalctl secret-key > /run/secrets/portalctl_key
    """
    import secrets

    typer.echo(secrets.token_urlsafe(32))


def main() -> None:
    app(prog_name="portalctl")
