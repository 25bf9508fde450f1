//! Snapshots for td's bootstrap: a complete td database (schema 38) holding the projection as
//! of one head, built by copying the projection (not by replaying the log), cached per head.
//! td installs it in place of `.todos/issues.db` and sets its cursor to the snapshot's seq, so
//! the file has td's local tables and `schema_info`, an empty `action_log` and no `sync_state`,
//! and a rollback journal (td refuses to swap in a file with WAL sidecars).

use std::path::{Path, PathBuf};

use rusqlite::Connection;
use tdsync_projection::schema::create_td_database;
use tdsync_protocol::EntityType;

use super::Shard;
use crate::error::StoreError;

/// A built snapshot file and the head it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub path: PathBuf,
    /// The highest server_seq whose effects it contains (td's `X-Snapshot-Seq`).
    pub seq: i64,
    pub bytes: u64,
}

impl Shard {
    /// The snapshot at the current head, built into `cache_dir` unless already there. None
    /// when the log is empty (td then falls back to a normal pull).
    pub(crate) fn snapshot(&self, cache_dir: &Path) -> Result<Option<Snapshot>, StoreError> {
        // One build at a time per shard: concurrent callers wait and reuse the result.
        let _building = self.snapshot_lock.lock();
        std::fs::create_dir_all(cache_dir).map_err(StoreError::io(cache_dir))?;
        self.read(|conn| {
            // One read transaction: the head and the rows are read at the same point.
            conn.execute_batch("BEGIN").map_err(|e| self.sql_err(e))?;
            let result = (|| {
                let seq: i64 = conn
                    .query_row("SELECT coalesce(max(server_seq), 0) FROM events", [], |r| {
                        r.get(0)
                    })
                    .map_err(|e| self.sql_err(e))?;
                if seq == 0 {
                    return Ok(None);
                }
                let path = cache_dir.join(format!("{seq}.db"));
                if !path.exists() {
                    let partial = cache_dir.join(format!("{seq}.db.partial"));
                    let _ = std::fs::remove_file(&partial);
                    build(conn, &partial).map_err(|e| StoreError::sql(&partial, e))?;
                    std::fs::rename(&partial, &path).map_err(StoreError::io(&path))?;
                    prune(cache_dir, seq);
                }
                let bytes = std::fs::metadata(&path)
                    .map_err(StoreError::io(&path))?
                    .len();
                Ok(Some(Snapshot { path, seq, bytes }))
            })();
            let _ = conn.execute_batch("COMMIT");
            result
        })
    }
}

/// Writes a td database holding `source`'s synced tables to `dest`.
fn build(source: &Connection, dest: &Path) -> rusqlite::Result<()> {
    let out = Connection::open(dest)?;
    out.execute_batch("PRAGMA journal_mode = DELETE; PRAGMA foreign_keys = OFF;")?;
    create_td_database(&out)?;
    out.execute_batch("BEGIN")?;
    for entity in EntityType::SYNCED {
        let table = entity.table();
        // Column lists come from the destination's own schema (td's), read back from SQLite.
        let cols: Vec<String> = out
            .prepare(&format!("PRAGMA table_info({table})"))?
            .query_map([], |r| r.get::<_, String>(1))?
            .collect::<Result<_, _>>()?;
        if entity == EntityType::Boards {
            // The copy brings the builtin board along with its own timestamps.
            out.execute("DELETE FROM boards", [])?;
        }
        let list = cols.join(", ");
        let placeholders: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
        let mut read = source.prepare(&format!("SELECT {list} FROM {table}"))?;
        let mut insert = out.prepare(&format!(
            "INSERT INTO {table} ({list}) VALUES ({})",
            placeholders.join(", ")
        ))?;
        let mut rows = read.query([])?;
        while let Some(row) = rows.next()? {
            let values: Vec<rusqlite::types::Value> = (0..cols.len())
                .map(|i| row.get(i))
                .collect::<Result<_, _>>()?;
            insert.execute(rusqlite::params_from_iter(values))?;
        }
    }
    out.execute_batch("COMMIT")?;
    out.execute_batch("VACUUM")?;
    let check: String = out.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
    if check != "ok" {
        return Err(rusqlite::Error::InvalidQuery);
    }
    Ok(())
}

/// Keeps only the newest snapshot of a project (td's server does the same).
fn prune(cache_dir: &Path, keep: i64) {
    let Ok(entries) = std::fs::read_dir(cache_dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let old = name
            .strip_suffix(".db")
            .and_then(|n| n.parse::<i64>().ok())
            .is_some_and(|n| n != keep);
        if old {
            let _ = std::fs::remove_file(e.path());
        }
    }
}
