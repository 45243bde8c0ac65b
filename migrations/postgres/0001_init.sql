-- The interaction log: append-only.
CREATE TABLE events (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id TEXT,
    user_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    type SMALLINT NOT NULL,
    ts_ms BIGINT NOT NULL,
    recommendation_id TEXT,
    received_ms BIGINT NOT NULL
);
CREATE UNIQUE INDEX events_event_id ON events (event_id) WHERE event_id IS NOT NULL;
CREATE INDEX events_user ON events (user_id, seq);
CREATE INDEX events_item ON events (item_id);

CREATE TABLE items (
    item_id TEXT PRIMARY KEY,
    title TEXT,
    categories JSONB NOT NULL DEFAULT '[]',
    available BOOLEAN NOT NULL DEFAULT TRUE,
    attributes JSONB NOT NULL DEFAULT '{}',
    deleted BOOLEAN NOT NULL DEFAULT FALSE,
    updated_ms BIGINT NOT NULL
);

CREATE TABLE model_versions (
    version BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    algorithm TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL,
    trained_ms BIGINT NOT NULL,
    training_seconds DOUBLE PRECISION NOT NULL,
    events BIGINT NOT NULL,
    users BIGINT NOT NULL,
    items BIGINT NOT NULL,
    log_seq BIGINT NOT NULL,
    metrics JSONB NOT NULL,
    params JSONB NOT NULL
);

CREATE TABLE model_blobs (
    version BIGINT PRIMARY KEY REFERENCES model_versions (version),
    data BYTEA NOT NULL
);
