//! One project's shard: a SQLite file holding the event log, the td-schema projection and their
//! bookkeeping. One writer connection (behind a mutex: one writer per shard), a few reader
//! connections (WAL lets them run beside the writer), and the head cached in memory so a pull
//! at the head never touches SQLite.

mod clock;
mod conflicts;
mod cycles;
mod history;
mod import;
mod log;
mod pages;
mod pull;
mod push;
mod rebuild;
mod snapshot;

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
};

use parking_lot::{Mutex, RwLock};
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use tdsync_projection::{
    Applier,
    schema::{BUILTIN_ROWS_SQL, SYNCED_TABLES_SQL},
};

/// td's indexes that only serve td's own queries (list by status, priority, dates, …). The
/// shard never runs those queries, and snapshots are built into a fresh td schema with all of
/// td's indexes, so the projection goes without them: every push stops paying for their
/// upkeep, and an empty shard is smaller. Indexes that carry a uniqueness rule or a foreign-key
/// column (cascades look children up by them) stay.
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

/// td's twelve synced tables as a shard keeps them: td's DDL without the query-only indexes,
/// with td's builtin rows.
pub(crate) fn create_projection(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(&compact_ddl(SYNCED_TABLES_SQL, QUERY_ONLY_INDEXES))?;
    conn.execute_batch(BUILTIN_ROWS_SQL)
}

/// `sql` as SQLite should keep it in a shard: without the `CREATE INDEX` statements named in
/// `skip`, comments and layout. SQLite stores every statement's text in the file, and on a
/// shard's small pages td's indented DDL costs pages in every project.
pub(crate) fn compact_ddl(sql: &str, skip: &[&str]) -> String {
    // Comment lines go first: they may hold a `;` themselves.
    let code: Vec<&str> = sql
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("--"))
        .collect();
    let code = code.join(" ");
    let mut out = String::with_capacity(code.len());
    for statement in code.split(';') {
        let text = statement.trim();
        if text.is_empty() {
            continue;
        }
        let index = text
            .strip_prefix("CREATE INDEX ")
            .and_then(|r| r.split(' ').next());
        if index.is_some_and(|name| skip.contains(&name)) {
            continue;
        }
        out.push_str(&collapse_spaces(text));
        out.push_str(";\n");
    }
    out
}

/// Runs of spaces outside quoted literals become one; a space after `(` or before `)` and `,`
/// goes.
fn collapse_spaces(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut quoted = false;
    for c in text.chars() {
        if c == '\'' {
            quoted = !quoted;
        }
        if !quoted {
            let prev = out.chars().last();
            if c == ' ' && matches!(prev, Some(' ' | '(') | None) {
                continue;
            }
            if matches!(c, ')' | ',') && prev == Some(' ') {
                out.pop();
            }
        }
        out.push(c);
    }
    out
}

pub use clock::DeviceClock;
pub use conflicts::{Conflict, ConflictFilter, Restored, SERVER_DEVICE};
pub use history::HistoryEntry;
pub use log::LoggedEvent;
pub(crate) use log::read_logged;
pub(crate) use pull::page_limit;
pub use rebuild::RebuildReport;
pub(crate) use rebuild::check_against_replay;
pub use snapshot::Snapshot;

use crate::{Durability, ProjectId, TenantId, error::StoreError};

/// Marks a file as a tdsync shard, and which layout it has.
pub(crate) const FORMAT: &str = "tdsync-shard-1";
pub(crate) const SHARD_SQL: &str = include_str!("schema.sql");
/// Idle reader connections kept per shard.
const IDLE_READERS: usize = 4;

/// The log's head, cached so status and pulls at the head cost no SQLite read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Head {
    pub last_seq: i64,
    pub event_count: i64,
    pub last_event_time: Option<String>,
}

/// A project's head as the store knows it, shared by the project's registry entry and its shard
/// while one is open: a push publishes into it, and it outlives the shard, so closing a shard
/// never forgets a head. `None` until the project is first read after the store opened.
pub(crate) type SharedHead = Arc<RwLock<Option<Head>>>;

pub(crate) struct Writer {
    pub conn: Connection,
    pub applier: Applier,
}

pub struct Shard {
    path: PathBuf,
    writer: Mutex<Writer>,
    readers: Mutex<Vec<Connection>>,
    /// Reader connections taken from `readers` and not yet given back (counted under its lock).
    readers_out: AtomicUsize,
    /// The file still has the small pages of a new shard (`pages`).
    small_pages: AtomicBool,
    head: SharedHead,
    snapshot_lock: Mutex<()>,
    /// Set once the shard is taken out of service: no write commits after it.
    retired: AtomicBool,
}

