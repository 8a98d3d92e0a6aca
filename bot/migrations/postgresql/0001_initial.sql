-- The first schema, as on SQLite (migrations/sqlite/0001_initial.sql): history, jobs in flight,
-- the credit ledger, overrides, bans, settings, the server LoRA catalogue and the moderators'
-- audit log. Times are Unix seconds (UTC); Discord ids are BIGINT; guild_id 0 stands for DMs.

CREATE TABLE generations (
    id               BIGSERIAL PRIMARY KEY,          -- ids come from its sequence (next_ids)
    guild_id         BIGINT  NOT NULL,
    channel_id       BIGINT  NOT NULL,
    user_id          BIGINT  NOT NULL,
    prompt           TEXT    NOT NULL,
    options          TEXT    NOT NULL,              -- JSON: every /imagine option as sent
    lora             TEXT,
    lora_scale       DOUBLE PRECISION,
    parent_id        BIGINT REFERENCES generations(id) ON DELETE SET NULL,
    prediction_id    TEXT,
    status           TEXT    NOT NULL DEFAULT 'queued'
                     CHECK (status IN ('queued', 'running', 'succeeded', 'failed',
                                       'canceled', 'timed_out')),
    error            TEXT,
    images_requested INTEGER NOT NULL CHECK (images_requested > 0),
    images_delivered INTEGER NOT NULL DEFAULT 0,
    seed             BIGINT,
    message_id       BIGINT,
    created_at       DOUBLE PRECISION NOT NULL,
    started_at       DOUBLE PRECISION,
    finished_at      DOUBLE PRECISION,
    predict_time     DOUBLE PRECISION,
    cost             DOUBLE PRECISION
);
CREATE INDEX generations_by_user ON generations (guild_id, user_id, created_at);
CREATE INDEX generations_by_guild ON generations (guild_id, created_at);
CREATE INDEX generations_by_prediction ON generations (prediction_id);
CREATE INDEX generations_by_message ON generations (message_id);

CREATE TABLE jobs (
    generation_id      BIGINT PRIMARY KEY REFERENCES generations(id) ON DELETE CASCADE,
    guild_id           BIGINT  NOT NULL,
    user_id            BIGINT  NOT NULL,
    state              TEXT    NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running')),
    application_id     BIGINT,
    interaction_token  TEXT,
    interaction_at     DOUBLE PRECISION,
    locale             TEXT,
    upload_limit       BIGINT,
    updated_at         DOUBLE PRECISION NOT NULL
);
CREATE INDEX jobs_by_user ON jobs (guild_id, user_id);

CREATE TABLE ledger (
    id         BIGSERIAL PRIMARY KEY,
    guild_id   BIGINT  NOT NULL,
    user_id    BIGINT  NOT NULL,
    job_id     BIGINT REFERENCES generations(id) ON DELETE SET NULL,
    kind       TEXT    NOT NULL CHECK (kind IN ('reserve', 'commit', 'refund', 'grant', 'reset')),
    source     TEXT    NOT NULL CHECK (source IN ('allowance', 'bonus')),
    credits    INTEGER NOT NULL CHECK (credits >= 0),
    amount     INTEGER NOT NULL,
    period_at  DOUBLE PRECISION NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    actor_id   BIGINT,
    reset_upto BIGINT,
    note       TEXT
);
CREATE INDEX ledger_by_user ON ledger (guild_id, user_id, period_at);
CREATE INDEX ledger_by_guild ON ledger (guild_id, period_at);
CREATE UNIQUE INDEX ledger_settled_once ON ledger (job_id, kind, source)
    WHERE kind IN ('reserve', 'commit', 'refund');

CREATE TABLE quota_overrides (
    guild_id BIGINT  NOT NULL,
    user_id  BIGINT  NOT NULL,
    daily    INTEGER CHECK (daily >= 0),
    weekly   INTEGER CHECK (weekly >= 0),
    monthly  INTEGER CHECK (monthly >= 0),
    set_by   BIGINT  NOT NULL,
    set_at   DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (guild_id, user_id)
);

CREATE TABLE bans (
    guild_id  BIGINT  NOT NULL,
    user_id   BIGINT  NOT NULL,
    reason    TEXT    NOT NULL DEFAULT '',
    banned_by BIGINT  NOT NULL,
    banned_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (guild_id, user_id)
);

CREATE TABLE user_settings (
    user_id    BIGINT PRIMARY KEY,
    settings   TEXT   NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);

CREATE TABLE guild_loras (
    guild_id    BIGINT  NOT NULL,
    name        TEXT    NOT NULL,
    name_key    TEXT    NOT NULL,
    ref         TEXT    NOT NULL,
    trigger     TEXT    NOT NULL DEFAULT '',
    scale       DOUBLE PRECISION,
    description TEXT    NOT NULL DEFAULT '',
    added_by    BIGINT  NOT NULL,
    added_at    DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (guild_id, name_key)
);

CREATE TABLE audit_log (
    id         BIGSERIAL PRIMARY KEY,
    guild_id   BIGINT  NOT NULL,
    actor_id   BIGINT  NOT NULL,
    action     TEXT    NOT NULL,
    target_id  BIGINT,
    details    TEXT    NOT NULL DEFAULT '{}',
    created_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX audit_by_guild ON audit_log (guild_id, created_at);
