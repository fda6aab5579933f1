"""``portalctl mail``: deliver the outbox (for cron), list, show, retry and cancel emails."""

from datetime import datetime
from typing import Annotated

import typer

from portalctl.cli.runtime import (
    FormatOption,
    OutputFormat,
    ReasonOption,
    command_group,
    emit,
    runtime,
    say,
)

app = command_group("mail")

EMAIL_COLUMNS = [
    "id",
    "kind",
    "status",
    "recipient",
    "subject",
    "attempts",
    "next_attempt_at",
    "sent_at",
    "last_error",
]
EmailIdArgument = Annotated[int, typer.Argument(help="The email's id in the outbox.")]
KindOption = Annotated[
    str | None,
    typer.Option(
        "--kind",
        help="credentialing, email_verification, registration_blocked or accounts_consolidated.",
    ),
]


@app.command("send")
def send(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1_000_000)] = 1000,
    max_seconds: Annotated[
        int | None,
        typer.Option(
            "--max-seconds",
            min=1,
            max=86_400,
            help="Stop starting emails after this long (default PORTALCTL_MAIL_MAX_SECONDS, 240).",
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only count the emails that are due; send nothing.")
    ] = False,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Deliver due emails over PORTALCTL_SMTP_URL, or as .eml files in PORTALCTL_MAIL_DIR.

    Safe to run from cron while another run is still going: each email goes once. Exit 0 when
    the run finished, even if some emails failed (they are retried later) or remain; exit 8
    when the mail server is unavailable or refused the login (no email is marked dead for it).
    Without a terminal, stderr gets one timestamped log line per failure reason and a summary.

    \b
    Example: portalctl mail send --limit 500
    """
    from portalctl.cli.progress import progress_bar
    from portalctl.domain.mail.delivery import count_due_emails, send_due_emails

    rt = runtime(ctx)
    if dry_run:
        emit({"due": count_due_emails(rt.engine()), "dry_run": True}, fmt)
        return
    with progress_bar("sending", unit="emails") as progress:
        summary = send_due_emails(
            rt.engine(),
            operator=rt.operator_name,
            settings=rt.settings,
            limit=limit,
            max_seconds=max_seconds,
            progress=progress,
        )
    for line in summary.reason_lines():
        say(line)
    emit(summary.counts(), fmt)


@app.command("list")
def list_mail(
    ctx: typer.Context,
    status: Annotated[
        str | None, typer.Option("--status", help="queued, sent, failed, dead or cancelled.")
    ] = None,
    kind: KindOption = None,
    recipient: Annotated[str | None, typer.Option("--recipient")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=100_000)] = 100,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """List emails in the outbox, newest first.

    \b
    Example: portalctl mail list --status failed --kind credentialing
    """
    from portalctl.domain.outbox_admin import list_emails

    rt = runtime(ctx)
    with rt.transaction(read_only=True) as connection:
        found = list_emails(
            connection, status=status, kind=kind, recipient=recipient, limit=limit + 1
        )
        rt.show_listing(found, fmt, limit=limit, columns=EMAIL_COLUMNS)


@app.command("show")
def show(
    ctx: typer.Context, email_id: EmailIdArgument, fmt: FormatOption = OutputFormat.table
) -> None:
    """Show one email with its body (a code appears only as {secret}).

    \b
    Example: portalctl mail show 1
    """
    from portalctl.domain.outbox_admin import show_email

    rt = runtime(ctx)
    with rt.transaction(read_only=True) as connection:
        record = show_email(connection, email_id=email_id)
    emit(record, fmt)


@app.command("retry")
def retry(
    ctx: typer.Context,
    email_id: Annotated[
        int | None, typer.Argument(help="The email's id (or use --status for many).")
    ] = None,
    status: Annotated[
        str | None, typer.Option("--status", help="Retry every email that is failed or dead.")
    ] = None,
    kind: KindOption = None,
    since: Annotated[
        datetime | None,
        typer.Option(
            "--since",
            help="With --status: only emails last tried at or after this UTC time.",
            formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"],
        ),
    ] = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Queue a failed or dead email again, due now; or all of them with --status.

    \b
    Example: portalctl mail retry 1
    Example: portalctl mail retry --status dead --kind credentialing --since 2026-11-22
    """
    from portalctl.domain.outbox_admin import retry_emails

    rt = runtime(ctx)
    with rt.transaction() as connection:
        record = retry_emails(
            connection,
            operator=rt.operator_name,
            email_id=email_id,
            status=status,
            kind=kind,
            since=since,
        )
    emit(record, fmt)


@app.command("cancel")
def cancel(
    ctx: typer.Context,
    email_id: EmailIdArgument,
    reason: ReasonOption,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Cancel an email that has not been sent: it will never go, and its code is erased.

    \b
    Example: portalctl mail cancel 7 --reason "address given by mistake"
    """
    from portalctl.domain.outbox_admin import cancel_email

    rt = runtime(ctx)
    with rt.transaction() as connection:
        record = cancel_email(
            connection, operator=rt.operator_name, email_id=email_id, reason=reason
        )
    emit(record, fmt)
