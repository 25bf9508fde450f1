//! The repair of a dependency cycle of three or more issues, logged right after the pushed edge
//! that closed it.
//!
//! td's cycle rule settles a pair (a→b against b→a) alike on every replica, but not a longer
//! cycle: the writer of the closing edge applied it before pulling the cycle's other edges, so
//! it judges one of them instead, and keeps a different set of edges than the server and the
//! other replicas (`tdsync_projection::cycles`). The server therefore logs, under its own
//! device, a hard delete of the closing edge and a create of every edge on the paths it closed,
//! as the projection holds them. Every replica applies these after the closing edge, whatever
//! it did with it and with the other edges: the closing edge is gone, and the re-created edges
//! close no cycle (they are the acyclic graph the server had), so each is inserted again where
//! a replica had skipped it. All replicas end with the server's graph without the closing edge.

use serde_json::{Map, Value};
use tdsync_projection::{Applier, LongCycle, value::row_to_json};
use tdsync_protocol::{ActionType, EntityType, payload::go_marshal};

use super::{
    conflicts::SERVER_DEVICE,
    log::{Appended, Conflicts, LogError, NewEvent, append, project},
};

/// The session the server's cycle repairs are logged under (device: the server's own).
pub const REPAIR_SESSION: &str = "tdsync-cycle-repair";

/// Logs and projects the repair of `cycle`, closed by the dependency `closing_id`. Returns the
/// seqs appended, in order.
pub(crate) fn repair(
    tx: &rusqlite::Transaction<'_>,
    applier: &Applier,
    closing_id: &str,
    cycle: &LongCycle,
    server_ts: &str,
    client_ts: &str,
) -> Result<Vec<i64>, LogError> {
    let envelope = |new: &Map<String, Value>, previous: &Map<String, Value>| {
        format!(
            r#"{{"new_data":{},"previous_data":{},"schema_version":1}}"#,
            go_marshal(&Value::Object(new.clone())),
            go_marshal(&Value::Object(previous.clone()))
        )
    };
    let mut events: Vec<(ActionType, String, String)> = vec![(
        ActionType::Delete,
        closing_id.to_string(),
        envelope(&Map::new(), &cycle.closing),
    )];
    for row in &cycle.path_edges {
        let Value::Object(image) = row_to_json(row) else {
            continue;
        };
        let id = image
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        events.push((ActionType::Create, id, envelope(&image, &Map::new())));
    }
    let mut seqs = Vec::with_capacity(events.len());
    for (action, entity_id, payload) in &events {
        let next_action: i64 = tx.query_row(
            "SELECT coalesce(max(client_action_id), 0) + 1 FROM events WHERE device_id = ?1",
            [SERVER_DEVICE],
            |r| r.get(0),
        )?;
        let ev = NewEvent {
            device_id: SERVER_DEVICE,
            session_id: REPAIR_SESSION,
            client_action_id: next_action,
            action_type: action.as_str(),
            entity_type: EntityType::IssueDependencies.as_str(),
            entity_id,
            payload,
            client_timestamp: client_ts,
        };
        let Appended::New(seq) = append(tx, &ev, server_ts)? else {
            // The key is fresh (max + 1 under the writer lock): a duplicate cannot happen.
            return Err(LogError::Sql(rusqlite::Error::StatementChangedRows(0)));
        };
        project(tx, applier, seq, &ev, server_ts, Conflicts::Record)?;
        seqs.push(seq);
    }
    Ok(seqs)
}
