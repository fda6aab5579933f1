-- The provider portal's data: organisations (TINs), accounts, their links, registration codes,
-- the email outbox, consolidation batches and records, and the append-only audit log.

CREATE TABLE organisations (
    tin                  CHAR(9) PRIMARY KEY CHECK (length(tin) = 9 AND tin <> '000000000'),
    name                 VARCHAR(200),
    failed_code_attempts INTEGER NOT NULL DEFAULT 0 CHECK (failed_code_attempts >= 0),
    created_at           {{timestamp}} NOT NULL
);

CREATE TABLE accounts (
    id                   {{pk}},
    username             VARCHAR(254) NOT NULL CHECK (length(username) > 0),
    email                VARCHAR(254) NOT NULL,
    full_name            VARCHAR(200) NOT NULL,
    status               VARCHAR(16) NOT NULL DEFAULT 'active'
                         CHECK (status IN ('active', 'locked', 'disabled', 'merged')),
    merged_into          BIGINT REFERENCES accounts (id),
    password_hash        VARCHAR(300),
    security_question    VARCHAR(300),
    security_answer_hash VARCHAR(300),
    failed_verifications INTEGER NOT NULL DEFAULT 0 CHECK (failed_verifications >= 0),
    created_at           {{timestamp}} NOT NULL,
    updated_at           {{timestamp}} NOT NULL,
    CHECK ((status = 'merged' AND merged_into IS NOT NULL)
           OR (status <> 'merged' AND merged_into IS NULL)),
    CHECK (merged_into IS NULL OR merged_into <> id)
);
-- Usernames are unique compared case-insensitively; merged accounts keep theirs (reserved).
CREATE UNIQUE INDEX accounts_username_key ON accounts (lower(username));
CREATE INDEX accounts_email_idx ON accounts (lower(email));
CREATE INDEX accounts_merged_into_idx ON accounts (merged_into);

CREATE TABLE account_tins (
    account_id BIGINT NOT NULL REFERENCES accounts (id),
    tin        CHAR(9) NOT NULL REFERENCES organisations (tin),
    role       VARCHAR(16) NOT NULL CHECK (role IN ('security_admin', 'user')),
    linked_at  {{timestamp}} NOT NULL,
    PRIMARY KEY (account_id, tin)
);
CREATE INDEX account_tins_tin_idx ON account_tins (tin);

-- Codes are stored only as HMAC-SHA256(secret key, TIN + code); 'expired' is derived from
-- expires_at and the clock, never stored.
CREATE TABLE registration_codes (
    id            {{pk}},
    tin           CHAR(9) NOT NULL REFERENCES organisations (tin),
    code_hmac     CHAR(64) NOT NULL,
    status        VARCHAR(16) NOT NULL DEFAULT 'active'
                  CHECK (status IN ('active', 'used', 'revoked', 'locked')),
    admin_name    VARCHAR(200) NOT NULL,
    admin_email   VARCHAR(254) NOT NULL,
    provider_name VARCHAR(200),
    issued_by     VARCHAR(100) NOT NULL,
    issued_at     {{timestamp}} NOT NULL,
    expires_at    {{timestamp}} NOT NULL,
    used_at       {{timestamp}},
    used_by       BIGINT REFERENCES accounts (id),
    revoked_at    {{timestamp}},
    revoke_reason VARCHAR(500),
    replaces_id   BIGINT REFERENCES registration_codes (id),
    CHECK (expires_at > issued_at),
    CHECK ((status = 'used') = (used_at IS NOT NULL))
);
CREATE UNIQUE INDEX registration_codes_hmac_key ON registration_codes (code_hmac);
CREATE INDEX registration_codes_tin_idx ON registration_codes (tin, status);

-- Every email is queued here in the transaction that causes it, then delivered by `mail send`.
-- A code an email carries is kept encrypted in secret_ciphertext until it is sent, then erased.
CREATE TABLE outbox (
    id                 {{pk}},
    kind               VARCHAR(32) NOT NULL CHECK (kind IN ('credentialing', 'email_verification',
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
CREATE UNIQUE INDEX outbox_message_id_key ON outbox (message_id);
CREATE INDEX outbox_due_idx ON outbox (status, next_attempt_at);

CREATE TABLE consolidation_batches (
    id             {{pk}},
    file_name      VARCHAR(500) NOT NULL,
    file_sha256    CHAR(64) NOT NULL,
    state          VARCHAR(16) NOT NULL CHECK (state IN ('running', 'completed', 'failed')),
    rows_total     INTEGER NOT NULL DEFAULT 0,
    merged         INTEGER NOT NULL DEFAULT 0,
    already_merged INTEGER NOT NULL DEFAULT 0,
    invalid        INTEGER NOT NULL DEFAULT 0,
    refused        INTEGER NOT NULL DEFAULT 0,
    operator       VARCHAR(100) NOT NULL,
    runner         VARCHAR(200),
    started_at     {{timestamp}} NOT NULL,
    heartbeat_at   {{timestamp}},
    finished_at    {{timestamp}}
);
-- The same file cannot be applied by two runs at once.
CREATE UNIQUE INDEX consolidation_batches_one_running
    ON consolidation_batches (file_sha256) WHERE state = 'running';

CREATE TABLE consolidations (
    id           {{pk}},
    batch_id     BIGINT REFERENCES consolidation_batches (id),
    line         INTEGER,
    primary_id   BIGINT NOT NULL REFERENCES accounts (id),
    secondary_id BIGINT NOT NULL REFERENCES accounts (id),
    tin          CHAR(9),
    links_moved  INTEGER NOT NULL DEFAULT 0,
    operator     VARCHAR(100) NOT NULL,
    merged_at    {{timestamp}} NOT NULL,
    CHECK (primary_id <> secondary_id)
);
CREATE UNIQUE INDEX consolidations_secondary_key ON consolidations (secondary_id);
CREATE INDEX consolidations_batch_idx ON consolidations (batch_id);
CREATE INDEX consolidations_primary_idx ON consolidations (primary_id);

-- Append-only (enforced by triggers in 0002). `tin` and `account` are for filtering; `details`
-- never holds an unmasked TIN or a secret.
CREATE TABLE audit_log (
    id       {{pk}},
    at       {{timestamp}} NOT NULL,
    operator VARCHAR(100) NOT NULL,
    action   VARCHAR(64) NOT NULL,
    target   VARCHAR(300),
    account  VARCHAR(254),
    tin      CHAR(9),
    details  {{json}}
);
CREATE INDEX audit_log_at_idx ON audit_log (at);
CREATE INDEX audit_log_action_idx ON audit_log (action, at);
CREATE INDEX audit_log_account_idx ON audit_log (lower(account), at);
CREATE INDEX audit_log_tin_idx ON audit_log (tin, at);
