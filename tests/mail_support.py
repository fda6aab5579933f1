"""Helpers shared by the mail tests: issuing codes (which queues their emails), running
`mail send` in-process or as the installed program, and reading the outbox back."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import sqlalchemy as sa

from portalctl.core.config import Settings
from portalctl.core.tin import Tin
from portalctl.domain.codes import issue_registration_code

TIN = "061137531"
ROOT = Path(__file__).resolve().parent.parent
PORTALCTL = ROOT / ".venv" / "bin" / "portalctl"
SUMMARY_KEYS = ["sent", "failed", "dead", "cancelled", "remaining"]


def issue(cli, email="james.smith@example.org", name="James Smith", tin=TIN):
    result = cli(
        "codes",
        "issue",
        "--tin",
        tin,
        "--admin-name",
        name,
        "--admin-email",
        email,
        "--provider-name",
        "Ruth Goneh",
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.stderr
    return result.json()


def issue_many(backend, count, *, tin=TIN):
    """``count`` codes issued in one transaction through the domain (fast), emails queued."""
    settings = Settings(backend.env)
    with backend.engine.begin() as connection:
        return [
            issue_registration_code(
                connection,
                operator="rep",
                tin=Tin.parse(tin),
                admin_name=f"Admin {n}",
                admin_email=f"a{n}@example.org",
                settings=settings,
            )
            for n in range(count)
        ]


def send(cli, url, *args, env=None):
    """``mail send`` that must exit 0; its JSON summary."""
    result = cli(
        "mail", "send", "--format", "json", *args, env={"PORTALCTL_SMTP_URL": url, **(env or {})}
    )
    assert result.exit_code == 0, result.stderr
    summary = result.json()
    assert list(summary) == SUMMARY_KEYS
    return summary


def make_due(backend):
    """Every pending email due now (as if its backoff had passed)."""
    with backend.engine.begin() as connection:
        connection.execute(sa.text("UPDATE outbox SET next_attempt_at = created_at"))


def statuses(backend):
    return {
        row["status"]: row["n"]
        for row in backend.rows("SELECT status, count(*) AS n FROM outbox GROUP BY status")
    }


def subprocess_env(backend, url=None, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTALCTL_")}
    env = {**env, **backend.env, **extra}
    if url:
        env["PORTALCTL_SMTP_URL"] = url
    return env


def start_send(backend, url, cwd, *args, **extra):
    """The installed program's `mail send`, running in the background."""
    return subprocess.Popen(
        [str(PORTALCTL), "mail", "send", "--format", "json", *args],
        env=subprocess_env(backend, url, **extra),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
