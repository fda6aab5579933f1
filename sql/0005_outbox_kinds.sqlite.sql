-- The outbox also carries password reset codes and username reminders. SQLite cannot change a
-- CHECK constraint in place, so the table is rebuilt from its 0001 definition with the wider
-- kind check, keeping every row and id, and its indexes are made again (no foreign key refers
-- to outbox).
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
                       CHECK (status IN ('queued', 'sent', 'failed', 'dead')),
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
    CHECK (status <> 'sent' OR secret_ciphertext IS NULL)
);

INSERT INTO outbox_rebuilt (id, kind, message_id, recipient, recipient_name, subject, body,
                            secret_ciphertext, status, attempts, next_attempt_at, claimed_by,
                            claimed_until, last_error, code_id, account_id, tin, created_at,
                            sent_at)
SELECT id, kind, message_id, recipient, recipient_name, subject, body, secret_ciphertext, status,
       attempts, next_attempt_at, claimed_by, claimed_until, last_error, code_id, account_id, tin,
       created_at, sent_at
FROM outbox;

DROP TABLE outbox;
ALTER TABLE outbox_rebuilt RENAME TO outbox;

CREATE UNIQUE INDEX outbox_message_id_key ON outbox (message_id);
CREATE INDEX outbox_due_idx ON outbox (status, next_attempt_at);
