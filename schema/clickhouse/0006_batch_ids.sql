-- Footfall ClickHouse schema, version 6: each event records the spooled batch it came in, so
-- a write whose outcome was unknown (a timeout, a crash) is checked before it is retried.
-- Plain MergeTree does not deduplicate a repeated insert by itself.

ALTER TABLE events ADD COLUMN batch_id UInt64 DEFAULT 0;
