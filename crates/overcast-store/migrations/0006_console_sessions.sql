-- Console sign-ins: each is a session of a token, found by the SHA-256 of the secret its
-- cookie holds, never by the secret itself.
CREATE TABLE console_sessions (
    secret_hash TEXT PRIMARY KEY,
    token_id    TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);
