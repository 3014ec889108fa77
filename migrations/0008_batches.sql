-- OpenAI's Batch API. `files`: uploaded inputs and the output and error files of batches, per
-- tenant (the bytes live in the file store, under the data directory by default). `batches`:
-- one row per batch with its status and the times it entered each (milliseconds). `batch_lines`:
-- every request of a batch, its body, and who dispatches it: `pending`, `running` (claimed by a
-- replica that renews `claimed_at_ms` while it works; a stale claim is dispatched again) or
-- `done` with the output or error file's line in `result` (`ok` 1 for the output file). A line
-- becomes `done` in the transaction that writes its ledger row.
CREATE TABLE files (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    purpose TEXT NOT NULL,
    filename TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX files_tenant ON files (tenant, created_at_ms);
CREATE TABLE batches (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    key_id TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    input_file_id TEXT NOT NULL,
    completion_window TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    in_progress_at_ms BIGINT,
    finalizing_at_ms BIGINT,
    completed_at_ms BIGINT,
    failed_at_ms BIGINT,
    expired_at_ms BIGINT,
    cancelling_at_ms BIGINT,
    cancelled_at_ms BIGINT,
    output_file_id TEXT,
    error_file_id TEXT,
    total BIGINT NOT NULL,
    completed BIGINT NOT NULL,
    failed BIGINT NOT NULL,
    metadata TEXT,
    errors TEXT
);
CREATE INDEX batches_tenant ON batches (tenant, created_at_ms);
CREATE INDEX batches_status ON batches (status);
CREATE TABLE batch_lines (
    batch_id TEXT NOT NULL,
    line BIGINT NOT NULL,
    custom_id TEXT NOT NULL,
    body TEXT NOT NULL,
    state TEXT NOT NULL,
    claimed_by TEXT,
    claimed_at_ms BIGINT,
    result TEXT,
    ok BIGINT,
    PRIMARY KEY (batch_id, line)
);
CREATE INDEX batch_lines_state ON batch_lines (batch_id, state);
