"""Account commands that take raw text (TINs as typed, CSV files of searches), so a script pays
start-up once for a whole file of searches (the look-ups are in ``account_lookup``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection

from portalctl.core.csvio import CsvErrors, open_csv_text, read_csv
from portalctl.core.errors import InvalidInput, PortalError
from portalctl.core.tin import Tin
from portalctl.domain.accounts import (
    AccountQuery,
    create_account,
    find_accounts,
)
from portalctl.domain.validation import clean_role


def parse_tin_with_role(text: str, *, default_role: str = "user") -> tuple[Tin, str]:
    """``836576879`` or ``836576879:security_admin``."""
    tin_text, _, role = text.partition(":")
    return Tin.parse(tin_text), clean_role(role) if role else default_role


def create_account_from_options(
    connection: Connection, *, tins: list[str], **fields: Any
) -> dict[str, Any]:
    return create_account(connection, tins=[parse_tin_with_role(t) for t in tins], **fields)


def find_accounts_matching(
    connection: Connection, *, tin: str | None, **filters: Any
) -> list[dict[str, Any]]:
    return find_accounts(connection, AccountQuery(tin=Tin.parse(tin) if tin else None, **filters))


_FIND_COLUMNS = ("username", "email", "name", "tin", "status")


def find_accounts_from_csv(
    connection: Connection, path: Path, *, exact: bool, limit: int
) -> list[dict[str, Any]]:
    """Run one search per CSV row; each result names the line of the query that found it."""
    stream, source = open_csv_text(path)
    errors = CsvErrors(source)
    queries: list[tuple[int, AccountQuery]] = []
    with stream:
        for record in read_csv(stream, source, required=(), optional=_FIND_COLUMNS):
            try:
                if record.problem:
                    raise InvalidInput(record.problem)
                values = {k: v for k, v in record.values.items() if v}
                tin = Tin.parse(values.pop("tin")) if "tin" in values else None
                query = AccountQuery(tin=tin, exact=exact, limit=limit, **values)
                if query.is_empty():
                    raise InvalidInput("the row has no filter")
                queries.append((record.line, query))
            except PortalError as error:
                errors.add(record.line, error.message)
    errors.raise_if_any()
    results = []
    for line, query in queries:
        results.extend(
            {"query_line": line, **account} for account in find_accounts(connection, query)
        )
    return results
