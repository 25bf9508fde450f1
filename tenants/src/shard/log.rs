//! Appending to the log and applying a logged event to the projection, with the bookkeeping
//! that goes with it (row versions, conflicts, skips). Push, restore and rebuild all go through
//! these two functions, so the projection is always "the log, applied in seq order".

use rusqlite::{OptionalExtension, Transaction, params};
use tdsync_projection::{Applier, Effect, Event, value::row_to_json};
use tdsync_protocol::EntityType;

/// Failures while logging or projecting; the shard adds its path when reporting them.
#[derive(Debug)]
pub(crate) enum LogError {
    Sql(rusqlite::Error),
    /// Applying failed for a reason a retry may clear (I/O, full disk): the push is aborted.
    Transient {
        seq: i64,
        source: tdsync_projection::ApplyError,
    },
}

impl From<rusqlite::Error> for LogError {
    fn from(e: rusqlite::Error) -> LogError {
        LogError::Sql(e)
    }
}

/// An event about to be logged, already validated and normalised.
pub(crate) struct NewEvent<'a> {
    pub device_id: &'a str,
    pub session_id: &'a str,
    pub client_action_id: i64,
    pub action_type: &'a str,
    pub entity_type: &'a str,
    pub entity_id: &'a str,
    pub payload: &'a str,
    pub client_timestamp: &'a str,
}

impl NewEvent<'_> {
    /// The event as the apply engine sees it once logged as `seq`.
    pub fn at(&self, seq: i64) -> Event<'_> {
        Event {
            server_seq: seq,
            device_id: self.device_id,
            action_type: self.action_type,
            entity_type: self.entity_type,
            entity_id: self.entity_id,
            payload: self.payload,
            client_timestamp: self.client_timestamp,
        }
    }
}

/// One logged event as the log holds it, byte for byte: what backups ship and restores append.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LoggedEvent {
    pub server_seq: i64,
    pub device_id: String,
    pub session_id: String,
    pub client_action_id: i64,
    pub action_type: String,
    pub entity_type: String,
    pub entity_id: String,
    pub payload: String,
    pub client_timestamp: String,
    pub server_timestamp: String,
}

impl LoggedEvent {
    pub(crate) fn as_new(&self) -> NewEvent<'_> {
        NewEvent {
            device_id: &self.device_id,
            session_id: &self.session_id,
            client_action_id: self.client_action_id,
            action_type: &self.action_type,
            entity_type: &self.entity_type,
            entity_id: &self.entity_id,
            payload: &self.payload,
            client_timestamp: &self.client_timestamp,
        }
    }
}

/// Up to `limit` logged events with `after < seq <= up_to`, in seq order.
pub(crate) fn read_logged(
    conn: &rusqlite::Connection,
    after: i64,
    up_to: i64,
    limit: i64,
) -> rusqlite::Result<Vec<LoggedEvent>> {
    conn.prepare_cached(
        "SELECT server_seq, device_id, session_id, client_action_id, action_type, entity_type, \
         entity_id, payload, client_timestamp, server_timestamp FROM events \
         WHERE server_seq > ?1 AND server_seq <= ?2 ORDER BY server_seq LIMIT ?3",
    )?
    .query_map(params![after, up_to, limit], |r| {
        Ok(LoggedEvent {
            server_seq: r.get(0)?,
            device_id: r.get(1)?,
            session_id: r.get(2)?,
            client_action_id: r.get(3)?,
            action_type: r.get(4)?,
            entity_type: r.get(5)?,
            entity_id: r.get(6)?,
            payload: r.get(7)?,
            client_timestamp: r.get(8)?,
            server_timestamp: r.get(9)?,
        })
    })?
    .collect()
}

/// Logs an event under the seq it already has (a restore), applying nothing. Refused when the
/// seq, or the event's (device, session, client action id), is logged already.
pub(crate) fn append_at(tx: &Transaction<'_>, ev: &LoggedEvent) -> rusqlite::Result<()> {
    if insert(tx, Some(ev.server_seq), &ev.as_new(), &ev.server_timestamp)? {
        return Ok(());
    }
    Err(rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT),
        Some(format!(
            "event {} (device {}, session {}, client action {}) is logged already",
            ev.server_seq, ev.device_id, ev.session_id, ev.client_action_id
        )),
    ))
}

/// Inserts the event — under `seq`, or the next one when None — unless its (device, session,
/// client action id) is logged already; whether it was.
fn insert(
    tx: &Transaction<'_>,
    seq: Option<i64>,
    ev: &NewEvent<'_>,
    server_timestamp: &str,
) -> rusqlite::Result<bool> {
    let inserted = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO events (server_seq, device_id, session_id, client_action_id, \
             action_type, entity_type, entity_id, payload, client_timestamp, server_timestamp) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?
        .execute(params![
            seq,
            ev.device_id,
            ev.session_id,
            ev.client_action_id,
            ev.action_type,
            ev.entity_type,
            ev.entity_id,
            ev.payload,
            ev.client_timestamp,
            server_timestamp
        ])?;
    Ok(inserted == 1)
}

