-- What each recommendation response showed: one row per response, its items packed into one
-- newline-separated text (ids never hold control characters). Purged after the retention.
CREATE TABLE impressions (
    recommendation_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    model_version BIGINT NOT NULL,
    arm TEXT NOT NULL,
    -- The challenger version while an experiment runs, else 0: both arms of one experiment
    -- are compared over the same period.
    experiment BIGINT NOT NULL,
    source TEXT NOT NULL,
    items TEXT NOT NULL,
    shown_ms BIGINT NOT NULL
);
CREATE INDEX impressions_user ON impressions (user_id, shown_ms);
CREATE INDEX impressions_shown ON impressions (shown_ms);

-- Responses that earned a click, add-to-cart or purchase: once per response and event type,
-- so a rescan of the log never counts twice. Purged with the impressions.
CREATE TABLE credits (
    recommendation_id TEXT NOT NULL,
    type SMALLINT NOT NULL,
    model_version BIGINT NOT NULL,
    arm TEXT NOT NULL,
    experiment BIGINT NOT NULL,
    shown_ms BIGINT NOT NULL,
    PRIMARY KEY (recommendation_id, type)
);
CREATE INDEX credits_shown ON credits (shown_ms);

-- Running totals, kept apart from the purged rows so they outlive the retention.
CREATE TABLE online_counts (
    model_version BIGINT NOT NULL,
    arm TEXT NOT NULL,
    experiment BIGINT NOT NULL,
    impressions BIGINT NOT NULL DEFAULT 0,
    clicks BIGINT NOT NULL DEFAULT 0,
    add_to_carts BIGINT NOT NULL DEFAULT 0,
    purchases BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (model_version, arm, experiment)
);

-- Events up to this sequence number are settled: the credit tally never reads them again.
CREATE TABLE credit_progress (
    id SMALLINT PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL
);
INSERT INTO credit_progress (id, seq) VALUES (1, 0);
