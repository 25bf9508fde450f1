//! Local changes not yet pushed: action_log rows turned into push events exactly as td builds
//! them (td's `GetPendingEvents` followed by its entity filter).

use serde_json::value::RawValue;
use tdsync_protocol::{ActionType, EntityType, Envelope, timestamp, wire::PushEvent};

use super::{
    TdDatabase,
    backfill::lost_creates,
    cell_text as text,
    error::{SqlContext, TdDbError},
    state::max_pulled_seq,
};

/// One batch of pending push events.
#[derive(Debug, Default)]
pub struct Pending {
    /// In action_log rowid order; `client_action_id` is the rowid.
    pub events: Vec<PushEvent>,
    /// Rows of this page (up to its last event, or to the end) that can never be pushed. td
    /// skips them silently and they stay pending forever; they are listed so the caller can
    /// report them.
    pub unsendable: Vec<Unsendable>,
    /// Synthetic events the first-sync backfill wrote before this read.
    pub backfilled: usize,
    /// Why the backfill could not run, when that did not stop the read (td warns and pushes
    /// what it has; the backfill is retried by the next handle).
    pub backfill_error: Option<String>,
    /// More sendable rows follow the last returned event.
    pub has_more: bool,
}

/// A pending action_log row that no server accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsendable {
    pub rowid: i64,
    /// `action_log.id` (absent on rows td's migration 26 could not fill).
    pub action_id: Option<String>,
    pub entity_type: String,
    pub action_type: String,
    pub reason: UnsendableReason,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnsendableReason {
    /// NULL or empty `action_log.id`.
    MissingActionId,
    /// An entity type td's taxonomy does not know.
    UnknownEntityType,
    /// A known type that td clients never sync (sessions, git snapshots, session history).
    NotSynced,
    /// `new_data`/`previous_data` is not JSON (td fails the whole push on it).
    InvalidPayload(String),
}

impl std::fmt::Display for UnsendableReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UnsendableReason::MissingActionId => f.write_str("action_log row has no id"),
            UnsendableReason::UnknownEntityType => f.write_str("unknown entity type"),
            UnsendableReason::NotSynced => f.write_str("entity type is never synced"),
            UnsendableReason::InvalidPayload(e) => write!(f, "payload is not JSON: {e}"),
        }
    }
}

impl TdDatabase {
    /// The first `limit` pending events. While the database has never pulled, td's backfill
    /// runs first (as td's push does; once per handle), so pre-existing rows are included;
    /// `session_id` is the session synthetic rows are written for. Creates td undid before
    /// they were pushed, of rows that outlived the undo, are pending too, in their own place
    /// (see `backfill::lost_creates`).
    pub fn pending(&self, session_id: &str, limit: usize) -> Result<Pending, TdDbError> {
        // Before the backfill, whose synthetic creates would hide them (and land last).
        self.lost_creates
            .replace(lost_creates(&self.conn, &self.path)?);
        let mut backfilled = 0;
        let mut backfill_error = None;
        if !self.backfill_has_run()
            && max_pulled_seq(&self.conn).ctx(&self.path, "read sync_state")? == 0
        {
            match self.backfill(session_id) {
                Ok(n) => backfilled = n,
                // Corruption must never be read as data; a busy database is worth a retry.
                Err(e) if e.is_transient() || matches!(e, TdDbError::Corrupt { .. }) => {
                    return Err(e);
                }
                Err(e) => backfill_error = Some(e.to_string()),
            }
        }
        let mut out = self.pending_after(0, limit)?;
        out.backfilled = backfilled;
        out.backfill_error = backfill_error;
        Ok(out)
    }

