//! One test per td apply rule (td-local-db-and-apply-semantics.md §2.3–2.5), run through the
//! shared `Applier` on a foreign-key-enforcing td schema, as both shards and clients run it.

use rusqlite::Connection;
use serde_json::{Value, json};
use tdsync_projection::{
    Applied, Applier, ApplyError, Effect, Event, schema::create_synced_tables,
};

struct Db {
    conn: Connection,
    applier: Applier,
    seq: i64,
}

impl Db {
    fn new() -> Db {
        Db::with_foreign_keys(true)
    }

    fn with_foreign_keys(on: bool) -> Db {
        let conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "foreign_keys", on).unwrap();
        create_synced_tables(&conn).unwrap();
        let applier = Applier::new(&conn).unwrap();
        Db {
            conn,
            applier,
            seq: 0,
        }
    }

    fn apply(
        &mut self,
        action: &str,
        entity: &str,
        id: &str,
        new: Value,
        prev: Value,
    ) -> Result<Applied, ApplyError> {
        self.apply_at(action, entity, id, new, prev, "2026-03-01T10:00:00Z")
    }

    fn apply_at(
        &mut self,
        action: &str,
        entity: &str,
        id: &str,
        new: Value,
        prev: Value,
        ts: &str,
    ) -> Result<Applied, ApplyError> {
        self.seq += 1;
        let payload =
            json!({"new_data": new, "previous_data": prev, "schema_version": 1}).to_string();
        self.applier.apply(
            &self.conn,
            &Event {
                server_seq: self.seq,
                device_id: "dev-a",
                action_type: action,
                entity_type: entity,
                entity_id: id,
                payload: &payload,
                client_timestamp: ts,
            },
        )
    }

    fn ok(&mut self, action: &str, entity: &str, id: &str, new: Value, prev: Value) -> Applied {
        self.apply(action, entity, id, new, prev).unwrap()
    }

    fn get(&self, sql: &str) -> Value {
        self.conn
            .query_row(sql, [], |r| {
                let v: rusqlite::types::Value = r.get(0)?;
                Ok(tdsync_projection::value::sql_to_json(&v))
            })
            .unwrap_or(Value::String("<no row>".into()))
    }

    fn count(&self, table: &str) -> i64 {
        self.conn
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    }
}

fn issue(id: &str, title: &str) -> Value {
    json!({
        "id": id, "title": title, "status": "open", "type": "task", "priority": "P2",
        "points": 0, "implementer_session": "", "creator_session": "ses_a",
        "reviewer_session": "", "created_at": "2026-03-01T09:00:00Z",
        "updated_at": "2026-03-01T09:00:00Z", "minor": false, "defer_count": 0
    })
}

fn with(mut v: Value, key: &str, val: Value) -> Value {
    v[key] = val;
    v
}

#[test]
fn create_inserts_the_full_row_with_defaults_for_missing_keys() {
    let mut db = Db::new();
    let a = db.ok("create", "issues", "td-1", issue("td-1", "One"), json!({}));
    assert_eq!(a.effect, Effect::Inserted);
    assert_eq!(db.get("SELECT title FROM issues"), "One");
    // Absent omitempty fields take the column defaults.
    assert_eq!(db.get("SELECT description FROM issues"), "");
    assert_eq!(db.get("SELECT sprint FROM issues"), "");
    assert_eq!(db.get("SELECT closed_at FROM issues"), Value::Null);
    // bool → integer
    assert_eq!(db.get("SELECT minor FROM issues"), 0);
}

#[test]
fn entity_names_are_accepted_singular_or_plural() {
    let mut db = Db::new();
    db.ok("create", "issue", "td-1", issue("td-1", "One"), json!({}));
    db.ok("create", "logs", "lg-1", json!({"id":"lg-1","issue_id":"td-1","session_id":"s","message":"m","type":"progress","timestamp":"2026-03-01T10:00:00Z"}), json!({}));
    db.ok("create", "log", "lg-2", json!({"id":"lg-2","issue_id":"","session_id":"s","message":"m2","timestamp":"2026-03-01T10:00:00Z"}), json!({}));
    assert_eq!(db.count("logs"), 2);
}

