"""What every command shares: global options, settings, the engine, output and messages."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from portalctl.core.config import Settings
    from portalctl.core.readonly_db import ReadOnlyConnection


T = TypeVar("T")


class OutputFormat(StrEnum):
    table = "table"
    json = "json"
    jsonl = "jsonl"
    csv = "csv"


FormatOption = Annotated[
    OutputFormat,
    typer.Option(
        "--format",
        "-f",
        help="Output format: table, json, jsonl (one object a line) or csv; only data on stdout.",
        case_sensitive=False,
    ),
]
RevealOption = Annotated[
    bool,
    typer.Option("--reveal", help="Show full TINs instead of *****1234 (writes an audit record)."),
]
YesOption = Annotated[
    bool, typer.Option("--yes", "-y", help="Answer the confirmation: go ahead without asking.")
]
# A change of more rows than this asks for confirmation first.
HANDFUL = 5

# Optional to Click: the domain's one reason rule says what is missing, the same everywhere.
ReasonOption = Annotated[
    str | None, typer.Option("--reason", help="Why (required; kept in the audit log).")
]
OverrideReasonOption = Annotated[
    str | None,
    typer.Option(
        "--override-reason",
        help="Go ahead without the caller's verifications: how you established their identity "
        "instead (kept in the audit log).",
    ),
]


def command_group(name: str) -> typer.Typer:
    """The Typer app of the command group ``name`` (its help is in ``cli.groups``): plain Click
    help (importing rich to draw boxes would double ``--help``'s time), no completion options."""
    from portalctl.cli.groups import COMMAND_GROUPS

    return typer.Typer(
        help=COMMAND_GROUPS[name][1],
        no_args_is_help=True,
        add_completion=False,
        rich_markup_mode=None,
    )


@dataclass
class Runtime:
    """Global options of one invocation; settings and the engine are made on first use."""

    database_url: str | None = None
    env_file: Path | None = None
    operator: str | None = None
    debug: bool = False
    _settings: Settings | None = field(default=None, repr=False)
    _engine: Engine | None = field(default=None, repr=False)
    _audit_checked: bool = field(default=False, repr=False)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from portalctl.core.config import load_settings

            self._settings = load_settings(
                env_file=self.env_file,
                overrides={
                    "PORTALCTL_DATABASE_URL": self.database_url,
                    "PORTALCTL_OPERATOR": self.operator,
                },
            )
        return self._settings

    @property
    def operator_name(self) -> str:
        return self.settings.operator

    def engine(self, *, check_schema: bool = True) -> Engine:
        """The engine, after checking the database is reachable and its schema current."""
        if self._engine is None:
            from portalctl.core.database import (
                DEFER_WRITE_LOCK,
                create_engine,
                parse_url,
                translate_database_errors,
            )
            from portalctl.core.migrations import ensure_current

            url = parse_url(self.settings.database_url)
            _refuse_missing_sqlite_file(url, creating=not check_schema)
            engine = create_engine(self.settings.database_url)
            if check_schema:
                with translate_database_errors(url), engine.connect() as connection:
                    connection.execution_options(**{DEFER_WRITE_LOCK: True})
                    ensure_current(connection)
            self._engine = engine
        return self._engine

    @contextmanager
    def transaction(self, *, read_only: bool = False) -> Iterator[Connection]:
        """One transaction on a current schema; connection failures become exit 6.
        ``read_only``: it only reads, so on SQLite it does not queue for the write lock."""
        from portalctl.core.database import (
            DEFER_WRITE_LOCK,
            parse_url,
            transaction_on,
            translate_database_errors,
        )

        engine = self.engine()
        with (
            translate_database_errors(parse_url(self.settings.database_url)),
            engine.connect() as connection,
        ):
            if read_only:
                connection.execution_options(**{DEFER_WRITE_LOCK: True})
            with transaction_on(connection):
                if not read_only:
                    self._refuse_unprotected_audit(connection)
                yield connection

    def writing_engine(self) -> Engine:
        """The engine for a command that writes in many transactions of its own (bulk runs),
        after the checks every writing command makes."""
        from portalctl.core.database import DEFER_WRITE_LOCK, parse_url, translate_database_errors

        engine = self.engine()
        with (
            translate_database_errors(parse_url(self.settings.database_url)),
            engine.connect() as connection,
        ):
            connection.execution_options(**{DEFER_WRITE_LOCK: True})  # a read: no write lock
            self._refuse_unprotected_audit(connection)
        return engine

    def _refuse_unprotected_audit(self, connection: Connection) -> None:
        if not self._audit_checked:
            from portalctl.core.audit_protection import refuse_unprotected_audit

            refuse_unprotected_audit(connection)
            self._audit_checked = True

    @contextmanager
    def read_only(self) -> Iterator[ReadOnlyConnection]:
        """A read-only driver connection on a current schema, without SQLAlchemy's start-up
        cost (for look-ups that must answer fast)."""
        from portalctl.core.readonly_db import readonly_connection

        with readonly_connection(self.settings.database_url) as connection:
            yield connection

    def show_listing(
        self,
        rows: Iterable[Any],
        fmt: OutputFormat,
        *,
        limit: int,
        reveal: bool = False,
        command: str = "",
        columns: list[str] | None = None,
    ) -> None:
        """Print at most ``limit`` of ``rows`` as they are read (give it up to ``limit + 1``,
        so that a listing the limit cut says so on stderr). Revealed TINs are audited first,
        so a revealed listing is read whole before it is shown."""
        from portalctl.core.render import render_lines

        iterator = iter(rows)
        if reveal:
            listed = list(islice(iterator, limit))
            self.show(listed, fmt, reveal=True, command=command, columns=columns)
        else:
            for text in render_lines(islice(iterator, limit), fmt.value, columns=columns):
                sys.stdout.write(text)
            sys.stdout.flush()
        if next(iterator, None) is not None:
            typer.echo(f"portalctl: only the first {limit} shown; --limit N shows more", err=True)

    def show(
        self,
        data: Any,
        fmt: OutputFormat,
        *,
        reveal: bool = False,
        command: str = "",
        columns: list[str] | None = None,
    ) -> None:
        """Print records; with ``reveal``, full TINs, after an audit record naming them."""
        if reveal:
            from portalctl.domain.accounts import record_reveal

            with self.transaction() as connection:
                record_reveal(connection, operator=self.operator_name, command=command, shown=data)
        emit(data, fmt, reveal=reveal, columns=columns)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


def _refuse_missing_sqlite_file(url, *, creating: bool) -> None:
    from portalctl.core.readonly_db import refuse_missing_sqlite_file

    if (
        url.get_backend_name() == "sqlite"
        and not creating
        and url.database not in (None, "", ":memory:")
    ):
        refuse_missing_sqlite_file(url.database)


def runtime(ctx: typer.Context) -> Runtime:
    """The Runtime the main callback put on the context (a fresh one when run bare)."""
    root = ctx.find_root()
    if not isinstance(root.obj, Runtime):
        root.obj = Runtime()
    return root.obj


def emit(
    data: Any, fmt: OutputFormat, *, reveal: bool = False, columns: list[str] | None = None
) -> None:
    """Print records to stdout in the chosen format."""
    from portalctl.core.render import render

    typer.echo(render(data, fmt.value, reveal=reveal, columns=columns))


_quiet = False


def configure_output(*, quiet: bool, verbose: bool) -> None:
    """``-q``: no messages and no info log lines, only warnings and errors; ``-v``: log lines
    at a terminal too, down to details. Without a terminal (cron) bulk commands log their
    summary and failures as timestamped lines."""
    global _quiet
    _quiet = quiet
    if verbose or not sys.stderr.isatty():
        import logging

        from portalctl.core.logs import configure_stderr_logging

        level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
        configure_stderr_logging(level)


def say(message: str) -> None:
    """A message for a person: stderr, and only when stderr is a terminal (never with -q)."""
    if sys.stderr.isatty() and not _quiet:
        typer.echo(message, err=True)


@contextmanager
def logged_run(command: str) -> Iterator[Callable[[dict[str, Any]], None]]:
    """A bulk command's log: one timestamped line with its summary's counts when it ends (a
    warning when rows were not applied), written where logging was configured: without a
    terminal, or with -v. A run refused whole ends with its one ``portalctl:`` error line."""
    from portalctl.core.errors import PortalError
    from portalctl.core.logs import get_logger

    log = get_logger(command)

    def summary_line(summary: dict[str, Any]) -> str:
        return " ".join(f"{key}={value}" for key, value in summary.items() if key != "file")

    try:
        yield lambda summary: log.info(summary_line(summary))
    except PortalError as error:
        if isinstance(error.record, dict):  # a run that finished with rows not applied
            log.warning(f"{summary_line(error.record)} ({error.message})")
        raise


@contextmanager
def printing_refused_record(fmt: OutputFormat) -> Iterator[None]:
    """For a command whose refusal still has a record to show (a verification that failed,
    a bulk run that skipped rows): print it like a success would, then let the refusal end
    the command with its exit code."""
    from portalctl.core.errors import PortalError

    try:
        yield
    except PortalError as error:
        if error.record is not None:
            emit(error.record, fmt)
        raise


def confirm(question: str, *, yes: bool) -> None:
    """Commands that disable or merge accounts, remove an organisation's last administrator,
    or change more than a handful of rows say what they will do and ask, at a terminal;
    ``--yes`` answers; without a terminal and without ``--yes`` they stop (usage error), and
    an answer "no" changes nothing (exit 0)."""
    from portalctl.core.errors import Cancelled, UsageError

    if yes:
        return
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        raise UsageError(f"{question}? Not without confirmation: give --yes (no terminal to ask)")
    try:
        answer = typer.confirm(f"{question}?", default=False, err=True)
    except typer.Abort:
        answer = False
    if not answer:
        raise Cancelled("cancelled: nothing was changed")


def confirmed(work: Callable[[bool], T], *, yes: bool) -> T:
    """``work(confirmed)``; when it stops at a change that needs confirming
    (``ConfirmationNeeded``, its transaction rolled back), ask (``confirm``) and run it again
    confirmed. Nothing is held while the question waits for its answer."""
    from portalctl.core.errors import ConfirmationNeeded

    try:
        return work(yes)
    except ConfirmationNeeded as question:
        confirm(question.message, yes=False)
        return work(True)


def read_secret(
    label: str,
    *,
    stdin_option: str,
    from_stdin: bool,
    confirm: bool = False,
    otherwise: str = "",
) -> str:
    """A secret typed at a terminal without echo (twice with ``confirm``), or one line of
    standard input with ``--...-stdin`` (for scripts: never an option value, which shell
    history and ``ps`` keep). Without a terminal a prompt cannot be answered: usage error
    (``otherwise`` adds the command's other way out to its message)."""
    from portalctl.core.errors import UsageError

    if from_stdin:
        line = sys.stdin.readline()
        if not line:
            raise UsageError(f"{stdin_option}: no line to read on standard input for the {label}")
        return line.rstrip("\r\n")
    if not sys.stdin.isatty():
        raise UsageError(
            f"the {label} is asked for at a terminal; without one, give it with {stdin_option}"
            + otherwise
        )
    import getpass

    try:
        secret = getpass.getpass(f"{label}: ", stream=sys.stderr)
        if confirm and getpass.getpass(f"{label} (again): ", stream=sys.stderr) != secret:
            raise UsageError(f"the two {label.lower()}s typed differ")
    except EOFError:
        raise UsageError(f"no {label.lower()} was typed (end of input)") from None
    return secret
