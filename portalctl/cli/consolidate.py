"""``portalctl consolidate``: merge duplicate accounts, one pair or a whole file, and follow batches."""

from pathlib import Path
from typing import Annotated

import typer

from portalctl.cli.runtime import (
    FormatOption,
    OutputFormat,
    OverrideReasonOption,
    command_group,
    emit,
    logged_run,
    printing_refused_record,
    runtime,
)

app = command_group("consolidate")

DryRunOption = Annotated[
    bool, typer.Option("--dry-run", help="Show what would happen; write nothing.")
]
NotifyOption = Annotated[
    bool,
    typer.Option(
        "--notify", help="Queue an accounts_consolidated email to each surviving account."
    ),
]


@app.command("one")
def one(
    ctx: typer.Context,
    primary: Annotated[str, typer.Option("--primary", "-p", help="The account that survives.")],
    secondary: Annotated[
        str,
        typer.Option(
            "--secondary", "-s", help="The account merged into it (its username stays reserved)."
        ),
    ],
    tin: Annotated[
        str | None,
        typer.Option("--tin", help="Only if the secondary holds this TIN (a safety check)."),
    ] = None,
    dry_run: DryRunOption = False,
    notify: NotifyOption = False,
    override_reason: OverrideReasonOption = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Merge one account into another and show which TIN links moved.

    The caller must be verified first (within PORTALCTL_VERIFICATION_WINDOW_MINUTES): the
    secondary by its security answer or PIN and an email code, the primary by its password;
    otherwise exit 4 naming what is missing, unless --override-reason. A --dry-run is not
    gated and lists what is missing under not_verified.

    \b
    Example: portalctl consolidate one --primary johnsmith@gmail.com --secondary jsmith_old
    """
    from portalctl.core.tin import Tin
    from portalctl.domain.consolidation import consolidate_one

    rt = runtime(ctx)
    with rt.transaction() as connection:
        result = consolidate_one(
            connection,
            operator=rt.operator_name,
            primary=primary,
            secondary=secondary,
            tin=Tin.parse(tin) if tin is not None else None,
            dry_run=dry_run,
            notify=notify,
            override_reason=override_reason,
        )
    emit(result, fmt)


@app.command("run")
def run(
    ctx: typer.Context,
    file: Annotated[
        Path, typer.Argument(help="CSV: primary_username,secondary_username[,tin,note].")
    ],
    dry_run: DryRunOption = False,
    report: Annotated[
        Path | None,
        typer.Option(
            "--report",
            help="Write line,primary_username,secondary_username,outcome,detail "
            "for every row here.",
        ),
    ] = None,
    skip_invalid: Annotated[
        bool,
        typer.Option(
            "--skip-invalid", help="Apply the good rows and report the bad ones (exit 7)."
        ),
    ] = False,
    chunk_size: Annotated[
        int, typer.Option("--chunk-size", min=1, help="Rows per transaction.")
    ] = 10_000,
    notify: NotifyOption = False,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Merge every pair in a CSV: validated whole first, applied in chunks, resumable.

    A bad row means exit 5 and no change, unless --skip-invalid. After a crash, run the same file
    again: it finishes the rest and reports the rows already done as already_merged.

    \b
    Example: portalctl consolidate run duplicates.csv --dry-run --report plan.csv
    """
    from portalctl.cli.progress import progress_bar
    from portalctl.domain.consolidation import run_consolidation_file

    rt = runtime(ctx)
    with (
        logged_run("consolidate run") as log_summary,
        printing_refused_record(fmt),
        progress_bar("consolidating") as progress,
    ):
        summary = run_consolidation_file(
            rt.writing_engine(),
            file,
            operator=rt.operator_name,
            dry_run=dry_run,
            skip_invalid=skip_invalid,
            chunk_size=chunk_size,
            notify=notify,
            report_path=report,
            progress=progress,
        )
        log_summary(summary)
    emit(summary, fmt)


@app.command("status")
def status(
    ctx: typer.Context,
    batch_id: Annotated[int | None, typer.Argument(help="One batch's details.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1)] = 50,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Consolidation batches with their state and counts, or one batch's details.

    \b
    Example: portalctl consolidate status 12
    """
    from portalctl.domain.consolidation import BATCH_COLUMNS, list_batches, show_batch

    rt = runtime(ctx)
    with rt.transaction(read_only=True) as connection:
        if batch_id is None:
            batches = list_batches(connection, limit=limit + 1)
            rt.show_listing(batches, fmt, limit=limit, columns=BATCH_COLUMNS)
        else:
            emit(show_batch(connection, batch_id), fmt)