#[test]
fn labels_array_becomes_comma_joined_text() {
    let mut db = Db::new();
    db.ok(
        "create",
        "issues",
        "td-1",
        with(issue("td-1", "L"), "labels", json!(["ui", "bug fix"])),
        json!({}),
    );
    assert_eq!(db.get("SELECT labels FROM issues"), "ui,bug fix");
}

#[test]
fn payload_keys_that_are_not_columns_are_ignored() {
    let mut db = Db::new();
    let new = with(issue("td-1", "X"), "custom_xyz", json!("future column"));
    db.ok("create", "issues", "td-1", new, json!({}));
    assert_eq!(db.get("SELECT title FROM issues"), "X");
}

#[test]
fn null_in_a_text_empty_default_column_becomes_empty_string() {
    let mut db = Db::new();
    db.ok(
        "create",
        "issues",
        "td-1",
        with(issue("td-1", "N"), "labels", Value::Null),
        json!({}),
    );
    assert_eq!(db.get("SELECT labels FROM issues"), "");
    assert_eq!(db.get("SELECT typeof(labels) FROM issues"), "text");
}

#[test]
fn create_over_an_existing_row_rewrites_it_in_full_and_keeps_its_children() {
    let mut db = Db::new();
    db.ok(
        "create",
        "issues",
        "td-1",
        with(issue("td-1", "One"), "sprint", json!("s1")),
        json!({}),
    );
    db.ok("create", "comments", "cm-1", json!({"id":"cm-1","issue_id":"td-1","session_id":"s","text":"hi","created_at":"2026-03-01T10:00:00Z"}), json!({}));
    let a = db.ok(
        "create",
        "issues",
        "td-1",
        issue("td-1", "Again"),
        json!({}),
    );
    assert_eq!(a.effect, Effect::Replaced);
    assert!(a.overwrote_existing_row());
    assert_eq!(db.get("SELECT title FROM issues"), "Again");
    // The payload lacked sprint: a full-row create resets it, as td's REPLACE does.
    assert_eq!(db.get("SELECT sprint FROM issues"), "");
    // td's INSERT OR REPLACE would have cascade-deleted the comment; the upsert keeps it.
    assert_eq!(db.count("comments"), 1);
}

#[test]
fn create_resurrects_a_soft_deleted_row() {
    let mut db = Db::new();
    db.ok("create", "issues", "td-1", issue("td-1", "One"), json!({}));
    db.ok(
        "soft_delete",
        "issues",
        "td-1",
        json!({}),
        issue("td-1", "One"),
    );
    assert_ne!(db.get("SELECT deleted_at FROM issues"), Value::Null);
    db.ok("create", "issues", "td-1", issue("td-1", "One"), json!({}));
    assert_eq!(db.get("SELECT deleted_at FROM issues"), Value::Null);
}

#[test]
fn update_with_previous_data_merges_field_by_field() {
    let mut db = Db::new();
    let base = issue("td-1", "One");
    db.ok("create", "issues", "td-1", base.clone(), json!({}));
    // Two writers edit different fields from the same base.
    db.ok(
        "update",
        "issues",
        "td-1",
        with(base.clone(), "title", json!("Title by A")),
        base.clone(),
    );
    let a = db.ok(
        "update",
        "issues",
        "td-1",
        with(base.clone(), "priority", json!("P0")),
        base,
    );
    assert_eq!(a.effect, Effect::Merged(vec!["priority".into()]));
    assert_eq!(db.get("SELECT title FROM issues"), "Title by A");
    assert_eq!(db.get("SELECT priority FROM issues"), "P0");
}

#[test]
fn same_field_edits_resolve_to_the_later_event() {
    let mut db = Db::new();
    let base = issue("td-1", "One");
    db.ok("create", "issues", "td-1", base.clone(), json!({}));
    db.ok(
        "update",
        "issues",
        "td-1",
        with(base.clone(), "title", json!("A")),
        base.clone(),
    );
    db.ok(
        "update",
        "issues",
        "td-1",
        with(base.clone(), "title", json!("B")),
        base,
    );
    assert_eq!(db.get("SELECT title FROM issues"), "B");
}

