-- As migrations/sqlite/0004. Money, beside the credits: every movement a row, in
-- micro-dollars (integers, so that sums are exact). A job reserves its expected cost when it is accepted ('reserve'), gives it back
-- when it ends ('release', the same amount negated) and records what Replicate billed
-- ('cost'); all three carry the instant of the reservation, so a job counts in the month and
-- the day it was accepted. A server's spend in a period is the sum of its rows in it.
CREATE TABLE spend (
    id        BIGSERIAL PRIMARY KEY,
    guild_id  BIGINT  NOT NULL,
    user_id   BIGINT  NOT NULL,
    job_id    BIGINT  REFERENCES generations(id) ON DELETE SET NULL,
    kind      TEXT    NOT NULL CHECK (kind IN ('reserve', 'release', 'cost')),
    micros    BIGINT  NOT NULL,
    period_at DOUBLE PRECISION NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX spend_by_guild ON spend (guild_id, period_at);
CREATE INDEX spend_by_time ON spend (period_at);
CREATE UNIQUE INDEX spend_once ON spend (job_id, kind) WHERE job_id IS NOT NULL;

-- A moderator's monthly budget for their server, over [budget] monthly_usd.
CREATE TABLE guild_budgets (
    guild_id       BIGINT PRIMARY KEY,
    monthly_micros BIGINT  NOT NULL CHECK (monthly_micros > 0),
    set_by         BIGINT  NOT NULL,
    set_at         DOUBLE PRECISION NOT NULL
);

-- The mod-log messages already sent: one per server, period and level ('warn', 'limit').
CREATE TABLE budget_notices (
    guild_id BIGINT  NOT NULL,               -- 0: the whole bot's daily cap
    period   TEXT    NOT NULL,               -- e.g. '2026-11' or '2026-11-25'
    level    TEXT    NOT NULL CHECK (level IN ('warn', 'limit')),
    sent_at  DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (guild_id, period, level)
);
