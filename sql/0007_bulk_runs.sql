-- Runs of credentialing files (`codes issue --csv`): claimed like consolidation batches, so a
-- file is issued once however often it is run, and a re-run after a crash finishes the rest.
-- Each code a file issued names its run and line.
CREATE TABLE code_batches (
    id             {{pk}},
    file_name      VARCHAR(500) NOT NULL,
    file_sha256    CHAR(64) NOT NULL,
    state          VARCHAR(16) NOT NULL CHECK (state IN ('running', 'completed', 'failed')),
    rows_total     INTEGER NOT NULL DEFAULT 0,
    issued         INTEGER NOT NULL DEFAULT 0,
    already_issued INTEGER NOT NULL DEFAULT 0,
    operator       VARCHAR(100) NOT NULL,
    runner         VARCHAR(200),
    started_at     {{timestamp}} NOT NULL,
    heartbeat_at   {{timestamp}},
    finished_at    {{timestamp}}
);
CREATE UNIQUE INDEX code_batches_one_running ON code_batches (file_sha256) WHERE state = 'running';
CREATE INDEX code_batches_file_idx ON code_batches (file_sha256);

ALTER TABLE registration_codes ADD COLUMN batch_id BIGINT REFERENCES code_batches (id);
ALTER TABLE registration_codes ADD COLUMN batch_line INTEGER;
CREATE INDEX registration_codes_batch_idx ON registration_codes (batch_id, batch_line);

-- Applied `accounts import` files (each is one transaction), so a re-run says the file was
-- already imported instead of listing every row as taken.
CREATE TABLE account_imports (
    id               {{pk}},
    file_name        VARCHAR(500) NOT NULL,
    file_sha256      CHAR(64) NOT NULL,
    rows_total       INTEGER NOT NULL,
    accounts_created INTEGER NOT NULL,
    operator         VARCHAR(100) NOT NULL,
    imported_at      {{timestamp}} NOT NULL
);
CREATE INDEX account_imports_file_idx ON account_imports (file_sha256);
