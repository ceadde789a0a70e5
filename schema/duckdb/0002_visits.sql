-- Footfall's embedded event store (DuckDB), version 2: visits as rows. When a site-local day
-- closes, the rollup job writes one row per visit (and visitor hash) of the day from its raw
-- events, replacing the day's rows in one transaction, and records the day in visit_days.
-- Questions about visits, filtered or broken down by any visit property, then read one row
-- per visit instead of grouping the day's events by session.

CREATE TABLE IF NOT EXISTS visits (
    site_id UINTEGER NOT NULL,
    day INTEGER NOT NULL,
    session_id UBIGINT NOT NULL,
    visitor_id UBIGINT NOT NULL,
    visit UTINYINT NOT NULL,
    pageviews UINTEGER NOT NULL,
    events UINTEGER NOT NULL,
    bounce UTINYINT NOT NULL,
    duration UINTEGER NOT NULL,
    referrer VARCHAR NOT NULL,
    referrer_source VARCHAR NOT NULL,
    channel VARCHAR NOT NULL,
    utm_medium VARCHAR NOT NULL,
    utm_source VARCHAR NOT NULL,
    utm_campaign VARCHAR NOT NULL,
    utm_content VARCHAR NOT NULL,
    utm_term VARCHAR NOT NULL,
    device VARCHAR NOT NULL,
    browser VARCHAR NOT NULL,
    browser_version VARCHAR NOT NULL,
    os VARCHAR NOT NULL,
    os_version VARCHAR NOT NULL,
    country_code VARCHAR NOT NULL,
    region VARCHAR NOT NULL,
    city VARCHAR NOT NULL,
    entry_page VARCHAR NOT NULL,
    country_name VARCHAR NOT NULL,
    region_name VARCHAR NOT NULL,
    exit_page VARCHAR NOT NULL
);

CREATE TABLE IF NOT EXISTS visit_days (
    site_id UINTEGER NOT NULL,
    day INTEGER NOT NULL,
    PRIMARY KEY (site_id, day)
);