pub(crate) enum Appended {
    New(i64),
    Duplicate(i64),
}

/// Inserts unless (device, session, client_action_id) is already logged; then answers with the
/// original seq, as td's server does.
pub(crate) fn append(
    tx: &Transaction<'_>,
    ev: &NewEvent<'_>,
    server_timestamp: &str,
) -> rusqlite::Result<Appended> {
    if insert(tx, None, ev, server_timestamp)? {
        return Ok(Appended::New(tx.last_insert_rowid()));
    }
    let seq = tx
        .prepare_cached(
            "SELECT server_seq FROM events \
             WHERE device_id = ?1 AND session_id = ?2 AND client_action_id = ?3",
        )?
        .query_row(
            params![ev.device_id, ev.session_id, ev.client_action_id],
            |r| r.get(0),
        )?;
    Ok(Appended::Duplicate(seq))
}

/// Whether applying should also record conflicts. A rebuild re-derives the projection only
/// (the conflict log is history and is kept as it is), so it skips before-images entirely.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Conflicts {
    Record,
    Keep,
}

/// Applies logged event `seq` to the projection. Permanent failures and deliberate skips are
/// recorded in `projection_skips` (the event stays in the log); a transient failure aborts the
/// caller's transaction.
pub(crate) fn project(
    tx: &Transaction<'_>,
    applier: &Applier,
    seq: i64,
    ev: &NewEvent<'_>,
    server_timestamp: &str,
    conflicts: Conflicts,
) -> Result<(), LogError> {
    let event = ev.at(seq);
    let result = match conflicts {
        Conflicts::Record => applier.apply(tx, &event),
        Conflicts::Keep => applier.replay(tx, &event),
    };
    let applied = match result {
        Ok(applied) => applied,
        Err(e) if e.is_permanent() => return Ok(skip(tx, seq, "quarantined", &e.to_string())?),
        Err(e) => return Err(LogError::Transient { seq, source: e }),
    };
    match &applied.effect {
        Effect::Orphaned(o) => return Ok(skip(tx, seq, "orphaned_parent", &o.to_string())?),
        Effect::CycleSkipped => {
            return Ok(skip(
                tx,
                seq,
                "dependency_cycle",
                "a smaller edge of the cycle wins",
            )?);
        }
        Effect::Unchanged => return Ok(()),
        _ => {}
    }
    if conflicts == Conflicts::Record && !applied.clobbered.is_empty() {
        record_conflict(tx, &applied, seq, ev, server_timestamp)?;
    }
    Ok(())
}

/// Stores a clobbered version with both sides. The clobbered side's writer is the latest earlier
/// event on the entity that the projection applied (found through the log's entity index, so
/// no bookkeeping is paid on the write path of the many events that clobber nothing).
fn record_conflict(
    tx: &Transaction<'_>,
    applied: &tdsync_projection::Applied,
    seq: i64,
    ev: &NewEvent<'_>,
    server_timestamp: &str,
) -> rusqlite::Result<()> {
    let entity = applied.entity.as_str();
    let prior: Option<(i64, String)> = tx
        .prepare_cached(
            "SELECT server_seq, device_id FROM events \
             WHERE entity_type = ?1 AND entity_id = ?2 AND server_seq < ?3 \
             AND server_seq NOT IN (SELECT server_seq FROM projection_skips) \
             ORDER BY server_seq DESC LIMIT 1",
        )?
        .query_row(params![entity, ev.entity_id, seq], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    let clobbered = applied
        .before
        .as_ref()
        .map(|r| scrubbed_json(applied.entity, r));
    let winning = applied
        .after
        .as_ref()
        .map(|r| scrubbed_json(applied.entity, r));
    tx.prepare_cached(
        "INSERT INTO conflicts (entity_type, entity_id, fields, clobbered_row, clobbered_seq, \
         clobbered_device, winning_row, winning_seq, winning_device, recorded_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        entity,
        ev.entity_id,
        serde_json::to_string(&applied.clobbered).unwrap_or_default(),
        clobbered.unwrap_or_default(),
        prior.as_ref().map(|p| p.0),
        prior.as_ref().map(|p| p.1.as_str()),
        winning,
        seq,
        ev.device_id,
        server_timestamp,
    ])?;
    Ok(())
}

fn skip(tx: &Transaction<'_>, seq: i64, reason: &str, detail: &str) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO projection_skips (server_seq, reason, detail) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![seq, reason, detail])?;
    Ok(())
}

/// A row as JSON text without the entity's local-only columns (they never leave a machine).
fn scrubbed_json(entity: EntityType, row: &tdsync_projection::Row) -> String {
    let mut v = row_to_json(row);
    if let Some(m) = v.as_object_mut() {
        for f in entity.local_only_fields() {
            m.remove(*f);
        }
    }
    v.to_string()
}
