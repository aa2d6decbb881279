-- Events: changes to resources overcast noticed rather than made (drift), one row each.
-- `digest` is the change's fingerprint: servers that each keep an inventory see the same
-- change, and only the first records it.
CREATE TABLE events (
    id            TEXT PRIMARY KEY,
    at            BIGINT NOT NULL,
    environment   TEXT NOT NULL,
    kind          TEXT NOT NULL,
    resource_kind TEXT NOT NULL,
    resource      TEXT NOT NULL,
    org           TEXT,
    detail        TEXT NOT NULL,
    digest        TEXT NOT NULL
);
CREATE INDEX events_resource ON events (environment, resource, id);
CREATE INDEX events_org ON events (org, id);
