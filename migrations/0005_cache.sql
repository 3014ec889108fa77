-- Which cache answered the request (`exact`, `semantic`), `miss` when a cache was looked up
-- and missed, NULL when no cache applied.
ALTER TABLE ledger ADD COLUMN cache TEXT;
