"""The command groups: name -> (the module whose ``app`` it is, its one-line help). Kept apart so
that ``portalctl --help`` can list the groups without importing any of them. A module whose
``app`` has a single command (``audit``) gives that command itself, not a group."""

COMMAND_GROUPS: dict[str, tuple[str, str]] = {
    "db": ("portalctl.cli.db", "Create, migrate and inspect the database."),
    "accounts": ("portalctl.cli.accounts", "Find, check and change portal accounts."),
    "tins": ("portalctl.cli.tins", "Tax IDs (TINs): show, link to an account, unlink."),
    "codes": ("portalctl.cli.codes", "Issue, check and revoke registration codes."),
    "mail": ("portalctl.cli.mail", "Deliver and inspect queued emails."),
    "flow": (
        "portalctl.cli.flow",
        "The portal's guides, guided: consolidate accounts, add a Tax ID with its code.",
    ),
    "audit": ("portalctl.cli.audit", "Read the audit log: who changed what, and when."),
    "consolidate": (
        "portalctl.cli.consolidate",
        "Merge duplicate accounts into one (links move, the higher role wins).",
    ),
}
