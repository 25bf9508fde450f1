//! Helpers shared by the adapter's integration tests.
#![allow(dead_code)]

pub mod fake_server;

use std::path::{Path, PathBuf};

use serde_json::{Value, json, value::RawValue};
use tdsync_client::tddb::TdDatabase;
use tdsync_protocol::wire::PullEvent;

/// `<dir>/.todos/issues.db`, the path td uses.
pub fn db_path(dir: &Path) -> PathBuf {
    dir.join(".todos").join("issues.db")
}

/// A fresh td database in a temp dir (kept alive by the returned guard).
pub fn fresh() -> (tempfile::TempDir, TdDatabase) {
    let dir = tempfile::tempdir().unwrap();
    let db = TdDatabase::create(&db_path(dir.path())).unwrap();
    (dir, db)
}

/// The real td databases every checkout has at `../shared/fixtures/real-td` (override with
/// `TDSYNC_FIXTURES`). Missing fixtures fail the test: they are part of the project.
pub fn fixtures_dir() -> PathBuf {
    let dir = std::env::var_os("TDSYNC_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/real-td")
        });
    assert!(
        dir.is_dir(),
        "no real td fixtures at {} (set TDSYNC_FIXTURES)",
        dir.display()
    );
    dir
}

/// Every fixture database file (including the sindri series), sorted.
pub fn fixture_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in walk(dir) {
        if entry.extension().is_some_and(|e| e == "db") {
            out.push(entry);
        }
    }
    out.sort();
    out
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Copies a (read-only) fixture into `dir/.todos/issues.db`, writable.
pub fn copy_fixture(fixture: &Path, dir: &Path) -> PathBuf {
    let dest = db_path(dir);
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    std::fs::copy(fixture, &dest).unwrap();
    let mut perms = std::fs::metadata(&dest).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&dest, perms).unwrap();
    dest
}

pub fn pull_event(
    seq: i64,
    device: &str,
    action: &str,
    entity: &str,
    id: &str,
    payload: Value,
) -> PullEvent {
    PullEvent {
        server_seq: seq,
        device_id: device.into(),
        session_id: "ses_remote".into(),
        client_action_id: seq,
        action_type: action.into(),
        entity_type: entity.into(),
        entity_id: id.into(),
        payload: RawValue::from_string(payload.to_string()).unwrap(),
        client_timestamp: "2026-08-21T14:41:18.123-07:00".into(),
    }
}

/// An issue as td's writer shapes it.
pub fn issue_json(id: &str, title: &str, status: &str, updated_at: &str) -> Value {
    json!({
        "id": id, "title": title, "status": status, "type": "task", "priority": "P2",
        "points": 0, "labels": ["a", "b"], "implementer_session": "", "creator_session": "ses_x",
        "reviewer_session": "", "created_at": "2026-08-01T10:00:00Z", "updated_at": updated_at,
        "minor": false, "defer_count": 0
    })
}

pub fn create_payload(new_data: Value) -> Value {
    json!({"new_data": new_data, "previous_data": {}, "schema_version": 1})
}

pub fn update_payload(previous: Value, new_data: Value) -> Value {
    json!({"new_data": new_data, "previous_data": previous, "schema_version": 1})
}

pub fn count(db: &TdDatabase, sql: &str) -> i64 {
    db.connection().query_row(sql, [], |r| r.get(0)).unwrap()
}

/// Inserts an action_log row as td writes one: `[id, action_type, entity_type, entity_id,
/// previous_data, new_data, timestamp]`; returns its rowid.
pub fn log_action(db: &TdDatabase, fields: [&str; 7]) -> i64 {
    db.connection()
        .execute(
            "INSERT INTO action_log (id, action_type, entity_type, entity_id, previous_data, new_data, timestamp, session_id) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'ses_a')",
            fields,
        )
        .unwrap();
    db.connection().last_insert_rowid()
}
