-- Fenced claims and the 'cancelled' status of the outbox (issue 11).
-- claim_token: set by each claim; a run sends and marks a row only while it still holds it with
-- that token, so a run whose lease ran out can never overwrite another run's work.
-- last_attempt_at: when delivery was last tried (`mail retry --since`).
-- cancelled_at / cancel_reason: the email must no longer go (its code was revoked, used,
-- reissued or locked, or an operator cancelled it); its secret is erased.
-- SQLite cannot change a CHECK constraint in place, so the table is rebuilt with the same rows
-- (nothing references outbox).
CREATE TABLE outbox_rebuilt (
    id                 {{pk}},
    kind               VARCHAR(32) NOT NULL CHECK (kind IN ('credentialing', 'email_verification',
                                                            'password_reset', 'username_reminder',
                                                            'registration_blocked',
                                                            'accounts_consolidated')),
    message_id         VARCHAR(250) NOT NULL,
    recipient          VARCHAR(254) NOT NULL,
    recipient_name     VARCHAR(200),
    subject            VARCHAR(300) NOT NULL,
    body               TEXT NOT NULL,
    secret_ciphertext  TEXT,
    status             VARCHAR(16) NOT NULL DEFAULT 'queued'
                       CHECK (status IN ('queued', 'sent', 'failed', 'dead', 'cancelled')),
    attempts           INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at    {{timestamp}} NOT NULL,
    claimed_by         VARCHAR(100),
    claimed_until      {{timestamp}},
    last_error         VARCHAR(500),
    code_id            BIGINT REFERENCES registration_codes (id),
    account_id         BIGINT REFERENCES accounts (id),
    tin                CHAR(9) REFERENCES organisations (tin),
    created_at         {{timestamp}} NOT NULL,
    sent_at            {{timestamp}},
    claim_token        VARCHAR(32),
    last_attempt_at    {{timestamp}},
    cancelled_at       {{timestamp}},
    cancel_reason      VARCHAR(500),
    CHECK (status NOT IN ('sent', 'cancelled') OR secret_ciphertext IS NULL),
    CHECK ((status = 'cancelled') = (cancelled_at IS NOT NULL)),
    CHECK ((claimed_by IS NULL) = (claim_token IS NULL))
);

INSERT INTO outbox_rebuilt (id, kind, message_id, recipient, recipient_name, subject, body,
                            secret_ciphertext, status, attempts, next_attempt_at, claimed_by,
                            claimed_until, last_error, code_id, account_id, tin, created_at,
                            sent_at, claim_token)
SELECT id, kind, message_id, recipient, recipient_name, subject, body, secret_ciphertext, status,
       attempts, next_attempt_at, claimed_by, claimed_until, last_error, code_id, account_id, tin,
       created_at, sent_at, CASE WHEN claimed_by IS NULL THEN NULL ELSE 'pre-0003' END
FROM outbox;

DROP TABLE outbox;
ALTER TABLE outbox_rebuilt RENAME TO outbox;

CREATE UNIQUE INDEX outbox_message_id_key ON outbox (message_id);
CREATE INDEX outbox_due_idx ON outbox (status, next_attempt_at);
CREATE INDEX outbox_code_idx ON outbox (code_id) WHERE code_id IS NOT NULL;
CREATE INDEX outbox_claimed_idx ON outbox (claimed_by) WHERE claimed_by IS NOT NULL;
