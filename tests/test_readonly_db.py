"""The driver-level read-only connection of ``accounts lookup``: it finds the same database as
the engine for any URL, cannot write, and keeps SQLAlchemy out of the look-up's start-up."""

import os
import subprocess
import sys

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from psycopg.conninfo import conninfo_to_dict

from portalctl.core.database import parse_url
from portalctl.core.errors import InvalidInput
from portalctl.core.readonly_db import ConnectionTarget, readonly_connection

BIN = os.path.dirname(sys.executable)


def _engine_conninfo(url: str) -> dict:
    """What the engine hands psycopg for this URL."""
    parsed = parse_url(url)
    _args, kwargs = parsed.get_dialect()().create_connect_args(parsed)
    return {key: str(value) for key, value in kwargs.items()}


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres@127.0.0.1:5432/test",
        "postgresql+psycopg://admin:p%40ss%2Fw%3Ard@db.internal:6543/portal",
        "postgresql+psycopg://u@h/db?options=-csearch_path%3Dt_1&sslmode=require",
        "postgresql+psycopg2://u:pw@h:5432/db",
        "postgresql+psycopg://u@/db?host=/var/run/postgresql",
        "postgres://u:pw@h:5432/db",
    ],
)
def test_postgresql_urls_reach_what_the_engine_reaches(url):
    target = ConnectionTarget.from_url(url)
    assert target.backend == "postgresql"
    assert conninfo_to_dict(target.conninfo) == _engine_conninfo(url)


@pytest.mark.parametrize(
    "url", ["mysql://u@h/db", "not a url", "postgresql://u@h:port/db", "postgres://u@h:99999/db"]
)
def test_urls_the_engine_refuses_are_refused_alike(url):
    with pytest.raises(InvalidInput) as from_engine:
        parse_url(url)
    with pytest.raises(InvalidInput) as from_driver:
        ConnectionTarget.from_url(url)
    assert from_driver.value.message == from_engine.value.message


_PATH_TEXT = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="?#"),
    min_size=1,
    max_size=30,
)


@given(path=_PATH_TEXT, absolute=st.booleans())
def test_sqlite_paths_are_read_as_sqlalchemy_reads_them(path, absolute):
    url = f"sqlite:///{'/' if absolute else ''}{path}"
    expected = sa.engine.make_url(url).database
    assert ConnectionTarget.from_url(url).sqlite_path == (
        None if expected in (None, "", ":memory:") else expected
    )


def test_the_connection_refuses_writes(backend):
    insert = "INSERT INTO organisations (tin, created_at) VALUES ('836576879', :at)"
    with readonly_connection(backend.url) as connection:
        with pytest.raises(Exception, match="(?i)read-?only|readonly"):
            connection.rows(insert, {"at": "2026-01-01 00:00:00"})
    assert backend.scalar("SELECT count(*) FROM organisations") == 0


def test_percent_signs_and_casts_survive_the_parameter_rewrite(backend):
    with readonly_connection(backend.url) as connection:
        rows = connection.rows("SELECT 'a%b' AS text, CAST(:n AS INTEGER) + 1 AS next", {"n": 41})
    assert rows == [{"text": "a%b", "next": 42}]


def test_a_lookup_starts_without_sqlalchemy(backend, cli):
    created = cli(
        "accounts",
        "create",
        "-u",
        "amy",
        "-e",
        "amy@example.org",
        "-n",
        "Amy",
        "--tin",
        "836576879",
    )
    assert created.exit_code == 0, created.stderr
    probe = (
        "import sys\n"
        "from portalctl.cli.app import main\n"
        "try:\n    main()\n"
        "except SystemExit as e:\n    assert e.code in (0, None), e.code\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'sqlalchemy')[:3])\n"
    )
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            probe,
            "accounts",
            "lookup",
            "-u",
            "amy",
            "--tin",
            "836576879",
            "-f",
            "csv",
        ],
        env={**os.environ, **backend.env},
        capture_output=True,
        text=True,
        check=True,
    )
    lines = result.stdout.strip().splitlines()
    assert lines[1].startswith("amy,amy@example.org") and lines[-1] == "[]"
