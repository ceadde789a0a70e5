-- Footfall's embedded event store (DuckDB), version 1: raw events and daily rollups.
-- Sites, keys, accounts and the daily salts stay in the SQLite file beside it
-- (footfall.db), which several processes may open at once.
-- No indexes: DuckDB keeps a min-max zone map of every column per row group, and rows
-- arrive in time order, so a range of days reads only its row groups.

CREATE TABLE IF NOT EXISTS events (
    site_id UINTEGER NOT NULL,
    timestamp UINTEGER NOT NULL,
    name VARCHAR NOT NULL,
    hostname VARCHAR NOT NULL,
    pathname VARCHAR NOT NULL,
    visitor_id UBIGINT NOT NULL,
    session_id UBIGINT NOT NULL,
    referrer VARCHAR NOT NULL,
    referrer_source VARCHAR NOT NULL,
    channel VARCHAR NOT NULL,
    utm_medium VARCHAR NOT NULL,
    utm_source VARCHAR NOT NULL,
    utm_campaign VARCHAR NOT NULL,
    utm_content VARCHAR NOT NULL,
    utm_term VARCHAR NOT NULL,
    browser VARCHAR NOT NULL,
    browser_version VARCHAR NOT NULL,
    os VARCHAR NOT NULL,
    os_version VARCHAR NOT NULL,
    device VARCHAR NOT NULL,
    country_code VARCHAR NOT NULL,
    region VARCHAR NOT NULL,
    city VARCHAR NOT NULL,
    screen_width USMALLINT NOT NULL,
    props_keys VARCHAR[] NOT NULL,
    props_values VARCHAR[] NOT NULL,
    revenue_micros BIGINT NOT NULL,
    revenue_currency VARCHAR NOT NULL,
    interactive UTINYINT NOT NULL,
    engagement_ms UINTEGER NOT NULL,
    scroll_depth UTINYINT NOT NULL,
    entry_page VARCHAR NOT NULL,
    country_name VARCHAR NOT NULL,
    region_name VARCHAR NOT NULL,
    batch_id UBIGINT NOT NULL
);

-- One row per site, site-local day (days since 1970-01-01), dimension and value; the
-- dimension '' holds the day's totals (and marks the day as rolled up).
CREATE TABLE IF NOT EXISTS rollups (
    site_id UINTEGER NOT NULL,
    day INTEGER NOT NULL,
    dimension VARCHAR NOT NULL,
    value VARCHAR NOT NULL,
    visitors UBIGINT NOT NULL,
    visits UBIGINT NOT NULL,
    pageviews UBIGINT NOT NULL,
    events UBIGINT NOT NULL,
    bounces UBIGINT NOT NULL,
    duration UBIGINT NOT NULL,
    PRIMARY KEY (site_id, day, dimension, value)
);
