-- Fenced claims and the 'cancelled' status of the outbox (issue 11).
-- claim_token: set by each claim; a run sends and marks a row only while it still holds it with
-- that token, so a run whose lease ran out can never overwrite another run's work.
-- last_attempt_at: when delivery was last tried (`mail retry --since`).
-- cancelled_at / cancel_reason: the email must no longer go (its code was revoked, used,
-- reissued or locked, or an operator cancelled it); its secret is erased.
ALTER TABLE outbox
    ADD COLUMN claim_token     VARCHAR(32),
    ADD COLUMN last_attempt_at TIMESTAMPTZ,
    ADD COLUMN cancelled_at    TIMESTAMPTZ,
    ADD COLUMN cancel_reason   VARCHAR(500);

UPDATE outbox SET claim_token = 'pre-0003' WHERE claimed_by IS NOT NULL;

ALTER TABLE outbox DROP CONSTRAINT outbox_kind_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_kind_check
    CHECK (kind IN ('credentialing', 'email_verification', 'password_reset', 'username_reminder',
                    'registration_blocked', 'accounts_consolidated'));
ALTER TABLE outbox DROP CONSTRAINT outbox_status_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_status_check
    CHECK (status IN ('queued', 'sent', 'failed', 'dead', 'cancelled'));
ALTER TABLE outbox DROP CONSTRAINT outbox_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_secret_erased_check
    CHECK (status NOT IN ('sent', 'cancelled') OR secret_ciphertext IS NULL);
ALTER TABLE outbox ADD CONSTRAINT outbox_cancelled_check
    CHECK ((status = 'cancelled') = (cancelled_at IS NOT NULL));
ALTER TABLE outbox ADD CONSTRAINT outbox_claim_check
    CHECK ((claimed_by IS NULL) = (claim_token IS NULL));

CREATE INDEX outbox_code_idx ON outbox (code_id) WHERE code_id IS NOT NULL;
CREATE INDEX outbox_claimed_idx ON outbox (claimed_by) WHERE claimed_by IS NOT NULL;
