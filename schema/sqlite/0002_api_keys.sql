-- Footfall SQLite schema, version 2: API keys for the Stats API. Only a hash of each key
-- is stored; `id` is the key's public prefix, shown in listings and used to revoke it.

CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    site_id INTEGER NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0
);
