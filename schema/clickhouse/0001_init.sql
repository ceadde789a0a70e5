-- Footfall ClickHouse schema, version 1: raw events, sites and the shared daily salts.
-- Portable between ClickHouse 18.16 and current releases: no TTL, no LowCardinality,
-- no old MergeTree(date, key, granularity) syntax.

CREATE TABLE IF NOT EXISTS events
(
    site_id UInt32,
    timestamp DateTime('UTC'),
    name String,
    hostname String,
    pathname String,
    visitor_id UInt64,
    session_id UInt64,
    referrer String,
    referrer_source String,
    channel String,
    utm_medium String,
    utm_source String,
    utm_campaign String,
    utm_content String,
    utm_term String,
    browser String,
    browser_version String,
    os String,
    os_version String,
    device String,
    country_code String,
    region String,
    city String,
    screen_width UInt16,
    props_keys Array(String),
    props_values Array(String),
    revenue_micros Int64,
    revenue_currency String,
    interactive UInt8,
    engagement_ms UInt32,
    scroll_depth UInt8
)
ENGINE = MergeTree
PARTITION BY toDate(timestamp, 'UTC')
ORDER BY (site_id, toDate(timestamp, 'UTC'), visitor_id, timestamp)
SETTINGS index_granularity = 8192;

CREATE TABLE IF NOT EXISTS sites
(
    id UInt32,
    domain String,
    timezone String,
    created_at DateTime('UTC')
)
ENGINE = MergeTree
ORDER BY (domain, id)
SETTINGS index_granularity = 1024;

-- One salt per UTC day, partitioned by day so that deleting a salt drops its files.
CREATE TABLE IF NOT EXISTS salts
(
    day Date,
    salt String,
    created_at DateTime('UTC')
)
ENGINE = MergeTree
PARTITION BY day
ORDER BY (day, salt)
SETTINGS index_granularity = 1024, old_parts_lifetime = 1;
