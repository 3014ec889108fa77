-- Explainability: what admission decided, the pool's price then, and the net value.
ALTER TABLE ledger ADD COLUMN decision TEXT NOT NULL DEFAULT 'admit';
ALTER TABLE ledger ADD COLUMN price DOUBLE PRECISION;
ALTER TABLE ledger ADD COLUMN net_value DOUBLE PRECISION;
