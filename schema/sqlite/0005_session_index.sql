-- Footfall SQLite schema, version 5: an index to find a visit's last pageview (its exit page)
-- without scanning the day.

CREATE INDEX IF NOT EXISTS events_site_session ON events (site_id, session_id, timestamp);
