//! Recognising a td database: its schema version, td's connection pragmas, and the sync tables
//! an older schema lacks.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension};

use super::error::{SqlContext, TdDbError};

/// Oldest td schema the adapter works with (the oldest real td database we test against).
pub const MIN_SCHEMA: i64 = 27;
/// Newest td schema the adapter knows (td v0.62.0).
pub const MAX_SCHEMA: i64 = tdsync_projection::schema::TD_SCHEMA_VERSION;

/// td's sync bookkeeping tables, each with td's own DDL, in the order td's migrations add them
/// (sync_state 16, sync_conflicts 17, sync_history 21, sync_skipped_events 38). `IF NOT EXISTS`
/// throughout, as in td, so td's own migrations later find them in place and move on.
pub const SYNC_TABLES: [(&str, &str); 4] = [
    (
        "sync_state",
        "CREATE TABLE IF NOT EXISTS sync_state (
    project_id TEXT PRIMARY KEY,
    last_pushed_action_id INTEGER DEFAULT 0,
    last_pulled_server_seq INTEGER DEFAULT 0,
    last_sync_at DATETIME,
    sync_disabled INTEGER DEFAULT 0
);",
    ),
    (
        "sync_conflicts",
        "CREATE TABLE IF NOT EXISTS sync_conflicts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    entity_type TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    server_seq INTEGER NOT NULL,
    local_data JSON,
    remote_data JSON,
    overwritten_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS idx_sync_conflicts_entity ON sync_conflicts(entity_type, entity_id);
CREATE INDEX IF NOT EXISTS idx_sync_conflicts_time ON sync_conflicts(overwritten_at);
CREATE INDEX IF NOT EXISTS idx_sync_conflicts_seq ON sync_conflicts(server_seq);",
    ),
    (
        "sync_history",
        "CREATE TABLE IF NOT EXISTS sync_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    direction TEXT NOT NULL,
    action_type TEXT NOT NULL,
    entity_type TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    server_seq INTEGER,
    device_id TEXT DEFAULT '',
    timestamp DATETIME DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS idx_sync_history_ts ON sync_history(timestamp);",
    ),
    (
        "sync_skipped_events",
        "CREATE TABLE IF NOT EXISTS sync_skipped_events (
    server_seq INTEGER PRIMARY KEY,
    device_id TEXT NOT NULL DEFAULT '',
    action_type TEXT NOT NULL DEFAULT '',
    entity_type TEXT NOT NULL DEFAULT '',
    entity_id TEXT NOT NULL DEFAULT '',
    reason TEXT NOT NULL,
    error TEXT NOT NULL DEFAULT '',
    payload JSON,
    skipped_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS idx_sync_skipped_time ON sync_skipped_events(skipped_at);
CREATE INDEX IF NOT EXISTS idx_sync_skipped_reason ON sync_skipped_events(reason);",
    ),
];

/// First td schema that runs with foreign keys enforced. Earlier schemas declare
/// `issues.parent_id REFERENCES issues(id)` although '' means "no parent", so enforcing them
/// would reject every top-level issue; td ran them with enforcement off, and its migration 30
/// drops that key before switching enforcement on.
pub const FK_ENFORCED_FROM: i64 = 30;

/// td's connection policy (td's `OpenSQLite`): wait up to `busy_timeout` for SQLite locks,
/// rollback journal in TRUNCATE mode — never WAL, whose shared memory corrupted td databases
/// next to long-lived readers — and `synchronous=NORMAL`. Foreign keys: [`set_foreign_keys`].
pub fn apply_pragmas(
    conn: &Connection,
    path: &Path,
    busy_timeout: std::time::Duration,
) -> Result<(), TdDbError> {
    conn.busy_timeout(busy_timeout)
        .ctx(path, "set busy_timeout")?;
    // The first real read: a file that is not SQLite fails here, and must be reported as such.
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    })
    .map_err(|e| not_td(path, e))?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode=TRUNCATE", [], |r| r.get(0))
        .ctx(path, "set journal_mode=TRUNCATE")?;
    if !mode.eq_ignore_ascii_case("truncate") {
        return Err(TdDbError::NotTdDatabase {
            path: path.to_path_buf(),
            detail: format!("cannot switch journal_mode to TRUNCATE (it stays {mode})"),
        });
    }
    conn.execute_batch("PRAGMA synchronous=NORMAL")
        .ctx(path, "set synchronous")?;
    Ok(())
}

