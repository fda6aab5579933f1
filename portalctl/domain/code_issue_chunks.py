"""Issuing a claimed credentialing file in chunks: the lines an earlier run of the same file
issued are marked done, clashing codes drawn again, then each chunk of staged lines
``:lo``..``:hi`` still to issue runs the same fixed set of statements whatever its size."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from portalctl.core.config import Settings
from portalctl.core.database import retrying_conflicts
from portalctl.core.schema import JSONText, UTCDateTime, code_batches
from portalctl.core.secrets import code_hmac, encrypt_secret, generate_code
from portalctl.domain.audit import record_audit
from portalctl.domain.emails import credentialing_body, credentialing_subject
from portalctl.domain.file_claims import finish_run
from portalctl.domain.outbox import CANCELLABLE_STATUSES

STAGE = "issue_codes"
_NAME_MARK, _PROVIDER_MARK = "\ue000", "\ue001"  # private-use characters


def chunk_statements(
    stage: str, *, settings: Settings, send_email: bool
) -> tuple[dict[str, str], dict[str, str]]:
    """Named statements in the order they run (each one's row count is what it did), and the
    email texts they bind."""
    pending = "s.line BETWEEN :lo AND :hi AND s.done = 0"
    statements = {
        "organisations_created": f"""
            INSERT INTO organisations (tin, name, failed_code_attempts, created_at)
            SELECT s.tin, MIN(s.org_name), 0, :now FROM {stage} s
            WHERE {pending}
              AND NOT EXISTS (SELECT 1 FROM organisations o WHERE o.tin = s.tin)
            GROUP BY s.tin""",
        # One active code per contact and TIN: theirs from before are replaced.
        "codes_replaced": f"""
            UPDATE registration_codes SET status = 'revoked', revoked_at = :now,
                   revoke_reason = 'replaced'
            WHERE status IN ('active', 'locked') AND EXISTS (
                SELECT 1 FROM {stage} s WHERE {pending} AND s.tin = registration_codes.tin
                  AND lower(s.admin_email) = lower(registration_codes.admin_email))""",
        # ... and their emails not sent yet never go (cancelled, the secret erased).
        "emails_cancelled": f"""
            UPDATE outbox SET status = 'cancelled', cancelled_at = :now,
                   cancel_reason = 'code replaced', secret_ciphertext = NULL,
                   claimed_by = NULL, claimed_until = NULL, claim_token = NULL
            WHERE status IN ({", ".join(f"'{status}'" for status in CANCELLABLE_STATUSES)})
              AND code_id IN (
                SELECT r.id FROM registration_codes r JOIN {stage} s
                  ON s.tin = r.tin AND lower(s.admin_email) = lower(r.admin_email)
                WHERE {pending} AND r.status = 'revoked' AND r.revoke_reason = 'replaced'
                  AND r.revoked_at = :now)""",
        "codes_issued": f"""
            INSERT INTO registration_codes (tin, code_hmac, status, admin_name, admin_email,
                                            provider_name, issued_by, issued_at, expires_at,
                                            batch_id, batch_line)
            SELECT s.tin, s.code_hmac, 'active', s.admin_name, s.admin_email, s.provider_name,
                   :operator, :now, :expires, :batch, s.line
            FROM {stage} s WHERE {pending} ORDER BY s.line""",
    }
    texts: dict[str, str] = {}
    if send_email:
        head, middle, tail, default_provider = _body_parts(settings)
        texts = {
            "subject": credentialing_subject(settings),
            "head": head,
            "middle": middle,
            "tail": tail,
            "default_provider": default_provider,
        }
        statements["emails_queued"] = f"""
            INSERT INTO outbox (kind, message_id, recipient, recipient_name, subject, body,
                                secret_ciphertext, status, attempts, next_attempt_at, code_id,
                                tin, created_at)
            SELECT 'credentialing', s.message_id, s.admin_email, s.admin_name, :subject,
                   :head || s.admin_name || :middle
                   || COALESCE(s.provider_name, :default_provider) || :tail,
                   s.secret_ciphertext, 'queued', 0, :now, r.id, s.tin, :now
            FROM {stage} s JOIN registration_codes r ON r.code_hmac = s.code_hmac
            WHERE {pending} ORDER BY s.line"""
    statements["audited"] = f"""
        INSERT INTO audit_log (at, operator, action, target, tin, details)
        SELECT :now, :operator, 'code.issue', 'code:' || r.id, r.tin, :details
        FROM {stage} s JOIN registration_codes r ON r.code_hmac = s.code_hmac
        WHERE {pending}"""
    statements["done"] = f"UPDATE {stage} SET done = 1 WHERE line BETWEEN :lo AND :hi"
    return statements, texts


def _body_parts(settings: Settings) -> tuple[str, str, str, str]:
    """The credentialing text around the names, which SQL splices in, so the staged rows stay
    small; the same function renders it for a single issue."""
    template = credentialing_body(settings, admin_name=_NAME_MARK, provider_name=_PROVIDER_MARK)
    head, rest = template.split(_NAME_MARK)
    middle, tail = rest.split(_PROVIDER_MARK)
    rest_without = credentialing_body(settings, admin_name=_NAME_MARK, provider_name=None).split(
        _NAME_MARK
    )[1]
    default_provider = rest_without[len(middle) : len(rest_without) - len(tail)]
    return head, middle, tail, default_provider


def issue_claimed(
    connection: Connection,
    batch_id: int,
    *,
    source: str,
    sha256: str,
    operator: str,
    settings: Settings,
    send_email: bool,
    chunk_size: int,
    now_fn: Callable[[], datetime],
    progress: Callable[[int, int | None], None] | None,
    rows: int,
) -> dict[str, Any]:
    with connection.begin():
        already = _mark_issued_lines(connection, sha256)
        _regenerate_clashing_codes(connection, settings=settings, send_email=send_email)
        connection.execute(
            code_batches.update()
            .where(code_batches.c.id == batch_id)
            .values(
                rows_total=sa.select(sa.func.count())
                .select_from(sa.table(STAGE))
                .scalar_subquery(),
                already_issued=already,
            )
        )
    counts = {"codes_issued": 0, "emails_queued": 0, "organisations_created": 0}
    statements, texts = chunk_statements(STAGE, settings=settings, send_email=send_email)
    start = 0
    try:
        while True:
            next_chunk = partial(
                _issue_chunk,
                connection,
                statements,
                texts,
                start=start,
                size=chunk_size,
                batch_id=batch_id,
                operator=operator,
                ttl_days=settings.code_ttl_days,
                now_fn=now_fn,
            )
            chunk = retrying_conflicts(connection, next_chunk, what="codes issue --csv")
            if chunk is None:
                break
            start, issued = chunk
            for name, value in issued.items():
                counts[name] += value
            if progress:
                progress(already + counts["codes_issued"], rows)
        with connection.begin():
            finish_run(connection, code_batches, batch_id, state="completed")
            record_audit(
                connection,
                operator=operator,
                action="code.issue_file",
                target=f"batch:{batch_id}",
                details={"file": source, "already_issued": already, **counts},
            )
    except BaseException:
        if not connection.closed and not connection.invalidated:
            connection.rollback()
            with connection.begin():
                finish_run(connection, code_batches, batch_id, state="failed")
        raise
    return {
        "file": source,
        "dry_run": False,
        "batch_id": batch_id,
        "already_issued": already,
        **counts,
    }


def _mark_issued_lines(connection: Connection, sha256: str) -> int:
    """Lines an earlier run of this same file issued are not issued again."""
    return connection.execute(
        sa.text(f"""
        UPDATE {STAGE} SET done = 1
        WHERE EXISTS (SELECT 1 FROM registration_codes r
                      JOIN code_batches b ON b.id = r.batch_id
                      WHERE b.file_sha256 = :sha AND r.batch_line = {STAGE}.line)"""),
        {"sha": sha256},
    ).rowcount


def _regenerate_clashing_codes(
    connection: Connection, *, settings: Settings, send_email: bool
) -> None:
    """A generated code whose HMAC another code of its TIN already has (one chance in
    10**digits per code of that TIN) is drawn again."""
    key, digits = settings.secret_key, settings.code_digits
    while clashes := connection.execute(
        sa.text(f"""
            SELECT s.line, s.tin FROM {STAGE} s
            WHERE s.done = 0 AND (
                EXISTS (SELECT 1 FROM registration_codes r WHERE r.code_hmac = s.code_hmac)
                OR EXISTS (SELECT 1 FROM {STAGE} o WHERE o.code_hmac = s.code_hmac
                           AND o.line < s.line))""")
    ).all():
        for line, tin in clashes:
            code = generate_code(digits)
            connection.execute(
                sa.text(
                    f"UPDATE {STAGE} SET code_hmac = :digest, secret_ciphertext = :secret "
                    "WHERE line = :line"
                ),
                {
                    "digest": code_hmac(key, tin=tin, code=code),
                    "line": line,
                    "secret": encrypt_secret(key, code) if send_email else None,
                },
            )


def _issue_chunk(
    connection: Connection,
    statements: dict[str, str],
    texts: dict[str, str],
    *,
    start: int,
    size: int,
    batch_id: int,
    operator: str,
    ttl_days: int,
    now_fn: Callable[[], datetime],
) -> tuple[int, dict[str, int]] | None:
    """The next ``size`` lines still to issue, from line ``start`` on: (the line after them,
    the counts); None when none is left."""
    end = connection.execute(
        sa.text(f"""
        SELECT MAX(line) FROM (SELECT line FROM {STAGE} WHERE done = 0 AND line >= :start
                               ORDER BY line LIMIT :size) c"""),
        {"start": start, "size": size},
    ).scalar()
    if end is None:
        return None
    now = now_fn()
    params = {
        **texts,
        "lo": start,
        "hi": end,
        "batch": batch_id,
        "operator": operator,
        "now": now,
        "expires": now + timedelta(days=ttl_days),
        "details": {"source": "codes issue --csv", "batch_id": batch_id},
    }
    typed: list[sa.BindParameter[Any]] = [
        sa.bindparam("now", type_=UTCDateTime),
        sa.bindparam("expires", type_=UTCDateTime),
        sa.bindparam("details", type_=JSONText),
    ]
    done = {
        name: connection.execute(
            sa.text(sql).bindparams(*[p for p in typed if f":{p.key}" in sql]), params
        ).rowcount
        for name, sql in statements.items()
    }
    connection.execute(
        code_batches.update()
        .where(code_batches.c.id == batch_id)
        .values(issued=code_batches.c.issued + done["codes_issued"], heartbeat_at=now)
    )
    return end + 1, {
        "codes_issued": done["codes_issued"],
        "emails_queued": done.get("emails_queued", 0),
        "organisations_created": done["organisations_created"],
    }
