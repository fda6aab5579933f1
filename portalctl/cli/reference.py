"""The command reference (``docs/reference.md``), generated from the commands themselves so it
cannot drift from them: ``python -m portalctl.cli.reference > docs/reference.md`` (or
``make docs``); a test fails when the committed file is stale."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import typer

HEADER = """# Command reference

Generated from the commands themselves by `make docs`; do not edit by hand. Global options go
before the command (`portalctl --operator jdoe accounts find ...`). Exit codes and JSON keys:
[exit-codes.md](exit-codes.md); CSV files: [formats.md](formats.md).
"""


def leaf_commands(command: Any, path: list[str]) -> Iterator[tuple[list[str], Any]]:
    """Every command below ``command`` with its path, through Click's API (groups load lazily)."""
    if hasattr(command, "list_commands"):
        context = typer.Context(command)
        for name in command.list_commands(context):
            yield from leaf_commands(command.get_command(context, name), [*path, name])
    else:
        yield path, command


def reference() -> str:
    from portalctl.cli.app import app

    root = typer.main.get_command(app)
    parts = [HEADER, _section(["portalctl"], root, global_options=True)]
    for path, command in leaf_commands(root, []):
        parts.append(_section(["portalctl", *path], command))
    return "\n".join(parts)


def _section(path: list[str], command: Any, *, global_options: bool = False) -> str:
    context = typer.Context(command, info_name=" ".join(path))
    title = "Global options" if global_options else f"`{' '.join(path)}`"
    lines = [f"## {title}", ""]
    if not global_options:
        lines += [_help_text(command.help or ""), "", "```", _usage(command, context), "```", ""]
    records = [
        record
        for param in command.get_params(context)
        if (record := param.get_help_record(context)) is not None
    ]
    if records:
        lines += ["| option | meaning |", "| --- | --- |"]
        lines += [f"| `{_cell(opts)}` | {_cell(text)} |" for opts, text in records]
        lines.append("")
    return "\n".join(lines)


def _usage(command: Any, context: Any) -> str:
    pieces = command.collect_usage_pieces(context)
    return " ".join([context.info_name, *pieces])


def _help_text(text: str) -> str:
    """The docstring as Markdown: Click's no-rewrap marks dropped, examples as code."""
    lines = []
    for line in text.replace("\b\n", "").splitlines():
        stripped = line.strip()
        if stripped.startswith("Example: "):
            lines.append(f"Example: `{stripped.removeprefix('Example: ')}`")
        else:
            lines.append(stripped)
    return "\n".join(lines).strip()


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


if __name__ == "__main__":
    print(reference(), end="")
