"""``portalctl audit``: read the append-only audit log."""

from datetime import datetime
from typing import Annotated

import typer

from portalctl.cli.runtime import (
    FormatOption,
    OutputFormat,
    RevealOption,
    command_group,
    runtime,
)

app = command_group("audit")


@app.command("audit")
def audit(
    ctx: typer.Context,
    since: Annotated[
        datetime | None,
        typer.Option(
            "--since",
            help="From this UTC time (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS).",
            formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"],
        ),
    ] = None,
    until: Annotated[
        datetime | None,
        typer.Option(
            "--until", help="Before this UTC time.", formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]
        ),
    ] = None,
    operator: Annotated[str | None, typer.Option("--operator", help="Who acted.")] = None,
    action: Annotated[
        str | None,
        typer.Option("--action", help="e.g. account.create, account.verify, tin.reveal."),
    ] = None,
    account: Annotated[str | None, typer.Option("--account", help="Username.")] = None,
    tin: Annotated[str | None, typer.Option("--tin")] = None,
    flow: Annotated[
        str | None,
        typer.Option("--flow", help="One guided flow's records (its id), in the order written."),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1_000_000)] = 100,
    reveal: RevealOption = False,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Show audit records, newest first (one --flow's in the order written); filters combine.

    \b
    Example: portalctl audit --account johnsmith@gmail.com --since 2026-11-01
    """
    from portalctl.core.clock import as_utc
    from portalctl.core.tin import Tin
    from portalctl.domain.audit import AuditFilter, list_audit

    rt = runtime(ctx)
    audit_filter = AuditFilter(
        since=as_utc(since),
        until=as_utc(until),
        operator=operator,
        action=action,
        account=account,
        tin=Tin.parse(tin) if tin is not None else None,
        flow_id=flow,
        limit=limit + 1,
    )
    columns = ["id", "at", "operator", "action", "target", "tin", "details"]
    if flow is not None:
        columns.append("flow_id")
    with rt.transaction(read_only=True) as connection:
        records = list_audit(connection, audit_filter)
        rt.show_listing(records, fmt, limit=limit, reveal=reveal, command="audit", columns=columns)
