"""The portal's Account Lookup (username + TIN), one query or a whole CSV of them.

It runs on a ``ReadOnlyConnection`` in plain SQL, so the command never imports SQLAlchemy and
answers within its start-up budget; the records have the shape of ``accounts.account_records``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from portalctl.core.errors import InvalidInput, NotFound, PortalError
from portalctl.core.readonly_db import ReadOnlyConnection
from portalctl.core.text import quoted
from portalctl.core.tin import Tin

# Two parameters a query; SQLite allows 32,766 in one statement.
_QUERIES_PER_STATEMENT = 500

_MATCHING_ACCOUNTS = """
SELECT a.id, a.username, a.email, a.full_name, a.status, merged.username AS merged_into,
       l.tin AS matched_tin
FROM accounts a
JOIN account_tins l ON l.account_id = a.id
LEFT JOIN accounts merged ON merged.id = a.merged_into
WHERE a.status = 'active' AND lower(a.username) IN ({usernames})
  AND (lower(a.username), l.tin) IN ({pairs})
"""

# The account with that username whatever its status, to say why a look-up found nothing.
_ANY_STATUS = """
SELECT a.status, merged.username AS merged_into
FROM accounts a LEFT JOIN accounts merged ON merged.id = a.merged_into
WHERE lower(a.username) = :username
"""

_LINKS = """
SELECT account_id, tin, role FROM account_tins
WHERE account_id IN ({ids}) ORDER BY account_id, tin
"""


def lookup_one(connection: ReadOnlyConnection, *, username: str, tin: str) -> dict[str, Any]:
    """The active account with exactly this username holding this TIN, or NotFound; when an
    account with that username exists but is not active, the message says its status (and
    the account a merged one was merged into)."""
    parsed = Tin.parse(tin)
    found = lookup_accounts(connection, [(username, parsed)])[0]
    if found is None:
        message = f"no active account {username.strip()!r} holding TIN {parsed}"
        existing = connection.rows(_ANY_STATUS, {"username": username.strip().lower()})
        if existing and existing[0]["status"] != "active":
            message += f": that account is {existing[0]['status']}"
            if existing[0]["merged_into"] is not None:
                message += f" into {quoted(existing[0]['merged_into'])}"
        raise NotFound(message)
    return found


def lookup_accounts(
    connection: ReadOnlyConnection, queries: Sequence[tuple[str, Tin]]
) -> list[dict[str, Any] | None]:
    """Many look-ups at once (two statements per 500 queries); None where there is no match."""
    wanted = [(username.strip().lower(), tin.reveal()) for username, tin in queries]
    by_key: dict[tuple[str, str], dict[str, Any]] = {}
    for start in range(0, len(wanted), _QUERIES_PER_STATEMENT):
        chunk = sorted(set(wanted[start : start + _QUERIES_PER_STATEMENT]))
        params: dict[str, str] = {}
        for index, (username, tin) in enumerate(chunk):
            params[f"u{index}"], params[f"t{index}"] = username, tin
        usernames = ", ".join(f":u{index}" for index in range(len(chunk)))
        pairs = ", ".join(f"(:u{index}, :t{index})" for index in range(len(chunk)))
        rows = connection.rows(_MATCHING_ACCOUNTS.format(usernames=usernames, pairs=pairs), params)
        links = _links_of(connection, sorted({row["id"] for row in rows}))
        for row in rows:
            by_key[(row["username"].lower(), row["matched_tin"])] = {
                "username": row["username"],
                "email": row["email"],
                "full_name": row["full_name"],
                "status": row["status"],
                "merged_into": row["merged_into"],
                "tins": links[row["id"]],
            }
    return [by_key.get(key) for key in wanted]


def _links_of(
    connection: ReadOnlyConnection, account_ids: list[int]
) -> dict[int, list[dict[str, Any]]]:
    links: dict[int, list[dict[str, Any]]] = {account_id: [] for account_id in account_ids}
    if account_ids:
        params = {f"a{index}": account_id for index, account_id in enumerate(account_ids)}
        statement = _LINKS.format(ids=", ".join(f":{name}" for name in params))
        for link in connection.rows(statement, params):
            links[link["account_id"]].append({"tin": Tin(link["tin"]), "role": link["role"]})
    return links


def lookup_from_csv(connection: ReadOnlyConnection, path: Path) -> list[dict[str, Any]]:
    """One result row per query row (found or not); the file is validated before any look-up."""
    from portalctl.core.csvio import CsvErrors, open_csv_text, read_csv  # not for one query

    stream, source = open_csv_text(path)
    errors = CsvErrors(source)
    queries: list[tuple[int, str, Tin]] = []
    with stream:
        for record in read_csv(stream, source, required=("username", "tin")):
            try:
                if record.problem:
                    raise InvalidInput(record.problem)
                queries.append(
                    (record.line, record.values["username"], Tin.parse(record.values["tin"]))
                )
            except PortalError as error:
                errors.add(record.line, error.message)
    errors.raise_if_any()
    found = lookup_accounts(connection, [(username, tin) for _, username, tin in queries])
    results = []
    for (line, username, _tin), account in zip(queries, found):
        row: dict[str, Any] = {
            "line": line,
            "query_username": username,
            "found": account is not None,
        }
        row.update(account or {})
        results.append(row)
    return results
