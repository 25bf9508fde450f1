//! The conflict log: every clobbered version with both sides, and restoring one by writing a
//! new event (so the restore reaches every client like any other change).

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row as SqlRow, params};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tdsync_projection::value::{read_row, row_to_json};
use tdsync_protocol::{ActionType, EntityType, payload::go_marshal, timestamp};

use super::{
    Head, Shard,
    log::{Appended, Conflicts, NewEvent, append, project},
};
use crate::error::StoreError;

/// The device name the server's own events (restores, cycle repairs) are logged under (never a
/// td device id: those are 32 hex digits).
pub const SERVER_DEVICE: &str = "tdsync-server";
const RESTORE_SESSION: &str = "tdsync-restore";

/// One clobbered version.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conflict {
    pub id: i64,
    pub entity_type: String,
    pub entity_id: String,
    /// Columns whose unseen value was overwritten.
    pub fields: Vec<String>,
    /// The row as it was before it was overwritten (null if it could not be read back).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub clobbered: Value,
    /// The event that last wrote the clobbered row (None if it predates tracking).
    pub clobbered_seq: Option<i64>,
    pub clobbered_device: Option<String>,
    /// The row after the winning write (null when the write deleted it).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub winner: Value,
    pub winning_seq: i64,
    pub winning_device: String,
    /// Server time the conflict was recorded.
    pub recorded_at: String,
    /// The seq of the event that restored the clobbered version, if it was restored.
    pub restored_by_seq: Option<i64>,
}

/// Which conflicts to list.
#[derive(Debug, Clone, Default)]
pub struct ConflictFilter {
    pub entity: Option<(EntityType, String)>,
    /// Only conflicts with an id greater than this (for paging).
    pub after_id: i64,
    pub limit: Option<i64>,
}

/// What a restore wrote.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Restored {
    pub conflict_id: i64,
    pub server_seq: i64,
    pub action_type: String,
    /// The restored entity (canonical type name and id).
    pub entity_type: String,
    pub entity_id: String,
}

const COLUMNS: &str = "id, entity_type, entity_id, fields, clobbered_row, clobbered_seq, \
    clobbered_device, winning_row, winning_seq, winning_device, recorded_at, restored_by_seq";

fn from_row(r: &SqlRow<'_>) -> rusqlite::Result<Conflict> {
    let json = |s: Option<String>| {
        s.and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or(Value::Null)
    };
    Ok(Conflict {
        id: r.get(0)?,
        entity_type: r.get(1)?,
        entity_id: r.get(2)?,
        fields: serde_json::from_str(&r.get::<_, String>(3)?).unwrap_or_default(),
        clobbered: json(r.get(4)?),
        clobbered_seq: r.get(5)?,
        clobbered_device: r.get(6)?,
        winner: json(r.get(7)?),
        winning_seq: r.get(8)?,
        winning_device: r.get(9)?,
        recorded_at: r.get(10)?,
        restored_by_seq: r.get(11)?,
    })
}

impl Shard {
    pub(crate) fn conflicts(&self, filter: &ConflictFilter) -> Result<Vec<Conflict>, StoreError> {
        let limit = filter.limit.unwrap_or(1000).clamp(1, 10_000);
        self.read(|conn| {
            let (entity, id) = match &filter.entity {
                Some((e, id)) => (Some(e.as_str()), Some(id.as_str())),
                None => (None, None),
            };
            let sql = format!(
                "SELECT {COLUMNS} FROM conflicts WHERE id > ?1 \
                 AND (?2 IS NULL OR (entity_type = ?2 AND entity_id = ?3)) \
                 ORDER BY id LIMIT ?4"
            );
            let mut stmt = conn.prepare_cached(&sql).map_err(|e| self.sql_err(e))?;
            let rows = stmt
                .query_map(params![filter.after_id, entity, id, limit], from_row)
                .map_err(|e| self.sql_err(e))?;
            rows.collect::<Result<_, _>>().map_err(|e| self.sql_err(e))
        })
    }