/// Foreign keys as the td that owns this schema runs them: on from schema 30 (so cascade
/// children without parents are recognised as orphans, as on td clients), off before. Must be
/// called outside a transaction, where SQLite ignores the pragma.
pub fn set_foreign_keys(conn: &Connection, path: &Path, td_version: i64) -> Result<(), TdDbError> {
    let sql = if td_version >= FK_ENFORCED_FROM {
        "PRAGMA foreign_keys=ON"
    } else {
        "PRAGMA foreign_keys=OFF"
    };
    conn.execute_batch(sql).ctx(path, "set foreign_keys")
}

/// Reads td's schema version and refuses what the adapter does not understand.
pub fn check_version(conn: &Connection, path: &Path) -> Result<i64, TdDbError> {
    for table in ["schema_info", "action_log", "issues"] {
        if !table_exists(conn, table).map_err(|e| not_td(path, e))? {
            return Err(TdDbError::NotTdDatabase {
                path: path.to_path_buf(),
                detail: format!("it has no {table} table"),
            });
        }
    }
    let text: Option<String> = conn
        .query_row(
            "SELECT value FROM schema_info WHERE key = 'version'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| not_td(path, e))?;
    // td counts a missing or unreadable version as 0.
    let version = text.and_then(|t| t.trim().parse::<i64>().ok()).unwrap_or(0);
    if version < MIN_SCHEMA {
        return Err(TdDbError::UnsupportedSchema {
            path: path.to_path_buf(),
            version,
            min: MIN_SCHEMA,
            max: MAX_SCHEMA,
            hint: "run any td command (td v0.62 or newer) in the project once to migrate it",
        });
    }
    if version > MAX_SCHEMA {
        return Err(TdDbError::UnsupportedSchema {
            path: path.to_path_buf(),
            version,
            min: MIN_SCHEMA,
            max: MAX_SCHEMA,
            hint: "this td is newer than tdsync knows; upgrade tdsync",
        });
    }
    Ok(version)
}

/// The sync tables this database lacks.
pub fn missing_sync_tables(conn: &Connection, path: &Path) -> Result<Vec<&'static str>, TdDbError> {
    let mut out = Vec::new();
    for (name, _) in SYNC_TABLES {
        if !table_exists(conn, name).ctx(path, "read schema")? {
            out.push(name);
        }
    }
    Ok(out)
}

/// Creates the given sync tables with td's DDL (caller holds td's lock and a transaction).
pub fn create_sync_tables(conn: &Connection, path: &Path, names: &[&str]) -> Result<(), TdDbError> {
    for (name, ddl) in SYNC_TABLES {
        if names.contains(&name) {
            conn.execute_batch(ddl)
                .ctx(path, &format!("create {name}"))?;
        }
    }
    Ok(())
}

pub fn table_exists(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1")?
        .exists([name])
}

pub fn column_exists(conn: &Connection, table: &str, column: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2")?
        .exists([table, column])
}

/// A read failure while recognising the file means it is not (or no longer) a td database.
fn not_td(path: &Path, e: rusqlite::Error) -> TdDbError {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase) | Some(rusqlite::ErrorCode::DatabaseCorrupt) => {
            TdDbError::NotTdDatabase {
                path: path.to_path_buf(),
                detail: e.to_string(),
            }
        }
        _ => TdDbError::sqlite(path, "read schema", e),
    }
}
