//! td-shaped push bodies (td-wire-protocol.md §1.7, §3.3): full-row issue images, events with
//! `new_data`/`previous_data`, and requests carrying them.

use serde_json::{Value, json};

pub const SESSION: &str = "ses_a1b2c3";

/// An issue row as td's `new_data` carries it.
pub fn issue(id: &str, title: &str) -> Value {
    json!({"id": id, "title": title, "status": "open", "type": "task", "priority": "P2",
           "points": 0, "implementer_session": "", "creator_session": SESSION,
           "reviewer_session": "", "created_at": "2026-08-21T14:41:18Z",
           "updated_at": "2026-08-21T14:41:18Z", "minor": false, "defer_count": 0})
}

/// `row` with `field` set to `value`.
pub fn with(mut row: Value, field: &str, value: Value) -> Value {
    row[field] = value;
    row
}

/// One pushed event.
pub fn event(
    caid: i64,
    action: &str,
    entity: &str,
    id: &str,
    new: Value,
    previous: Value,
) -> Value {
    json!({
        "client_action_id": caid,
        "action_type": action,
        "entity_type": entity,
        "entity_id": id,
        "payload": {"new_data": new, "previous_data": previous, "schema_version": 1},
        "client_timestamp": "2026-08-21T14:41:18Z",
    })
}

/// The create of issue `id`.
pub fn create(caid: i64, id: &str, title: &str) -> Value {
    event(caid, "create", "issues", id, issue(id, title), json!({}))
}

/// A rename of issue `id` from the writer's view `base`.
pub fn rename(caid: i64, base: &Value, title: &str) -> Value {
    let id = base["id"].as_str().expect("the row has an id");
    event(
        caid,
        "update",
        "issues",
        id,
        with(base.clone(), "title", json!(title)),
        base.clone(),
    )
}

/// A push request of `device`.
pub fn push(device: &str, events: Vec<Value>) -> Value {
    json!({"device_id": device, "session_id": SESSION, "events": events})
}

/// Creates of issues `td-<n>` for `n` in `caids` (the client action id is `n`).
pub fn creates(device: &str, caids: std::ops::RangeInclusive<i64>) -> Value {
    push(
        device,
        caids
            .map(|n| create(n, &format!("td-{n}"), &format!("issue {n}")))
            .collect(),
    )
}