#[test]
fn a_key_removed_between_images_is_cleared() {
    let mut db = Db::new();
    let closed = with(
        with(
            issue("td-1", "One"),
            "closed_at",
            json!("2026-03-01T09:30:00Z"),
        ),
        "status",
        json!("closed"),
    );
    db.ok("create", "issues", "td-1", closed.clone(), json!({}));
    let reopened = with(issue("td-1", "One"), "status", json!("open"));
    db.ok("update", "issues", "td-1", reopened, closed);
    assert_eq!(db.get("SELECT closed_at FROM issues"), Value::Null);
    assert_eq!(db.get("SELECT status FROM issues"), "open");
}

#[test]
fn update_without_previous_data_rewrites_only_an_existing_row() {
    let mut db = Db::new();
    let ws = json!({"id":"ws-1","name":"w","session_id":"s","started_at":"2026-03-01T10:00:00Z"});
    let a = db.ok("update", "work_sessions", "ws-1", ws.clone(), json!({}));
    assert_eq!(a.effect, Effect::Unchanged);
    assert_eq!(db.count("work_sessions"), 0, "an update never inserts");
    db.ok("create", "work_sessions", "ws-1", ws.clone(), json!({}));
    let ended = with(ws, "ended_at", json!("2026-03-01T11:00:00Z"));
    assert_eq!(
        db.ok("update", "work_sessions", "ws-1", ended, json!({}))
            .effect,
        Effect::Replaced
    );
    assert_ne!(db.get("SELECT ended_at FROM work_sessions"), Value::Null);
}

#[test]
fn update_of_a_missing_row_never_resurrects_it() {
    let mut db = Db::new();
    let base = issue("td-1", "One");
    db.ok("create", "issues", "td-1", base.clone(), json!({}));
    db.ok("delete", "issues", "td-1", json!({}), base.clone());
    let a = db.ok(
        "update",
        "issues",
        "td-1",
        with(base.clone(), "title", json!("late edit")),
        base,
    );
    assert_eq!(a.effect, Effect::Unchanged);
    assert_eq!(db.count("issues"), 0);
}

#[test]
fn update_with_no_difference_rewrites_the_existing_row_from_new_data() {
    let mut db = Db::new();
    db.ok("create", "issues", "td-1", issue("td-1", "One"), json!({}));
    db.conn
        .execute("UPDATE issues SET title = 'drifted'", [])
        .unwrap();
    let same = issue("td-1", "One");
    let a = db.ok("update", "issues", "td-1", same.clone(), same);
    assert_eq!(a.effect, Effect::Replaced);
    assert_eq!(db.get("SELECT title FROM issues"), "One");
}

#[test]
fn update_that_only_changes_unknown_columns_falls_back_to_a_full_rewrite() {
    let mut db = Db::new();
    db.ok("create", "issues", "td-1", issue("td-1", "One"), json!({}));
    db.conn
        .execute("UPDATE issues SET title = 'drifted'", [])
        .unwrap();
    let prev = with(issue("td-1", "One"), "future", json!(1));
    let new = with(issue("td-1", "One"), "future", json!(2));
    assert_eq!(
        db.ok("update", "issues", "td-1", new, prev).effect,
        Effect::Replaced
    );
    assert_eq!(db.get("SELECT title FROM issues"), "One");
}

#[test]
fn review_wrapper_is_unwrapped_for_issues() {
    let mut db = Db::new();
    let base = issue("td-1", "One");
    db.ok("create", "issues", "td-1", base.clone(), json!({}));
    let wrapped_new = json!({"issue": with(base.clone(), "status", json!("in_review")), "created_review_id": "rv-1"});
    let wrapped_prev = json!({"issue": base, "prior_active_review_id": null});
    db.ok("update", "issues", "td-1", wrapped_new, wrapped_prev);
    assert_eq!(db.get("SELECT status FROM issues"), "in_review");
}

