-- Footfall SQLite schema, version 3: each event carries its visit's entry page, and the
-- English names of its country and region (from the GeoIP database) beside their codes.

ALTER TABLE events ADD COLUMN entry_page TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN country_name TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN region_name TEXT NOT NULL DEFAULT '';
