"""Migration 0003 on a database that already has emails: rows kept (SQLite rebuilds the
table), claims from before it still fenced, and the new rules enforced by the database."""

import pytest
import sqlalchemy as sa

from portalctl.core.clock import utc_now
from portalctl.core.database import create_engine
from portalctl.core.migrations import _run_script, apply_pending, available_migrations
from portalctl.core.schema import schema_migrations

INSERT = sa.text(
    "INSERT INTO outbox (kind, message_id, recipient, subject, body, secret_ciphertext, status, "
    "attempts, next_attempt_at, claimed_by, claimed_until, created_at, sent_at) VALUES "
    "('credentialing', :mid, 'a@example.org', 's', 'b', :secret, :status, 1, :now, :by, :until, "
    ":now, :sent)"
)


def _migrated_to_0002(url):
    engine = create_engine(url)
    dialect = engine.dialect.name
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TABLE schema_migrations (version VARCHAR(4) PRIMARY KEY, name VARCHAR(200) "
            "NOT NULL, checksum VARCHAR(64) NOT NULL, applied_at "
            + ("TIMESTAMPTZ" if dialect == "postgresql" else "TIMESTAMP")
            + " NOT NULL)"
        )
    for migration in available_migrations(dialect)[:2]:
        with engine.begin() as connection:
            _run_script(connection, migration.sql_for(dialect))
            connection.execute(
                schema_migrations.insert().values(
                    version=migration.version,
                    name=migration.name,
                    checksum=migration.checksum,
                    applied_at=utc_now(),
                )
            )
    return engine


def test_0003_keeps_every_email_and_fences_claims_made_before_it(empty_db_url):
    engine = _migrated_to_0002(empty_db_url)
    now = utc_now().replace(tzinfo=None) if engine.dialect.name == "sqlite" else utc_now()
    with engine.begin() as connection:
        connection.execute(
            INSERT,
            [
                {
                    "mid": "<1@x>",
                    "secret": None,
                    "status": "sent",
                    "now": now,
                    "by": None,
                    "until": None,
                    "sent": now,
                },
                {
                    "mid": "<2@x>",
                    "secret": "token",
                    "status": "queued",
                    "now": now,
                    "by": "old-run",
                    "until": now,
                    "sent": None,
                },
            ],
        )
    assert [m.version for m in apply_pending(engine, now=utc_now())][0] == "0003"
    with engine.connect() as connection:
        rows = (
            connection.execute(
                sa.text(
                    "SELECT id, message_id, status, claimed_by, claim_token, secret_ciphertext "
                    "FROM outbox ORDER BY id"
                )
            )
            .mappings()
            .all()
        )
    assert [dict(r) for r in rows] == [
        {
            "id": 1,
            "message_id": "<1@x>",
            "status": "sent",
            "claimed_by": None,
            "claim_token": None,
            "secret_ciphertext": None,
        },
        {
            "id": 2,
            "message_id": "<2@x>",
            "status": "queued",
            "claimed_by": "old-run",
            "claim_token": "pre-0003",
            "secret_ciphertext": "token",
        },
    ]
    for bad in (
        "UPDATE outbox SET status = 'cancelled' WHERE id = 2",  # no cancelled_at, secret kept
        "UPDATE outbox SET claim_token = NULL WHERE id = 2",  # a claim without its token
        "UPDATE outbox SET status = 'bounced' WHERE id = 2",
    ):
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as connection:
            connection.execute(sa.text(bad))
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "UPDATE outbox SET status = 'cancelled', cancelled_at = created_at, "
                "secret_ciphertext = NULL, claimed_by = NULL, claim_token = NULL WHERE id = 2"
            )
        )
        connection.execute(
            INSERT,
            {
                "mid": "<3@x>",
                "secret": None,
                "status": "queued",
                "now": now,
                "by": None,
                "until": None,
                "sent": None,
            },
        )
        assert connection.execute(sa.text("SELECT max(id) FROM outbox")).scalar() == 3
    engine.dispose()
