//! Applying one pulled page to the td database, with td v0.62's outcome rules.
//!
//! The apply rules themselves are the shared engine's ([`tdsync_projection::Applier`]), so this
//! client's database converges with the server's projection by construction. What is decided
//! here is what td's pull loop decides around them: orphans and permanently failing events are
//! recorded in `sync_skipped_events` and stepped over, a transient failure rolls the whole page
//! back with the cursor kept, overwrites of local edits by other devices are kept in
//! `sync_conflicts`, and the cursor moves in the same transaction as the rows.

use std::{collections::HashSet, path::Path};

use chrono::{DateTime, FixedOffset};
use rusqlite::{Connection, params, types::Value as SqlValue};
use serde::Deserialize;
use serde_json::value::RawValue;
use tdsync_projection::{Applied, Applier, Effect, Event, value::row_to_json};
use tdsync_protocol::{EntityType, Envelope, payload::go_marshal, wire::PullEvent};

use super::{
    TdDatabase,
    error::{SqlContext, TdDbError},
    go_json,
    history::{self, Direction, Entry},
    now_sqlite_text,
    state::read_state,
    td_time,
};

/// What one page did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PageOutcome {
    /// Events applied (including those that found nothing to change), as td counts them.
    pub applied: usize,
    /// Events recorded in `sync_skipped_events` instead of applied.
    pub skipped: Vec<SkippedEvent>,
    /// Rows recorded in `sync_conflicts`.
    pub conflicts: usize,
    /// Entities whose rows this page changed, first change first (for UI subscribers).
    pub changed: Vec<(EntityType, String)>,
    /// The cursor after the page.
    pub cursor: i64,
}

/// A pulled event that was not applied, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedEvent {
    pub server_seq: i64,
    pub device_id: String,
    pub action_type: String,
    pub entity_type: String,
    pub entity_id: String,
    pub reason: SkipReason,
    pub error: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// A child whose `ON DELETE CASCADE` parent is gone: dropped on purpose, as on every peer.
    OrphanedParent,
    /// Fails the same way on every replay (bad payload, unknown type, constraint).
    Quarantined,
}

impl SkipReason {
    /// td's spelling in `sync_skipped_events.reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::OrphanedParent => "orphaned_parent",
            SkipReason::Quarantined => "quarantined",
        }
    }
}

impl TdDatabase {
    /// Applies one pulled page in one transaction under td's lock and moves the cursor to
    /// `page_last_server_seq` (never backwards). A transient failure of any event rolls the
    /// whole page back and returns [`TdDbError::TransientApply`] naming that event's seq; the
    /// cursor is unchanged and the page can be pulled again.
    ///
    /// Conflicts are judged against the stored `last_sync_at`, which is td's rule for a pull of
    /// one page. Each page moves `last_sync_at`, so for a pull of several pages use
    /// [`TdDatabase::apply_page_since`] with the time read before the first page, as td does.
    pub fn apply_page(
        &self,
        events: &[PullEvent],
        page_last_server_seq: i64,
        my_device_id: &str,
    ) -> Result<PageOutcome, TdDbError> {
        self.apply_page_gated(events, page_last_server_seq, my_device_id, Gate::Stored)
    }

    /// [`TdDatabase::apply_page`] with td's conflict gate given: local rows modified after
    /// `last_sync` count as overwritten local work; `None` (a first sync) records no conflicts.
    /// Pass `sync_state()?.last_sync_time()` as read after the push and before the first page,
    /// to every page of the pull.
    pub fn apply_page_since(
        &self,
        events: &[PullEvent],
        page_last_server_seq: i64,
        my_device_id: &str,
        last_sync: Option<DateTime<FixedOffset>>,
    ) -> Result<PageOutcome, TdDbError> {
        let gate = Gate::Given(last_sync);
        self.apply_page_gated(events, page_last_server_seq, my_device_id, gate)
    }

