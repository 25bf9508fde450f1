//! The link to a sync project and the sync cursor: td's one-row `sync_state` table.

use chrono::{DateTime, FixedOffset};
use rusqlite::{Connection, OptionalExtension};

use tdsync_protocol::timestamp;

use super::{TdDatabase, cell_text, error::SqlContext, error::TdDbError};

/// td's `sync_state` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncState {
    pub project_id: String,
    /// Highest acknowledged action_log rowid (informational, as in td).
    pub last_pushed_action_id: i64,
    /// The pull cursor: every server event up to this seq has been applied or recorded.
    pub last_pulled_server_seq: i64,
    /// As stored (td writes SQLite's `CURRENT_TIMESTAMP`, UTC).
    pub last_sync_at: Option<String>,
    pub sync_disabled: bool,
}

impl SyncState {
    /// `last_sync_at` as an instant; `None` when never synced or unreadable.
    pub fn last_sync_time(&self) -> Option<DateTime<FixedOffset>> {
        self.last_sync_at.as_deref().and_then(timestamp::parse)
    }
}

/// What [`TdDatabase::link`] changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// Already linked to that project; cursor and marks kept.
    Unchanged,
    /// Linked a database that had no link.
    Linked,
    /// Moved from another project: the cursor restarts at 0 and every action_log row that was
    /// pushed to the old project is pending again, so the new project receives the whole
    /// history (what `td sync-project link --force` does).
    Relinked {
        previous_project: String,
        reset_events: usize,
    },
}

impl TdDatabase {
    /// Links this database to a sync project (td's `sync-project link`).
    pub fn link(&self, project_id: &str) -> Result<Link, TdDbError> {
        if project_id.trim().is_empty() {
            return Err(TdDbError::InvalidArgument {
                path: self.path.clone(),
                detail: "empty project id".into(),
            });
        }
        let path = &self.path;
        self.write("link", |tx| {
            let rows: i64 = tx
                .query_row("SELECT count(*) FROM sync_state", [], |r| r.get(0))
                .ctx(path, "read sync_state")?;
            let current = read_state(tx).ctx(path, "read sync_state")?;
            // What the new row starts from: the same project keeps its cursor.
            let (outcome, kept) = match current {
                Some(s) if s.project_id == project_id && rows == 1 => return Ok(Link::Unchanged),
                // Same project but duplicate rows (td's link can leave two): keep one.
                Some(s) if s.project_id == project_id => (Link::Linked, Some(s)),
                Some(s) => {
                    let reset = tx
                        .execute(
                            "UPDATE action_log SET synced_at = NULL, server_seq = NULL \
                             WHERE synced_at IS NOT NULL",
                            [],
                        )
                        .ctx(path, "reset pushed marks")?;
                    let outcome = Link::Relinked {
                        previous_project: s.project_id,
                        reset_events: reset,
                    };
                    (outcome, None)
                }
                None => (Link::Linked, None),
            };
            let (pushed, pulled, last_sync) = kept.map_or((0, 0, None), |s| {
                (
                    s.last_pushed_action_id,
                    s.last_pulled_server_seq,
                    s.last_sync_at,
                )
            });
            tx.execute("DELETE FROM sync_state", [])
                .ctx(path, "clear sync_state")?;
            tx.execute(
                "INSERT INTO sync_state (project_id, last_pushed_action_id, \
                 last_pulled_server_seq, last_sync_at, sync_disabled) VALUES (?1, ?2, ?3, ?4, 0)",
                rusqlite::params![project_id, pushed, pulled, last_sync],
            )
            .ctx(path, "write sync_state")?;
            Ok(outcome)
        })
    }

    /// The link and cursor, or `None` when the database is not linked.
    pub fn sync_state(&self) -> Result<Option<SyncState>, TdDbError> {
        read_state(&self.conn).ctx(&self.path, "read sync_state")
    }
}

/// The row td reads (`LIMIT 1`, first row).
pub(crate) fn read_state(conn: &Connection) -> rusqlite::Result<Option<SyncState>> {
    conn.query_row(
        "SELECT project_id, COALESCE(last_pushed_action_id, 0), \
                COALESCE(last_pulled_server_seq, 0), last_sync_at, COALESCE(sync_disabled, 0) \
         FROM sync_state LIMIT 1",
        [],
        |r| {
            Ok(SyncState {
                project_id: r.get(0)?,
                last_pushed_action_id: r.get(1)?,
                last_pulled_server_seq: r.get(2)?,
                last_sync_at: cell_text(r.get(3)?),
                sync_disabled: r.get::<_, i64>(4)? != 0,
            })
        },
    )
    .optional()
}

/// td's backfill gate: the highest cursor of any row, 0 when unlinked.
pub(crate) fn max_pulled_seq(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT COALESCE(MAX(last_pulled_server_seq), 0) FROM sync_state",
        [],
        |r| r.get(0),
    )
}
