//! The td-database adapter's public behaviour, on fresh and real td databases.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use tdsync_client::{
    tddb::{
        Damage, Link, SkipReason, TableUse, TdDatabase, TdDbError, TdDbOptions, UnsendableReason,
        acks_of,
    },
    testing::change_behind_index,
};
use tdsync_protocol::{
    EntityType,
    wire::{Ack, PushResponse, Rejection},
};

// ---------------------------------------------------------------------------------------------
// Opening and creating

#[test]
fn create_makes_a_schema_38_td_database_with_tds_pragmas() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    let db = TdDatabase::create(&path).unwrap();
    assert_eq!(db.schema_version(), 38);
    assert!(path.is_file());
    let conn = db.connection();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "truncate");
    let fk: i64 = conn
        .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
        .unwrap();
    assert_eq!(fk, 1);
    let busy: i64 = conn
        .query_row("PRAGMA busy_timeout", [], |r| r.get(0))
        .unwrap();
    assert_eq!(busy, 5000);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM boards WHERE id = 'bd-all-issues'"
        ),
        1
    );
    drop(db);

    let again = TdDatabase::open(&path).unwrap();
    assert_eq!(again.schema_version(), 38);
    let err = TdDatabase::create(&path).unwrap_err();
    assert!(matches!(err, TdDbError::AlreadyExists { .. }), "{err}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

#[test]
fn open_never_creates_and_names_the_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    let err = TdDatabase::open(&path).unwrap_err();
    assert!(matches!(err, TdDbError::NotFound { .. }), "{err}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    assert!(!path.exists());
}

#[test]
fn a_garbage_file_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(
        &path,
        "this is not a database, just some text that is long enough ".repeat(20),
    )
    .unwrap();
    let err = TdDatabase::open(&path).unwrap_err();
    assert!(matches!(err, TdDbError::NotTdDatabase { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("not a td database"), "{msg}");

    // A valid SQLite file that td did not write.
    std::fs::remove_file(&path).unwrap();
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE t (x)")
        .unwrap();
    let err = TdDatabase::open(&path).unwrap_err();
    assert!(matches!(err, TdDbError::NotTdDatabase { .. }), "{err:?}");
    assert!(err.to_string().contains(&path.display().to_string()));
}

#[test]
fn schemas_outside_27_to_38_are_refused_with_their_version() {
    let (dir, db) = fresh();
    let path = db.path().to_path_buf();
    drop(db);
    for (version, hint) in [("26", "migrate"), ("39", "upgrade tdsync")] {
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute(
                "UPDATE schema_info SET value = ?1 WHERE key = 'version'",
                [version],
            )
            .unwrap();
        let err = TdDatabase::open(&path).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, TdDbError::UnsupportedSchema { .. }), "{msg}");
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains(&format!("version {version}")), "{msg}");
        assert!(msg.contains(hint), "{msg}");
    }
    drop(dir);
}

#[test]
fn a_wal_database_is_switched_back_to_tds_rollback_journal() {
    let (_dir, db) = fresh();
    let path = db.path().to_path_buf();
    drop(db);
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        let m: String = c
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .unwrap();
        assert_eq!(m, "wal");
    }
    let db = TdDatabase::open(&path).unwrap();
    let mode: String = db
        .connection()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "truncate");
}

#[test]
fn schema_27_database_opens_and_gets_tds_sync_skipped_events_table() {
    let fixtures = fixtures_dir();
    let dir = tempfile::tempdir().unwrap();
    let path = copy_fixture(&fixtures.join("nightshift-v27.db"), dir.path());
    let before = rusqlite::Connection::open(&path).unwrap();
    let had: i64 = before
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'sync_skipped_events'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(had, 0, "the v27 fixture predates sync_skipped_events");
    drop(before);

    let db = TdDatabase::open(&path).unwrap();
    assert_eq!(
        db.schema_version(),
        27,
        "the adapter never migrates td's schema"
    );
    let fk: i64 = db
        .connection()
        .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        fk, 0,
        "before schema 30 td ran without FK enforcement (issues.parent_id '' would fail)"
    );
    let ddl: String = db
        .connection()
        .query_row(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'sync_skipped_events'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(ddl.contains("server_seq INTEGER PRIMARY KEY"), "{ddl}");
    assert!(
        ddl.contains("skipped_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP"),
        "{ddl}"
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM sqlite_master WHERE type = 'index' \
             AND name IN ('idx_sync_skipped_time', 'idx_sync_skipped_reason')"
        ),
        2
    );
    let version: String = db
        .connection()
        .query_row(
            "SELECT value FROM schema_info WHERE key = 'version'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(version, "27");
}

// ---------------------------------------------------------------------------------------------
// Link and state

#[test]
fn link_keeps_the_cursor_for_the_same_project_and_resets_for_another() {
    let (_dir, db) = fresh();
    assert_eq!(db.sync_state().unwrap(), None);
    assert_eq!(db.link("p_one").unwrap(), Link::Linked);
    let s = db.sync_state().unwrap().unwrap();
    assert_eq!(
        (
            s.project_id.as_str(),
            s.last_pulled_server_seq,
            s.last_pushed_action_id
        ),
        ("p_one", 0, 0)
    );
    assert_eq!(s.last_sync_at, None);

    let row = log_action(
        &db,
        [
            "al-1",
            "create",
            "issue",
            "td-1",
            "",
            r#"{"id":"td-1"}"#,
            "2026-08-01T10:00:00Z",
        ],
    );
    db.mark_pushed(
        &[Ack {
            client_action_id: row,
            server_seq: 7,
        }],
        "dev",
    )
    .unwrap();
    db.apply_page(&[], 7, "dev").unwrap();
    assert_eq!(db.link("p_one").unwrap(), Link::Unchanged);
    let s = db.sync_state().unwrap().unwrap();
    assert_eq!(
        (s.last_pulled_server_seq, s.last_pushed_action_id),
        (7, row)
    );
    assert!(s.last_sync_time().is_some());

    match db.link("p_two").unwrap() {
        Link::Relinked {
            previous_project,
            reset_events,
        } => {
            assert_eq!(previous_project, "p_one");
            assert_eq!(reset_events, 1);
        }
        other => panic!("{other:?}"),
    }
    let s = db.sync_state().unwrap().unwrap();
    assert_eq!(
        (s.project_id.as_str(), s.last_pulled_server_seq),
        ("p_two", 0)
    );
    assert_eq!(count(&db, "SELECT count(*) FROM sync_state"), 1);
    assert_eq!(
        db.pending_count().unwrap(),
        1,
        "pushed rows are pending again for the new project"
    );
    assert!(db.link(" ").is_err());
}

// ---------------------------------------------------------------------------------------------
// Pending

