//! An entity's history: every event that wrote it, in server order, with the writer's before
//! and after images, and the entity's projected state as of any seq.

use serde::Serialize;
use serde_json::Value;
use tdsync_projection::value::{read_row, row_to_json};
use tdsync_protocol::{EntityType, Envelope};

use super::Shard;
use crate::error::StoreError;

/// One event of an entity's history.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryEntry {
    pub server_seq: i64,
    pub device_id: String,
    pub session_id: String,
    pub action_type: String,
    pub client_timestamp: String,
    pub server_timestamp: String,
    /// The writer's image of the row before its change (`previous_data`; null when the payload
    /// is not td's envelope).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub before: Value,
    /// The writer's image after its change (`new_data`; null when the payload is not td's
    /// envelope).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub after: Value,
    /// Why the projection did not apply this event, if it did not.
    pub skipped: Option<String>,
}

impl Shard {
    pub(crate) fn history(
        &self,
        entity: EntityType,
        entity_id: &str,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT e.server_seq, e.device_id, e.session_id, e.action_type, \
                     e.client_timestamp, e.server_timestamp, e.payload, \
                     s.reason || ': ' || s.detail \
                     FROM events e LEFT JOIN projection_skips s ON s.server_seq = e.server_seq \
                     WHERE e.entity_type = ?1 AND e.entity_id = ?2 ORDER BY e.server_seq",
                )
                .map_err(|e| self.sql_err(e))?;
            let rows = stmt
                .query_map([entity.as_str(), entity_id], |r| {
                    let payload: String = r.get(6)?;
                    let (before, after) = match Envelope::parse(entity, &payload) {
                        Ok(env) => (
                            Value::Object(env.previous_data),
                            Value::Object(env.new_data),
                        ),
                        Err(_) => (Value::Null, Value::Null),
                    };
                    Ok(HistoryEntry {
                        server_seq: r.get(0)?,
                        device_id: r.get(1)?,
                        session_id: r.get(2)?,
                        action_type: r.get(3)?,
                        client_timestamp: r.get(4)?,
                        server_timestamp: r.get(5)?,
                        before,
                        after,
                        skipped: r.get(7)?,
                    })
                })
                .map_err(|e| self.sql_err(e))?;
            rows.collect::<Result<_, _>>().map_err(|e| self.sql_err(e))
        })
    }

    /// The entity's projected row after every event up to `seq` was applied (None when it did
    /// not exist then). Replays the log prefix into a scratch projection, so cascades and
    /// parent deletes are accounted for exactly as they happened.
    pub(crate) fn state_at(
        &self,
        entity: EntityType,
        entity_id: &str,
        seq: i64,
    ) -> Result<Option<Value>, StoreError> {
        let scratch = self.projection_at(seq)?;
        let schema =
            tdsync_projection::table::Schema::load(&scratch).map_err(|e| self.sql_err(e))?;
        let Some(table) = schema.table(entity) else {
            return Ok(None);
        };
        let row = read_row(&scratch, table, entity_id).map_err(|e| self.sql_err(e))?;
        Ok(row.map(|r| {
            let mut v = row_to_json(&r);
            if let Some(m) = v.as_object_mut() {
                for f in entity.local_only_fields() {
                    m.remove(*f);
                }
            }
            v
        }))
    }

    pub(crate) fn device_clocks(&self) -> Result<Vec<super::DeviceClock>, StoreError> {
        self.read(|conn| super::clock::list(conn).map_err(|e| self.sql_err(e)))
    }
}
