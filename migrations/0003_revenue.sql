-- What the tenant pays (its tier's price x tokens), apart from the value of the work (which an
-- internal tier sets itself and a downgrade scales by the fallback's quality).
ALTER TABLE ledger ADD COLUMN revenue_usd DOUBLE PRECISION NOT NULL DEFAULT 0;