    /// Writes the clobbered version of conflict `id` back as a new event: an update of the
    /// clobbered fields when the row exists, a create of the whole row when the winning write
    /// deleted it.
    pub(crate) fn restore_conflict(
        &self,
        id: i64,
        now: DateTime<Utc>,
    ) -> Result<Restored, StoreError> {
        let server_ts = timestamp::format_server(&now);
        let client_ts = timestamp::format_rfc3339_nano(&now.fixed_offset());
        self.write(1, |tx, applier| {
            let conflict = tx
                .query_row(&format!("SELECT {COLUMNS} FROM conflicts WHERE id = ?1"), [id], from_row)
                .optional()
                .map_err(|e| self.sql_err(e))?
                .ok_or_else(|| StoreError::NotFound(format!("conflict {id}")))?;
            let entity = EntityType::parse(&conflict.entity_type).ok_or_else(|| {
                StoreError::BadRequest(format!("conflict {id} names unknown entity {}", conflict.entity_type))
            })?;
            let table = applier
                .schema()
                .table(entity)
                .ok_or_else(|| StoreError::BadRequest(format!("no table for {entity}")))?;
            let current = read_row(tx, table, &conflict.entity_id)
                .map_err(|e| self.sql_err(e))?
                .map(|r| row_to_json(&r));
            let Value::Object(clobbered) = &conflict.clobbered else {
                return Err(StoreError::BadRequest(format!("conflict {id} has no clobbered row")));
            };
            // An existing row gets back only the clobbered fields (later, unrelated edits stay);
            // a deleted row comes back whole.
            let (action, previous, mut wanted) = match current {
                Some(Value::Object(cur)) => {
                    let mut wanted = cur.clone();
                    for field in &conflict.fields {
                        if let Some(v) = clobbered.get(field) {
                            wanted.insert(field.clone(), v.clone());
                        }
                    }
                    (ActionType::Update, cur, wanted)
                }
                _ => (ActionType::Create, Map::new(), clobbered.clone()),
            };
            // The restore is a new change: it carries the server's time, not the old one.
            if table.has_column("updated_at") {
                wanted.insert("updated_at".into(), Value::String(client_ts.clone()));
            }
            let payload = format!(
                r#"{{"new_data":{},"previous_data":{},"schema_version":1}}"#,
                go_marshal(&Value::Object(wanted)),
                go_marshal(&Value::Object(previous))
            );
            let next_action: i64 = tx
                .query_row(
                    "SELECT coalesce(max(client_action_id), 0) + 1 FROM events WHERE device_id = ?1",
                    [SERVER_DEVICE],
                    |r| r.get(0),
                )
                .map_err(|e| self.sql_err(e))?;
            let ev = NewEvent {
                device_id: SERVER_DEVICE,
                session_id: RESTORE_SESSION,
                client_action_id: next_action,
                action_type: action.as_str(),
                entity_type: entity.as_str(),
                entity_id: &conflict.entity_id,
                payload: &payload,
                client_timestamp: &client_ts,
            };
            let Appended::New(seq) = append(tx, &ev, &server_ts).map_err(|e| self.sql_err(e))?
            else {
                return Err(StoreError::BadRequest(format!("conflict {id}: restore collided")));
            };
            project(tx, applier, seq, &ev, &server_ts, Conflicts::Record)
                .map_err(|e| self.log_err(e))?;
            tx.execute("UPDATE conflicts SET restored_by_seq = ?1 WHERE id = ?2", params![seq, id])
                .map_err(|e| self.sql_err(e))?;
            let old = self.head();
            let head = Head {
                last_seq: seq,
                event_count: old.event_count + 1,
                last_event_time: Some(server_ts.clone()),
            };
            Ok((
                Restored {
                    conflict_id: id,
                    server_seq: seq,
                    action_type: action.as_str().to_string(),
                    entity_type: entity.as_str().to_string(),
                    entity_id: conflict.entity_id.clone(),
                },
                Some(head),
            ))
        })
    }
}
