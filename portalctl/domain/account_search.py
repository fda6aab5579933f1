"""``accounts find --csv``: one search per row of a file, so a script pays start-up once for a
whole file of searches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection

from portalctl.core.csvio import CsvErrors, open_csv_text, read_csv
from portalctl.core.errors import InvalidInput, PortalError
from portalctl.core.tin import Tin
from portalctl.domain.accounts import AccountQuery, find_accounts

SEARCH_COLUMNS = ("username", "email", "name", "tin", "status")


def find_accounts_from_csv(
    connection: Connection, path: str | Path, *, exact: bool, limit: int
) -> list[dict[str, Any]]:
    """Every row's search, validated whole first; each result names the line of its query."""
    stream, source = open_csv_text(path)
    errors = CsvErrors(source)
    queries: list[tuple[int, AccountQuery]] = []
    with stream:
        for record in read_csv(stream, source, required=(), optional=SEARCH_COLUMNS):
            try:
                if record.problem:
                    raise InvalidInput(record.problem)
                values = {k: v for k, v in record.values.items() if v}
                query = AccountQuery(
                    username=values.get("username"),
                    email=values.get("email"),
                    name=values.get("name"),
                    tin=Tin.parse(values["tin"]) if "tin" in values else None,
                    status=values.get("status"),
                    exact=exact,
                    limit=limit,
                )
                if query.is_empty():
                    raise InvalidInput("the row has no filter")
                queries.append((record.line, query))
            except PortalError as error:
                errors.add(record.line, error.message)
    errors.raise_if_any()
    return [
        {"query_line": line, **account}
        for line, query in queries
        for account in list(find_accounts(connection, query))
    ]