#[test]
fn pending_builds_tds_push_events_and_reports_unsendable_rows() {
    let (_dir, db) = fresh();
    db.link("p").unwrap();
    let prev = r#"{"id":"td-1","title":"Old","status":"open"}"#;
    let new = r#"{"id":"td-1","title":"New <b>","status":"in_progress"}"#;
    let r1 = log_action(
        &db,
        [
            "al-1",
            "create",
            "issue",
            "td-1",
            "",
            prev,
            "2026-08-21T21:41:18.123456789Z",
        ],
    );
    let r2 = log_action(
        &db,
        [
            "al-2",
            "start",
            "issue",
            "td-1",
            prev,
            new,
            "2026-08-21 14:41:19.5-07:00",
        ],
    );
    let r3 = log_action(
        &db,
        [
            "al-3",
            "delete",
            "note",
            "nt-1",
            r#"{"id":"nt-1"}"#,
            "",
            "2026-02-03 20:53:53.519728 -0800 PST m=+0.036937834",
        ],
    );
    let bad_id = log_action(
        &db,
        [
            "",
            "create",
            "issue",
            "td-2",
            "",
            r#"{"id":"td-2"}"#,
            "2026-08-21T21:41:18Z",
        ],
    );
    let unknown = log_action(
        &db,
        [
            "al-5",
            "create",
            "widgets",
            "w-1",
            "",
            "{}",
            "2026-08-21T21:41:18Z",
        ],
    );
    let local = log_action(
        &db,
        [
            "al-6",
            "create",
            "session",
            "ses_1",
            "",
            "{}",
            "2026-08-21T21:41:18Z",
        ],
    );
    let not_json = log_action(
        &db,
        [
            "al-7",
            "create",
            "comments",
            "cm-1",
            "",
            "{broken",
            "2026-08-21T21:41:18Z",
        ],
    );
    let undone = log_action(
        &db,
        [
            "al-8",
            "update",
            "issue",
            "td-1",
            prev,
            new,
            "2026-08-21T21:41:18Z",
        ],
    );
    db.connection()
        .execute(
            "UPDATE action_log SET undone = 1 WHERE rowid = ?1",
            [undone],
        )
        .unwrap();
    let ws = log_action(
        &db,
        [
            "al-9",
            "create",
            "work_sessions",
            "ws-1",
            "",
            r#"{"name":"w","id":"ws-1","worktree_root":"/home/me","repo_root":"/r","worktree_id":"x"}"#,
            "2026-08-21T21:41:18Z",
        ],
    );

    let p = db.pending("ses_me", 100).unwrap();
    let ids: Vec<i64> = p.events.iter().map(|e| e.client_action_id).collect();
    assert_eq!(ids, vec![r1, r2, r3, ws]);
    assert!(!p.has_more);

    let e = &p.events[0];
    assert_eq!(
        (
            e.action_type.as_str(),
            e.entity_type.as_str(),
            e.entity_id.as_str()
        ),
        ("create", "issues", "td-1")
    );
    assert_eq!(
        e.payload.get(),
        r#"{"new_data":{"id":"td-1","title":"Old","status":"open"},"previous_data":{},"schema_version":1}"#
    );
    assert_eq!(e.client_timestamp, "2026-08-21T21:41:18Z");

    let e = &p.events[1];
    assert_eq!(
        e.action_type, "update",
        "td's start is an update on the wire"
    );
    assert_eq!(
        e.payload.get(),
        r#"{"new_data":{"id":"td-1","title":"New \u003cb\u003e","status":"in_progress"},"previous_data":{"id":"td-1","title":"Old","status":"open"},"schema_version":1}"#
    );
    assert_eq!(
        e.client_timestamp, "2026-08-21T14:41:19-07:00",
        "second precision, original offset"
    );

    let e = &p.events[2];
    assert_eq!(
        (e.action_type.as_str(), e.entity_type.as_str()),
        ("soft_delete", "notes")
    );
    assert_eq!(
        e.client_timestamp, "2026-02-03T20:53:53-08:00",
        "Go time.String() form"
    );

    let e = &p.events[3];
    assert_eq!(
        e.payload.get(),
        r#"{"new_data":{"id":"ws-1","name":"w"},"previous_data":{},"schema_version":1}"#,
        "worktree paths never leave the machine"
    );

    let reasons: Vec<(i64, UnsendableReason)> = p
        .unsendable
        .iter()
        .map(|u| (u.rowid, u.reason.clone()))
        .collect();
    assert_eq!(reasons.len(), 4, "{reasons:?}");
    assert_eq!(reasons[0], (bad_id, UnsendableReason::MissingActionId));
    assert_eq!(reasons[1], (unknown, UnsendableReason::UnknownEntityType));
    assert_eq!(reasons[2], (local, UnsendableReason::NotSynced));
    assert_eq!(reasons[3].0, not_json);
    assert!(matches!(reasons[3].1, UnsendableReason::InvalidPayload(_)));
    assert_eq!(p.unsendable[1].entity_type, "widgets");
    assert_eq!(
        db.pending_count().unwrap(),
        8,
        "td's count includes the unsendable rows"
    );

    // Paging.
    let first = db.pending("ses_me", 2).unwrap();
    assert_eq!(first.events.len(), 2);
    assert!(first.has_more);
    let rest = db
        .pending_after(first.events[1].client_action_id, 10)
        .unwrap();
    assert_eq!(
        rest.events
            .iter()
            .map(|e| e.client_action_id)
            .collect::<Vec<_>>(),
        vec![r3, ws]
    );
    // An unsendable row is reported once, by the page that steps past it (a push adds the
    // pages' counts up).
    let three = db.pending_after(0, 3).unwrap();
    assert!(three.has_more);
    assert!(three.unsendable.is_empty(), "{:?}", three.unsendable);
    assert_eq!(db.pending_after(r3, 3).unwrap().unsendable.len(), 4);
    assert!(db.pending_after(0, 0).is_err());
}

#[test]
fn an_unreadable_action_log_timestamp_is_an_error_naming_the_rowid() {
    let (_dir, db) = fresh();
    db.link("p").unwrap();
    log_action(
        &db,
        [
            "al-1",
            "create",
            "issue",
            "td-1",
            "",
            "{}",
            "2026-08-21T21:41:18Z",
        ],
    );
    let bad = log_action(
        &db,
        ["al-2", "create", "issue", "td-2", "", "{}", "last tuesday"],
    );
    let err = db.pending("ses", 10).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, TdDbError::BadTimestamp { rowid, .. } if rowid == bad),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("rowid {bad}")) && msg.contains("last tuesday"),
        "{msg}"
    );
    assert!(msg.contains(&db.path().display().to_string()), "{msg}");
}

#[test]
fn pending_works_on_every_real_td_database() {
    let fixtures = fixtures_dir();
    let files = fixture_files(&fixtures);
    assert!(files.len() >= 7, "{files:?}");
    for fixture in files {
        let dir = tempfile::tempdir().unwrap();
        let path = copy_fixture(&fixture, dir.path());
        let db = TdDatabase::open(&path).unwrap_or_else(|e| panic!("{}: {e}", fixture.display()));
        let rows_before = db.pending_count().unwrap();
        let p = db
            .pending("ses_fixture", 100_000)
            .unwrap_or_else(|e| panic!("{}: {e}", fixture.display()));
        let name = fixture.file_name().unwrap().to_string_lossy().to_string();
        assert_eq!(
            (p.events.len() + p.unsendable.len()) as i64,
            rows_before + p.backfilled as i64,
            "{name}: every pending row is either an event or reported"
        );
        assert!(p.unsendable.is_empty(), "{name}: {:?}", p.unsendable);
        assert!(!p.events.is_empty(), "{name}");
        let mut last = 0;
        for e in &p.events {
            assert!(e.client_action_id > last, "{name}: rowid order");
            last = e.client_action_id;
            let entity = EntityType::parse(&e.entity_type).unwrap();
            assert_eq!(entity.as_str(), e.entity_type, "{name}: canonical plural");
            assert!(entity.is_synced());
            assert!(
                ["create", "update", "delete", "soft_delete", "restore"]
                    .contains(&e.action_type.as_str()),
                "{name}: {}",
                e.action_type
            );
            let ts = &e.client_timestamp;
            assert!(
                chrono::DateTime::parse_from_rfc3339(ts).is_ok()
                    && !ts.contains('.')
                    && ts.len() >= 20,
                "{name}: {ts}"
            );
            let v: Value = serde_json::from_str(e.payload.get()).unwrap();
            let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
            assert_eq!(
                keys,
                ["new_data", "previous_data", "schema_version"],
                "{name}"
            );
            assert!(
                v["new_data"].is_object() && v["previous_data"].is_object(),
                "{name}"
            );
            assert_eq!(v["schema_version"], 1);
        }
        if name == "nightshift-v27.db" {
            // Rowid 6 is stored as `2026-02-03 20:53:53.519728 -0800 PST m=+0.036937834`.
            let e = p.events.iter().find(|e| e.client_action_id == 6).unwrap();
            assert_eq!(e.client_timestamp, "2026-02-03T20:53:53-08:00");
        }
        // Backfill has run once; it writes nothing the second time.
        assert_eq!(db.backfill("ses_fixture").unwrap(), 0, "{name}");
    }
}

