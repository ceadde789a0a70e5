-- Footfall SQLite schema, version 1: raw events, sites and the daily salts.
-- 64-bit hashes and ids are stored as INTEGER with their bits unchanged (read back as u64).

CREATE TABLE IF NOT EXISTS events (
    site_id INTEGER NOT NULL,
    timestamp INTEGER NOT NULL,
    name TEXT NOT NULL,
    hostname TEXT NOT NULL,
    pathname TEXT NOT NULL,
    visitor_id INTEGER NOT NULL,
    session_id INTEGER NOT NULL,
    referrer TEXT NOT NULL,
    referrer_source TEXT NOT NULL,
    channel TEXT NOT NULL,
    utm_medium TEXT NOT NULL,
    utm_source TEXT NOT NULL,
    utm_campaign TEXT NOT NULL,
    utm_content TEXT NOT NULL,
    utm_term TEXT NOT NULL,
    browser TEXT NOT NULL,
    browser_version TEXT NOT NULL,
    os TEXT NOT NULL,
    os_version TEXT NOT NULL,
    device TEXT NOT NULL,
    country_code TEXT NOT NULL,
    region TEXT NOT NULL,
    city TEXT NOT NULL,
    screen_width INTEGER NOT NULL,
    props_keys TEXT NOT NULL,
    props_values TEXT NOT NULL,
    revenue_micros INTEGER NOT NULL,
    revenue_currency TEXT NOT NULL,
    interactive INTEGER NOT NULL,
    engagement_ms INTEGER NOT NULL,
    scroll_depth INTEGER NOT NULL
);

CREATE INDEX IF NOT EXISTS events_site_time ON events (site_id, timestamp);
CREATE INDEX IF NOT EXISTS events_time ON events (timestamp);

CREATE TABLE IF NOT EXISTS sites (
    id INTEGER PRIMARY KEY,
    domain TEXT NOT NULL UNIQUE,
    timezone TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS salts (
    day INTEGER PRIMARY KEY,
    salt BLOB NOT NULL,
    created_at INTEGER NOT NULL
);
