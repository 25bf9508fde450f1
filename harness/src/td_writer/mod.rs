//! A simulated td CLI: td-like mutations on a real td database, each written as td v0.62
//! writes it — the row change, its `action_log` row (the sync event), td's side rows (logs,
//! handoffs, reviews, session history) and td's cascades — in one transaction under td's
//! writer lock, so that tdsync's sync client can push the result like any td change.
//!
//! What td refuses (or treats as a no-op) is answered with [`WriterError::Refused`] and writes
//! nothing; a missing or soft-deleted issue is [`WriterError::NotFound`]. `Ok` always means
//! rows were written. Ids come from a seeded generator (reproducible runs); timestamps come
//! from the real clock, optionally skewed.

mod action_log;
mod activity;
mod boards;
mod cascade;
mod clock;
mod error;
mod gojson;
mod history;
mod ids;
mod issue;
mod issues;
mod logged;
mod notes;
mod policy;
mod raw;
mod reads;
mod relations;
mod reviews;
mod schema;
mod spec;
mod undo;
mod work_sessions;
mod workflow;

use std::path::{Path, PathBuf};

use rusqlite::{Connection, Transaction, TransactionBehavior};
use sha2::{Digest, Sha256};
use tdsync_client::tddb::TdDatabase;

pub use error::WriterError;
pub use reads::{IssueSnapshot, NoteSnapshot, WorkSessionSnapshot};
pub use schema::written_tables;
pub use spec::{HandoffSpec, IssueChange, IssueSpec, LogType};

use clock::Clock;
use error::Sql;
use ids::IdGen;
use schema::Schema;

/// One simulated td client session writing to one td database.
pub struct TdWriter<'a> {
    db: &'a TdDatabase,
    session: String,
    ids: IdGen,
    clock: Clock,
    schema: Option<Schema>,
    /// td's per-session "active work session" pointer (td keeps it in local state).
    active_ws: Option<String>,
    worktree: Worktree,
}

/// Where td says the work happens (work sessions record it; local-only, never synced).
#[derive(Debug, Clone)]
pub(crate) struct Worktree {
    pub id: String,
    pub root: String,
}

/// Everything one mutation needs, inside its transaction.
pub(crate) struct Ctx<'t> {
    pub conn: &'t Connection,
    pub schema: &'t Schema,
    pub session: &'t str,
    pub ids: &'t mut IdGen,
    pub clock: &'t mut Clock,
    pub worktree: &'t Worktree,
}

impl<'a> TdWriter<'a> {
    /// A writer acting as td session `session_id` (td's `ses_…` ids; any text works). `seed`
    /// (mixed with the session id) drives every id it mints.
    pub fn new(db: &'a TdDatabase, session_id: &str, seed: u64) -> Self {
        TdWriter {
            db,
            session: session_id.to_string(),
            ids: IdGen::new(seed, session_id),
            clock: Clock::new(),
            schema: None,
            active_ws: None,
            worktree: worktree_of(db.path()),
        }
    }

    /// Shifts every timestamp td would write by `skew` (row times and action_log times).
    pub fn with_clock_skew(mut self, skew: chrono::Duration) -> Self {
        self.clock.set_skew(skew);
        self
    }

    pub fn session_id(&self) -> &str {
        &self.session
    }

    pub fn database(&self) -> &'a TdDatabase {
        self.db
    }

    /// Resumes td's per-session pointer to the open work session (td keeps it in local state
    /// between commands; a simulated client keeps it between writers).
    pub fn with_active_work_session(mut self, id: Option<String>) -> Self {
        self.active_ws = id;
        self
    }

    /// The work session this writer started and has not ended (td's active work session).
    pub fn active_work_session(&self) -> Option<&str> {
        self.active_ws.as_deref()
    }

    /// Runs `f` in one IMMEDIATE transaction under td's writer lock; commits on success. A
    /// refusal rolls back, so nothing a refused command touched is left behind.
    fn write<T>(
        &mut self,
        f: impl FnOnce(&mut Ctx<'_>) -> Result<T, WriterError>,
    ) -> Result<T, WriterError> {
        let _guard = self.db.write_lock().acquire()?;
        let conn = self.db.connection();
        // Under the lock: td migrates under the same lock, so the schema cannot move now.
        self.refresh_schema(conn)?;
        let Some(schema) = self.schema.as_ref() else {
            return Err(WriterError::BadData("schema not read".into()));
        };
        let tx =
            Transaction::new_unchecked(conn, TransactionBehavior::Immediate).op("begin write")?;
        let mut ctx = Ctx {
            conn: &tx,
            schema,
            session: &self.session,
            ids: &mut self.ids,
            clock: &mut self.clock,
            worktree: &self.worktree,
        };
        let out = f(&mut ctx)?;
        tx.commit().op("commit write")?;
        Ok(out)
    }

    fn refresh_schema(&mut self, conn: &Connection) -> Result<(), WriterError> {
        let cookie = schema::cookie(conn)?;
        if self.schema.as_ref().is_none_or(|s| s.cookie != cookie) {
            self.schema = Some(Schema::read(conn)?);
        }
        Ok(())
    }

    /// The schema as of now, for reads outside a write.
    fn current_schema(&mut self) -> Result<&Schema, WriterError> {
        self.refresh_schema(self.db.connection())?;
        self.schema
            .as_ref()
            .ok_or_else(|| WriterError::BadData("schema not read".into()))
    }
}

/// td's worktree identity for the project holding `.todos/issues.db`.
fn worktree_of(db_path: &Path) -> Worktree {
    let project = db_path
        .parent()
        .and_then(Path::parent)
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let root = std::fs::canonicalize(&project).unwrap_or(project);
    let root = root.to_string_lossy().into_owned();
    let digest = Sha256::digest(root.as_bytes());
    Worktree {
        id: format!("wt_{}", &hex::encode(digest)[..12]),
        root,
    }
}
