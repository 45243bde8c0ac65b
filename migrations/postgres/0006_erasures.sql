-- One row per erased user, and nothing of the user: how many erasures were made (a training
-- that read the log before the newest one is discarded), and when (a response shown before
-- the newest one is no longer recorded).
CREATE TABLE erasures (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    erased_ms BIGINT NOT NULL
);
