-- As migrations/sqlite/0003: cross-process cancels, and the account-wide pacing of creates.
CREATE TABLE cancel_requests (
    job_id       BIGINT PRIMARY KEY,
    guild_id     BIGINT NOT NULL,
    requested_by BIGINT NOT NULL,
    requested_at DOUBLE PRECISION NOT NULL,
    outcome      TEXT,
    answered_at  DOUBLE PRECISION
);

CREATE TABLE pacing (
    name       TEXT PRIMARY KEY,
    tokens     DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);
