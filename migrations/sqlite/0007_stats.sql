-- The statistics behind GET /v1/stats and the dashboard: counters per time bucket. Every
-- replica adds its increments to the same rows, per minute and again per hour and per day (the
-- rollups), and each step is kept for its own retention. Counts only: never a user id.
CREATE TABLE stats (
    step TEXT NOT NULL,
    bucket_ms INTEGER NOT NULL,
    series TEXT NOT NULL,
    labels TEXT NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (step, bucket_ms, series, labels)
);
