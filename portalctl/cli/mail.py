"""``portalctl mail``: deliver the outbox (for cron), list, show and retry emails."""

from typing import Annotated

import typer

from portalctl.cli.runtime import (
    FormatOption,
    OutputFormat,
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


@app.command("send")
def send(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1_000_000)] = 1000,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only count the emails that are due; send nothing.")
    ] = False,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Deliver due emails over PORTALCTL_SMTP_URL, or as .eml files in PORTALCTL_MAIL_DIR.

    Safe to run from cron while another run is still going. Exit 0 even when some emails
    failed (they are retried later); the summary says how many.

    \b
    Example: portalctl mail send --limit 500
    """
    from portalctl.domain.mail_delivery import count_due_emails, send_due_emails

    rt = runtime(ctx)
    if dry_run:
        emit({"due": count_due_emails(rt.engine()), "dry_run": True}, fmt)
        return
    summary = send_due_emails(
        rt.engine(), operator=rt.operator_name, settings=rt.settings, limit=limit
    )
    for error in summary.errors:
        say(error)
    emit(
        {
            "claimed": summary.claimed,
            "sent": summary.sent,
            "failed": summary.failed,
            "dead": summary.dead,
        },
        fmt,
    )


@app.command("list")
def list_mail(
    ctx: typer.Context,
    status: Annotated[
        str | None, typer.Option("--status", help="queued, sent, failed or dead.")
    ] = None,
    recipient: Annotated[str | None, typer.Option("--recipient")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=100_000)] = 100,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """List emails in the outbox, newest first.

    \b
    Example: portalctl mail list --status failed
    """
    from portalctl.domain.outbox_queries import list_emails

    rt = runtime(ctx)
    with rt.transaction(read_only=True) as connection:
        found = list_emails(connection, status=status, recipient=recipient, limit=limit)
    emit(found, fmt, columns=EMAIL_COLUMNS)


@app.command("show")
def show(
    ctx: typer.Context, email_id: EmailIdArgument, fmt: FormatOption = OutputFormat.table
) -> None:
    """Show one email with its body (a code appears only as {secret}).

    \b
    Example: portalctl mail show 1
    """
    from portalctl.domain.outbox_queries import show_email

    rt = runtime(ctx)
    with rt.transaction(read_only=True) as connection:
        record = show_email(connection, email_id=email_id)
    emit(record, fmt)


@app.command("retry")
def retry(
    ctx: typer.Context, email_id: EmailIdArgument, fmt: FormatOption = OutputFormat.table
) -> None:
    """Queue a failed or dead email again, due now.

    \b
    Example: portalctl mail retry 1
    """
    from portalctl.domain.outbox_queries import retry_email

    rt = runtime(ctx)
    with rt.transaction() as connection:
        record = retry_email(connection, operator=rt.operator_name, email_id=email_id)
    emit(record, fmt)