// ---------------------------------------------------------------------------------------------
// Backfill

#[test]
fn backfill_synthesises_creates_for_rows_without_events_until_the_first_pull() {
    let (_dir, db) = fresh();
    db.link("p").unwrap();
    let c = db.connection();
    c.execute_batch(
        "INSERT INTO issues (id, title, status, labels, created_at, updated_at) \
           VALUES ('td-aaaaaa', 'Imported <x>', 'open', 'a,b', '2026-08-01 10:00:00.5+02:00', '2026-08-01 10:00:00.5+02:00');
         INSERT INTO comments (id, issue_id, session_id, text, created_at) \
           VALUES ('cm-1', 'td-aaaaaa', 'ses_x', 'hi', '2026-08-01T09:00:00Z');
         INSERT INTO boards (id, name, query, created_at, updated_at) VALUES ('bd-1', 'Mine', '', '2026-08-01 09:00:00', '2026-08-01 09:00:00');
         INSERT INTO notes (id, title, content, created_at, updated_at, deleted_at) \
           VALUES ('nt-gone', 't', 'c', '2026-08-01T09:00:00Z', '2026-08-01T09:00:00Z', '2026-08-02T09:00:00Z');
         INSERT INTO work_sessions (id, name, session_id, worktree_root, started_at) \
           VALUES ('ws-1', 'w', 'ses_x', '/home/me/wt', '2026-08-01 09:00:00');",
    )
    .unwrap();
    let n = db.backfill("ses_me").unwrap();
    assert_eq!(
        n, 4,
        "issue, comment, board, work session; not the builtin board or a deleted note"
    );

    let row = |id: &str| -> (String, String, String, String, String) {
        c.query_row(
            "SELECT session_id, action_type, entity_type, new_data, timestamp FROM action_log WHERE entity_id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap()
    };
    let (session, action, entity, new_data, ts) = row("td-aaaaaa");
    assert_eq!(
        (session.as_str(), action.as_str(), entity.as_str()),
        ("ses_me", "create", "issue")
    );
    assert_eq!(
        ts, "2026-08-01T08:00:00.5Z",
        "the row's own creation time, as td's action_log stores times"
    );
    let v: serde_json::Map<String, Value> = serde_json::from_str(&new_data).unwrap();
    let keys: Vec<&String> = v.keys().collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    assert!(
        new_data.contains(r#""title":"Imported \u003cx\u003e""#),
        "{new_data}"
    );
    assert_eq!(
        v["created_at"], "2026-08-01T10:00:00.5+02:00",
        "DATETIME read as a time"
    );
    assert_eq!(
        v["labels"], "a,b",
        "backfill copies the stored text, as td does"
    );
    assert_eq!(v["closed_at"], Value::Null);
    assert_eq!(v["points"], 0);
    assert_eq!(row("cm-1").2, "comments");
    assert_eq!(row("bd-1").2, "boards");
    let (_, _, entity, ws, _) = row("ws-1");
    assert_eq!(entity, "work_sessions");
    assert!(!ws.contains("worktree_root"), "{ws}");
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM action_log WHERE entity_id IN ('bd-all-issues', 'nt-gone')"
        ),
        0
    );

    assert_eq!(db.backfill("ses_me").unwrap(), 0, "idempotent");

    // A new handle's pending() runs it (once), and the events are there.
    let path = db.path().to_path_buf();
    drop(db);
    let db = TdDatabase::open(&path).unwrap();
    let c = db.connection();
    c.execute(
        "INSERT INTO logs (id, issue_id, session_id, message, timestamp) VALUES ('lg-1', 'td-aaaaaa', 's', 'm', '2026-08-01 11:00:00')",
        [],
    )
    .unwrap();
    let p = db.pending("ses_me", 100).unwrap();
    assert_eq!(p.backfilled, 1);
    assert_eq!(p.events.len(), 5);
    let log = p.events.iter().find(|e| e.entity_id == "lg-1").unwrap();
    assert_eq!(log.client_timestamp, "2026-08-01T11:00:00Z");
    let again = db.pending("ses_me", 100).unwrap();
    assert_eq!(
        (again.backfilled, again.events.len()),
        (0, 5),
        "paging never re-synthesises"
    );

    // After the first pull, rows without events came from the server: never backfilled.
    db.apply_page(&[], 3, "me").unwrap();
    c.execute(
        "INSERT INTO logs (id, issue_id, session_id, message, timestamp) VALUES ('lg-2', 'td-aaaaaa', 's', 'm', '2026-08-01 11:00:00')",
        [],
    )
    .unwrap();
    assert_eq!(db.backfill("ses_me").unwrap(), 0);
    assert_eq!(db.pending("ses_me", 100).unwrap().backfilled, 0);
}

