-- Footfall's embedded event store (DuckDB), version 3: goals in the daily rollups. A goal's
-- row of a day (the dimension 'goal', the goal's key as value) also holds the revenue its
-- completions carried, in millionths of the goal's currency, and how many of them carried
-- revenue.

ALTER TABLE rollups ADD COLUMN revenue_micros BIGINT DEFAULT 0;
ALTER TABLE rollups ADD COLUMN revenue_events UBIGINT DEFAULT 0;
