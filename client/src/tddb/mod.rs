//! The adapter between the sync client and one td database (`.todos/issues.db`).
//!
//! It does exactly what td's own sync code does to its database — read pending action_log rows
//! as push events, mark acknowledged ones synced, apply pulled pages with the shared apply
//! engine ([`tdsync_projection::Applier`]), keep the cursor and td's sync bookkeeping tables —
//! so a td database synced by tdsync looks as if td had synced it. Every write holds td's
//! writer lock ([`lock`]) and is one short SQLite transaction; nothing here does network I/O.

mod backfill;
mod error;
mod go_json;
mod history;
mod integrity;
pub mod lock;
mod pending;
mod pull_apply;
mod pushed;
mod schema;
mod state;
mod td_time;

use std::{
    cell::{Cell, RefCell},
    path::{Path, PathBuf},
    time::Duration,
};

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};
use tdsync_projection::Applier;

pub use error::TdDbError;
pub use integrity::{Damage, IntegrityWarning, TableUse};
pub use lock::{DEFAULT_LOCK_TIMEOUT, LockGuard, WriteLock};
pub use pending::{Pending, Unsendable, UnsendableReason};
pub use pull_apply::{PageOutcome, SkipReason, SkippedEvent};
pub use pushed::acks_of;
pub use schema::{FK_ENFORCED_FROM, MAX_SCHEMA, MIN_SCHEMA};
pub use state::{Link, SyncState};

use error::SqlContext;

/// How long to wait for td's writer lock and for SQLite's own locks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TdDbOptions {
    /// Wait for `.todos/db.lock` (td: 5 s).
    pub lock_timeout: Duration,
    /// SQLite `busy_timeout` (td: 5 s).
    pub busy_timeout: Duration,
}

impl Default for TdDbOptions {
    fn default() -> Self {
        TdDbOptions {
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            busy_timeout: Duration::from_secs(5),
        }
    }
}

/// One open td database. `Send` but not `Sync`: one thread uses it at a time (td's lock already
/// serialises writers across processes).
#[derive(Debug)]
pub struct TdDatabase {
    conn: Connection,
    path: PathBuf,
    lock: WriteLock,
    /// Built from this database's own tables, so a schema-27 file is handled with its columns.
    applier: RefCell<Applier>,
    /// SQLite's schema cookie when `applier` was built: td may migrate the file under us.
    schema_cookie: Cell<i64>,
    td_version: Cell<i64>,
    /// Whether this handle has run td's backfill: [`TdDatabase::pending`] runs it once per
    /// handle, as td runs it once per push, so paging through a backlog never re-synthesises.
    backfill_ran: Cell<bool>,
    /// Rowids of undone creates to send after all, found by [`TdDatabase::pending`].
    lost_creates: RefCell<std::collections::BTreeSet<i64>>,
    /// What the last integrity check found that sync proceeds on.
    integrity_warnings: RefCell<Vec<IntegrityWarning>>,
    #[cfg(feature = "fault-injection")]
    apply_fault: Cell<Option<tdsync_projection::ApplyFault>>,
}

impl TdDatabase {
    /// Opens an existing td database (`.todos/issues.db`), schema 27..=38, with td's pragmas,
    /// checks its integrity ([`TdDatabase::check_integrity`]: damage confined to tables sync
    /// never touches becomes [`TdDatabase::integrity_warnings`], any other is
    /// [`TdDbError::Corrupt`]), and creates the sync tables its schema lacks.
    pub fn open(db_path: &Path) -> Result<TdDatabase, TdDbError> {
        TdDatabase::open_with(db_path, TdDbOptions::default())
    }

    pub fn open_with(db_path: &Path, options: TdDbOptions) -> Result<TdDatabase, TdDbError> {
        if !db_path.is_file() {
            return Err(TdDbError::NotFound {
                path: db_path.to_path_buf(),
            });
        }
        // Never CREATE: a typo'd path must not become an empty database.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(db_path, flags).ctx(db_path, "open")?;
        TdDatabase::init(conn, db_path, options)
    }

    /// Creates a fresh td database (schema 38, as `td init` makes it) at `db_path`, creating
    /// the directory (`.todos/`) as needed. Refuses to overwrite an existing file.
    pub fn create(db_path: &Path) -> Result<TdDatabase, TdDbError> {
        TdDatabase::create_with(db_path, TdDbOptions::default())
    }