    /// Pending events with rowid above `after` (to page past rows a server rejected). Never
    /// backfills; sends the lost creates the last [`pending`](Self::pending) found.
    pub fn pending_after(&self, after: i64, limit: usize) -> Result<Pending, TdDbError> {
        let path = &self.path;
        if limit == 0 {
            return Err(TdDbError::InvalidArgument {
                path: path.clone(),
                detail: "pending: limit must be at least 1".into(),
            });
        }
        const OP: &str = "read pending action_log";
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT rowid, id, action_type, entity_type, entity_id, new_data, previous_data, timestamp, undone \
                 FROM action_log WHERE synced_at IS NULL AND rowid > ?1 ORDER BY rowid",
            )
            .ctx(path, OP)?;
        let mut rows = stmt.query([after]).ctx(path, OP)?;
        let mut out = Pending::default();
        let lost = self.lost_creates.borrow();
        while let Some(r) = rows.next().ctx(path, OP)? {
            let rowid: i64 = r.get(0).ctx(path, OP)?;
            let undone = r.get::<_, Option<i64>>(8).ctx(path, OP)?.unwrap_or(0) != 0;
            if undone && !lost.contains(&rowid) {
                continue;
            }
            let row = Row {
                rowid,
                id: text(r.get(1).ctx(path, OP)?),
                action_type: text(r.get(2).ctx(path, OP)?).unwrap_or_default(),
                entity_type: text(r.get(3).ctx(path, OP)?).unwrap_or_default(),
                entity_id: text(r.get(4).ctx(path, OP)?).unwrap_or_default(),
                new_data: text(r.get(5).ctx(path, OP)?),
                previous_data: text(r.get(6).ctx(path, OP)?),
                timestamp: text(r.get(7).ctx(path, OP)?).unwrap_or_default(),
            };
            match row.to_event(path)? {
                Ok(_) if out.events.len() == limit => {
                    out.has_more = true;
                    // Rows past the last event belong to the next page, which reports them.
                    let last = out.events.last().map_or(after, |e| e.client_action_id);
                    out.unsendable.retain(|u| u.rowid < last);
                    break;
                }
                Ok(event) => out.events.push(event),
                Err(reason) => out.unsendable.push(Unsendable {
                    rowid: row.rowid,
                    action_id: row.id.filter(|id| !id.is_empty()),
                    entity_type: row.entity_type,
                    action_type: row.action_type,
                    reason,
                }),
            }
        }
        Ok(out)
    }

    /// How many rows are pending (td's count: includes rows that can never be sent).
    pub fn pending_count(&self) -> Result<i64, TdDbError> {
        self.conn
            .query_row(
                "SELECT count(*) FROM action_log WHERE synced_at IS NULL AND undone = 0",
                [],
                |r| r.get(0),
            )
            .ctx(&self.path, "count pending action_log")
    }
}

struct Row {
    rowid: i64,
    id: Option<String>,
    action_type: String,
    entity_type: String,
    entity_id: String,
    new_data: Option<String>,
    previous_data: Option<String>,
    timestamp: String,
}

impl Row {
    /// td's checks in td's order: id, timestamp (an error for the whole read, as in td),
    /// entity type, sync filter, payload.
    fn to_event(
        &self,
        path: &std::path::Path,
    ) -> Result<Result<PushEvent, UnsendableReason>, TdDbError> {
        if self.id.as_deref().is_none_or(str::is_empty) {
            return Ok(Err(UnsendableReason::MissingActionId));
        }
        let Some(when) = timestamp::parse(&self.timestamp) else {
            return Err(TdDbError::BadTimestamp {
                path: path.to_path_buf(),
                rowid: self.rowid,
                value: self.timestamp.clone(),
            });
        };
        let Some(entity) = EntityType::parse(&self.entity_type) else {
            return Ok(Err(UnsendableReason::UnknownEntityType));
        };
        if !entity.is_synced() {
            return Ok(Err(UnsendableReason::NotSynced));
        }
        let payload = Envelope::encode_action_log(
            entity,
            self.new_data.as_deref(),
            self.previous_data.as_deref(),
        );
        let payload = match RawValue::from_string(payload) {
            Ok(p) => p,
            Err(e) => return Ok(Err(UnsendableReason::InvalidPayload(e.to_string()))),
        };
        Ok(Ok(PushEvent {
            client_action_id: self.rowid,
            action_type: ActionType::from_action_log(&self.action_type)
                .as_str()
                .to_string(),
            entity_type: entity.as_str().to_string(),
            entity_id: self.entity_id.clone(),
            payload,
            client_timestamp: timestamp::format_push(&when),
        }))
    }
}
