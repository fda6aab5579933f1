"""Fixtures: a fresh, migrated database per test on SQLite and (when configured) PostgreSQL, and a
CLI runner pointed at it. No mocks: real files, a real server, real SMTP where mail is tested."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from portalctl.cli.app import app
from portalctl.core.clock import utc_now
from portalctl.core.database import create_engine
from portalctl.core.migrations import apply_pending

PG_ENV = "PORTALCTL_TEST_DATABASE_URL"
TEST_SECRET_KEY = "test-secret-key-0123456789abcdef"
TEST_OPERATOR = "test-operator"


def postgres_base_url() -> str | None:
    url = os.environ.get(PG_ENV)
    if url and url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


@pytest.fixture(scope="session")
def postgres_admin_engine():
    """An engine on the configured PostgreSQL; fails loudly if it is configured but unreachable."""
    url = postgres_base_url()
    if not url:
        pytest.skip(
            f"PostgreSQL tests skipped: set {PG_ENV} "
            "(e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)"
        )
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except Exception as error:  # any failure here must stop the run loudly
        pytest.fail(f"{PG_ENV} is set but PostgreSQL cannot be reached: {error}", pytrace=False)
    yield engine
    engine.dispose()


@dataclass
class Backend:
    """One fresh, migrated database: its URL and an engine for re-checking what the CLI did."""

    name: str
    url: str
    engine: sa.engine.Engine
    env: dict[str, str] = field(default_factory=dict)

    def scalar(self, sql: str, **params):
        with self.engine.connect() as connection:
            return connection.execute(sa.text(sql), params).scalar()

    def rows(self, sql: str, **params) -> list:
        with self.engine.connect() as connection:
            return connection.execute(sa.text(sql), params).mappings().all()

    def begin(self):
        return self.engine.begin()


def _empty_database(kind: str, tmp_path: Path, request) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'portal.db'}"
        return
    admin = request.getfixturevalue("postgres_admin_engine")
    schema = f"t_{uuid.uuid4().hex[:16]}"
    with admin.begin() as connection:
        connection.execute(sa.text(f"CREATE SCHEMA {schema}"))
    base = admin.url.render_as_string(hide_password=False)
    separator = "&" if "?" in base else "?"
    yield f"{base}{separator}options={quote('-csearch_path=' + schema)}"
    with admin.begin() as connection:
        connection.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_db_url(request, tmp_path) -> Iterator[str]:
    """A database with no schema at all, on each backend."""
    yield from _empty_database(request.param, tmp_path, request)


@pytest.fixture
def isolated(tmp_path, monkeypatch) -> Path:
    """Run in an empty directory with no PORTALCTL_ settings inherited from the caller."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("PORTALCTL_") and name != PG_ENV:
            monkeypatch.delenv(name)
    return tmp_path


@pytest.fixture
def backend(empty_db_url, tmp_path, isolated) -> Iterator[Backend]:
    """A freshly migrated database, with the working directory and settings isolated."""
    engine = create_engine(empty_db_url)
    apply_pending(engine, now=utc_now())
    name = "sqlite" if empty_db_url.startswith("sqlite") else "postgresql"
    env = {
        "PORTALCTL_DATABASE_URL": empty_db_url,
        "PORTALCTL_SECRET_KEY": TEST_SECRET_KEY,
        "PORTALCTL_OPERATOR": TEST_OPERATOR,
        "PORTALCTL_MAIL_DIR": str(tmp_path / "mail"),
    }
    yield Backend(name, empty_db_url, engine, env)
    engine.dispose()


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    def json(self):
        return json.loads(self.stdout)


def make_runner(base_env: dict[str, str]):
    runner = CliRunner()

    def run(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> CliResult:
        result = runner.invoke(
            app, list(args), input=input, env={**base_env, **(env or {})}, catch_exceptions=False
        )
        return CliResult(result.exit_code, result.stdout, result.stderr)

    return run


@pytest.fixture
def cli(backend):
    """Run ``portalctl ARGS`` in-process against the test database; returns exit code and output."""
    return make_runner(backend.env)


@pytest.fixture
def bare_cli(isolated):
    """Run ``portalctl ARGS`` in-process with no database prepared (pass env as needed)."""
    return make_runner(
        {"PORTALCTL_SECRET_KEY": TEST_SECRET_KEY, "PORTALCTL_OPERATOR": TEST_OPERATOR}
    )


def pytest_terminal_summary(terminalreporter) -> None:
    """One line per reason tests were skipped (instead of a line per test)."""
    reasons: dict[str, int] = {}
    for report in terminalreporter.stats.get("skipped", []):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason.removeprefix("Skipped: ")
        reasons[reason] = reasons.get(reason, 0) + 1
    for reason, count in sorted(reasons.items(), key=lambda item: -item[1]):
        terminalreporter.write_line(f"skipped {count}: {reason}")
