"""``accounts import``, row by row: each CSV row's checks (SPEC 5) and its staged rows (the
account, then one per TIN link), with answers and passwords hashed in batches on every core."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from portalctl.core.csvio import CsvErrors, CsvRecord, FailedRows
from portalctl.core.errors import InvalidInput, PortalError
from portalctl.core.fields import clean_text
from portalctl.core.secrets import hash_secret, normalise_answer
from portalctl.core.tin import mask_tin, parse_tin_digits
from portalctl.domain.validation import (
    clean_email,
    clean_name,
    clean_new_password,
    clean_role,
    clean_status,
    clean_username,
)

REQUIRED = ("username", "email", "full_name")
OPTIONAL = ("tins", "status", "security_question", "security_answer", "password")
# Argon2id costs ~50 ms a hash by design: the answers and passwords of this many rows are hashed
# together, on every core (argon2 releases the GIL while it works).
HASH_BATCH = 64
ANSWER, PASSWORD = 8, 9  # their places in an account's staged row
# One staging table for accounts (kind 'a') and their links (kind 'l'), so one COPY stream.
STAGE_COLUMNS = [
    ("line", "INTEGER"),
    ("kind", "CHAR(1)"),
    ("username_key", "VARCHAR(254)"),
    ("username", "VARCHAR(254)"),
    ("email", "VARCHAR(254)"),
    ("full_name", "VARCHAR(200)"),
    ("status", "VARCHAR(16)"),
    ("security_question", "VARCHAR(300)"),
    ("security_answer_hash", "VARCHAR(300)"),
    ("password_hash", "VARCHAR(300)"),
    ("tin", "CHAR(9)"),
    ("role", "VARCHAR(16)"),
    ("raw", "TEXT"),
]


@dataclass
class RowProblems:
    """The file's invalid rows: the first ones listed for the error message (``errors``); with
    ``skip_invalid`` or a report, every one by line; with a failed-rows file, their cells."""

    errors: CsvErrors
    skip_invalid: bool = False
    keep_all: bool = False
    failed_rows: FailedRows | None = None
    by_line: dict[int, tuple[str | None, str]] = field(default_factory=dict)

    def add(
        self, line: int, message: str, username: str | None = None, cells: tuple[str, ...] = ()
    ) -> None:
        self.errors.add(line, message)
        if self.keep_all or self.skip_invalid:
            self.by_line[line] = (username, message)
        if self.failed_rows is not None:
            self.failed_rows.add(line, cells)

    def refuses_whole(self) -> bool:
        return bool(self.errors.count) and not self.skip_invalid


def staged_rows(
    records: Iterable[CsvRecord],
    problems: RowProblems,
    hashers: Executor,
    progress: Callable[[int, int | None], None] | None = None,
) -> Iterator[tuple[Any, ...]]:
    """The staging table's rows for the file's records; the records' problems go to
    ``problems``. The stage's ``raw`` column keeps a row's cells when a failed-rows file may
    need them."""
    batch: list[list[tuple[Any, ...]]] = []
    done = 0
    for record in records:
        done += 1
        try:
            if record.problem:
                raise InvalidInput(record.problem)
            rows = rows_for(record.line, record.values)
        except PortalError as error:
            problems.add(record.line, error.message, record.values.get("username"), record.cells)
        else:
            raw = json.dumps(record.cells) if problems.failed_rows is not None else None
            batch.append([rows[0] + (raw,), *(row + (None,) for row in rows[1:])])
        if len(batch) >= HASH_BATCH:
            yield from _with_hashes(batch, problems, hashers)
            batch = []
            if progress:
                progress(done, None)
    yield from _with_hashes(batch, problems, hashers)
    if progress:
        progress(done, done)


def _with_hashes(
    batch: list[list[tuple[Any, ...]]], problems: RowProblems, hashers: Executor
) -> Iterator[tuple[Any, ...]]:
    """The batch's staged rows with each plain answer and password replaced by its hash. Once a
    row is invalid the file will be refused whole (unless invalid rows are skipped), so nothing
    more is hashed."""
    plain = [rows[0][place] for rows in batch for place in (ANSWER, PASSWORD)]
    hashes: list[str | None] = [None] * len(plain)
    wanted = [index for index, value in enumerate(plain) if value]
    if wanted and not problems.refuses_whole():
        for index, hashed in zip(wanted, hashers.map(hash_secret, [plain[i] for i in wanted])):
            hashes[index] = hashed
    for index, rows in enumerate(batch):
        account = rows[0]
        answer, password = hashes[2 * index], hashes[2 * index + 1]
        yield account[:ANSWER] + (answer, password) + account[PASSWORD + 1 :]
        yield from rows[1:]


def rows_for(line: int, values: dict[str, str]) -> list[tuple[Any, ...]]:
    """The staged rows of one CSV row: its account, then one row per TIN link. (The hot loop of
    a 1,000,000-row import: plain locals, no per-TIN objects.)"""
    username = clean_username(values["username"])
    email = clean_email(values["email"])
    full_name = clean_name(values["full_name"])
    status = values.get("status")
    status = clean_status(status) if status else "active"
    question = clean_text(values.get("security_question"), "security question", required=False)
    answer = values.get("security_answer") or None
    if (question is None) != (answer is None):
        raise InvalidInput("security_question and security_answer go together")
    password = values.get("password") or None
    if password is not None:
        password = clean_new_password(password, username=username, email=email)
    key = username.lower()
    rows: list[tuple[Any, ...]] = [
        (
            line,
            "a",
            key,
            username,
            email,
            full_name,
            status,
            question,
            normalise_answer(answer) if answer else None,  # hashed by _with_hashes
            password,
            None,
            None,
        )
    ]
    tins = values.get("tins")
    if tins:
        linked: set[str] = set()
        for item in tins.split(";"):
            item = item.strip()
            if not item:
                continue
            tin_text, _, role = item.partition(":")
            digits = parse_tin_digits(tin_text)
            if digits in linked:
                raise InvalidInput(f"TIN {mask_tin(digits)} is listed twice")
            linked.add(digits)
            rows.append(
                (
                    line,
                    "l",
                    key,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    digits,
                    clean_role(role) if role else "user",
                )
            )
    return rows
