-- Footfall SQLite schema, version 6: the dashboard's small records (users, login sessions,
-- shared links), each a JSON body under a kind and an id. Secrets inside are hashes only.

CREATE TABLE IF NOT EXISTS records (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    body TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (kind, id)
);
