-- The interaction log: append-only. seq is the rowid, so it only grows.
CREATE TABLE events (
    seq INTEGER PRIMARY KEY,
    event_id TEXT,
    user_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    type INTEGER NOT NULL,
    ts_ms INTEGER NOT NULL,
    recommendation_id TEXT,
    received_ms INTEGER NOT NULL
);
CREATE UNIQUE INDEX events_event_id ON events (event_id) WHERE event_id IS NOT NULL;
CREATE INDEX events_user ON events (user_id, seq);
CREATE INDEX events_item ON events (item_id);

CREATE TABLE items (
    item_id TEXT PRIMARY KEY,
    title TEXT,
    categories TEXT NOT NULL DEFAULT '[]',
    available INTEGER NOT NULL DEFAULT 1,
    attributes TEXT NOT NULL DEFAULT '{}',
    deleted INTEGER NOT NULL DEFAULT 0,
    updated_ms INTEGER NOT NULL
);

CREATE TABLE model_versions (
    version INTEGER PRIMARY KEY AUTOINCREMENT,
    algorithm TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL,
    trained_ms INTEGER NOT NULL,
    training_seconds REAL NOT NULL,
    events INTEGER NOT NULL,
    users INTEGER NOT NULL,
    items INTEGER NOT NULL,
    log_seq INTEGER NOT NULL,
    metrics TEXT NOT NULL,
    params TEXT NOT NULL
);

-- Fitted parameters apart from the records, so listing versions stays cheap.
CREATE TABLE model_blobs (
    version INTEGER PRIMARY KEY REFERENCES model_versions (version),
    data BLOB NOT NULL
);