#[test]
fn hard_delete_removes_the_row_cascades_children_and_unlinks_child_issues() {
    let mut db = Db::new();
    db.ok(
        "create",
        "issues",
        "td-p",
        issue("td-p", "Parent"),
        json!({}),
    );
    db.ok(
        "create",
        "issues",
        "td-c",
        with(issue("td-c", "Child"), "parent_id", json!("td-p")),
        json!({}),
    );
    db.ok("create", "comments", "cm-1", json!({"id":"cm-1","issue_id":"td-p","session_id":"s","text":"hi","created_at":"2026-03-01T10:00:00Z"}), json!({}));
    assert_eq!(
        db.ok("delete", "issues", "td-p", json!({}), json!({}))
            .effect,
        Effect::Deleted
    );
    assert_eq!(db.count("issues"), 1);
    assert_eq!(db.count("comments"), 0, "schema cascade");
    assert_eq!(db.get("SELECT parent_id FROM issues WHERE id='td-c'"), "");
}

#[test]
fn delete_of_a_missing_row_is_a_no_op() {
    let mut db = Db::new();
    assert_eq!(
        db.ok(
            "delete",
            "issue_dependencies",
            "dep_x",
            json!({}),
            json!({})
        )
        .effect,
        Effect::Unchanged
    );
}

#[test]
fn soft_delete_stamps_the_event_time_and_restore_clears_it() {
    let mut db = Db::new();
    db.ok("create", "issues", "td-1", issue("td-1", "One"), json!({}));
    let a = db
        .apply_at(
            "soft_delete",
            "issues",
            "td-1",
            json!({}),
            issue("td-1", "One"),
            "2026-03-02T08:00:00-05:00",
        )
        .unwrap();
    assert_eq!(a.effect, Effect::SoftDeleted);
    assert_eq!(
        db.get("SELECT deleted_at FROM issues"),
        "2026-03-02 08:00:00-05:00"
    );
    db.apply_at(
        "restore",
        "issues",
        "td-1",
        issue("td-1", "One"),
        json!({}),
        "2026-03-03T00:00:00Z",
    )
    .unwrap();
    assert_eq!(db.get("SELECT deleted_at FROM issues"), Value::Null);
    assert_eq!(
        db.get("SELECT updated_at FROM issues"),
        "2026-03-03 00:00:00+00:00"
    );
}

#[test]
fn soft_delete_on_a_table_without_deleted_at_is_a_permanent_failure() {
    let mut db = Db::new();
    db.ok("create", "issues", "td-1", issue("td-1", "One"), json!({}));
    db.ok("create", "comments", "cm-1", json!({"id":"cm-1","issue_id":"td-1","session_id":"s","text":"hi","created_at":"2026-03-01T10:00:00Z"}), json!({}));
    let err = db
        .apply("soft_delete", "comments", "cm-1", json!({}), json!({}))
        .unwrap_err();
    assert!(err.is_permanent(), "{err}");
    assert!(err.to_string().contains("no such column"), "{err}");
    assert_eq!(
        db.count("comments"),
        1,
        "the comment survives, as on td peers"
    );
}

#[test]
fn a_child_of_a_missing_cascade_parent_is_dropped_as_orphan() {
    let mut db = Db::new();
    let pos = json!({"id":"bip_1","board_id":"bd-gone","issue_id":"td-1","position":65536});
    db.ok("create", "issues", "td-1", issue("td-1", "One"), json!({}));
    match db
        .ok(
            "create",
            "board_issue_positions",
            "bip_1",
            pos.clone(),
            json!({}),
        )
        .effect
    {
        Effect::Orphaned(o) => {
            assert_eq!(o.parent_table, "boards");
            assert_eq!(o.parent_id, "bd-gone");
        }
        other => panic!("expected orphan, got {other:?}"),
    }
    assert_eq!(db.count("board_issue_positions"), 0);
    // Without foreign-key enforcement td inserts it, and so does the shared engine.
    let mut loose = Db::with_foreign_keys(false);
    assert_eq!(
        loose
            .ok("create", "board_issue_positions", "bip_1", pos, json!({}))
            .effect,
        Effect::Inserted
    );
}

