"""The statements of one chunk of ``codes issue --csv``, over the staged lines ``:lo``..``:hi``
still to issue: the same fixed set whatever the chunk's size."""

from __future__ import annotations

from portalctl.core.config import Settings
from portalctl.domain.emails import credentialing_body, credentialing_subject
from portalctl.domain.outbox import CANCELLABLE_STATUSES

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
