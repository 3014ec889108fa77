-- API keys: the secret is never stored, only SHA-256 of the whole key.
CREATE TABLE IF NOT EXISTS api_keys (
    id            TEXT PRIMARY KEY,
    tenant        TEXT NOT NULL,
    hash          TEXT NOT NULL,
    label         TEXT NOT NULL DEFAULT '',
    created_at_ms BIGINT NOT NULL,
    revoked_at_ms BIGINT
);
CREATE INDEX IF NOT EXISTS api_keys_tenant ON api_keys (tenant);

-- One row per request that passed authentication.
CREATE TABLE IF NOT EXISTS ledger (
    id               TEXT PRIMARY KEY,
    tenant           TEXT NOT NULL,
    key_id           TEXT NOT NULL,
    endpoint         TEXT NOT NULL,
    model_requested  TEXT NOT NULL,
    model_served     TEXT,
    backend          TEXT,
    stream           BOOLEAN NOT NULL,
    status           INTEGER NOT NULL,
    outcome          TEXT NOT NULL,
    error            TEXT,
    input_tokens     BIGINT NOT NULL,
    output_tokens    BIGINT NOT NULL,
    tokens_estimated BOOLEAN NOT NULL,
    attempts         INTEGER NOT NULL,
    ttft_ms          DOUBLE PRECISION,
    latency_ms       DOUBLE PRECISION NOT NULL,
    cost_usd         DOUBLE PRECISION NOT NULL,
    value_usd        DOUBLE PRECISION NOT NULL,
    started_at_ms    BIGINT NOT NULL,
    finished_at_ms   BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS ledger_started ON ledger (started_at_ms);
CREATE INDEX IF NOT EXISTS ledger_tenant_model ON ledger (tenant, model_requested);
