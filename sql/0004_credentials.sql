-- The caller's credentials beyond a password and a security answer, and the codes emailed to an
-- account: email verification codes (proving control of an address) and password reset codes.
-- email_verified_at: when the account's email was last confirmed by an email code; cleared when
-- a rep changes the address directly. pin_hash: the PIN's Argon2id hash.
ALTER TABLE accounts ADD COLUMN email_verified_at {{timestamp}};
ALTER TABLE accounts ADD COLUMN pin_hash VARCHAR(300);

-- A code is stored only as HMAC-SHA256(secret key, purpose + account + address + code);
-- 'expired' is derived from expires_at and the clock, never stored. An account has at most one
-- active code per purpose: a new request replaces it. outbox_id names the email that carries
-- the code (no foreign key, so that SQLite can rebuild the outbox to change its checks).
CREATE TABLE account_codes (
    id         {{pk}},
    purpose    VARCHAR(32) NOT NULL CHECK (purpose IN ('email_verification', 'password_reset')),
    account_id BIGINT NOT NULL REFERENCES accounts (id),
    email      VARCHAR(254) NOT NULL,
    code_hmac  CHAR(64) NOT NULL,
    status     VARCHAR(16) NOT NULL DEFAULT 'active'
               CHECK (status IN ('active', 'used', 'replaced', 'locked')),
    attempts   INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    issued_by  VARCHAR(100) NOT NULL,
    issued_at  {{timestamp}} NOT NULL,
    expires_at {{timestamp}} NOT NULL,
    used_at    {{timestamp}},
    outbox_id  BIGINT,
    CHECK (expires_at > issued_at),
    CHECK ((status = 'used') = (used_at IS NOT NULL))
);
CREATE INDEX account_codes_account_idx ON account_codes (account_id, purpose, issued_at);
CREATE UNIQUE INDEX account_codes_one_active
    ON account_codes (account_id, purpose) WHERE status = 'active';
