-- Of a request's input tokens: those the upstream read from its prompt cache, and those it wrote
-- to it (Anthropic's cache creation), as the upstream reported them; priced apart where the
-- backend's costs or the tier's prices set a rate for them.
ALTER TABLE ledger ADD COLUMN cached_input_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE ledger ADD COLUMN cache_write_tokens BIGINT NOT NULL DEFAULT 0;
-- The most the request bid (`x-tollgate-max-price`), USD per 1,000 tokens; NULL when it did not.
ALTER TABLE ledger ADD COLUMN bid_per_1k DOUBLE PRECISION;
-- The service tier the request was served at (default, flex, priority); NULL before classification.
ALTER TABLE ledger ADD COLUMN service_tier TEXT;