#[test]
fn a_review_of_a_missing_issue_fails_permanently() {
    // issue_reviews' foreign key does not cascade, so SQLite rejects the row and the event is
    // quarantined rather than dropped as an orphan.
    let mut db = Db::new();
    let review = json!({"id":"rv-1","issue_id":"td-none","reviewer_session":"s","decision":"approved","created_at":"2026-03-01T10:00:00Z"});
    let err = db
        .apply("create", "issue_reviews", "rv-1", review, Value::Null)
        .unwrap_err();
    assert!(err.is_permanent(), "{err}");
}

#[test]
fn dependency_cycles_resolve_to_the_same_edge_in_either_order() {
    let dep = |a: &str, b: &str| json!({"id": format!("dep_{a}{b}"), "issue_id": a, "depends_on_id": b, "relation_type": "depends_on"});
    let mut results = Vec::new();
    for order in [
        [("td-a", "td-b"), ("td-b", "td-a")],
        [("td-b", "td-a"), ("td-a", "td-b")],
    ] {
        let mut db = Db::new();
        db.ok("create", "issues", "td-a", issue("td-a", "A"), json!({}));
        db.ok("create", "issues", "td-b", issue("td-b", "B"), json!({}));
        for (x, y) in order {
            db.ok(
                "create",
                "issue_dependencies",
                &format!("dep_{x}{y}"),
                dep(x, y),
                json!({}),
            );
        }
        results.push(db.get("SELECT issue_id || '>' || depends_on_id FROM issue_dependencies"));
        assert_eq!(db.count("issue_dependencies"), 1);
    }
    assert_eq!(
        results[0], "td-a>td-b",
        "the lexicographically smaller edge wins"
    );
    assert_eq!(results[0], results[1]);
}

#[test]
fn a_legacy_row_colliding_on_another_unique_key_is_replaced() {
    let mut db = Db::new();
    db.ok("create", "issues", "td-1", issue("td-1", "One"), json!({}));
    db.ok(
        "create",
        "boards",
        "bd-1",
        json!({"id":"bd-1","name":"B","query":"","is_builtin":false,"view_mode":"swimlanes"}),
        json!({}),
    );
    db.ok(
        "create",
        "board_issue_positions",
        "legacy-7",
        json!({"id":"legacy-7","board_id":"bd-1","issue_id":"td-1","position":1}),
        json!({}),
    );
    let det = tdsync_protocol::ids::board_issue_position("bd-1", "td-1");
    db.ok(
        "create",
        "board_issue_positions",
        &det,
        json!({"id": det,"board_id":"bd-1","issue_id":"td-1","position":2}),
        json!({}),
    );
    assert_eq!(db.count("board_issue_positions"), 1);
    assert_eq!(
        db.get("SELECT id FROM board_issue_positions"),
        Value::String(det)
    );
}

#[test]
fn local_only_work_session_fields_are_never_applied() {
    let mut db = Db::new();
    let ws = json!({"id":"ws-1","name":"w","session_id":"s","started_at":"2026-03-01T10:00:00Z","worktree_root":"/home/alice/repo","repo_root":"/home/alice/repo"});
    db.ok("create", "work_sessions", "ws-1", ws, json!({}));
    assert_eq!(db.get("SELECT worktree_root FROM work_sessions"), "");
}

#[test]
fn malformed_events_fail_permanently_and_change_nothing() {
    let db = Db::new();
    let cases: Vec<(&str, &str, &str, String)> = vec![
        (
            "create",
            "widgets",
            "x-1",
            json!({"new_data":{"id":"x-1"}}).to_string(),
        ),
        (
            "create",
            "sessions",
            "s-1",
            json!({"new_data":{"id":"s-1"}}).to_string(),
        ),
        (
            "frobnicate",
            "issues",
            "td-1",
            json!({"new_data":{"id":"td-1"}}).to_string(),
        ),
        (
            "create",
            "issues",
            "",
            json!({"new_data":{"id":""}}).to_string(),
        ),
        ("create", "issues", "td-1", "{not json".to_string()),
        (
            "create",
            "issues",
            "td-1",
            json!({"new_data":{}}).to_string(),
        ),
        (
            "create",
            "issues",
            "td-1",
            json!({"new_data":{"unknown":1}}).to_string(),
        ),
    ];
    for (action, entity, id, payload) in cases {
        let err = db
            .applier
            .apply(
                &db.conn,
                &Event {
                    server_seq: 1,
                    device_id: "d",
                    action_type: action,
                    entity_type: entity,
                    entity_id: id,
                    payload: &payload,
                    client_timestamp: "2026-03-01T10:00:00Z",
                },
            )
            .unwrap_err();
        assert!(err.is_permanent(), "{action} {entity} {payload}: {err}");
    }
    assert_eq!(db.count("issues"), 0);
}

