-- Which version serves, once an operator has chosen one (POST /v1/model/versions/{v}/activate).
-- Without this row the newest accepted version serves. With it: `version` serves while `pinned`;
-- unpinned, it serves until a version newer than `newer_than` (the newest version recorded when
-- it was activated or unpinned) is accepted.
CREATE TABLE model_service (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL REFERENCES model_versions (version),
    pinned INTEGER NOT NULL,
    newer_than INTEGER NOT NULL
);
