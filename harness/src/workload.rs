//! Synthetic but td-shaped event streams for benchmarks and big syncs: full Issue JSON images,
//! one create for every few updates, updates carrying `previous_data` as td's writer does.

use serde_json::{Value, json, value::RawValue};
use tdsync_protocol::wire::PushEvent;

/// An issue as td's writer shapes it (the fields every issue has, plus a description and labels).
pub fn issue_json(id: &str, title: &str, status: &str, updated_at: &str) -> Value {
    json!({"id": id, "title": title,
           "description": "A realistic description of the work to do, a sentence or two long.",
           "status": status, "type": "task", "priority": "P2", "points": 3, "labels": ["backend", "sync"],
           "implementer_session": "", "creator_session": "ses_a1b2c3", "reviewer_session": "",
           "created_at": "2026-03-01T09:00:00.123456789Z", "updated_at": updated_at,
           "minor": false, "defer_count": 0})
}

/// `n` issue events named `td-<prefix><number>`: a create for every fifth event (and the
/// first), otherwise a status update of an earlier issue with its previous image.
pub fn issue_events(n: usize, prefix: &str) -> Vec<PushEvent> {
    let mut out = Vec::with_capacity(n);
    let mut issues = 0usize;
    for i in 0..n {
        let (action, id, new, prev) = if i % 5 == 0 || issues == 0 {
            issues += 1;
            let id = format!("td-{prefix}{issues:06}");
            let new = issue_json(
                &id,
                "Fix the login timeout",
                "open",
                "2026-03-01T09:00:00.123456789Z",
            );
            ("create", id, new, json!({}))
        } else {
            let id = format!("td-{prefix}{:06}", 1 + (i * 7919) % issues);
            let prev = issue_json(
                &id,
                "Fix the login timeout",
                "open",
                "2026-03-01T09:00:00.123456789Z",
            );
            let new = issue_json(
                &id,
                "Fix the login timeout",
                "in_progress",
                &format!("2026-03-01T10:{:02}:00Z", i % 60),
            );
            ("update", id, new, prev)
        };
        let payload =
            json!({"new_data": new, "previous_data": prev, "schema_version": 1}).to_string();
        out.push(PushEvent {
            client_action_id: i as i64 + 1,
            action_type: action.into(),
            entity_type: "issues".into(),
            entity_id: id,
            payload: RawValue::from_string(payload).expect("serde_json output is JSON"),
            client_timestamp: "2026-03-01T10:00:00Z".into(),
        });
    }
    out
}
