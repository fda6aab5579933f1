"""One source of truth: the migrated database matches what the code queries, on both backends;
migrations are recorded, checked and never silently re-run."""

import pytest
import sqlalchemy as sa

from portalctl.core.clock import utc_now
from portalctl.core.database import create_engine
from portalctl.core.migrations import apply_pending, available_migrations, migration_state
from portalctl.core.schema import metadata

# A command on the engine, and the look-up on the driver's own read-only connection: both must
# refuse a database that is missing, behind, edited or unreachable in the same way.
READING_COMMANDS = [
    pytest.param(("accounts", "find", "--name", "a"), id="engine"),
    pytest.param(("accounts", "lookup", "-u", "a", "--tin", "836576879"), id="read-only"),
]


def _type_family(sql_type) -> str:
    name = type(sql_type).__name__.upper()
    for family, markers in {
        "int": ("INT",),
        "text": ("CHAR", "TEXT", "STRING"),
        "time": ("TIME", "DATE"),
        "json": ("JSON",),
        "bool": ("BOOL",),
    }.items():
        if any(marker in name for marker in markers):
            return family
    if hasattr(sql_type, "impl"):
        return _type_family(sql_type.impl)
    return name


def test_code_tables_match_the_migrated_database(backend):
    inspector = sa.inspect(backend.engine)
    database_tables = set(inspector.get_table_names())
    assert database_tables == set(metadata.tables)
    for table in metadata.sorted_tables:
        columns = {c["name"]: c for c in inspector.get_columns(table.name)}
        assert set(columns) == {c.name for c in table.columns}, table.name
        for column in table.columns:
            reflected = columns[column.name]
            if not column.primary_key:  # SQLite reports its rowid key as nullable
                assert reflected["nullable"] == column.nullable, (
                    f"{table.name}.{column.name} nullability"
                )
            expected = _type_family(
                column.type.dialect_impl(backend.engine.dialect)
                if not hasattr(column.type, "impl")
                else column.type.impl
            )
            assert _type_family(reflected["type"]) == expected, f"{table.name}.{column.name}"
        primary = inspector.get_pk_constraint(table.name)["constrained_columns"]
        assert set(primary) == {c.name for c in table.primary_key.columns}, table.name
        foreign = {
            (fk["constrained_columns"][0], fk["referred_table"])
            for fk in inspector.get_foreign_keys(table.name)
        }
        assert foreign == {(fk.parent.name, fk.column.table.name) for fk in table.foreign_keys}


def test_usernames_are_unique_case_insensitively(backend):
    now = utc_now()
    insert = sa.text(
        "INSERT INTO accounts (username, email, full_name, status, "
        "failed_verifications, created_at, updated_at) "
        "VALUES (:u, 'a@example.org', 'A', 'active', 0, :now, :now)"
    )
    with backend.begin() as connection:
        connection.execute(insert, {"u": "JSmith", "now": now})
    try:
        with backend.begin() as connection:
            connection.execute(insert, {"u": "jsmith", "now": now})
    except sa.exc.IntegrityError:
        pass
    else:
        raise AssertionError("a username differing only in case was accepted")


def test_audit_log_refuses_update_and_delete(backend, cli):
    assert (
        cli("accounts", "create", "-u", "amy", "-e", "amy@example.org", "-n", "Amy").exit_code == 0
    )
    for statement in ("UPDATE audit_log SET operator = 'x'", "DELETE FROM audit_log"):
        try:
            with backend.begin() as connection:
                connection.execute(sa.text(statement))
        except sa.exc.DatabaseError as error:
            assert "append-only" in str(error)
        else:
            raise AssertionError(f"{statement} was allowed")
    assert backend.scalar("SELECT count(*) FROM audit_log") == 1


