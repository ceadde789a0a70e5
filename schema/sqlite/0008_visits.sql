-- Footfall SQLite schema, version 8: visits as rows. When a site-local day closes, the
-- rollup job writes one row per visit (and visitor hash) of the day from its raw events,
-- replacing the day's rows in one transaction, and records the day in visit_days. Questions
-- about visits, filtered or broken down by any visit property, then read one row per visit.

CREATE TABLE IF NOT EXISTS visits (
    site_id INTEGER NOT NULL,
    day INTEGER NOT NULL,
    session_id INTEGER NOT NULL,
    visitor_id INTEGER NOT NULL,
    visit INTEGER NOT NULL,
    pageviews INTEGER NOT NULL,
    events INTEGER NOT NULL,
    bounce INTEGER NOT NULL,
    duration INTEGER NOT NULL,
    referrer TEXT NOT NULL,
    referrer_source TEXT NOT NULL,
    channel TEXT NOT NULL,
    utm_medium TEXT NOT NULL,
    utm_source TEXT NOT NULL,
    utm_campaign TEXT NOT NULL,
    utm_content TEXT NOT NULL,
    utm_term TEXT NOT NULL,
    device TEXT NOT NULL,
    browser TEXT NOT NULL,
    browser_version TEXT NOT NULL,
    os TEXT NOT NULL,
    os_version TEXT NOT NULL,
    country_code TEXT NOT NULL,
    region TEXT NOT NULL,
    city TEXT NOT NULL,
    entry_page TEXT NOT NULL,
    country_name TEXT NOT NULL,
    region_name TEXT NOT NULL,
    exit_page TEXT NOT NULL
);

CREATE INDEX IF NOT EXISTS visits_site_day ON visits (site_id, day);

CREATE TABLE IF NOT EXISTS visit_days (
    site_id INTEGER NOT NULL,
    day INTEGER NOT NULL,
    PRIMARY KEY (site_id, day)
);
