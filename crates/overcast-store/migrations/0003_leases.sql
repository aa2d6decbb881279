-- Several servers on one database: which server runs an operation (`owner`), until when
-- its hold lasts unless renewed (`lease_until`, Unix ms), and the fencing token of that
-- hold (`fence`, raised by every claim, so a write by a former holder is refused).
ALTER TABLE operations ADD COLUMN owner TEXT;
ALTER TABLE operations ADD COLUMN lease_until BIGINT;
ALTER TABLE operations ADD COLUMN fence BIGINT NOT NULL DEFAULT 0;
CREATE INDEX operations_owner ON operations (owner);

-- The servers sharing the database, each with its last heartbeat.
CREATE TABLE servers (
    id           TEXT PRIMARY KEY,
    version      TEXT NOT NULL,
    host         TEXT NOT NULL,
    pid          BIGINT NOT NULL,
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL
);