    fn apply_page_gated(
        &self,
        events: &[PullEvent],
        page_last_server_seq: i64,
        my_device_id: &str,
        gate: Gate,
    ) -> Result<PageOutcome, TdDbError> {
        let path = &self.path;
        self.write("pull page", |tx| {
            let state = read_state(tx)
                .ctx(path, "read sync_state")?
                .ok_or_else(|| TdDbError::NotLinked { path: path.clone() })?;
            if page_last_server_seq < state.last_pulled_server_seq {
                return Err(TdDbError::CursorBackwards {
                    path: path.clone(),
                    current: state.last_pulled_server_seq,
                    requested: page_last_server_seq,
                });
            }
            let applier = self.applier.borrow();
            let mut page = PageRun {
                path,
                applier: &applier,
                my_device_id,
                // No conflicts on a first sync (or when the stored time is unreadable).
                last_sync: match gate {
                    Gate::Stored => state.last_sync_time(),
                    Gate::Given(t) => t,
                },
                cursor: state.last_pulled_server_seq,
                out: PageOutcome::default(),
                seen: HashSet::new(),
                skipped_payloads: Vec::new(),
            };
            for ev in events {
                page.apply(tx, ev)?;
            }
            page.finish(tx, events, page_last_server_seq)
        })
    }
}

/// Where the conflict gate's time comes from.
enum Gate {
    Stored,
    Given(Option<DateTime<FixedOffset>>),
}

/// One page being applied inside its transaction.
struct PageRun<'a> {
    path: &'a Path,
    applier: &'a Applier,
    my_device_id: &'a str,
    last_sync: Option<DateTime<FixedOffset>>,
    /// The cursor before the page (what a rollback keeps).
    cursor: i64,
    out: PageOutcome,
    seen: HashSet<(EntityType, String)>,
    /// The payload of each entry of `out.skipped`, for the durable record.
    skipped_payloads: Vec<&'a str>,
}

impl<'a> PageRun<'a> {
    /// Applies one event and files its outcome. A transient failure is returned as the page's
    /// error; the caller's transaction then rolls back every event of the page.
    fn apply(&mut self, tx: &Connection, ev: &'a PullEvent) -> Result<(), TdDbError> {
        let event = Event {
            server_seq: ev.server_seq,
            device_id: &ev.device_id,
            action_type: &ev.action_type,
            entity_type: &ev.entity_type,
            entity_id: &ev.entity_id,
            payload: ev.payload.get(),
            client_timestamp: &ev.client_timestamp,
        };
        match self.applier.apply(tx, &event) {
            Ok(Applied {
                effect: Effect::Orphaned(orphan),
                ..
            }) => {
                let detail = format!("orphaned {}/{}: {orphan}", ev.entity_type, ev.entity_id);
                self.skip(ev, SkipReason::OrphanedParent, detail);
            }
            Ok(applied) => {
                self.out.applied += 1;
                let key = (applied.entity, ev.entity_id.clone());
                if applied.changed_anything() && self.seen.insert(key.clone()) {
                    self.out.changed.push(key);
                }
                let last_sync = self.last_sync.as_ref();
                if is_conflict(&applied, ev, self.my_device_id, last_sync, self.applier) {
                    record_conflict(tx, &applied, ev).ctx(self.path, "record sync conflict")?;
                    self.out.conflicts += 1;
                }
            }
            Err(e) if e.is_permanent() => {
                self.skip(ev, SkipReason::Quarantined, e.to_string());
            }
            Err(source) => {
                return Err(TdDbError::TransientApply {
                    path: self.path.to_path_buf(),
                    seq: ev.server_seq,
                    entity_type: ev.entity_type.clone(),
                    entity_id: ev.entity_id.clone(),
                    cursor: self.cursor,
                    source: Box::new(source),
                });
            }
        }
        Ok(())
    }

    fn skip(&mut self, ev: &'a PullEvent, reason: SkipReason, error: String) {
        self.out.skipped.push(SkippedEvent {
            server_seq: ev.server_seq,
            device_id: ev.device_id.clone(),
            action_type: ev.action_type.clone(),
            entity_type: ev.entity_type.clone(),
            entity_id: ev.entity_id.clone(),
            reason,
            error,
        });
        self.skipped_payloads.push(ev.payload.get());
    }

