"""The outbox's migration (0003: fenced claims, cancelled emails, the kinds of every email SPEC 1
names) on a database that already has emails: every row and id kept, the new kinds accepted,
unknown ones still refused, the outbox's indexes back (SQLite rebuilds the table); and a
migration failing half-way leaves nothing behind."""

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from portalctl.core import migration_files
from portalctl.core.database import create_engine
from portalctl.core.migrations import apply_pending

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def _insert(connection, kind, message_id, *, status="queued", secret="token"):
    connection.execute(
        sa.text(
            "INSERT INTO outbox (kind, message_id, recipient, subject, body, secret_ciphertext, "
            "status, attempts, next_attempt_at, created_at) VALUES (:kind, :message_id, "
            "'a@example.org', 'S', 'B {secret}', :secret, :status, 0, :now, :now)"
        ),
        {"kind": kind, "message_id": message_id, "secret": secret, "status": status, "now": NOW},
    )


def test_the_outbox_migration_keeps_every_email_and_admits_the_new_kinds(empty_db_url, monkeypatch):
    engine = create_engine(empty_db_url)
    every = migration_files.available_migrations
    monkeypatch.setattr(
        migration_files,
        "available_migrations",
        lambda dialect: [m for m in every(dialect) if m.version < "0003"],
    )
    apply_pending(engine, now=NOW)
    with engine.begin() as connection:
        _insert(connection, "credentialing", "<1@x>")
        _insert(connection, "email_verification", "<2@x>", status="sent", secret=None)
        with pytest.raises(sa.exc.IntegrityError):
            with connection.begin_nested():
                _insert(connection, "password_reset", "<3@x>")
        before = connection.execute(sa.text("SELECT * FROM outbox ORDER BY id")).all()
    monkeypatch.setattr(migration_files, "available_migrations", every)
    assert "0003" in [m.version for m in apply_pending(engine, now=NOW)]
    with engine.begin() as connection:
        after = connection.execute(sa.text("SELECT * FROM outbox ORDER BY id")).mappings().all()
        kept = [{name: row[name] for name in before[0]._fields} for row in after]
        assert kept == [row._asdict() for row in before]
        _insert(connection, "password_reset", "<4@x>")
        _insert(connection, "username_reminder", "<5@x>", secret=None)
        ids = connection.execute(sa.text("SELECT id FROM outbox ORDER BY id")).scalars().all()
        assert ids[:2] == [row.id for row in before] and ids[2] > ids[1]
    for refused in (("bogus", "<6@x>"), ("credentialing", "<1@x>")):  # kind check, unique id
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as connection:
            _insert(connection, *refused)
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as connection:
        _insert(connection, "credentialing", "<7@x>", status="sent", secret="still here")
    indexes = {index["name"] for index in sa.inspect(engine).get_indexes("outbox")}
    assert {"outbox_message_id_key", "outbox_due_idx"} <= indexes
    engine.dispose()


def test_a_migration_failing_half_way_leaves_nothing_behind(empty_db_url, monkeypatch):
    """0003 rebuilds the outbox on SQLite: a migration interrupted half-way must not leave the
    outbox dropped and its rows in a table of another name."""
    engine = create_engine(empty_db_url)
    every = migration_files.available_migrations
    broken = migration_files.Migration(
        "0999",
        "broken",
        "0999_broken.sql",
        "CREATE TABLE half_done (x INTEGER);\nDROP TABLE outbox;\nCREATE TABLE broken (;\n",
    )
    monkeypatch.setattr(
        migration_files, "available_migrations", lambda dialect: [*every(dialect), broken]
    )
    with pytest.raises(Exception, match="syntax error"):  # the driver's own error
        apply_pending(engine, now=NOW)
    tables = set(sa.inspect(engine).get_table_names())
    assert "outbox" in tables and "half_done" not in tables
    with engine.connect() as connection:
        versions = connection.execute(sa.text("SELECT version FROM schema_migrations")).scalars()
        assert "0999" not in list(versions)
    engine.dispose()
