"""The options every bulk command shares, declared once so they read the same everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DryRunOption = Annotated[
    bool, typer.Option("--dry-run", help="Validate and show what would happen; write nothing.")
]
ReportOption = Annotated[
    Path | None,
    typer.Option("--report", help="Write every row's outcome here as CSV ('-' for stdout)."),
]
SkipInvalidOption = Annotated[
    bool,
    typer.Option("--skip-invalid", help="Apply the good rows and report the bad ones (exit 7)."),
]
FailedRowsOption = Annotated[
    Path | None,
    typer.Option(
        "--failed-rows",
        help="Write the input rows not applied here, with the input's header, unchanged: fix "
        "them and feed the file back in.",
    ),
]
