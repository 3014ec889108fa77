-- The ledger's id is the gateway's own (unique, time-ordered); the client's x-request-id is kept
-- beside it. Clients choose theirs freely, so it cannot be a key: a repeated one must not stop
-- the ledger.
ALTER TABLE ledger ADD COLUMN client_request_id TEXT;
