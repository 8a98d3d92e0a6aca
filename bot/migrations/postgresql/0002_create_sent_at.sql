-- As migrations/sqlite/0002: the instant a job's create left for Replicate, written before it
-- is sent, so that a prediction whose id never came back is found in the account's list.
ALTER TABLE jobs ADD COLUMN create_sent_at DOUBLE PRECISION;