impl Shard {
    /// Opens an existing shard, checking that it is one and that it belongs to this project.
    /// Its head is read from the file and published into `head`.
    pub(crate) fn open(
        path: &Path,
        tenant: &TenantId,
        project: &ProjectId,
        durability: Durability,
        head: SharedHead,
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
        // Damage found now takes the project out of service before anything is served from it.
        let problems = quick_check(&conn).map_err(sql)?;
        if !problems.is_empty() {
            return Err(StoreError::Corrupt {
                path: path.to_path_buf(),
                reason: format!("quick_check: {}", problems.join("; ")),
            });
        }
        configure_writer(&conn, durability).map_err(sql)?;
        let read = read_head(&conn).map_err(sql)?;
        // Opened under the project's lock: this is the file's only connection here, so a shard
        // that grew while its small pages could not be rewritten is rewritten now.
        let mut pages = pages::page_size(&conn).map_err(sql)?;
        if pages::should_grow(pages, read.event_count) && pages::grow(&conn).map_err(sql)? {
            pages = pages::GROWN_PAGE_SIZE;
        }
        let applier = Applier::new(&conn).map_err(sql)?;
        *head.write() = Some(read);
        Ok(Shard {
            path: path.to_path_buf(),
            writer: Mutex::new(Writer { conn, applier }),
            readers: Mutex::new(Vec::new()),
            readers_out: AtomicUsize::new(0),
            small_pages: AtomicBool::new(pages < pages::GROWN_PAGE_SIZE),
            head,
            snapshot_lock: Mutex::new(()),
            retired: AtomicBool::new(false),
        })
    }

    /// Waits for the write in progress, if any, and refuses every write after it: the file is
    /// about to be moved aside.
    pub(crate) fn retire(&self) {
        let _writer = self.writer.lock();
        self.retired.store(true, Ordering::Release);
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn head(&self) -> Head {
        // Published at open, so always known while the shard is open.
        self.head.read().clone().unwrap_or_default()
    }

    pub(crate) fn sql_err(&self, e: rusqlite::Error) -> StoreError {
        StoreError::sql(&self.path, e)
    }

    /// Runs `f` on a reader connection (a pooled one, or a new one when all are busy).
    pub(crate) fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let pooled = {
            let mut idle = self.readers.lock();
            self.readers_out.fetch_add(1, Ordering::AcqRel);
            idle.pop()
        };
        let conn = match pooled {
            Some(c) => c,
            None => match self.open_reader() {
                Ok(c) => c,
                Err(e) => {
                    self.give_back(None);
                    return Err(e);
                }
            },
        };
        let out = f(&conn);
        self.give_back(Some(conn));
        out
    }

    fn open_reader(&self) -> Result<Connection, StoreError> {
        let c = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| self.sql_err(e))?;
        c.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(|e| self.sql_err(e))?;
        configure_cache(&c).map_err(|e| self.sql_err(e))?;
        Ok(c)
    }

    /// Returns a reader taken by [`Shard::read`] (or none, when opening it failed).
    fn give_back(&self, conn: Option<Connection>) {
        let mut idle = self.readers.lock();
        self.readers_out.fetch_sub(1, Ordering::AcqRel);
        if let Some(conn) = conn
            && idle.len() < IDLE_READERS
        {
            idle.push(conn);
        }
    }

    /// Runs `f` with the writer inside one transaction and commits when it returns Ok. A new
    /// head returned by `f` is published after the commit and before the writer is released,
    /// so heads are published in commit order. `incoming` is how many events `f` may log: a
    /// shard they would grow past [`pages::GROWN_AT_EVENTS`] gets its big pages first, while
    /// it is still small and the rewrite cheap.
    pub(crate) fn write<T>(
        &self,
        incoming: usize,
        f: impl FnOnce(&rusqlite::Transaction<'_>, &Applier) -> Result<(T, Option<Head>), StoreError>,
    ) -> Result<T, StoreError> {
        let mut w = self.writer.lock();
        if self.retired.load(Ordering::Acquire) {
            return Err(StoreError::OutOfService {
                project: self.path.display().to_string(),
                reason: "its shard was taken out of service".into(),
            });
        }
        let Writer { conn, applier } = &mut *w;
        if self.small_pages.load(Ordering::Acquire) {
            let events = self.head().event_count + incoming as i64;
            let size = pages::page_size(conn).map_err(|e| self.sql_err(e))?;
            if pages::should_grow(size, events) {
                self.grow(conn);
            }
        }
        let tx = conn
            .transaction()
            .map_err(|e| StoreError::sql(&self.path, e))?;
        let (out, head) = f(&tx, applier)?;
        tx.commit().map_err(|e| StoreError::sql(&self.path, e))?;
        if let Some(head) = head {
            *self.head.write() = Some(head);
        }
        Ok(out)
    }

    /// Rewrites the file with big pages (`pages`) if no reader of this shard is at work; the
    /// writer lock is held by the caller. A failure leaves the shard as it was, to be tried
    /// again at a later write.
    fn grow(&self, writer: &Connection) {
        let mut idle = self.readers.lock();
        if self.readers_out.load(Ordering::Acquire) > 0 {
            return;
        }
        idle.clear();
        let started = std::time::Instant::now();
        match pages::grow(writer) {
            Ok(true) => {
                self.small_pages.store(false, Ordering::Release);
                tracing::info!(
                    path = %self.path.display(),
                    took_ms = started.elapsed().as_millis() as u64,
                    "shard rewritten with {}-byte pages",
                    pages::GROWN_PAGE_SIZE
                );
            }
            Ok(false) => {
                tracing::debug!(path = %self.path.display(), "shard busy: page rewrite deferred");
            }
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "page rewrite failed; will retry");
            }
        }
    }
}

