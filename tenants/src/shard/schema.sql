-- A tdsync shard: one project's event log, its td-schema projection (synced_tables.sql from the
-- projection crate is applied next to this) and the bookkeeping kept with them in every push
-- transaction.

-- Small keyed tables are WITHOUT ROWID: one b-tree (one page in an empty shard) instead of two.
CREATE TABLE shard_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

-- The log. server_seq is AUTOINCREMENT so a seq is never reused; payload is the client's bytes.
CREATE TABLE events (
    server_seq INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    client_action_id INTEGER NOT NULL,
    action_type TEXT NOT NULL,
    entity_type TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    client_timestamp TEXT NOT NULL,
    server_timestamp TEXT NOT NULL,
    UNIQUE (device_id, session_id, client_action_id)
);
CREATE INDEX events_by_entity ON events (entity_type, entity_id, server_seq);

-- Every value a write overwrote without its writer having seen it, with both versions.
CREATE TABLE conflicts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    entity_type TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    fields TEXT NOT NULL,
    clobbered_row TEXT NOT NULL,
    clobbered_seq INTEGER,
    clobbered_device TEXT,
    winning_row TEXT,
    winning_seq INTEGER NOT NULL,
    winning_device TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    restored_by_seq INTEGER
);
CREATE INDEX conflicts_by_entity ON conflicts (entity_type, entity_id);

-- Logged events the projection did not apply (orphans, cycle losers, permanent failures),
-- exactly as td clients quarantine them. The events themselves stay in the log.
CREATE TABLE projection_skips (
    server_seq INTEGER PRIMARY KEY,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL
);

-- Per-device clock skew: newest client timestamp of a push against the server's clock.
CREATE TABLE device_clocks (
    device_id TEXT PRIMARY KEY,
    skew_ms INTEGER NOT NULL,
    samples INTEGER NOT NULL,
    last_seen TEXT NOT NULL
) WITHOUT ROWID;
