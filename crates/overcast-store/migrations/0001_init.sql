-- One schema for SQLite and PostgreSQL: only TEXT and BIGINT columns, times as Unix
-- milliseconds, JSON as TEXT, ids as time-ordered ULIDs (so no auto-increment is needed).

CREATE TABLE tokens (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    org         TEXT NOT NULL,
    role        TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT,
    revoked_at  BIGINT,
    created_by  TEXT NOT NULL
);

CREATE TABLE operations (
    id               TEXT PRIMARY KEY,
    kind             TEXT NOT NULL,
    org              TEXT NOT NULL,
    environment      TEXT,
    target           TEXT NOT NULL,
    requested_by     TEXT NOT NULL,
    status           TEXT NOT NULL,
    progress_done    BIGINT NOT NULL,
    progress_total   BIGINT NOT NULL,
    results          TEXT NOT NULL,
    error            TEXT,
    input            TEXT NOT NULL,
    cancel_requested BIGINT NOT NULL,
    created_at       BIGINT NOT NULL,
    started_at       BIGINT,
    finished_at      BIGINT
);
CREATE INDEX operations_status ON operations (status);
CREATE INDEX operations_org ON operations (org, id);

CREATE TABLE idempotency_keys (
    scope        TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    operation_id TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (scope, key)
);

CREATE TABLE audit_log (
    id           TEXT PRIMARY KEY,
    at           BIGINT NOT NULL,
    token_id     TEXT NOT NULL,
    token_name   TEXT NOT NULL,
    org          TEXT NOT NULL,
    role         TEXT NOT NULL,
    method       TEXT NOT NULL,
    route        TEXT NOT NULL,
    target       TEXT NOT NULL,
    operation_id TEXT,
    outcome      TEXT NOT NULL,
    status_code  BIGINT NOT NULL,
    request_id   TEXT NOT NULL
);
CREATE INDEX audit_log_org ON audit_log (org, id);
