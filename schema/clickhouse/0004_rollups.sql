-- Footfall ClickHouse schema, version 4: daily rollups. One row per site, site-local day,
-- dimension and value; the dimension '' holds the day's totals (and marks the day as rolled
-- up). A recomputation writes the same key with a newer version; reads take the newest.
-- Partitioned by month: retention drops whole months.

CREATE TABLE IF NOT EXISTS rollups
(
    site_id UInt32,
    day Date,
    dimension String,
    value String,
    visitors UInt64,
    visits UInt64,
    pageviews UInt64,
    events UInt64,
    bounces UInt64,
    duration UInt64,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(day)
ORDER BY (site_id, day, dimension, value)
SETTINGS index_granularity = 8192;
