-- Access keys of the EC2-compatible endpoint, each bound to a token and an environment.
-- Nothing here can sign a request: a key's secret is derived from its id under a master
-- key kept outside the database.
CREATE TABLE access_keys (
    id          TEXT PRIMARY KEY,
    token_id    TEXT NOT NULL,
    environment TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX access_keys_token ON access_keys (token_id);