#[test]
fn deterministic_ids_let_two_writers_of_the_same_link_converge_on_one_row() {
    let mut db = Db::new();
    db.ok("create", "issues", "td-1", issue("td-1", "One"), json!({}));
    for sha in ["aaa", "bbb"] {
        let id = tdsync_protocol::ids::issue_file("td-1", "./src/main.rs");
        db.ok("create", "issue_files", &id, json!({"id": id, "issue_id":"td-1","file_path":"src/main.rs","role":"implementation","linked_sha": sha,"linked_at":"2026-03-01T10:00:00Z"}), json!({}));
    }
    assert_eq!(db.count("issue_files"), 1);
    assert_eq!(db.get("SELECT linked_sha FROM issue_files"), "bbb");
}

// --- clobber detection: a conflict is exactly a write over a value its writer had not seen ---

#[test]
fn an_update_from_a_stale_view_of_the_same_field_clobbers_it() {
    let mut db = Db::new();
    let base = issue("td-1", "One");
    db.ok("create", "issues", "td-1", base.clone(), json!({}));
    let first = db.ok(
        "update",
        "issues",
        "td-1",
        with(base.clone(), "title", json!("A")),
        base.clone(),
    );
    assert!(first.clobbered.is_empty(), "the first writer saw the base");
    let second = db.ok(
        "update",
        "issues",
        "td-1",
        with(base.clone(), "title", json!("B")),
        base,
    );
    assert_eq!(second.clobbered, vec!["title".to_string()]);
    assert_eq!(
        *second.before.unwrap().get("title").unwrap(),
        rusqlite::types::Value::Text("A".into())
    );
}

#[test]
fn different_fields_and_updated_at_are_not_clobbers() {
    let mut db = Db::new();
    let base = issue("td-1", "One");
    db.ok("create", "issues", "td-1", base.clone(), json!({}));
    let a = with(
        with(base.clone(), "title", json!("A")),
        "updated_at",
        json!("2026-03-01T09:10:00Z"),
    );
    db.ok("update", "issues", "td-1", a, base.clone());
    let b = with(
        with(base.clone(), "priority", json!("P1")),
        "updated_at",
        json!("2026-03-01T09:20:00Z"),
    );
    assert!(
        db.ok("update", "issues", "td-1", b, base)
            .clobbered
            .is_empty()
    );
}

#[test]
fn a_create_over_a_different_row_clobbers_but_an_identical_one_does_not() {
    let mut db = Db::new();
    db.ok("create", "issues", "td-1", issue("td-1", "One"), json!({}));
    assert!(
        db.ok("create", "issues", "td-1", issue("td-1", "One"), json!({}))
            .clobbered
            .is_empty()
    );
    let other = db.ok(
        "create",
        "issues",
        "td-1",
        issue("td-1", "Other"),
        json!({}),
    );
    assert_eq!(other.clobbered, vec!["title".to_string()]);
}

#[test]
fn a_hard_delete_from_a_stale_view_clobbers_the_unseen_values() {
    let mut db = Db::new();
    let base = issue("td-1", "One");
    db.ok("create", "issues", "td-1", base.clone(), json!({}));
    db.ok(
        "update",
        "issues",
        "td-1",
        with(base.clone(), "title", json!("edited")),
        base.clone(),
    );
    let del = db.ok("delete", "issues", "td-1", json!({}), base);
    assert_eq!(del.clobbered, vec!["title".to_string()]);
}
