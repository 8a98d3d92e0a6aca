-- For several processes sharing one database (PostgreSQL; SQLite has the same tables so that
-- the code is one): a cancel asked of a job another process runs, answered by that process;
-- and the account-wide pacing of creates, a token bucket every process draws from.
CREATE TABLE cancel_requests (
    job_id       INTEGER PRIMARY KEY,
    guild_id     INTEGER NOT NULL,
    requested_by INTEGER NOT NULL,
    requested_at REAL    NOT NULL,
    outcome      TEXT,                       -- set by the process that runs the job
    answered_at  REAL
);

CREATE TABLE pacing (
    name       TEXT PRIMARY KEY,             -- e.g. 'create'
    tokens     REAL NOT NULL,                -- below zero: the creates already promised a slot
    updated_at REAL NOT NULL
);
