-- The value a batch's served lines earned (the sum of their ledger rows' `value_usd`), added in
-- the transaction that finishes each line, so the dashboard shows it without reading the ledger.
ALTER TABLE batches ADD COLUMN value_usd DOUBLE PRECISION NOT NULL DEFAULT 0;
