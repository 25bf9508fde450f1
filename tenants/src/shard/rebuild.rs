//! Re-deriving the projection from the log: verifying that the live projection equals a fresh
//! replay, rebuilding it in place, and replaying a prefix of the log (for history).

use std::{path::Path, time::Instant};

use rusqlite::{Connection, Transaction};
use serde::Serialize;
use tdsync_projection::{Applier, Dump, schema::BUILTIN_ROWS_SQL};

use super::{
    SHARD_SQL, Shard,
    log::{Conflicts, LogError, LoggedEvent, project, read_logged},
};
use crate::error::StoreError;

/// The result of a rebuild check or an in-place rebuild.
#[derive(Debug, Clone, Serialize)]
pub struct RebuildReport {
    pub events: i64,
    pub rows: usize,
    pub millis: u128,
    /// Whether the fresh replay equals the live projection (always true after an in-place
    /// rebuild, which replaces it).
    pub matches: bool,
    /// The first difference, when there is one.
    pub divergence: Option<String>,
}

const PAGE: i64 = 1000;

/// Calls `f` for every logged event with `after < seq <= up_to`, in seq order, a page at a time.
fn for_each_logged(
    src: &Connection,
    up_to: i64,
    mut f: impl FnMut(&LoggedEvent) -> Result<(), LogError>,
) -> Result<i64, LogError> {
    let mut after = 0;
    let mut n = 0;
    loop {
        let page = read_logged(src, after, up_to, PAGE)?;
        let Some(last) = page.last() else {
            return Ok(n);
        };
        after = last.server_seq;
        for ev in &page {
            f(ev)?;
            n += 1;
        }
    }
}

/// A fresh in-memory projection with the shard's bookkeeping tables.
pub(super) fn scratch_projection() -> rusqlite::Result<Connection> {
    let conn = Connection::open_in_memory()?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.execute_batch(SHARD_SQL)?;
    super::create_projection(&conn)?;
    Ok(conn)
}

/// Replays the whole log of the shard open on `conn` into a scratch projection and compares it
/// with the live one, in one read transaction (the log and the projection at one snapshot).
pub(crate) fn check_against_replay(
    conn: &Connection,
    path: &Path,
) -> Result<RebuildReport, StoreError> {
    let started = Instant::now();
    let sql = |e| StoreError::sql(path, e);
    conn.execute_batch("BEGIN").map_err(sql)?;
    let result = (|| {
        let mut scratch = scratch_projection().map_err(sql)?;
        let tx = scratch.transaction().map_err(sql)?;
        let events = replay(conn, &tx, i64::MAX).map_err(|e| match e {
            LogError::Sql(e) => sql(e),
            LogError::Transient { seq, source } => StoreError::ApplyFailed {
                path: path.to_path_buf(),
                seq,
                source,
            },
        })?;
        tx.commit().map_err(sql)?;
        let fresh = Dump::read(&scratch).map_err(sql)?;
        let live = Dump::read(conn).map_err(sql)?;
        let divergence = live.first_difference(&fresh).map(|d| d.to_string());
        Ok(RebuildReport {
            events,
            rows: live.row_count(),
            millis: started.elapsed().as_millis(),
            matches: divergence.is_none(),
            divergence,
        })
    })();
    let _ = conn.execute_batch("COMMIT");
    result
}

/// Applies the log up to `up_to` from `src` onto `target` (inside `tx`).
fn replay(src: &Connection, tx: &Transaction<'_>, up_to: i64) -> Result<i64, LogError> {
    let applier = Applier::new(tx)?;
    for_each_logged(src, up_to, |ev| {
        project(
            tx,
            &applier,
            ev.server_seq,
            &ev.as_new(),
            &ev.server_timestamp,
            Conflicts::Keep,
        )
    })
}

impl Shard {
    /// Replays the whole log into a scratch projection and compares it with the live one.
    pub(crate) fn rebuild_check(&self) -> Result<RebuildReport, StoreError> {
        self.read(|conn| check_against_replay(conn, &self.path))
    }

    /// Throws the projection (and its skip records) away and re-derives it from the
    /// log, in one transaction. The log and the conflict log are untouched.
    pub(crate) fn rebuild_in_place(&self) -> Result<RebuildReport, StoreError> {
        let started = Instant::now();
        self.write(0, |tx, _| {
            let sql = |e| self.sql_err(e);
            // Children first, so no cascade has anything left to do.
            for entity in tdsync_protocol::EntityType::SYNCED.iter().rev() {
                tx.execute(&format!("DELETE FROM {}", entity.table()), [])
                    .map_err(sql)?;
            }
            tx.execute_batch("DELETE FROM projection_skips;")
                .map_err(sql)?;
            tx.execute_batch(BUILTIN_ROWS_SQL).map_err(sql)?;
            let events = replay(tx, tx, i64::MAX).map_err(|e| self.log_err(e))?;
            let rows = Dump::read(tx).map_err(sql)?.row_count();
            Ok((
                RebuildReport {
                    events,
                    rows,
                    millis: started.elapsed().as_millis(),
                    matches: true,
                    divergence: None,
                },
                None,
            ))
        })
    }

    /// A scratch projection holding the state after every event up to `up_to`.
    pub(crate) fn projection_at(&self, up_to: i64) -> Result<Connection, StoreError> {
        self.read(|conn| {
            let mut scratch = scratch_projection().map_err(|e| self.sql_err(e))?;
            let tx = scratch.transaction().map_err(|e| self.sql_err(e))?;
            replay(conn, &tx, up_to).map_err(|e| self.log_err(e))?;
            tx.commit().map_err(|e| self.sql_err(e))?;
            Ok(scratch)
        })
    }
}
