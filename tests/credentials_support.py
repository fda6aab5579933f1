"""Shared helpers for the email code and credentials tests: accounts made through the CLI, the
codes read out of the emails a real SMTP server received, settings for domain-level calls."""

from __future__ import annotations

import json
import re
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path

import sqlalchemy as sa
from conftest import TEST_SECRET_KEY

from portalctl.core.config import Settings

PASSWORD = "Blue-Heron-Lake-42"
CODE_LINE = re.compile(r"(?:Verification|Password reset) code: (\d+)\.")


def make_account(
    cli, username="johnsmith@gmail.com", email=None, *, name="John Smith", answer=None
):
    """An active account; with ``answer``, the seed's security question answered so."""
    args = ["accounts", "create", "-u", username, "-e", email or username, "-n", name]
    stdin = PASSWORD + "\n"
    if answer is not None:
        args += ["--security-question", "What's your maiden name?", "--answer-stdin"]
        stdin = answer + "\n" + stdin
    result = cli(*args, "--password-stdin", input=stdin)
    assert result.exit_code == 0, result.stderr
    return result


def body_of(message) -> str:
    """The text of a plain email, with the wire's CRLF line ends read as newlines."""
    return message.get_payload(decode=True).decode().replace("\r\n", "\n")


def code_in(message) -> str:
    """The code an email carries, as its reader would copy it."""
    match = CODE_LINE.search(body_of(message))
    assert match, body_of(message)
    return match.group(1)


def eml_messages(backend) -> list:
    folder = Path(backend.env["PORTALCTL_MAIL_DIR"])
    return [
        message_from_bytes(path.read_bytes(), policy=default_policy)
        for path in sorted(folder.glob("*.eml"), key=lambda p: p.stat().st_mtime_ns)
    ]


def settings_for(backend, **values: str) -> Settings:
    return Settings(
        {
            "PORTALCTL_SECRET_KEY": TEST_SECRET_KEY,
            "PORTALCTL_MAIL_DIR": backend.env["PORTALCTL_MAIL_DIR"],
            **values,
        }
    )


def audit_details(backend, action: str) -> list[dict]:
    """The details of the audit records of ``action``, oldest first (JSON text on SQLite)."""
    rows = backend.rows("SELECT details FROM audit_log WHERE action = :a ORDER BY id", a=action)
    return [
        json.loads(row["details"]) if isinstance(row["details"], str) else row["details"]
        for row in rows
    ]


def every_stored_text(backend) -> str:
    """Every value of every column of every table, as text: where a secret must never be."""
    text = []
    for table in sa.inspect(backend.engine).get_table_names():
        for row in backend.rows(f"SELECT * FROM {table}"):
            text.extend(str(value) for value in row.values())
    return "\n".join(text)
