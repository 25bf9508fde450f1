//! td's snapshot bootstrap (td-wire-protocol.md §4): 404 `no_events` while the log is empty;
//! then a td schema-38 database of the projection with `X-Snapshot-Seq`.

use serde_json::json;
use tdsync_client::tddb::TdDatabase;
use tdsync_projection::Dump;

use crate::support::{
    TestServer,
    events::{create, event, issue, push, rename},
};

#[test]
fn an_empty_project_has_no_snapshot() {
    let s = TestServer::start();
    let team = s.team("acme");
    let reply = s.get(
        &format!("/v1/projects/{}/sync/snapshot", team.project),
        &team.admin.token,
    );
    let message = reply.error(404, "no_events");
    assert!(message.contains(&team.project), "{message}");
}

#[test]
fn a_snapshot_is_a_td_database_equal_to_the_projection_at_the_head() {
    let s = TestServer::start();
    let team = s.team("acme");
    let (p, t) = (team.project.as_str(), team.admin.token.as_str());
    let base = issue("td-1", "one");
    let comment = json!({"id": "cm-1", "issue_id": "td-1", "session_id": "ses_a1b2c3",
                         "text": "hi", "created_at": "2026-08-21T14:41:18Z"});
    s.push(
        p,
        t,
        &push(
            "dev-a",
            vec![
                create(1, "td-1", "one"),
                create(2, "td-2", "two"),
                event(3, "create", "comments", "cm-1", comment, json!({})),
                rename(4, &base, "renamed"),
            ],
        ),
    )
    .expect(200);
    // A reader may bootstrap.
    let reader = s.mint(&team.tenant, "read", &[p], None);
    let reply = s.get(&format!("/v1/projects/{p}/sync/snapshot"), &reader.token);
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("content-type"), Some("application/x-sqlite3"));
    assert_eq!(reply.header("x-snapshot-seq"), Some("4"));
    assert_eq!(
        reply.header("content-length"),
        Some(reply.body.len().to_string().as_str())
    );
    assert_eq!(&reply.body[..16], b"SQLite format 3\0");

    // What td does with it: stage it as .todos/issues.db, quick_check, open with its migrations.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(".todos").join("issues.db");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, &reply.body).unwrap();
    let conn = rusqlite::Connection::open(&file).unwrap();
    let text = |sql: &str| -> String { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(text("PRAGMA quick_check"), "ok");
    assert_eq!(
        text("SELECT value FROM schema_info WHERE key = 'version'"),
        "38"
    );
    assert_eq!(
        count("SELECT count(*) FROM action_log"),
        0,
        "nothing to re-push"
    );
    assert_eq!(
        count("SELECT count(*) FROM sync_state"),
        0,
        "no link to clash with td's"
    );
    assert_eq!(
        text("SELECT title FROM issues WHERE id = 'td-1'"),
        "renamed"
    );
    assert_eq!(count("SELECT count(*) FROM comments"), 1);
    assert_ne!(
        text("PRAGMA journal_mode"),
        "wal",
        "td refuses -wal sidecars"
    );
    // Row for row the server's projection.
    let shard = rusqlite::Connection::open_with_flags(
        s.shard_path(&team.tenant, p),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let (server, snapshot) = (Dump::read(&shard).unwrap(), Dump::read(&conn).unwrap());
    assert_eq!(server.first_difference(&snapshot), None);
    assert_eq!(
        snapshot.tables[&tdsync_protocol::EntityType::Issues]
            .rows
            .len(),
        2
    );
    drop(conn);
    // The client library opens it as a td database.
    let db = TdDatabase::open(&file).unwrap();
    db.link(p).unwrap();

    // The head moves: so does the snapshot.
    s.push(p, t, &push("dev-b", vec![create(1, "td-3", "three")]))
        .expect(200);
    let next = s.get(&format!("/v1/projects/{p}/sync/snapshot"), t);
    assert_eq!(next.status, 200);
    assert_eq!(next.header("x-snapshot-seq"), Some("5"));
    let file2 = dir.path().join("next.db");
    std::fs::write(&file2, &next.body).unwrap();
    let conn2 = rusqlite::Connection::open(&file2).unwrap();
    let n: i64 = conn2
        .query_row("SELECT count(*) FROM issues WHERE id != ''", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(n, 3);
}
