-- What the extraction watch did about the request (`models[].extraction`): the action, the
-- tenant's score and its reasons, e.g. "refuse 0.91: long_outputs, logprobs"; NULL when no
-- policy acted.
ALTER TABLE ledger ADD COLUMN guard TEXT;
