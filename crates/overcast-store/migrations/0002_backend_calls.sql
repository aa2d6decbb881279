-- How many backend calls an operation has made, across every run of it.
ALTER TABLE operations ADD COLUMN backend_calls BIGINT NOT NULL DEFAULT 0;
