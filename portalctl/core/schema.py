"""The tables as the code queries them. ``sql/`` is the source of truth; ``tests/test_schema.py``
proves this description matches a migrated database on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both backends (SQLite stores naive UTC text)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        moment = datetime.fromisoformat(value) if isinstance(value, str) else value
        assert isinstance(moment, datetime)
        if moment.tzinfo is None:
            return moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)


# JSONB on PostgreSQL, JSON text on SQLite (see sql/); the generic type binds to both.
JSONText = sa.JSON()

metadata = sa.MetaData()

schema_migrations = sa.Table(
    "schema_migrations",
    metadata,
    sa.Column("version", sa.String(4), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("checksum", sa.String(64), nullable=False),
    sa.Column("applied_at", UTCDateTime, nullable=False),
)

organisations = sa.Table(
    "organisations",
    metadata,
    sa.Column("tin", sa.String(9), primary_key=True),
    sa.Column("name", sa.String(200)),
    sa.Column("failed_code_attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("username", sa.String(254), nullable=False),
    sa.Column("email", sa.String(254), nullable=False),
    sa.Column("full_name", sa.String(200), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, server_default="active"),
    sa.Column("merged_into", sa.BigInteger, sa.ForeignKey("accounts.id")),
    sa.Column("password_hash", sa.String(300)),
    sa.Column("security_question", sa.String(300)),
    sa.Column("security_answer_hash", sa.String(300)),
    sa.Column("failed_verifications", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("email_verified_at", UTCDateTime),
    sa.Column("pin_hash", sa.String(300)),
)

account_tins = sa.Table(
    "account_tins",
    metadata,
    sa.Column("account_id", sa.BigInteger, sa.ForeignKey("accounts.id"), primary_key=True),
    sa.Column("tin", sa.String(9), sa.ForeignKey("organisations.tin"), primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("linked_at", UTCDateTime, nullable=False),
)

registration_codes = sa.Table(
    "registration_codes",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("tin", sa.String(9), sa.ForeignKey("organisations.tin"), nullable=False),
    sa.Column("code_hmac", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, server_default="active"),
    sa.Column("admin_name", sa.String(200), nullable=False),
    sa.Column("admin_email", sa.String(254), nullable=False),
    sa.Column("provider_name", sa.String(200)),
    sa.Column("issued_by", sa.String(100), nullable=False),
    sa.Column("issued_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Column("used_at", UTCDateTime),
    sa.Column("used_by", sa.BigInteger, sa.ForeignKey("accounts.id")),
    sa.Column("revoked_at", UTCDateTime),
    sa.Column("revoke_reason", sa.String(500)),
    sa.Column("replaces_id", sa.BigInteger, sa.ForeignKey("registration_codes.id")),
    sa.Column("batch_id", sa.BigInteger, sa.ForeignKey("code_batches.id")),
    sa.Column("batch_line", sa.Integer),
)

code_batches = sa.Table(
    "code_batches",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("file_name", sa.String(500), nullable=False),
    sa.Column("file_sha256", sa.String(64), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("rows_total", sa.Integer, nullable=False, server_default="0"),
    sa.Column("issued", sa.Integer, nullable=False, server_default="0"),
    sa.Column("already_issued", sa.Integer, nullable=False, server_default="0"),
    sa.Column("operator", sa.String(100), nullable=False),
    sa.Column("runner", sa.String(200)),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("heartbeat_at", UTCDateTime),
    sa.Column("finished_at", UTCDateTime),
)

account_imports = sa.Table(
    "account_imports",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("file_name", sa.String(500), nullable=False),
    sa.Column("file_sha256", sa.String(64), nullable=False),
    sa.Column("rows_total", sa.Integer, nullable=False),
    sa.Column("accounts_created", sa.Integer, nullable=False),
    sa.Column("operator", sa.String(100), nullable=False),
    sa.Column("imported_at", UTCDateTime, nullable=False),
)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("message_id", sa.String(250), nullable=False),
    sa.Column("recipient", sa.String(254), nullable=False),
    sa.Column("recipient_name", sa.String(200)),
    sa.Column("subject", sa.String(300), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("secret_ciphertext", sa.Text),
    sa.Column("status", sa.String(16), nullable=False, server_default="queued"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", UTCDateTime, nullable=False),
    sa.Column("claimed_by", sa.String(100)),
    sa.Column("claimed_until", UTCDateTime),
    sa.Column("last_error", sa.String(500)),
    sa.Column("code_id", sa.BigInteger, sa.ForeignKey("registration_codes.id")),
    sa.Column("account_id", sa.BigInteger, sa.ForeignKey("accounts.id")),
    sa.Column("tin", sa.String(9), sa.ForeignKey("organisations.tin")),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("sent_at", UTCDateTime),
    sa.Column("claim_token", sa.String(32)),
    sa.Column("last_attempt_at", UTCDateTime),
    sa.Column("cancelled_at", UTCDateTime),
    sa.Column("cancel_reason", sa.String(500)),
)

account_codes = sa.Table(
    "account_codes",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("purpose", sa.String(32), nullable=False),
    sa.Column("account_id", sa.BigInteger, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("email", sa.String(254), nullable=False),
    sa.Column("code_hmac", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, server_default="active"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("issued_by", sa.String(100), nullable=False),
    sa.Column("issued_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Column("used_at", UTCDateTime),
    sa.Column("outbox_id", sa.BigInteger),
)

consolidation_batches = sa.Table(
    "consolidation_batches",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("file_name", sa.String(500), nullable=False),
    sa.Column("file_sha256", sa.String(64), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("rows_total", sa.Integer, nullable=False, server_default="0"),
    sa.Column("merged", sa.Integer, nullable=False, server_default="0"),
    sa.Column("already_merged", sa.Integer, nullable=False, server_default="0"),
    sa.Column("invalid", sa.Integer, nullable=False, server_default="0"),
    sa.Column("refused", sa.Integer, nullable=False, server_default="0"),
    sa.Column("operator", sa.String(100), nullable=False),
    sa.Column("runner", sa.String(200)),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("heartbeat_at", UTCDateTime),
    sa.Column("finished_at", UTCDateTime),
)

consolidations = sa.Table(
    "consolidations",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("batch_id", sa.BigInteger, sa.ForeignKey("consolidation_batches.id")),
    sa.Column("line", sa.Integer),
    sa.Column("primary_id", sa.BigInteger, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("secondary_id", sa.BigInteger, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("tin", sa.String(9)),
    sa.Column("links_moved", sa.Integer, nullable=False, server_default="0"),
    sa.Column("operator", sa.String(100), nullable=False),
    sa.Column("merged_at", UTCDateTime, nullable=False),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("operator", sa.String(100), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("target", sa.String(300)),
    sa.Column("account", sa.String(254)),
    sa.Column("tin", sa.String(9)),
    sa.Column("details", JSONText),
    sa.Column("flow_id", sa.String(40)),
)

verifications = sa.Table(
    "verifications",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("account_id", sa.BigInteger, sa.ForeignKey("accounts.id")),
    sa.Column("tin", sa.String(9), sa.ForeignKey("organisations.tin")),
    sa.Column("method", sa.String(32), nullable=False),
    sa.Column("operator", sa.String(100), nullable=False),
    sa.Column("verified_at", UTCDateTime, nullable=False),
    sa.Column("valid_until", UTCDateTime, nullable=False),
    sa.Column("flow_id", sa.String(40)),
)

# The tables `db status` counts, in the order it shows them.
DATA_TABLES = (
    organisations,
    accounts,
    account_tins,
    registration_codes,
    account_codes,
    code_batches,
    account_imports,
    outbox,
    consolidation_batches,
    consolidations,
    verifications,
    audit_log,
)
