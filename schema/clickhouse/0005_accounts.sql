-- Footfall ClickHouse schema, version 5: the dashboard's small records (users, login
-- sessions, shared links), each a JSON body under a kind and an id; secrets inside are hashes
-- only. A change or a deletion is a new row with a higher `version`; readers take the latest.
-- Sites get a `version` too, so their domain and time zone can change the same way.

CREATE TABLE IF NOT EXISTS records
(
    kind String,
    id String,
    body String,
    deleted UInt8,
    version UInt64
)
ENGINE = MergeTree
ORDER BY (kind, id, version)
SETTINGS index_granularity = 1024;

ALTER TABLE sites ADD COLUMN version UInt64 DEFAULT 0;
