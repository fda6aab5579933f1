"""The command line: one Typer app per noun, joined in ``portalctl.cli.app``.

Commands parse arguments, open one transaction, call one domain function and render its result.
Database code is imported inside commands so that ``portalctl --help`` stays fast.
"""
