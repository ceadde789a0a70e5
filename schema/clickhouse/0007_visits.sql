-- Footfall ClickHouse schema, version 7: visits as rows. When a site-local day closes, the
-- rollup job writes one row per visit (and visitor hash) of the day from its raw events, so
-- questions about visits, filtered or broken down by any visit property, read one row per
-- visit instead of grouping the day's events by session. Each write of a day carries a new
-- version and is recorded in visit_days afterwards; reads take each day's newest version, so
-- a day written twice (two collectors) counts once. Partitioned by day: retention drops the
-- days with the raw events they come from. Ordered by source after the day, the filter a
-- dashboard uses most, so that filter reads only its own granules.

CREATE TABLE IF NOT EXISTS visits
(
    site_id UInt32,
    day Date,
    version UInt64,
    session_id UInt64,
    visitor_id UInt64,
    visit UInt8,
    pageviews UInt32,
    events UInt32,
    bounce UInt8,
    duration UInt32,
    referrer String,
    referrer_source String,
    channel String,
    utm_medium String,
    utm_source String,
    utm_campaign String,
    utm_content String,
    utm_term String,
    device String,
    browser String,
    browser_version String,
    os String,
    os_version String,
    country_code String,
    region String,
    city String,
    entry_page String,
    country_name String,
    region_name String,
    exit_page String
)
ENGINE = MergeTree
PARTITION BY day
ORDER BY (site_id, day, referrer_source, visitor_id)
SETTINGS index_granularity = 8192;

CREATE TABLE IF NOT EXISTS visit_days
(
    site_id UInt32,
    day Date,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY day
ORDER BY (site_id, day)
SETTINGS index_granularity = 1024;
