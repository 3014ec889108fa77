-- Responses kept for `previous_response_id` and `GET /v1/responses/{id}`: per tenant, until
-- `expires_at_ms` (the `[responses] retention_s` of when they were stored). `input` is the
-- conversation's items up to this response (JSON array), `response` the Responses object (JSON).
CREATE TABLE stored_responses (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    input TEXT NOT NULL,
    response TEXT NOT NULL
);
CREATE INDEX stored_responses_expiry ON stored_responses (expires_at_ms);