    /// td's bookkeeping, in the same transaction as the rows: skipped events, pull history for
    /// every event, and the cursor.
    fn finish(
        mut self,
        tx: &Connection,
        events: &[PullEvent],
        page_last_server_seq: i64,
    ) -> Result<PageOutcome, TdDbError> {
        let path = self.path;
        record_skipped(tx, &self.out.skipped, &self.skipped_payloads)
            .ctx(path, "record skipped events")?;
        let entries: Vec<Entry<'_>> = events
            .iter()
            .map(|ev| Entry {
                direction: Direction::Pull,
                action_type: &ev.action_type,
                entity_type: &ev.entity_type,
                entity_id: &ev.entity_id,
                server_seq: ev.server_seq,
                device_id: &ev.device_id,
            })
            .collect();
        history::record(tx, &entries).ctx(path, "record pull history")?;
        tx.execute(
            "UPDATE sync_state SET last_pulled_server_seq = ?1, \
             last_sync_at = CURRENT_TIMESTAMP",
            [page_last_server_seq],
        )
        .ctx(path, "move pull cursor")?;
        self.out.cursor = page_last_server_seq;
        Ok(self.out)
    }
}

/// td's conflict rule: the event rewrote an existing row through the upsert path, it comes
/// from another device (self-replays are never conflicts), this database has synced before,
/// and the old row was modified after that sync — judged by its `updated_at`, else `timestamp`,
/// else `created_at`; a row with no readable time counts as modified.
fn is_conflict(
    applied: &Applied,
    ev: &PullEvent,
    my_device_id: &str,
    last_sync: Option<&DateTime<FixedOffset>>,
    applier: &Applier,
) -> bool {
    if !applied.overwrote_existing_row() || ev.device_id == my_device_id {
        return false;
    }
    let (Some(last_sync), Some(before)) = (last_sync, applied.before.as_ref()) else {
        return false;
    };
    let table = applier.schema().table(applied.entity);
    for key in ["updated_at", "timestamp", "created_at"] {
        let Some(SqlValue::Text(text)) = before.get(key) else {
            continue;
        };
        let typed = table
            .and_then(|t| t.column(key))
            .is_some_and(|c| go_json::is_time_type(&c.decl_type));
        if let Some(modified) = td_time::parse_stored(typed, text) {
            return modified > *last_sync;
        }
    }
    true
}

/// Keeps the overwritten local row (local-only fields removed) next to the incoming data.
fn record_conflict(conn: &Connection, applied: &Applied, ev: &PullEvent) -> rusqlite::Result<()> {
    let local = applied.before.as_ref().map_or_else(
        || "null".to_string(),
        |row| {
            let mut json = row_to_json(row);
            if let Some(map) = json.as_object_mut() {
                for field in applied.entity.local_only_fields() {
                    map.remove(*field);
                }
            }
            go_marshal(&json)
        },
    );
    let remote = incoming_new_data(applied.entity, ev.payload.get());
    conn.prepare_cached(
        "INSERT INTO sync_conflicts \
         (entity_type, entity_id, server_seq, local_data, remote_data, overwritten_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        ev.entity_type,
        ev.entity_id,
        ev.server_seq,
        local,
        remote,
        now_sqlite_text()
    ])?;
    Ok(())
}

/// The event's `new_data` as received (td stores it unparsed), scrubbed of local-only fields
/// where the entity has any.
fn incoming_new_data(entity: EntityType, payload: &str) -> String {
    if !entity.local_only_fields().is_empty() {
        return match Envelope::parse(entity, payload) {
            Ok(env) => go_marshal(&serde_json::Value::Object(env.new_data)),
            Err(_) => "null".into(),
        };
    }
    #[derive(Deserialize)]
    struct Images<'a> {
        #[serde(borrow, default)]
        new_data: Option<&'a RawValue>,
    }
    serde_json::from_str::<Images<'_>>(payload)
        .ok()
        .and_then(|i| i.new_data)
        .map_or_else(|| "null".into(), |raw| raw.get().to_string())
}

/// td's `sync_skipped_events` rows, keyed by seq so a replayed page updates instead of piling up.
fn record_skipped(
    conn: &Connection,
    skipped: &[SkippedEvent],
    payloads: &[&str],
) -> rusqlite::Result<()> {
    if skipped.is_empty() {
        return Ok(());
    }
    let now = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S").to_string();
    let mut stmt = conn.prepare_cached(
        "INSERT OR REPLACE INTO sync_skipped_events \
         (server_seq, device_id, action_type, entity_type, entity_id, reason, error, payload, skipped_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    for (s, payload) in skipped.iter().zip(payloads) {
        let payload = Some(*payload).filter(|p| !p.is_empty());
        stmt.execute(params![
            s.server_seq,
            s.device_id,
            s.action_type,
            s.entity_type,
            s.entity_id,
            s.reason.as_str(),
            s.error,
            payload,
            now
        ])?;
    }
    Ok(())
}
