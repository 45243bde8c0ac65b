-- User and item ids are stored once each and the log refers to them by integer keys: a row and
-- its per-user index entry shrink to a fraction, so each commit dirties (and fsyncs) far fewer
-- pages. Keys are only ever added; an id keeps its key forever.
CREATE TABLE user_keys (
    user_key INTEGER PRIMARY KEY,
    user_id TEXT NOT NULL UNIQUE
);
CREATE TABLE item_keys (
    item_key INTEGER PRIMARY KEY,
    item_id TEXT NOT NULL UNIQUE
);
INSERT INTO user_keys (user_id) SELECT DISTINCT user_id FROM events;
INSERT INTO item_keys (item_id) SELECT DISTINCT item_id FROM events;

-- seq is copied, so sequence numbers already handed out (model log_seq) keep their meaning and
-- new events continue after the largest.
CREATE TABLE events_interned (
    seq INTEGER PRIMARY KEY,
    event_id TEXT,
    user_key INTEGER NOT NULL,
    item_key INTEGER NOT NULL,
    type INTEGER NOT NULL,
    ts_ms INTEGER NOT NULL,
    recommendation_id TEXT,
    received_ms INTEGER NOT NULL
);
INSERT INTO events_interned
    (seq, event_id, user_key, item_key, type, ts_ms, recommendation_id, received_ms)
SELECT e.seq, e.event_id, u.user_key, i.item_key, e.type, e.ts_ms, e.recommendation_id,
       e.received_ms
FROM events e
CROSS JOIN user_keys u ON u.user_id = e.user_id
CROSS JOIN item_keys i ON i.item_id = e.item_id
ORDER BY e.seq;
DROP TABLE events;
ALTER TABLE events_interned RENAME TO events;

CREATE UNIQUE INDEX events_event_id ON events (event_id) WHERE event_id IS NOT NULL;
-- user_history and user_stamp, by blocks of 65,536 consecutive events (seq >> 16) first: every
-- new entry lands in the newest block, a few hundred pages that stay in the cache, where an index
-- led by the user would take one scattered page write per event once it outgrows the cache.
-- A user's events are found with one seek per block. No index by item: "was this item ever
-- seen in an event" (the catalog's delete) is answered by item_keys.
CREATE INDEX events_user ON events (seq >> 16, user_key, seq);
