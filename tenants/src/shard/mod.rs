//! One project's shard: a SQLite file holding the event log, the td-schema projection and their
//! bookkeeping. One writer connection (behind a mutex: one writer per shard), a few reader
//! connections (WAL lets them run beside the writer), and the head cached in memory so a pull
//! at the head never touches SQLite.

mod clock;
mod conflicts;
mod cycles;
mod history;
mod log;
mod pull;
mod push;
mod rebuild;
mod snapshot;

use std::path::{Path, PathBuf};

use parking_lot::{Mutex, RwLock};
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use tdsync_projection::{Applier, schema::create_synced_tables};

/// td's indexes that only serve td's own queries (list by status, priority, dates, …). The
/// shard never runs those queries, and snapshots are built into a fresh td schema with all of
/// td's indexes, so the projection goes without them: every push stops paying for their
/// upkeep. Indexes that carry a uniqueness rule or a foreign-key column (cascades look children
/// up by them) stay.
const QUERY_ONLY_INDEXES: &[&str] = &[
    "idx_issues_status",
    "idx_issues_priority",
    "idx_issues_type",
    "idx_issues_deleted",
    "idx_issues_deleted_status",
    "idx_issues_defer_until",
    "idx_issues_due_date",
    "idx_notes_updated",
    "idx_notes_deleted",
    "idx_logs_timestamp",
    "idx_comments_created_at",
    "idx_handoffs_timestamp",
];

/// td's twelve synced tables as a shard keeps them: td's DDL without the query-only indexes.
pub(crate) fn create_projection(conn: &Connection) -> rusqlite::Result<()> {
    create_synced_tables(conn)?;
    for index in QUERY_ONLY_INDEXES {
        // Names from the list above, never from input.
        conn.execute_batch(&format!("DROP INDEX {index}"))?;
    }
    Ok(())
}

pub use clock::DeviceClock;
pub use conflicts::{Conflict, ConflictFilter, Restored, SERVER_DEVICE};
pub use history::HistoryEntry;
pub use rebuild::RebuildReport;
pub(crate) use rebuild::check_against_replay;
pub use snapshot::Snapshot;

use crate::{
    Durability,
    error::StoreError,
    ids::{ProjectId, TenantId},
};

/// Marks a file as a tdsync shard, and which layout it has.
const FORMAT: &str = "tdsync-shard-1";
const SHARD_SQL: &str = include_str!("schema.sql");
/// Idle reader connections kept per shard.
const IDLE_READERS: usize = 4;

/// The log's head, cached so status and pulls at the head cost no SQLite read.
#[derive(Debug, Clone, Default)]
pub(crate) struct Head {
    pub last_seq: i64,
    pub event_count: i64,
    pub last_event_time: Option<String>,
}

pub(crate) struct Writer {
    pub conn: Connection,
    pub applier: Applier,
}

pub struct Shard {
    path: PathBuf,
    writer: Mutex<Writer>,
    readers: Mutex<Vec<Connection>>,
    head: RwLock<Head>,
    snapshot_lock: Mutex<()>,
}

impl Shard {
    /// Creates a new, empty shard file. Fails if the file exists.
    pub(crate) fn create(
        path: &Path,
        tenant: &TenantId,
        project: &ProjectId,
        durability: Durability,
    ) -> Result<Shard, StoreError> {
        if path.exists() {
            return Err(StoreError::AlreadyExists(format!("project {project}")));
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let sql = |e| StoreError::sql(path, e);
        let mut conn = Connection::open(path).map_err(sql)?;
        configure_writer(&conn, durability).map_err(sql)?;
        let tx = conn.transaction().map_err(sql)?;
        tx.execute_batch(SHARD_SQL).map_err(sql)?;
        create_projection(&tx).map_err(sql)?;
        let created = tdsync_protocol::timestamp::format_server(&chrono::Utc::now());
        for (k, v) in [
            ("format", FORMAT),
            ("tenant", tenant.as_str()),
            ("project", project.as_str()),
            ("created_at", created.as_str()),
        ] {
            tx.execute(
                "INSERT INTO shard_meta (key, value) VALUES (?1, ?2)",
                [k, v],
            )
            .map_err(sql)?;
        }
        tx.commit().map_err(sql)?;
        drop(conn);
        Shard::open(path, tenant, project, durability)
    }

    /// Opens an existing shard, checking that it is one and that it belongs to this project.
    pub(crate) fn open(
        path: &Path,
        tenant: &TenantId,
        project: &ProjectId,
        durability: Durability,
    ) -> Result<Shard, StoreError> {
        if !path.exists() {
            return Err(StoreError::NotFound(format!("project {project}")));
        }
        let sql = |e| StoreError::sql(path, e);
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sql)?;
        check_meta(&conn, path, tenant, project)?;
        configure_writer(&conn, durability).map_err(sql)?;
        let applier = Applier::new(&conn).map_err(sql)?;
        let head = read_head(&conn).map_err(sql)?;
        Ok(Shard {
            path: path.to_path_buf(),
            writer: Mutex::new(Writer { conn, applier }),
            readers: Mutex::new(Vec::new()),
            head: RwLock::new(head),
            snapshot_lock: Mutex::new(()),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn head(&self) -> Head {
        self.head.read().clone()
    }

    pub(crate) fn sql_err(&self, e: rusqlite::Error) -> StoreError {
        StoreError::sql(&self.path, e)
    }

    /// Runs `f` on a reader connection (a pooled one, or a new one when all are busy).
    pub(crate) fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let pooled = self.readers.lock().pop();
        let conn = match pooled {
            Some(c) => c,
            None => {
                let c = Connection::open_with_flags(
                    &self.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(|e| self.sql_err(e))?;
                c.busy_timeout(std::time::Duration::from_secs(5))
                    .map_err(|e| self.sql_err(e))?;
                configure_cache(&c).map_err(|e| self.sql_err(e))?;
                c
            }
        };
        let out = f(&conn);
        let mut idle = self.readers.lock();
        if idle.len() < IDLE_READERS {
            idle.push(conn);
        }
        out
    }

    /// Runs `f` with the writer inside one transaction and commits when it returns Ok. A new
    /// head returned by `f` is published after the commit and before the writer is released,
    /// so heads are published in commit order.
    pub(crate) fn write<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>, &Applier) -> Result<(T, Option<Head>), StoreError>,
    ) -> Result<T, StoreError> {
        let mut w = self.writer.lock();
        let Writer { conn, applier } = &mut *w;
        let tx = conn
            .transaction()
            .map_err(|e| StoreError::sql(&self.path, e))?;
        let (out, head) = f(&tx, applier)?;
        tx.commit().map_err(|e| StoreError::sql(&self.path, e))?;
        if let Some(head) = head {
            *self.head.write() = head;
        }
        Ok(out)
    }
}

impl Drop for Shard {
    fn drop(&mut self) {
        // Fold the WAL back so a closed shard is one self-contained file.
        let w = self.writer.get_mut();
        if let Err(e) = w.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
            tracing::warn!(path = %self.path.display(), error = %e, "checkpoint on close failed");
        }
    }
}