/// The pending events' (action, entity id) pairs, in send order.
fn pending_actions(db: &TdDatabase) -> Vec<(String, String)> {
    db.pending("ses_me", 100)
        .unwrap()
        .events
        .iter()
        .map(|e| (e.action_type.clone(), e.entity_id.clone()))
        .collect()
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn a_create_undone_before_its_push_is_sent_in_its_place_when_the_row_outlives_it() {
    // td's undo of a create soft-deletes the issue and marks the create undone, which td never
    // pushes; here a comment came first and a restore follows. Peers need the create before
    // the comment (or they drop it as an orphan) and before the delete and the restore.
    let (_dir, db) = fresh();
    db.link("p").unwrap();
    db.apply_page(&[], 3, "me").unwrap();
    let c = db.connection();
    c.execute_batch(
        "INSERT INTO issues (id, title, status, created_at, updated_at) \
           VALUES ('td-aaaaaa', 'T', 'open', '2026-08-01T09:00:00Z', '2026-08-01T09:00:00Z');
         INSERT INTO comments (id, issue_id, session_id, text, created_at) \
           VALUES ('cm-1', 'td-aaaaaa', 'ses_a', 'hi', '2026-08-01T09:00:01Z');",
    )
    .unwrap();
    let image = r#"{"id":"td-aaaaaa","title":"T","status":"open"}"#;
    let rows = [
        [
            "al-1",
            "create",
            "issue",
            "td-aaaaaa",
            "",
            image,
            "2026-08-01T09:00:00Z",
        ],
        [
            "al-2",
            "create",
            "comments",
            "cm-1",
            "",
            r#"{"id":"cm-1","issue_id":"td-aaaaaa","text":"hi"}"#,
            "2026-08-01T09:00:01Z",
        ],
        [
            "al-3",
            "delete",
            "issue",
            "td-aaaaaa",
            image,
            "",
            "2026-08-01T09:00:02Z",
        ],
        [
            "al-4",
            "restore",
            "issue",
            "td-aaaaaa",
            image,
            image,
            "2026-08-01T09:00:03Z",
        ],
    ];
    for r in rows {
        log_action(&db, r);
    }
    c.execute("UPDATE action_log SET undone = 1 WHERE id = 'al-1'", [])
        .unwrap();
    assert_eq!(
        pending_actions(&db),
        owned(&[
            ("create", "td-aaaaaa"),
            ("create", "cm-1"),
            ("soft_delete", "td-aaaaaa"),
            ("restore", "td-aaaaaa"),
        ])
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM action_log"),
        4,
        "nothing written"
    );

    // Once pushed it is never sent again; a create whose row is gone (a hard delete) never was.
    let p = db.pending("ses_me", 100).unwrap();
    let acks: Vec<Ack> = p
        .events
        .iter()
        .enumerate()
        .map(|(i, e)| Ack {
            client_action_id: e.client_action_id,
            server_seq: 10 + i as i64,
        })
        .collect();
    db.mark_pushed(&acks, "me").unwrap();
    assert!(pending_actions(&db).is_empty());
    log_action(
        &db,
        [
            "al-5",
            "add_dependency",
            "dependency",
            "dep-1",
            "",
            "{}",
            "2026-08-01T09:00:04Z",
        ],
    );
    c.execute("UPDATE action_log SET undone = 1 WHERE id = 'al-5'", [])
        .unwrap();
    assert!(pending_actions(&db).is_empty());
}

#[test]
fn a_position_undone_before_its_push_is_still_sent_soft_deleted() {
    // td's undo of `td board move` soft-deletes the position and logs a `board_unposition`;
    // its `board_set_position` is marked undone. Without it the server (and every peer) would
    // never get the soft-deleted row this database keeps.
    let (_dir, db) = fresh();
    db.link("p").unwrap();
    db.apply_page(&[], 3, "me").unwrap();
    let c = db.connection();
    c.execute_batch(
        "INSERT INTO issues (id, title, status, created_at, updated_at) \
           VALUES ('td-aaaaaa', 'T', 'open', '2026-08-01T09:00:00Z', '2026-08-01T09:00:00Z');
         INSERT INTO boards (id, name, query, created_at, updated_at) \
           VALUES ('bd-1', 'Mine', '', '2026-08-01T09:00:00Z', '2026-08-01T09:00:00Z');
         INSERT INTO board_issue_positions (id, board_id, issue_id, position, added_at, deleted_at) \
           VALUES ('bip_1', 'bd-1', 'td-aaaaaa', 65536, '2026-08-01T10:00:00Z', '2026-08-01T10:00:01Z');",
    )
    .unwrap();
    let image = r#"{"id":"bip_1","board_id":"bd-1","issue_id":"td-aaaaaa","position":65536}"#;
    let set = log_action(
        &db,
        [
            "al-1",
            "board_set_position",
            "board_position",
            "bip_1",
            "",
            image,
            "2026-08-01T10:00:00Z",
        ],
    );
    c.execute("UPDATE action_log SET undone = 1 WHERE rowid = ?1", [set])
        .unwrap();
    log_action(
        &db,
        [
            "al-2",
            "board_unposition",
            "board_position",
            "bip_1",
            image,
            "",
            "2026-08-01T10:00:01Z",
        ],
    );
    assert_eq!(
        pending_actions(&db),
        owned(&[("create", "bip_1"), ("soft_delete", "bip_1")])
    );
}

#[test]
fn a_failing_backfill_is_reported_and_pending_still_reads() {
    let (_dir, db) = fresh();
    db.link("p").unwrap();
    log_action(
        &db,
        [
            "al-1",
            "create",
            "issue",
            "td-1",
            "",
            r#"{"id":"td-1"}"#,
            "2026-08-21T21:41:18Z",
        ],
    );
    db.connection()
        .execute_batch(
            "INSERT INTO boards (id, name, query) VALUES ('bd-x', 'x', '');
             CREATE TRIGGER no_backfill BEFORE INSERT ON action_log \
             BEGIN SELECT RAISE(ABORT, 'synthetic rows refused'); END;",
        )
        .unwrap();
    let p = db.pending("s", 10).unwrap();
    assert_eq!((p.events.len(), p.backfilled), (1, 0));
    let why = p.backfill_error.unwrap();
    assert!(
        why.contains("synthetic rows refused") && why.contains("backfill boards"),
        "{why}"
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM action_log"),
        1,
        "nothing half-written"
    );
}

#[test]
fn backfill_recreates_stale_issues() {
    let (_dir, db) = fresh();
    db.link("p").unwrap();
    let c = db.connection();
    // Closed locally without an event: the create says open, nothing says closed.
    c.execute(
        "INSERT INTO issues (id, title, status, created_at, updated_at) VALUES ('td-1', 'T', 'closed', '2026-08-01T10:00:00Z', '2026-08-01T10:00:00.2Z')",
        [],
    )
    .unwrap();
    log_action(
        &db,
        [
            "al-1",
            "create",
            "issue",
            "td-1",
            "",
            r#"{"id":"td-1","status":"open"}"#,
            "2026-08-01T09:59:59.9Z",
        ],
    );
    // Consistent: no backfill.
    c.execute(
        "INSERT INTO issues (id, title, status, created_at, updated_at) VALUES ('td-2', 'T', 'open', '2026-08-01T10:00:00Z', '2026-08-01T10:00:00Z')",
        [],
    )
    .unwrap();
    log_action(
        &db,
        [
            "al-2",
            "create",
            "issue",
            "td-2",
            "",
            r#"{"id":"td-2","status":"open"}"#,
            "2026-08-01T10:00:00Z",
        ],
    );
    // Edited 5 s after its last event.
    c.execute(
        "INSERT INTO issues (id, title, status, created_at, updated_at) VALUES ('td-3', 'T', 'open', '2026-08-01T10:00:00Z', '2026-08-01T10:00:05Z')",
        [],
    )
    .unwrap();
    log_action(
        &db,
        [
            "al-3",
            "create",
            "issue",
            "td-3",
            "",
            r#"{"id":"td-3","status":"open"}"#,
            "2026-08-01T10:00:00Z",
        ],
    );

    assert_eq!(db.backfill("ses_me").unwrap(), 2);
    let ids: Vec<String> = c
        .prepare("SELECT entity_id FROM action_log WHERE session_id = 'ses_me' ORDER BY rowid")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(ids, ["td-1", "td-3"]);
    let (data, ts): (String, String) = c
        .query_row("SELECT new_data, timestamp FROM action_log WHERE session_id = 'ses_me' AND entity_id = 'td-1'", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert!(data.contains(r#""status":"closed""#), "{data}");
    assert_eq!(
        ts, "2026-08-01T10:00:00.2Z",
        "stamped with the issue's updated_at, td's action_log form"
    );
    assert_eq!(db.backfill("ses_me").unwrap(), 0);
}

// ---------------------------------------------------------------------------------------------
// Push acknowledgements

#[test]
fn mark_pushed_marks_only_acked_rows_and_keeps_tds_bookkeeping() {
    let (_dir, db) = fresh();
    db.link("p").unwrap();
    let a = log_action(
        &db,
        [
            "al-1",
            "create",
            "issue",
            "td-1",
            "",
            "{}",
            "2026-08-21T21:41:18Z",
        ],
    );
    let b = log_action(
        &db,
        [
            "al-2",
            "board_unposition",
            "board_position",
            "bip_1",
            "{}",
            "",
            "2026-08-21T21:41:18Z",
        ],
    );
    let c = log_action(
        &db,
        [
            "al-3",
            "update",
            "issue",
            "td-1",
            "{}",
            "{}",
            "2026-08-21T21:41:18Z",
        ],
    );
    let response = PushResponse {
        accepted: 1,
        acks: vec![Ack {
            client_action_id: a,
            server_seq: 41,
        }],
        rejected: vec![
            Rejection {
                client_action_id: b,
                reason: "duplicate".into(),
                server_seq: Some(40),
            },
            Rejection {
                client_action_id: c,
                reason: "empty entity_id".into(),
                server_seq: None,
            },
        ],
    };
    let acks = acks_of(&response);
    assert_eq!(acks.len(), 2);
    db.mark_pushed(&acks, "dev-1").unwrap();

    let marks: Vec<(i64, Option<i64>, bool)> = db
        .connection()
        .prepare("SELECT rowid, server_seq, synced_at IS NOT NULL FROM action_log ORDER BY rowid")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        marks,
        vec![(a, Some(41), true), (b, Some(40), true), (c, None, false)]
    );
    let p = db.pending("s", 10).unwrap();
    assert_eq!(
        p.events
            .iter()
            .map(|e| e.client_action_id)
            .collect::<Vec<_>>(),
        vec![c]
    );

    let s = db.sync_state().unwrap().unwrap();
    assert_eq!(s.last_pushed_action_id, b);
    assert!(s.last_sync_at.is_some());
    let history: Vec<(String, String, String, String, i64, String)> = db
        .connection()
        .prepare("SELECT direction, action_type, entity_type, entity_id, server_seq, device_id FROM sync_history ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        history,
        vec![
            (
                "push".into(),
                "create".into(),
                "issues".into(),
                "td-1".into(),
                41,
                "dev-1".into()
            ),
            (
                "push".into(),
                "soft_delete".into(),
                "board_issue_positions".into(),
                "bip_1".into(),
                40,
                "dev-1".into()
            ),
        ]
    );
    db.mark_pushed(&[], "dev-1").unwrap();
}

#[test]
fn mark_pushed_trims_history_to_tds_500_newest_rows() {
    let (_dir, db) = fresh();
    db.link("p").unwrap();
    db.connection()
        .execute_batch(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 600) \
             INSERT INTO sync_history (direction, action_type, entity_type, entity_id, server_seq) \
             SELECT 'pull', 'update', 'issues', 'td-' || i, i FROM n;",
        )
        .unwrap();
    let a = log_action(
        &db,
        [
            "al-1",
            "create",
            "issue",
            "td-x",
            "",
            "{}",
            "2026-08-21T21:41:18Z",
        ],
    );
    db.mark_pushed(
        &[Ack {
            client_action_id: a,
            server_seq: 601,
        }],
        "d",
    )
    .unwrap();
    assert_eq!(count(&db, "SELECT count(*) FROM sync_history"), 500);
    assert_eq!(count(&db, "SELECT min(server_seq) FROM sync_history"), 102);
    assert_eq!(
        count(
            &db,
            "SELECT max(server_seq) FROM sync_history WHERE direction = 'push'"
        ),
        601
    );
}

// ---------------------------------------------------------------------------------------------
// Applying pulled pages

#[test]
fn apply_page_applies_records_skips_and_moves_the_cursor() {
    let (_dir, db) = fresh();
    db.link("p").unwrap();
    let issue = issue_json("td-aaaaaa", "Remote", "open", "2026-08-01T10:00:00Z");
    let events = vec![
        pull_event(
            1,
            "other",
            "create",
            "issues",
            "td-aaaaaa",
            create_payload(issue.clone()),
        ),
        pull_event(
            2,
            "other",
            "create",
            "comments",
            "cm-orphan",
            create_payload(
                json!({"id":"cm-orphan","issue_id":"td-gone","session_id":"s","text":"x","created_at":"2026-08-01T10:00:00Z"}),
            ),
        ),
        pull_event(
            3,
            "other",
            "create",
            "widgets",
            "w-1",
            create_payload(json!({"id":"w-1"})),
        ),
        pull_event(
            4,
            "other",
            "update",
            "issues",
            "td-aaaaaa",
            update_payload(
                issue.clone(),
                issue_json("td-aaaaaa", "Renamed", "open", "2026-08-01T11:00:00Z"),
            ),
        ),
        pull_event(5, "other", "create", "logs", "lg-1", json!("not an object")),
    ];
    let out = db.apply_page(&events, 6, "me").unwrap();
    assert_eq!(out.applied, 2);
    assert_eq!(out.cursor, 6);
    assert_eq!(out.conflicts, 0);
    assert_eq!(
        out.changed,
        vec![(EntityType::Issues, "td-aaaaaa".to_string())]
    );
    let reasons: Vec<(i64, SkipReason)> = out
        .skipped
        .iter()
        .map(|s| (s.server_seq, s.reason))
        .collect();
    assert_eq!(
        reasons,
        vec![
            (2, SkipReason::OrphanedParent),
            (3, SkipReason::Quarantined),
            (5, SkipReason::Quarantined)
        ]
    );
    assert!(
        out.skipped[0].error.contains("orphaned comments/cm-orphan"),
        "{}",
        out.skipped[0].error
    );
    assert!(
        out.skipped[0].error.contains("issues/td-gone"),
        "{}",
        out.skipped[0].error
    );
    assert!(
        out.skipped[1].error.contains("invalid entity type"),
        "{}",
        out.skipped[1].error
    );

    let c = db.connection();
    let (title, labels): (String, String) = c
        .query_row(
            "SELECT title, labels FROM issues WHERE id = 'td-aaaaaa'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((title.as_str(), labels.as_str()), ("Renamed", "a,b"));
    let skipped: Vec<(i64, String, String, String, Option<String>, String)> = c
        .prepare("SELECT server_seq, reason, entity_type, device_id, payload, skipped_at FROM sync_skipped_events ORDER BY server_seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(skipped.len(), 3);
    assert_eq!(
        (skipped[0].0, skipped[0].1.as_str()),
        (2, "orphaned_parent")
    );
    assert_eq!(
        (
            skipped[1].1.as_str(),
            skipped[1].2.as_str(),
            skipped[1].3.as_str()
        ),
        ("quarantined", "widgets", "other")
    );
    assert_eq!(
        skipped[0].4.as_deref(),
        Some(events[1].payload.get()),
        "the payload as received"
    );
    assert_eq!(
        skipped[0].5.len(),
        19,
        "td's YYYY-MM-DD HH:MM:SS: {}",
        skipped[0].5
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM sync_history WHERE direction = 'pull'"
        ),
        5
    );
    let s = db.sync_state().unwrap().unwrap();
    assert_eq!(s.last_pulled_server_seq, 6);
    assert!(s.last_sync_at.is_some());

    // A replayed page re-records its skips instead of piling them up.
    db.apply_page(&events, 6, "me").unwrap();
    assert_eq!(count(&db, "SELECT count(*) FROM sync_skipped_events"), 3);
}

#[test]
fn hostile_times_in_a_page_apply_like_any_text_never_a_crash() {
    let (_dir, db) = fresh();
    db.link("p").unwrap();
    let issue = issue_json("td-aaaaaa", "A", "open", "2026-08-01T10:00:00Z");
    db.apply_page(
        &[pull_event(
            1,
            "x",
            "create",
            "issues",
            "td-aaaaaa",
            create_payload(issue.clone()),
        )],
        1,
        "me",
    )
    .unwrap();
    let mut hostile = issue.clone();
    // A multi-byte character across byte 10 of a time the protocol's reader slices.
    hostile["created_at"] = json!("2026-08-0\u{e9}T10:00:00Z");
    hostile["title"] = json!("hostile");
    let mut soft_delete = pull_event(3, "x", "soft_delete", "issues", "td-aaaaaa", json!({}));
    soft_delete.client_timestamp = "2026-08-0\u{e9}T10:00:00Z".into();
    let events = vec![
        // A full rewrite: the engine compares old and new times to find clobbered values.
        pull_event(
            2,
            "x",
            "create",
            "issues",
            "td-aaaaaa",
            create_payload(hostile),
        ),
        soft_delete,
    ];
    let out = db.apply_page(&events, 3, "me").unwrap();
    assert_eq!(out.cursor, 3);
    // An unreadable time is just text to the row (as in td); no event is lost or skipped.
    assert!(out.skipped.is_empty(), "{out:?}");
    assert_eq!(out.applied, 2);
    let deleted_at: String = db
        .connection()
        .query_row(
            "SELECT deleted_at FROM issues WHERE id = 'td-aaaaaa'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        deleted_at, "0001-01-01 00:00:00+00:00",
        "td's zero time for an unreadable time"
    );
}

#[test]
fn a_transient_failure_rolls_back_the_whole_page_and_keeps_the_cursor() {
    let (_dir, db) = fresh();
    db.link("p").unwrap();
    db.apply_page(&[], 10, "me").unwrap();
    // A trigger that fails the way a locked database does, half-way through the page.
    db.connection()
        .execute_batch(
            "CREATE TRIGGER flaky BEFORE INSERT ON logs WHEN NEW.id = 'lg-flaky' \
             BEGIN SELECT RAISE(ABORT, 'database is locked'); END;",
        )
        .unwrap();
    let events = vec![
        pull_event(
            11,
            "other",
            "create",
            "issues",
            "td-aaaaaa",
            create_payload(issue_json("td-aaaaaa", "A", "open", "2026-08-01T10:00:00Z")),
        ),
        pull_event(
            12,
            "other",
            "create",
            "widgets",
            "w",
            create_payload(json!({"id":"w"})),
        ),
        pull_event(
            13,
            "other",
            "create",
            "logs",
            "lg-flaky",
            create_payload(
                json!({"id":"lg-flaky","issue_id":"td-aaaaaa","session_id":"s","message":"m","type":"progress","timestamp":"2026-08-01T10:00:00Z"}),
            ),
        ),
    ];
    let err = db.apply_page(&events, 13, "me").unwrap_err();
    assert!(err.is_transient(), "{err}");
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            TdDbError::TransientApply {
                seq: 13,
                cursor: 10,
                ..
            }
        ),
        "{msg}"
    );
    assert!(
        msg.contains("seq 13") && msg.contains("database is locked"),
        "{msg}"
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM issues WHERE id = 'td-aaaaaa'"),
        0,
        "rolled back"
    );
    assert_eq!(count(&db, "SELECT count(*) FROM sync_skipped_events"), 0);
    assert_eq!(count(&db, "SELECT count(*) FROM sync_history"), 0);
    assert_eq!(db.sync_state().unwrap().unwrap().last_pulled_server_seq, 10);

    db.connection().execute_batch("DROP TRIGGER flaky").unwrap();
    let out = db.apply_page(&events, 13, "me").unwrap();
    assert_eq!((out.applied, out.skipped.len(), out.cursor), (2, 1, 13));
}

#[test]
fn another_writer_holding_sqlite_makes_the_page_fail_transiently() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    let opts = TdDbOptions {
        busy_timeout: Duration::from_millis(100),
        ..TdDbOptions::default()
    };
    let db = TdDatabase::create_with(&path, opts).unwrap();
    db.link("p").unwrap();
    let other = rusqlite::Connection::open(&path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let ev = pull_event(
        1,
        "x",
        "create",
        "issues",
        "td-aaaaaa",
        create_payload(issue_json("td-aaaaaa", "A", "open", "2026-08-01T10:00:00Z")),
    );
    let err = db
        .apply_page(std::slice::from_ref(&ev), 1, "me")
        .unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    other.execute_batch("ROLLBACK").unwrap();
    assert_eq!(db.sync_state().unwrap().unwrap().last_pulled_server_seq, 0);
    assert_eq!(db.apply_page(&[ev], 1, "me").unwrap().applied, 1);
}

#[test]
fn the_cursor_never_moves_backwards() {
    let (_dir, db) = fresh();
    db.link("p").unwrap();
    db.apply_page(&[], 10, "me").unwrap();
    let ev = pull_event(
        4,
        "x",
        "create",
        "issues",
        "td-aaaaaa",
        create_payload(issue_json("td-aaaaaa", "A", "open", "2026-08-01T10:00:00Z")),
    );
    let err = db.apply_page(&[ev], 5, "me").unwrap_err();
    assert!(
        matches!(
            err,
            TdDbError::CursorBackwards {
                current: 10,
                requested: 5,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM issues WHERE id = 'td-aaaaaa'"),
        0
    );
    assert_eq!(db.sync_state().unwrap().unwrap().last_pulled_server_seq, 10);
    assert_eq!(
        db.apply_page(&[], 10, "me").unwrap().cursor,
        10,
        "staying put is fine"
    );
}

#[test]
fn pulling_requires_a_link() {
    let (_dir, db) = fresh();
    let err = db.apply_page(&[], 1, "me").unwrap_err();
    assert!(matches!(err, TdDbError::NotLinked { .. }), "{err}");
}

/// Sets up td-aaaaaa locally (edited at `local_updated`) and a last sync at `last_sync`.
fn conflict_setup(local_updated: &str, last_sync: Option<&str>) -> (tempfile::TempDir, TdDatabase) {
    let (dir, db) = fresh();
    db.link("p").unwrap();
    db.connection()
        .execute(
            "INSERT INTO issues (id, title, status, created_at, updated_at) VALUES ('td-aaaaaa', 'Local edit', 'open', '2026-08-01T09:00:00Z', ?1)",
            [local_updated],
        )
        .unwrap();
    db.connection()
        .execute("UPDATE sync_state SET last_sync_at = ?1", [last_sync])
        .unwrap();
    (dir, db)
}

fn remote_create(device: &str) -> tdsync_protocol::wire::PullEvent {
    pull_event(
        1,
        device,
        "create",
        "issues",
        "td-aaaaaa",
        create_payload(issue_json(
            "td-aaaaaa",
            "Remote",
            "open",
            "2026-08-02T10:00:00Z",
        )),
    )
}

#[test]
fn overwriting_a_local_edit_from_another_device_is_a_td_conflict() {
    let (_dir, db) = conflict_setup("2026-08-01 12:00:00.5+00:00", Some("2026-08-01 11:00:00"));
    let out = db.apply_page(&[remote_create("other")], 1, "me").unwrap();
    assert_eq!(out.conflicts, 1);
    let (et, id, seq, local, remote, at): (String, String, i64, String, String, String) = db
        .connection()
        .query_row(
            "SELECT entity_type, entity_id, server_seq, local_data, remote_data, overwritten_at FROM sync_conflicts",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
        )
        .unwrap();
    assert_eq!((et.as_str(), id.as_str(), seq), ("issues", "td-aaaaaa", 1));
    let local: Value = serde_json::from_str(&local).unwrap();
    assert_eq!(local["title"], "Local edit", "the overwritten row is kept");
    assert_eq!(local["updated_at"], "2026-08-01 12:00:00.5+00:00");
    let remote: Value = serde_json::from_str(&remote).unwrap();
    assert_eq!(remote["title"], "Remote");
    assert!(tdsync_protocol::timestamp::parse(&at).is_some(), "{at}");
    let title: String = db
        .connection()
        .query_row("SELECT title FROM issues WHERE id = 'td-aaaaaa'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(title, "Remote", "last write still wins");
}

#[test]
fn no_td_conflict_for_own_events_first_syncs_or_rows_untouched_since_the_last_sync() {
    for (local_updated, last_sync, device, why) in [
        (
            "2026-08-01T12:00:00Z",
            Some("2026-08-01 11:00:00"),
            "me",
            "own event replayed",
        ),
        ("2026-08-01T12:00:00Z", None, "other", "never synced"),
        (
            "2026-08-01T10:00:00Z",
            Some("2026-08-01 11:00:00"),
            "other",
            "not edited since the sync",
        ),
    ] {
        let (_dir, db) = conflict_setup(local_updated, last_sync);
        let out = db.apply_page(&[remote_create(device)], 1, "me").unwrap();
        assert_eq!(out.conflicts, 0, "{why}");
        assert_eq!(
            count(&db, "SELECT count(*) FROM sync_conflicts"),
            0,
            "{why}"
        );
    }
    // A row whose times cannot be read counts as edited.
    let (_dir, db) = conflict_setup("whenever", Some("2026-08-01 11:00:00"));
    db.connection()
        .execute(
            "UPDATE issues SET created_at = 'sometime' WHERE id = 'td-aaaaaa'",
            [],
        )
        .unwrap();
    assert_eq!(
        db.apply_page(&[remote_create("other")], 1, "me")
            .unwrap()
            .conflicts,
        1
    );
}

#[test]
fn a_multi_page_pull_judges_conflicts_against_the_time_before_its_first_page() {
    let (_dir, db) = conflict_setup("2026-06-01T00:00:00Z", Some("2026-01-01 00:00:00"));
    let gate = db.sync_state().unwrap().unwrap().last_sync_time();
    let unrelated = pull_event(
        1,
        "other",
        "create",
        "issues",
        "td-bbbbbb",
        create_payload(issue_json("td-bbbbbb", "B", "open", "2026-08-01T10:00:00Z")),
    );
    // Page one moves last_sync_at to now, after the local edit.
    assert_eq!(
        db.apply_page_since(&[unrelated], 1, "me", gate)
            .unwrap()
            .conflicts,
        0
    );
    let mut overwrite = remote_create("other");
    overwrite.server_seq = 2;
    let out = db
        .apply_page_since(&[overwrite.clone()], 2, "me", gate)
        .unwrap();
    assert_eq!(
        out.conflicts, 1,
        "the edit predates this pull, not the previous page"
    );
    // With the stored (moved) time, page two would have missed it.
    let (_dir2, db2) = conflict_setup("2026-06-01T00:00:00Z", Some("2026-01-01 00:00:00"));
    db2.apply_page(&[], 1, "me").unwrap();
    assert_eq!(db2.apply_page(&[overwrite], 2, "me").unwrap().conflicts, 0);
}

#[test]
fn a_page_sees_columns_td_added_after_the_database_was_opened() {
    let fixtures = fixtures_dir();
    let dir = tempfile::tempdir().unwrap();
    let path = copy_fixture(&fixtures.join("nightshift-v27.db"), dir.path());
    let db = TdDatabase::open(&path).unwrap();
    db.link("p").unwrap();
    // What td's migration 29 does when td opens the file meanwhile.
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("ALTER TABLE issues ADD COLUMN due_date TEXT; UPDATE schema_info SET value = '29' WHERE key = 'version';")
        .unwrap();
    let mut issue = issue_json("td-ffffff", "New", "open", "2026-08-01T10:00:00Z");
    issue["due_date"] = json!("2026-09-01");
    let out = db
        .apply_page(
            &[pull_event(
                1,
                "x",
                "create",
                "issues",
                "td-ffffff",
                create_payload(issue),
            )],
            1,
            "me",
        )
        .unwrap();
    assert_eq!(out.applied, 1, "{out:?}");
    let due: String = db
        .connection()
        .query_row(
            "SELECT due_date FROM issues WHERE id = 'td-ffffff'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(due, "2026-09-01");
    assert_eq!(db.schema_version(), 29);
}

// ---------------------------------------------------------------------------------------------
// td's writer lock

#[test]
fn writes_wait_for_tds_lock_and_time_out_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    let opts = TdDbOptions {
        lock_timeout: Duration::from_millis(200),
        ..TdDbOptions::default()
    };
    let db = TdDatabase::create_with(&path, opts).unwrap();
    // Another writer (td, say) holds the lock: a separate open of the lock file.
    let held = tdsync_client::tddb::WriteLock::for_database(&path, Duration::from_secs(1))
        .acquire()
        .unwrap();
    let started = std::time::Instant::now();
    let err = db.link("p").unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert!(err.is_transient());
    let msg = err.to_string();
    assert!(matches!(err, TdDbError::LockTimeout { .. }), "{msg}");
    assert!(
        msg.contains(
            &dir.path()
                .join(".todos")
                .join("db.lock")
                .display()
                .to_string()
        ),
        "{msg}"
    );
    assert!(msg.contains("pid:"), "{msg}");
    assert_eq!(db.sync_state().unwrap(), None);
    for result in [
        db.apply_page(&[], 1, "me").map(|_| ()),
        db.mark_pushed(
            &[Ack {
                client_action_id: 1,
                server_seq: 1,
            }],
            "d",
        ),
        db.backfill("s").map(|_| ()),
    ] {
        assert!(
            matches!(result, Err(TdDbError::LockTimeout { .. })),
            "{result:?}"
        );
    }
    drop(held);
    assert_eq!(db.link("p").unwrap(), Link::Linked);
}

// ---------------------------------------------------------------------------------------------
// Integrity: damage where sync never looks warns, damage where it does stops it

/// SQLite's own `quick_check` lines of the file (to show a test built the damage it means to).
fn quick_check(path: &std::path::Path) -> Vec<String> {
    rusqlite::Connection::open(path)
        .unwrap()
        .prepare("PRAGMA quick_check")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn reindex(path: &std::path::Path, index: &str) {
    rusqlite::Connection::open(path)
        .unwrap()
        .execute_batch(&format!("REINDEX {index}"))
        .unwrap();
}

/// A fresh td database with three agent sessions (td's local-only `sessions` table) and two
/// issues, closed (damage is made through the file).
fn with_sessions_and_issues() -> (tempfile::TempDir, std::path::PathBuf) {
    let (dir, db) = fresh();
    db.connection()
        .execute_batch(
            "INSERT INTO sessions (id, name, branch) VALUES
               ('ses_1', 'a', 'main'), ('ses_2', 'b', 'main'), ('ses_3', 'c', 'feature');
             INSERT INTO issues (id, title) VALUES ('td-000001', 'one'), ('td-000002', 'two');",
        )
        .unwrap();
    let path = db.path().to_path_buf();
    drop(db);
    (dir, path)
}

fn corrupt(result: Result<TdDatabase, TdDbError>) -> (String, Vec<Damage>) {
    match result {
        Err(e @ TdDbError::Corrupt { .. }) => {
            let msg = e.to_string();
            let TdDbError::Corrupt { damage, .. } = e else {
                unreachable!()
            };
            (msg, damage)
        }
        other => panic!("expected a Corrupt error, got {other:?}"),
    }
}

#[test]
fn a_damaged_index_of_a_local_only_table_is_a_warning_with_its_reindex() {
    let (_dir, path) = with_sessions_and_issues();
    change_behind_index(
        &path,
        "idx_sessions_branch",
        "DELETE FROM sessions WHERE id = 'ses_2'",
    )
    .unwrap();
    assert_eq!(
        quick_check(&path),
        ["wrong # of entries in index idx_sessions_branch"],
        "the damage found in the wild"
    );

    let db = TdDatabase::open(&path).expect("damage sync never reads does not refuse the file");
    let warnings = db.integrity_warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let w = &warnings[0];
    assert_eq!(w.table(), "sessions");
    assert_eq!(w.damage.usage, TableUse::LocalOnly);
    assert_eq!(w.damage.indexes, ["idx_sessions_branch"]);
    assert!(w.damage.index_only);
    assert_eq!(
        w.damage.stale_entries,
        [2],
        "the entry of the deleted row is named"
    );
    let fix = format!("sqlite3 {} \"REINDEX idx_sessions_branch\"", path.display());
    assert_eq!(w.fix(), fix);
    let text = w.to_string();
    for part in [
        &path.display().to_string(),
        "table sessions",
        "wrong # of entries in index idx_sessions_branch",
        "sync proceeds",
        &fix,
    ] {
        assert!(text.contains(part), "{part:?} not in {text}");
    }

    // The backfill path (every first push) runs the same check and proceeds on it.
    let pending = db.pending("ses_me", 100).unwrap();
    assert_eq!(pending.backfill_error, None);
    assert_eq!(pending.backfilled, 2, "both issues are backfilled");
    assert_eq!(db.check_integrity().unwrap(), warnings);
    drop(db);

    // The fix it names repairs it.
    reindex(&path, "idx_sessions_branch");
    assert_eq!(quick_check(&path), ["ok"]);
    assert_eq!(TdDatabase::open(&path).unwrap().integrity_warnings(), []);
}

#[test]
fn a_damaged_index_of_a_synced_table_refuses_the_file_naming_table_rows_and_recovery() {
    let (_dir, path) = with_sessions_and_issues();
    change_behind_index(
        &path,
        "idx_issues_status",
        "INSERT INTO issues (rowid, id, title) VALUES (7, 'td-000007', 'added behind the index')",
    )
    .unwrap();
    assert_eq!(
        quick_check(&path),
        ["wrong # of entries in index idx_issues_status"]
    );

    let (msg, damage) = corrupt(TdDatabase::open(&path));
    assert_eq!(damage.len(), 1, "{damage:?}");
    let d = &damage[0];
    assert_eq!(d.table.as_deref(), Some("issues"));
    assert_eq!(d.usage, TableUse::Synced);
    assert_eq!(d.indexes, ["idx_issues_status"]);
    assert_eq!(d.rows, [7], "the full check names the row the index lacks");
    assert!(d.index_only);
    for part in [
        &path.display().to_string(),
        "sync does not proceed",
        "table issues (a synced table)",
        // SQLite counts rows ("row 3": the third); the message gives the rowid.
        "SQLite: wrong # of entries in index idx_issues_status; row 3 missing from index idx_issues_status",
        "rows affected (rowid): 7",
        &format!(
            "recover: sqlite3 {} \"REINDEX idx_issues_status\"",
            path.display()
        ),
    ] {
        assert!(msg.contains(part), "{part:?} not in {msg}");
    }
    assert!(
        !TdDbError::Corrupt {
            path: path.clone(),
            damage: damage.clone()
        }
        .is_transient()
    );

    reindex(&path, "idx_issues_status");
    let db = TdDatabase::open(&path).unwrap();
    assert_eq!(db.integrity_warnings(), []);
    assert_eq!(
        count(&db, "SELECT count(*) FROM issues WHERE status = 'open'"),
        3
    );
}

#[test]
fn a_damaged_action_log_index_refuses_the_file_although_reindex_repairs_it() {
    let (_dir, db) = fresh();
    for i in 1..=3 {
        log_action(
            &db,
            [
                &format!("al-0000000{i}"),
                "create",
                "issue",
                &format!("td-00000{i}"),
                "",
                "{}",
                "2026-08-01T10:00:00Z",
            ],
        );
    }
    let path = db.path().to_path_buf();
    drop(db);
    change_behind_index(
        &path,
        "idx_action_log_entity_type",
        "DELETE FROM action_log WHERE rowid = 2",
    )
    .unwrap();

    let (msg, damage) = corrupt(TdDatabase::open(&path));
    assert_eq!(damage.len(), 1, "{damage:?}");
    let d = &damage[0];
    assert_eq!(d.table.as_deref(), Some("action_log"));
    assert_eq!(d.usage, TableUse::ActionLog);
    assert_eq!(d.indexes, ["idx_action_log_entity_type"]);
    assert_eq!(d.stale_entries, [2]);
    for part in [
        "table action_log (td's action log, which every push reads)",
        "index entries for rowids the table no longer has: 2",
        "REINDEX idx_action_log_entity_type",
        "sync does not proceed",
    ] {
        assert!(msg.contains(part), "{part:?} not in {msg}");
    }

    reindex(&path, "idx_action_log_entity_type");
    let db = TdDatabase::open(&path).unwrap();
    assert_eq!(count(&db, "SELECT count(*) FROM action_log"), 2);
}

#[test]
fn damage_appearing_after_open_stops_the_backfill_where_sync_reads_and_not_elsewhere() {
    let (_dir, path) = with_sessions_and_issues();
    let db = TdDatabase::open(&path).unwrap();
    assert_eq!(db.integrity_warnings(), []);

    // Another process damages a local-only index: the first push's backfill still runs.
    change_behind_index(&path, "idx_sessions_branch_agent", "DELETE FROM sessions").unwrap();
    let warnings = db.check_integrity().unwrap();
    assert_eq!(warnings.len(), 1);
    assert_eq!(db.integrity_warnings(), warnings);
    assert_eq!(warnings[0].damage.stale_entries, [1, 2, 3]);

    // Then one of issues: the backfill refuses before reading a row.
    change_behind_index(
        &path,
        "idx_issues_deleted",
        "DELETE FROM issues WHERE id = 'td-000002'",
    )
    .unwrap();
    let err = db.backfill("ses_me").unwrap_err();
    assert!(matches!(err, TdDbError::Corrupt { .. }), "{err}");
    let err = db.pending("ses_me", 100).unwrap_err();
    let msg = err.to_string();
    let TdDbError::Corrupt { damage, .. } = err else {
        panic!("{msg}")
    };
    let tables: Vec<_> = damage.iter().map(|d| d.table.as_deref()).collect();
    assert_eq!(tables, [Some("issues"), Some("sessions")], "{msg}");
    assert!(msg.contains("also damaged: table sessions"), "{msg}");
    assert_eq!(
        count(&db, "SELECT count(*) FROM action_log"),
        0,
        "nothing backfilled"
    );
}

#[test]
fn page_level_damage_names_no_table_and_always_refuses() {
    let (_dir, path) = with_sessions_and_issues();
    let (root, page_size): (i64, i64) = {
        let conn = rusqlite::Connection::open(&path).unwrap();
        (
            conn.query_row(
                "SELECT rootpage FROM sqlite_master WHERE name = 'sessions'",
                [],
                |r| r.get(0),
            )
            .unwrap(),
            conn.query_row("PRAGMA page_size", [], |r| r.get(0))
                .unwrap(),
        )
    };
    // The b-tree page of the local-only sessions table gets a page type SQLite does not know.
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[((root - 1) * page_size) as usize] = 0x42;
    std::fs::write(&path, bytes).unwrap();

    let (msg, damage) = corrupt(TdDatabase::open(&path));
    assert_eq!(damage[0].table, None, "{damage:?}");
    assert_eq!(damage[0].usage, TableUse::Unattributed);
    assert!(
        damage[0].findings[0].contains("database disk image is malformed"),
        "{damage:?}"
    );
    assert!(msg.contains("page-level damage, no table named"), "{msg}");
    assert!(msg.contains("restore"), "{msg}");
    assert!(!msg.contains("REINDEX"), "{msg}");
}
