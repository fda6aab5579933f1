"""``codes issue --csv``: issue a code for every row of a credentialing file, all or nothing,
set-based (SPEC section 5). Codes are generated and encrypted in Python (they must never reach
the database in clear), then staged and inserted with a fixed number of statements."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from portalctl.core.clock import utc_now
from portalctl.core.config import Settings
from portalctl.core.csvio import CsvErrors, CsvRecord, open_csv_text, read_csv
from portalctl.core.errors import InvalidInput, PortalError, Refused
from portalctl.core.fields import clean_text
from portalctl.core.schema import JSONText, UTCDateTime
from portalctl.core.secrets import code_hmac, encrypt_secret, generate_code
from portalctl.core.staging import create_staging_table, drop_staging_table, load_rows
from portalctl.core.tin import Tin
from portalctl.domain.audit import record_audit
from portalctl.domain.emails import credentialing_body, credentialing_subject
from portalctl.domain.outbox import new_message_id
from portalctl.domain.validation import clean_email, clean_name

REQUIRED = ("tin", "admin_name", "admin_email")
OPTIONAL = ("provider_name", "org_name")
_STAGE = "issue_codes"
_NAME_MARK, _PROVIDER_MARK = "\ue000", "\ue001"  # private-use characters
_STAGE_COLUMNS = [
    ("line", "INTEGER"),
    ("tin", "CHAR(9)"),
    ("admin_name", "VARCHAR(200)"),
    ("admin_email", "VARCHAR(254)"),
    ("provider_name", "VARCHAR(200)"),
    ("org_name", "VARCHAR(200)"),
    ("code_hmac", "CHAR(64)"),
    ("secret_ciphertext", "TEXT"),
    ("message_id", "VARCHAR(250)"),
]


def issue_codes_from_csv(
    connection: Connection,
    path: Path,
    *,
    operator: str,
    settings: Settings,
    dry_run: bool = False,
    send_email: bool = True,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Validate the whole file, then issue every code and queue every email, or none.

    Returns counts only: the plain codes travel in the emails, never in output or logs.
    """
    now = now or utc_now()
    key = settings.secret_key
    digits, ttl = settings.code_digits, settings.code_ttl_days
    stream, source = open_csv_text(path)
    errors = CsvErrors(source)
    create_staging_table(connection, _STAGE, _STAGE_COLUMNS)
    seen: set[str] = set()

    def staged_rows(records: Iterable[CsvRecord]) -> Iterator[tuple[Any, ...]]:
        for record in records:
            try:
                if record.problem:
                    raise InvalidInput(record.problem)
                values = record.values
                tin = Tin.parse(values["tin"]).reveal()
                name = clean_name(values["admin_name"], "admin name")
                email = clean_email(values["admin_email"], what="admin email")
                provider = clean_text(values.get("provider_name"), "provider name", required=False)
                org_name = clean_text(values.get("org_name"), "organisation name", required=False)
                if dry_run:
                    yield (
                        record.line,
                        tin,
                        name,
                        email,
                        provider,
                        org_name,
                        None,
                        None,
                        None,
                    )
                    continue
                while True:
                    code = generate_code(digits)
                    digest = code_hmac(key, tin=tin, code=code)
                    if digest not in seen:
                        seen.add(digest)
                        break
                yield (
                    record.line,
                    tin,
                    name,
                    email,
                    provider,
                    org_name,
                    digest,
                    encrypt_secret(key, code) if send_email else None,
                    new_message_id() if send_email else None,
                )
            except PortalError as error:
                errors.add(record.line, error.message)

    with stream:
        records = read_csv(stream, source, required=REQUIRED, optional=OPTIONAL)
        staged = load_rows(connection, _STAGE, [c for c, _ in _STAGE_COLUMNS], staged_rows(records))
    errors.raise_if_any()
    if staged == 0:
        raise InvalidInput(f"{source}: no rows")
    if dry_run:
        drop_staging_table(connection, _STAGE)
        return {"file": source, "dry_run": True, "would_issue": staged}
    clash = connection.execute(
        sa.text(
            f"SELECT s.line FROM {_STAGE} s JOIN registration_codes r ON r.code_hmac = s.code_hmac"
        )
    ).first()
    if clash is not None:  # a one-in-10**digits coincidence with an existing code of the TIN
        raise Refused(
            f"{source}:{clash.line}: a generated code clashed with an existing one; nothing was "
            "written: run the file again"
        )
    counts = _apply(
        connection,
        operator=operator,
        settings=settings,
        now=now,
        ttl_days=ttl,
        send_email=send_email,
    )
    drop_staging_table(connection, _STAGE)
    record_audit(
        connection,
        operator=operator,
        action="code.issue_file",
        target=f"file:{Path(source).name}",
        now=now,
        details={"file": source, **counts},
    )
    return {"file": source, "dry_run": False, **counts}