def test_db_init_is_idempotent_and_records_checksums(backend, cli):
    result = cli("db", "init", "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["applied_now"] == []
    rows = backend.rows("SELECT version, checksum FROM schema_migrations ORDER BY version")
    expected = [(m.version, m.checksum) for m in available_migrations(backend.engine.dialect.name)]
    assert [(r["version"], r["checksum"]) for r in rows] == expected


@pytest.mark.parametrize("command", READING_COMMANDS)
def test_an_edited_migration_is_refused(backend, cli, command):
    with backend.begin() as connection:
        connection.execute(
            sa.text("UPDATE schema_migrations SET checksum = 'x' WHERE version = '0001'")
        )
    result = cli("db", "init")
    assert result.exit_code == 6
    assert "were edited" in result.stderr and "0001_initial.sql" in result.stderr
    refused = cli(*command)
    assert refused.exit_code == 6 and "out of date (0001_initial.sql)" in refused.stderr


@pytest.mark.parametrize("command", READING_COMMANDS)
def test_a_database_behind_exits_6_naming_the_command(backend, cli, command):
    with backend.begin() as connection:
        connection.execute(sa.text("DELETE FROM schema_migrations WHERE version = '0002'"))
    result = cli(*command)
    assert result.exit_code == 6
    assert "out of date" in result.stderr and "portalctl db init" in result.stderr


@pytest.mark.parametrize("command", [("accounts", "show", "x"), READING_COMMANDS[1].values[0]])
def test_a_database_never_initialised_exits_6(empty_db_url, bare_cli, command):
    engine = create_engine(empty_db_url)
    with engine.connect() as connection:
        assert migration_state(connection).applied == []
    engine.dispose()
    result = bare_cli(*command, env={"PORTALCTL_DATABASE_URL": empty_db_url})
    assert result.exit_code == 6
    assert "has no portalctl schema: run `portalctl db init` first" in result.stderr


def test_db_init_creates_the_schema_from_nothing(empty_db_url, bare_cli):
    result = bare_cli(
        "db", "init", "--format", "json", env={"PORTALCTL_DATABASE_URL": empty_db_url}
    )
    assert result.exit_code == 0, result.stderr
    assert "0001_initial.sql" in result.json()["applied_now"]
    engine = create_engine(empty_db_url)
    assert apply_pending(engine, now=utc_now()) == []
    engine.dispose()


def test_db_status_shows_backend_masked_url_and_counts(backend, cli):
    cli("accounts", "create", "-u", "amy", "-e", "amy@example.org", "-n", "Amy")
    status = cli("db", "status", "--format", "json").json()
    assert status["backend"] == backend.name
    assert status["up_to_date"] is True and status["pending"] == []
    assert status["row_counts"]["accounts"] == 1


@pytest.mark.parametrize("command", READING_COMMANDS)
def test_unreachable_postgres_exits_6_naming_host_not_password(bare_cli, command):
    cli = bare_cli
    url = "postgresql+psycopg://admin:s3cret-pw@127.0.0.1:1/portal"
    result = cli(*command, env={"PORTALCTL_DATABASE_URL": url})
    assert result.exit_code == 6 and result.stderr.count("\n") == 1
    assert "cannot reach the database (PostgreSQL at 127.0.0.1:1/portal)" in result.stderr
    assert "s3cret-pw" not in result.stderr + result.stdout
    status = cli("db", "status", env={"PORTALCTL_DATABASE_URL": url})
    assert status.exit_code == 6 and "s3cret-pw" not in status.stderr + status.stdout


@pytest.mark.parametrize("command", READING_COMMANDS)
def test_missing_sqlite_file_exits_6_and_is_not_created(bare_cli, tmp_path, command):
    cli = bare_cli
    target = tmp_path / "nowhere" / "portal.db"
    result = cli(*command, env={"PORTALCTL_DATABASE_URL": f"sqlite:///{target}"})
    assert (
        result.exit_code == 6
        and f"no database at {target}: run `portalctl db init`" in result.stderr
    )
    assert not target.exists()


@pytest.mark.parametrize("command", READING_COMMANDS)
def test_an_unsupported_database_url_exits_5(bare_cli, command):
    result = bare_cli(*command, env={"PORTALCTL_DATABASE_URL": "mysql://x@localhost/db"})
    assert result.exit_code == 5 and "unsupported database 'mysql'" in result.stderr


@pytest.mark.parametrize("command", [*READING_COMMANDS, ("db", "init")])
def test_a_file_that_is_not_a_database_exits_6_unchanged(bare_cli, tmp_path, command):
    target = tmp_path / "notes.db"
    target.write_text("meeting notes, not a database\n")
    result = bare_cli(*command, env={"PORTALCTL_DATABASE_URL": f"sqlite:///{target}"})
    assert result.exit_code == 6
    assert (
        f"cannot use the database (SQLite file {target}): file is not a database" in result.stderr
    )
    assert target.read_text() == "meeting notes, not a database\n"


def test_reading_commands_do_not_queue_behind_a_sqlite_writer(backend, cli):
    """A long write (a chunk of `consolidate run`, an import) holds SQLite's write lock; commands
    that only read begin deferred and answer at once instead of waiting for it."""
    import os
    import sqlite3
    import subprocess
    import sys
    from pathlib import Path

    if backend.name != "sqlite":
        pytest.skip("PostgreSQL readers never wait for writers")
    cli("accounts", "create", "-u", "amy", "-e", "amy@example.org", "-n", "Amy")
    writer = sqlite3.connect(backend.url.removeprefix("sqlite:///"), isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("UPDATE accounts SET full_name = 'Amy (being changed)'")
    program = str(Path(sys.executable).parent / "portalctl")
    try:
        for command in (
            ["consolidate", "status"],
            ["accounts", "show", "amy"],
            ["accounts", "find", "--name", "amy"],
            ["audit", "--limit", "1"],
            ["mail", "list"],
        ):
            result = subprocess.run(
                [program, *command],
                env={**os.environ, **backend.env},
                capture_output=True,
                text=True,
                timeout=10,
            )
            assert result.returncode == 0, (command, result.stderr)
        shown = subprocess.run(
            [program, "accounts", "show", "amy"],
            capture_output=True,
            env={**os.environ, **backend.env},
            text=True,
            timeout=10,
        )
        assert "Amy (being changed)" not in shown.stdout  # it reads the last commit
    finally:
        writer.rollback()
        writer.close()


def test_field_limits_match_the_migrated_columns(backend):
    """``core/fields.FIELDS`` is the one table of text limits every entry point checks before
    SQL: each limit is its column's length in the migrated database."""
    from portalctl.core.fields import FIELDS

    inspector = sa.inspect(backend.engine)
    lengths = {}
    for field in FIELDS.values():
        table, column = field.column.split(".")
        found = {c["name"]: c["type"] for c in inspector.get_columns(table)}
        lengths[field.label] = getattr(found[column], "length", None)
    assert lengths == {label: field.max_length for label, field in FIELDS.items()}
