-- The instant a job's create left for Replicate (Unix seconds), written before it is sent. A job
-- with this set and no prediction_id was created (or not) while the bot was not looking: the next
-- start finds its prediction in the account's list (matched on the version, the input and this
-- time) instead of refunding a prediction that may be running and billing.
ALTER TABLE jobs ADD COLUMN create_sent_at REAL;