def _apply(
    connection: Connection,
    *,
    operator: str,
    settings: Settings,
    now: datetime,
    ttl_days: int,
    send_email: bool,
) -> dict[str, int]:
    # The body is the credentialing text with the names spliced in by SQL, so the staged rows
    # stay small; the same function renders it for a single issue.
    template = credentialing_body(settings, admin_name=_NAME_MARK, provider_name=_PROVIDER_MARK)
    head, rest = template.split(_NAME_MARK)
    middle, tail = rest.split(_PROVIDER_MARK)
    default_provider = credentialing_body(
        settings, admin_name=_NAME_MARK, provider_name=None
    ).split(_NAME_MARK)[1][len(middle) : -len(tail)]
    params = {
        "now": now,
        "expires": now + timedelta(days=ttl_days),
        "operator": operator,
        "subject": credentialing_subject(settings),
        "head": head,
        "middle": middle,
        "tail": tail,
        "default_provider": default_provider,
    }
    typed = [sa.bindparam("now", type_=UTCDateTime)]
    organisations_created = connection.execute(
        sa.text(f"""
        INSERT INTO organisations (tin, name, failed_code_attempts, created_at)
        SELECT tin, MIN(org_name), 0, :now FROM {_STAGE} s
        WHERE NOT EXISTS (SELECT 1 FROM organisations o WHERE o.tin = s.tin)
        GROUP BY tin
    """).bindparams(*typed),
        params,
    ).rowcount
    codes_issued = connection.execute(
        sa.text(f"""
        INSERT INTO registration_codes (tin, code_hmac, status, admin_name, admin_email,
                                        provider_name, issued_by, issued_at, expires_at)
        SELECT tin, code_hmac, 'active', admin_name, admin_email, provider_name, :operator,
               :now, :expires
        FROM {_STAGE} ORDER BY line
    """).bindparams(*typed, sa.bindparam("expires", type_=UTCDateTime)),
        params,
    ).rowcount
    emails_queued = 0
    if send_email:
        emails_queued = connection.execute(
            sa.text(f"""
            INSERT INTO outbox (kind, message_id, recipient, recipient_name, subject, body,
                                secret_ciphertext, status, attempts, next_attempt_at, code_id,
                                tin, created_at)
            SELECT 'credentialing', s.message_id, s.admin_email, s.admin_name, :subject,
                   :head || s.admin_name || :middle
                   || COALESCE(s.provider_name, :default_provider) || :tail,
                   s.secret_ciphertext, 'queued', 0, :now, r.id, s.tin, :now
            FROM {_STAGE} s JOIN registration_codes r ON r.code_hmac = s.code_hmac
            ORDER BY s.line
        """).bindparams(*typed),
            params,
        ).rowcount
    connection.execute(
        sa.text(f"""
        INSERT INTO audit_log (at, operator, action, target, tin, details)
        SELECT :now, :operator, 'code.issue', 'code:' || r.id, r.tin, :details
        FROM {_STAGE} s JOIN registration_codes r ON r.code_hmac = s.code_hmac
    """).bindparams(*typed, sa.bindparam("details", type_=JSONText)),
        {**params, "details": {"source": "codes issue --csv"}},
    )
    return {
        "codes_issued": codes_issued,
        "emails_queued": emails_queued,
        "organisations_created": organisations_created,
    }
