-- Footfall SQLite schema, version 7: each event records the spooled batch it came in, so a
-- write whose outcome was unknown (a timeout, a crash) is checked before it is retried.

ALTER TABLE events ADD COLUMN batch_id INTEGER NOT NULL DEFAULT 0;