impl Drop for Shard {
    fn drop(&mut self) {
        // A retired shard's file was moved aside as found: leave it so.
        if self.retired.load(Ordering::Acquire) {
            return;
        }
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
    let (t, p) = meta_of(conn, path)?;
    if t != tenant.as_str() || p != project.as_str() {
        return Err(StoreError::Foreign {
            path: path.to_path_buf(),
            reason: format!("it belongs to {t}/{p}"),
        });
    }
    Ok(())
}

/// The owner recorded in a shard's `shard_meta`, after checking that the file is a shard of
/// this layout.
fn meta_of(conn: &Connection, path: &Path) -> Result<(String, String), StoreError> {
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
    Ok((meta("tenant")?, meta("project")?))
}

/// The tenant and project a shard file belongs to, read from its `shard_meta` (after checking
/// its format).
pub(crate) fn owner(conn: &Connection, path: &Path) -> Result<(TenantId, ProjectId), StoreError> {
    let (tenant, project) = meta_of(conn, path)?;
    let foreign = |reason: String| StoreError::Foreign {
        path: path.to_path_buf(),
        reason,
    };
    Ok((
        TenantId::parse(&tenant).map_err(|e| foreign(e.to_string()))?,
        ProjectId::parse(&project).map_err(|e| foreign(e.to_string()))?,
    ))
}

/// SQLite's `quick_check`: its findings, none when the file is sound.
pub(crate) fn quick_check(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let rows: Vec<String> = conn
        .prepare("PRAGMA quick_check")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(rows.into_iter().filter(|r| r != "ok").collect())
}

/// The head of the shard file at `path` without opening the shard: one short connection (closing
/// it folds any WAL back, as closing a shard does). A missing file is an empty project.
pub(crate) fn peek_head(
    path: &Path,
    tenant: &TenantId,
    project: &ProjectId,
) -> Result<Head, StoreError> {
    if !path.exists() {
        return Ok(Head::default());
    }
    let sql = |e| StoreError::sql(path, e);
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sql)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(sql)?;
    check_meta(&conn, path, tenant, project)?;
    read_head(&conn).map_err(sql)
}

fn read_head(conn: &Connection) -> rusqlite::Result<Head> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_ddl_keeps_statements_and_literals_and_drops_what_it_is_told() {
        let sql = "-- a comment; with a semicolon\nCREATE TABLE t (\n    id TEXT PRIMARY KEY,\n    \
                   name TEXT DEFAULT 'a  b'\n);\nCREATE INDEX idx_t_name ON t(name);\n\
                   CREATE INDEX idx_keep ON t(id);\n";
        assert_eq!(
            compact_ddl(sql, &["idx_t_name"]),
            "CREATE TABLE t (id TEXT PRIMARY KEY, name TEXT DEFAULT 'a  b');\n\
             CREATE INDEX idx_keep ON t(id);\n"
        );
    }

    #[test]
    fn the_compact_projection_has_tds_columns() {
        let full = Connection::open_in_memory().unwrap();
        tdsync_projection::schema::create_synced_tables(&full).unwrap();
        let shard = Connection::open_in_memory().unwrap();
        create_projection(&shard).unwrap();
        let columns = |c: &Connection| -> Vec<(String, String, String, Option<String>)> {
            c.prepare(
                "SELECT m.name, p.name, p.type, p.dflt_value FROM sqlite_schema m, \
                 pragma_table_info(m.name) p WHERE m.type = 'table' ORDER BY 1, p.cid",
            )
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
        };
        assert_eq!(columns(&shard), columns(&full));
        let indexes = |c: &Connection| -> i64 {
            c.query_row(
                "SELECT count(*) FROM sqlite_schema WHERE type = 'index'",
                [],
                |r| r.get(0),
            )
            .unwrap()
        };
        assert_eq!(
            indexes(&shard),
            indexes(&full) - QUERY_ONLY_INDEXES.len() as i64
        );
    }
}
