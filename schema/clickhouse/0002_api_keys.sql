-- Footfall ClickHouse schema, version 2: API keys for the Stats API. Only a hash of each key
-- is stored; `id` is the key's public prefix. A revocation is a new row with a higher
-- `version`; readers take the latest row of each id.

CREATE TABLE IF NOT EXISTS api_keys
(
    id String,
    site_id UInt32,
    hash String,
    created_at DateTime('UTC'),
    revoked UInt8,
    version UInt64
)
ENGINE = MergeTree
ORDER BY (id, version)
SETTINGS index_granularity = 1024;
