-- The verified caller (SPEC section 1): one row for every successful check of a caller (security
-- answer, PIN, password, email code, registration code), written in the same transaction as the
-- check's audit record. A row counts for its account until valid_until (the verification window
-- when it was written); `consolidate one` and `tins link --code` look for current rows before
-- they change anything. A registration code is checked against its TIN, sometimes before the
-- account is known: such a row has the TIN and no account.
CREATE TABLE verifications (
    id          {{pk}},
    account_id  BIGINT REFERENCES accounts (id),
    tin         CHAR(9) REFERENCES organisations (tin),
    method      VARCHAR(32) NOT NULL CHECK (method IN
                    ('security_answer', 'pin', 'password', 'email_code', 'registration_code')),
    operator    VARCHAR(100) NOT NULL,
    verified_at {{timestamp}} NOT NULL,
    valid_until {{timestamp}} NOT NULL,
    flow_id     VARCHAR(40),
    CHECK (valid_until > verified_at),
    CHECK (account_id IS NOT NULL OR tin IS NOT NULL)
);
CREATE INDEX verifications_account_idx ON verifications (account_id, valid_until);

-- The guided flow (`portalctl flow ...`) an audit record was written by, if any:
-- `portalctl audit --flow ID` reads one flow's records in order.
ALTER TABLE audit_log ADD COLUMN flow_id VARCHAR(40);
CREATE INDEX audit_log_flow_idx ON audit_log (flow_id, id);