fn configure_writer(conn: &Connection, durability: Durability) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    debug_assert_eq!(mode.to_ascii_lowercase(), "wal");
    conn.pragma_update(None, "synchronous", durability.pragma())?;
    // Same foreign-key policy as td clients: cascades and orphan drops must match theirs.
    conn.pragma_update(None, "foreign_keys", true)?;
    // Checkpoint every ~16 MiB of WAL (4,000 pages) instead of SQLite's ~4 MiB: a busy shard
    // rewrites the same index pages over and over, and each checkpoint copies a page once
    // however often it changed since the last one (push +11% in the engine bench). Closing a
    // shard truncates its WAL.
    conn.pragma_update(None, "wal_autocheckpoint", 4_000)?;
    configure_cache(conn)?;
    conn.set_prepared_statement_cache_capacity(256);
    Ok(())
}

/// A 32 MiB page cache and memory-mapped reads per connection: a busy shard's indexes stay in
/// memory instead of being copied in from the OS page cache on every lookup.
fn configure_cache(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "cache_size", -32_768)?;
    conn.pragma_update(None, "mmap_size", 256 * 1024 * 1024)?;
    Ok(())
}

fn check_meta(
    conn: &Connection,
    path: &Path,
    tenant: &TenantId,
    project: &ProjectId,
) -> Result<(), StoreError> {
    let foreign = |reason: String| StoreError::Foreign {
        path: path.to_path_buf(),
        reason,
    };
    let has_meta: bool = conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'shard_meta'",
            [],
            |_| Ok(true),
        )
        .optional()
        .map_err(|e| StoreError::sql(path, e))?
        .unwrap_or(false);
    if !has_meta {
        return Err(foreign("it has no shard_meta table".into()));
    }
    let meta = |key: &str| -> Result<String, StoreError> {
        conn.query_row("SELECT value FROM shard_meta WHERE key = ?1", [key], |r| {
            r.get(0)
        })
        .optional()
        .map_err(|e| StoreError::sql(path, e))?
        .ok_or_else(|| foreign(format!("shard_meta lacks {key}")))
    };
    let format = meta("format")?;
    if format != FORMAT {
        return Err(foreign(format!(
            "format {format:?}, this tdsync reads {FORMAT:?}"
        )));
    }
    let (t, p) = (meta("tenant")?, meta("project")?);
    if t != tenant.as_str() || p != project.as_str() {
        return Err(foreign(format!("it belongs to {t}/{p}")));
    }
    Ok(())
}

pub(crate) fn read_head(conn: &Connection) -> rusqlite::Result<Head> {
    let (count, last): (i64, Option<i64>) =
        conn.query_row("SELECT count(*), max(server_seq) FROM events", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    let last_event_time = match last {
        Some(seq) => conn
            .query_row(
                "SELECT server_timestamp FROM events WHERE server_seq = ?1",
                [seq],
                |r| r.get(0),
            )
            .optional()?,
        None => None,
    };
    Ok(Head {
        last_seq: last.unwrap_or(0),
        event_count: count,
        last_event_time,
    })
}