    pub fn create_with(db_path: &Path, options: TdDbOptions) -> Result<TdDatabase, TdDbError> {
        if let Some(dir) = db_path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| TdDbError::Io {
                path: dir.to_path_buf(),
                op: "create database directory",
                source,
            })?;
        }
        let lock = WriteLock::for_database(db_path, options.lock_timeout);
        let guard = lock.acquire()?;
        if db_path.exists() {
            return Err(TdDbError::AlreadyExists {
                path: db_path.to_path_buf(),
            });
        }
        let built = TdDatabase::build_fresh(db_path, options.busy_timeout);
        if built.is_err() {
            // Leave nothing half-made behind: a later create would refuse it, open would reject it.
            let _ = std::fs::remove_file(db_path);
        }
        let conn = built?;
        drop(guard);
        TdDatabase::init(conn, db_path, options)
    }

    fn build_fresh(db_path: &Path, busy_timeout: Duration) -> Result<Connection, TdDbError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(db_path, flags).ctx(db_path, "create")?;
        schema::apply_pragmas(&conn, db_path, busy_timeout)?;
        let tx = Transaction::new_unchecked(&conn, TransactionBehavior::Immediate)
            .ctx(db_path, "begin create")?;
        tdsync_projection::schema::create_td_database(&tx).ctx(db_path, "create td schema")?;
        tx.commit().ctx(db_path, "commit create")?;
        Ok(conn)
    }

    fn init(conn: Connection, path: &Path, options: TdDbOptions) -> Result<TdDatabase, TdDbError> {
        schema::apply_pragmas(&conn, path, options.busy_timeout)?;
        // Before anything reads td's tables: a damaged index can make a read lie.
        let warnings = integrity::check(&conn, path)?;
        let version = schema::check_version(&conn, path)?;
        schema::set_foreign_keys(&conn, path, version)?;
        let lock = WriteLock::for_database(path, options.lock_timeout);
        let missing = schema::missing_sync_tables(&conn, path)?;
        if !missing.is_empty() {
            let _guard = lock.acquire()?;
            let tx = Transaction::new_unchecked(&conn, TransactionBehavior::Immediate)
                .ctx(path, "begin sync table creation")?;
            schema::create_sync_tables(&tx, path, &missing)?;
            tx.commit().ctx(path, "commit sync table creation")?;
        }
        let applier = Applier::new(&conn).ctx(path, "read synced tables")?;
        let cookie = schema_cookie(&conn).ctx(path, "read schema cookie")?;
        Ok(TdDatabase {
            conn,
            path: path.to_path_buf(),
            lock,
            applier: RefCell::new(applier),
            schema_cookie: Cell::new(cookie),
            td_version: Cell::new(version),
            backfill_ran: Cell::new(false),
            lost_creates: RefCell::default(),
            integrity_warnings: RefCell::new(warnings),
            #[cfg(feature = "fault-injection")]
            apply_fault: Cell::new(None),
        })
    }

    /// td's schema version (`schema_info.version`) of this file.
    pub fn schema_version(&self) -> i64 {
        self.td_version.get()
    }

    /// The raw connection, for reads in tests and harnesses. Writes must go through the
    /// adapter, which takes td's lock.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// td's writer lock for this database (e.g. to hold it across a maintenance step).
    pub fn write_lock(&self) -> &WriteLock {
        &self.lock
    }

    /// SQLite's integrity check (td runs `quick_check` before every sync), judged table by
    /// table: damage only in tables sync never reads or writes comes back as warnings (also kept
    /// for [`TdDatabase::integrity_warnings`]) and sync may proceed; damage anywhere else is
    /// [`TdDbError::Corrupt`], naming each table, the rows SQLite names and the recovery.
    pub fn check_integrity(&self) -> Result<Vec<IntegrityWarning>, TdDbError> {
        let warnings = integrity::check(&self.conn, &self.path)?;
        self.integrity_warnings.replace(warnings.clone());
        Ok(warnings)
    }

    /// What the last integrity check (at open, or [`TdDatabase::check_integrity`]) found that
    /// sync proceeds on: damage confined to tables it never reads or writes, each with its fix.
    pub fn integrity_warnings(&self) -> Vec<IntegrityWarning> {
        self.integrity_warnings.borrow().clone()
    }

    /// Runs `f` in one IMMEDIATE transaction while holding td's writer lock; commits when `f`
    /// succeeds, rolls back otherwise. IMMEDIATE takes SQLite's write lock up front (waiting
    /// `busy_timeout`), so a page never fails half-way because a reader upgraded first.
    fn write<T>(
        &self,
        what: &str,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, TdDbError>,
    ) -> Result<T, TdDbError> {
        let _guard = self.lock.acquire()?;
        // td migrates under the same lock, so the schema cannot change again until we release.
        self.refresh_schema()?;
        let tx = Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)
            .ctx(&self.path, &format!("begin {what}"))?;
        let out = f(&tx)?;
        tx.commit().ctx(&self.path, &format!("commit {what}"))?;
        Ok(out)
    }

    /// Gives this replica a deliberately wrong apply rule (tests of the oracle only).
    #[cfg(feature = "fault-injection")]
    pub fn inject_apply_fault(&self, fault: Option<tdsync_projection::ApplyFault>) {
        self.apply_fault.set(fault);
        self.applier.borrow_mut().inject_fault(fault);
    }

    /// Follows td when it migrated the file since we last looked: its version decides foreign
    /// key enforcement, its tables the apply engine's columns. Outside any transaction.
    fn refresh_schema(&self) -> Result<(), TdDbError> {
        let conn = &self.conn;
        let cookie = schema_cookie(conn).ctx(&self.path, "read schema cookie")?;
        if cookie != self.schema_cookie.get() {
            let version = schema::check_version(conn, &self.path)?;
            schema::set_foreign_keys(conn, &self.path, version)?;
            #[cfg_attr(not(feature = "fault-injection"), allow(unused_mut))]
            let mut applier = Applier::new(conn).ctx(&self.path, "read synced tables")?;
            #[cfg(feature = "fault-injection")]
            applier.inject_fault(self.apply_fault.get());
            *self.applier.borrow_mut() = applier;
            self.schema_cookie.set(cookie);
            self.td_version.set(version);
        }
        Ok(())
    }
}

fn schema_cookie(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA schema_version", [], |r| r.get(0))
}

/// The current time as td's SQLite driver writes a time value (`2006-01-02 15:04:05.9-07:00`),
/// in UTC.
fn now_sqlite_text() -> String {
    tdsync_protocol::timestamp::format_sqlite(&chrono::Utc::now().fixed_offset())
}

/// A cell as text whatever its storage class: td declares these columns TEXT or DATETIME, but a
/// hand-edited database may hold anything, and reading must not fail on it.
fn cell_text(v: rusqlite::types::Value) -> Option<String> {
    use rusqlite::types::Value;
    match v {
        Value::Null => None,
        Value::Text(s) => Some(s),
        Value::Integer(i) => Some(i.to_string()),
        Value::Real(f) => Some(f.to_string()),
        Value::Blob(b) => Some(String::from_utf8_lossy(&b).into_owned()),
    }
}
