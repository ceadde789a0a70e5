-- Footfall SQLite schema, version 4: daily rollups. One row per site, site-local day,
-- dimension and value; the dimension '' holds the day's totals (and marks the day as rolled
-- up). Anonymous and additive across days; kept for aggregate_retention_days.

CREATE TABLE IF NOT EXISTS rollups (
    site_id INTEGER NOT NULL,
    day INTEGER NOT NULL,
    dimension TEXT NOT NULL,
    value TEXT NOT NULL,
    visitors INTEGER NOT NULL,
    visits INTEGER NOT NULL,
    pageviews INTEGER NOT NULL,
    events INTEGER NOT NULL,
    bounces INTEGER NOT NULL,
    duration INTEGER NOT NULL,
    PRIMARY KEY (site_id, day, dimension, value)
);
