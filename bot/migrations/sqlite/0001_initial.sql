-- The first schema: history, jobs in flight, the credit ledger, overrides, bans, settings,
-- the server LoRA catalogue and the moderators' audit log. Times are Unix seconds (UTC).
-- guild_id 0 stands for direct messages.

CREATE TABLE generations (
    id               INTEGER PRIMARY KEY,
    guild_id         INTEGER NOT NULL,
    channel_id       INTEGER NOT NULL,
    user_id          INTEGER NOT NULL,
    prompt           TEXT    NOT NULL,
    options          TEXT    NOT NULL,              -- JSON: every /imagine option as sent
    lora             TEXT,
    lora_scale       REAL,
    parent_id        INTEGER REFERENCES generations(id) ON DELETE SET NULL,
    prediction_id    TEXT,
    status           TEXT    NOT NULL DEFAULT 'queued'
                     CHECK (status IN ('queued', 'running', 'succeeded', 'failed',
                                       'canceled', 'timed_out')),
    error            TEXT,
    images_requested INTEGER NOT NULL CHECK (images_requested > 0),
    images_delivered INTEGER NOT NULL DEFAULT 0,
    seed             INTEGER,
    message_id       INTEGER,
    created_at       REAL    NOT NULL,
    started_at       REAL,
    finished_at      REAL,
    predict_time     REAL,
    cost             REAL
);
CREATE INDEX generations_by_user ON generations (guild_id, user_id, created_at);
CREATE INDEX generations_by_guild ON generations (guild_id, created_at);
CREATE INDEX generations_by_prediction ON generations (prediction_id);
CREATE INDEX generations_by_message ON generations (message_id);

-- One row per job that has not ended: what a restart needs to resume it.
CREATE TABLE jobs (
    generation_id      INTEGER PRIMARY KEY REFERENCES generations(id) ON DELETE CASCADE,
    guild_id           INTEGER NOT NULL,
    user_id            INTEGER NOT NULL,
    state              TEXT    NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running')),
    application_id     INTEGER,
    interaction_token  TEXT,
    interaction_at     REAL,
    locale             TEXT,
    upload_limit       INTEGER,                  -- bytes the interaction may upload
    updated_at         REAL    NOT NULL
);
CREATE INDEX jobs_by_user ON jobs (guild_id, user_id);

-- Every credit movement. `amount` is the signed change of credits used (a grant adds to the
-- bonus balance instead); `period_at` is the instant it counts at: a job's reservation time,
-- so a refund after midnight gives back yesterday's credit.
CREATE TABLE ledger (
    id         INTEGER PRIMARY KEY,
    guild_id   INTEGER NOT NULL,
    user_id    INTEGER NOT NULL,
    job_id     INTEGER REFERENCES generations(id) ON DELETE SET NULL,
    kind       TEXT    NOT NULL CHECK (kind IN ('reserve', 'commit', 'refund', 'grant', 'reset')),
    source     TEXT    NOT NULL CHECK (source IN ('allowance', 'bonus')),
    credits    INTEGER NOT NULL CHECK (credits >= 0),
    amount     INTEGER NOT NULL,
    period_at  REAL    NOT NULL,
    created_at REAL    NOT NULL,
    actor_id   INTEGER,
    reset_upto INTEGER,    -- reset rows: the jobs up to this id no longer count
    note       TEXT
);
CREATE INDEX ledger_by_user ON ledger (guild_id, user_id, period_at);
CREATE INDEX ledger_by_guild ON ledger (guild_id, period_at);
-- a job is settled once: a second commit or refund is ignored by the database itself
CREATE UNIQUE INDEX ledger_settled_once ON ledger (job_id, kind, source)
    WHERE kind IN ('reserve', 'commit', 'refund');

CREATE TABLE quota_overrides (
    guild_id INTEGER NOT NULL,
    user_id  INTEGER NOT NULL,
    daily    INTEGER CHECK (daily >= 0),     -- NULL: as roles and config say
    weekly   INTEGER CHECK (weekly >= 0),
    monthly  INTEGER CHECK (monthly >= 0),
    set_by   INTEGER NOT NULL,
    set_at   REAL    NOT NULL,
    PRIMARY KEY (guild_id, user_id)
);

CREATE TABLE bans (
    guild_id  INTEGER NOT NULL,
    user_id   INTEGER NOT NULL,
    reason    TEXT    NOT NULL DEFAULT '',
    banned_by INTEGER NOT NULL,
    banned_at REAL    NOT NULL,
    PRIMARY KEY (guild_id, user_id)
);

CREATE TABLE user_settings (
    user_id    INTEGER PRIMARY KEY,
    settings   TEXT    NOT NULL,              -- JSON: personal defaults for /imagine
    updated_at REAL    NOT NULL
);

CREATE TABLE guild_loras (
    guild_id    INTEGER NOT NULL,
    name        TEXT    NOT NULL,
    name_key    TEXT    NOT NULL,             -- casefolded name, for lookups
    ref         TEXT    NOT NULL,
    trigger     TEXT    NOT NULL DEFAULT '',
    scale       REAL,
    description TEXT    NOT NULL DEFAULT '',
    added_by    INTEGER NOT NULL,
    added_at    REAL    NOT NULL,
    PRIMARY KEY (guild_id, name_key)
);

CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY,
    guild_id   INTEGER NOT NULL,
    actor_id   INTEGER NOT NULL,
    action     TEXT    NOT NULL,
    target_id  INTEGER,
    details    TEXT    NOT NULL DEFAULT '{}',  -- JSON
    created_at REAL    NOT NULL
);
CREATE INDEX audit_by_guild ON audit_log (guild_id, created_at);
