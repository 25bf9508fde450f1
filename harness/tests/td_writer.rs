//! The writer on its own: how many action_log rows each command writes, refusals that write
//! nothing, a clean push (every row sendable, nothing left for td's backfill), a replica rebuilt
//! from the pushed events equal to the writer's database, older schemas, undo, clock skew and
//! reproducible ids.

mod common;

use common::{action_log_after, fresh_db, max_rowid, table_rows};
use rusqlite::Connection;
use serde_json::Value;
use tdsync_client::tddb::TdDatabase;
use tdsync_harness::td_writer::{
    HandoffSpec, IssueChange, IssueSpec, LogType, TdWriter, WriterError,
};
use tdsync_projection::compare::Norm;
use tdsync_protocol::wire::PullEvent;

const A: &str = "ses_aaaaaa";
const B: &str = "ses_bbbbbb";

fn spec(title: &str) -> IssueSpec {
    IssueSpec::new(title)
}

/// The (action_type, entity_type) of every row `f` writes.
fn rows_written<T>(
    db: &TdDatabase,
    f: impl FnOnce() -> Result<T, WriterError>,
) -> Vec<(String, String)> {
    let before = max_rowid(db.connection());
    if let Err(e) = f() {
        panic!("unexpected error: {e}");
    }
    action_log_after(db.connection(), before)
        .into_iter()
        .map(|r| (r.action_type, r.entity_type))
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(a, e)| (a.to_string(), e.to_string()))
        .collect()
}

/// Everything a database holds that a write could change.
fn snapshot(conn: &Connection) -> String {
    let mut out = String::new();
    for table in tdsync_harness::td_writer::written_tables().chain(["action_log"]) {
        for row in table_rows(conn, table) {
            out.push_str(&format!("{table}: {row:?}\n"));
        }
    }
    out
}

#[test]
fn every_command_writes_tds_rows() {
    let (_dir, db) = fresh_db();
    let mut a = TdWriter::new(&db, A, 1);
    let mut b = TdWriter::new(&db, B, 2);
    let mut c = TdWriter::new(&db, "ses_cccccc", 3);

    let mut id = String::new();
    assert_eq!(
        rows_written(&db, || a
            .create_issue(&spec("Plain task for counting"))
            .map(|i| id = i)),
        pairs(&[("create", "issue")])
    );
    let mut with_sprint = spec("Task created inside a sprint");
    with_sprint.sprint = "s1".into();
    assert_eq!(
        rows_written(&db, || a.create_issue(&with_sprint)),
        pairs(&[("create", "issue"), ("update", "issue")])
    );
    assert_eq!(
        rows_written(&db, || a.start(&id)),
        pairs(&[("start", "issue"), ("create", "logs")])
    );
    assert_eq!(
        rows_written(&db, || a.add_log(&id, "did a thing")),
        pairs(&[("create", "logs")])
    );
    assert_eq!(
        rows_written(&db, || a.add_comment(&id, "a comment")),
        pairs(&[("create", "comments")])
    );
    assert_eq!(
        rows_written(&db, || a.review(&id)),
        pairs(&[
            ("handoff", "handoff"),
            ("review", "issue"),
            ("create", "logs")
        ])
    );
    assert_eq!(
        rows_written(&db, || b.approve(&id)),
        pairs(&[
            ("create", "issue_reviews"),
            ("approve", "issue"),
            ("create", "logs")
        ])
    );
    assert_eq!(
        rows_written(&db, || a.reopen(&id)),
        pairs(&[
            ("update", "issue_reviews"),
            ("reopen", "issue"),
            ("create", "logs")
        ])
    );
    assert_eq!(
        rows_written(&db, || a.block(&id)),
        pairs(&[("block", "issue"), ("create", "logs")])
    );
    assert_eq!(
        rows_written(&db, || a.unblock(&id)),
        pairs(&[("unblock", "issue"), ("create", "logs")])
    );
    assert_eq!(
        rows_written(&db, || {
            a.add_handoff(
                &id,
                &HandoffSpec {
                    done: vec!["x".into()],
                    ..HandoffSpec::default()
                },
            )
        }),
        pairs(&[("handoff", "handoff"), ("update", "issue")])
    );
    assert_eq!(
        rows_written(&db, || a.review(&id)),
        pairs(&[("review", "issue"), ("create", "logs")])
    );
    assert_eq!(
        rows_written(&db, || b.reject(&id)),
        pairs(&[("reject", "issue"), ("create", "logs")])
    );
    assert_eq!(
        rows_written(&db, || c.close(&id)),
        pairs(&[("close", "issue"), ("create", "logs")])
    );
    assert_eq!(
        rows_written(&db, || a.update_issue(
            &id,
            &IssueChange {
                title: Some("Renamed".into()),
                ..IssueChange::default()
            }
        )),
        pairs(&[("update", "issue")])
    );
    assert_eq!(
        rows_written(&db, || a.delete_issue(&id)),
        pairs(&[("delete", "issue")])
    );
    assert_eq!(
        rows_written(&db, || a.restore_issue(&id)),
        pairs(&[("restore", "issue")])
    );

    let other = a
        .create_issue(&spec("Another issue for relations"))
        .unwrap();
    assert_eq!(
        rows_written(&db, || a.add_dependency(&other, &id)),
        pairs(&[("add_dependency", "issue_dependencies")])
    );
    assert_eq!(
        rows_written(&db, || a.remove_dependency(&other, &id)),
        pairs(&[("remove_dependency", "issue_dependencies")])
    );
    assert_eq!(
        rows_written(&db, || a.link_file(&other, "src/lib.rs", "")),
        pairs(&[("link_file", "issue_files")])
    );
    assert_eq!(
        rows_written(&db, || a.unlink_file(&other, "src/lib.rs")),
        pairs(&[("unlink_file", "issue_files")])
    );

    let mut board = String::new();
    assert_eq!(
        rows_written(&db, || a
            .create_board("Board", "status = open")
            .map(|b| board = b)),
        pairs(&[("board_create", "board")])
    );
    assert_eq!(
        rows_written(&db, || a.update_board(&board, Some("Board 2"), None)),
        pairs(&[("board_update", "board")])
    );
    assert_eq!(
        rows_written(&db, || a.set_position(&board, &id, 65536)),
        pairs(&[("board_set_position", "board_issue_positions")])
    );
    a.set_position(&board, &other, 131072).unwrap();
    assert_eq!(
        rows_written(&db, || a.unposition(&board, &other)),
        pairs(&[("board_unposition", "board_issue_positions")])
    );
    a.set_position(&board, &other, 131072).unwrap();
    assert_eq!(
        rows_written(&db, || a.delete_board(&board)),
        pairs(&[
            ("board_unposition", "board_issue_positions"),
            ("board_unposition", "board_issue_positions"),
            ("board_delete", "board"),
        ])
    );

    let mut ws = String::new();
    assert_eq!(
        rows_written(&db, || b.start_work_session("pairing").map(|w| ws = w)),
        pairs(&[("create", "work_sessions")])
    );
    // Tagging an open issue starts it, as `td ws tag` does.
    assert_eq!(
        rows_written(&db, || b.tag(&ws, &other)),
        pairs(&[
            ("work_session_tag", "work_session_issues"),
            ("start", "issue"),
            ("create", "logs"),
        ])
    );
    assert_eq!(
        rows_written(&db, || b.untag(&ws, &other)),
        pairs(&[("work_session_untag", "work_session_issues")])
    );
    assert_eq!(
        rows_written(&db, || b.end_work_session(&ws)),
        pairs(&[("update", "work_sessions")])
    );

    let mut note = String::new();
    assert_eq!(
        rows_written(&db, || a.create_note("Note", "body").map(|n| note = n)),
        pairs(&[("create", "note")])
    );
    assert_eq!(
        rows_written(&db, || a.update_note(
            &note,
            Some("T"),
            None,
            Some(true),
            Some(true)
        )),
        pairs(&[("update", "note"), ("update", "note"), ("update", "note")])
    );
    assert_eq!(
        rows_written(&db, || a.delete_note(&note)),
        pairs(&[("delete", "note")])
    );
    assert_eq!(
        rows_written(&db, || a.restore_note(&note)),
        pairs(&[("restore", "note")])
    );
    // Undo of the last undoable action: the compensating update.
    a.update_issue(
        &other,
        &IssueChange {
            priority: Some("P1".into()),
            ..IssueChange::default()
        },
    )
    .unwrap();
    assert_eq!(
        rows_written(&db, || a.undo_last()),
        pairs(&[("update", "issue")])
    );

    // Note events carry no session; every other row carries its writer's.
    let rows = action_log_after(db.connection(), 0);
    assert!(
        rows.iter()
            .all(|r| r.id.starts_with("al-") && r.id.len() == 11)
    );
    assert!(rows.iter().all(|r| r.synced_at.is_none()));
    for r in &rows {
        if r.entity_type == "note" {
            assert_eq!(r.session_id, "");
        } else {
            assert!(
                [A, B, "ses_cccccc"].contains(&r.session_id.as_str()),
                "{r:?}"
            );
        }
        assert!(
            r.timestamp.ends_with('Z') && r.timestamp.contains('T'),
            "{r:?}"
        );
    }
}

#[test]
fn refusals_and_missing_entities_write_nothing() {
    let (_dir, db) = fresh_db();
    let mut a = TdWriter::new(&db, A, 1);
    let mut b = TdWriter::new(&db, B, 2);
    let closed = a.create_issue(&spec("Issue that gets closed")).unwrap();
    a.close(&closed).unwrap(); // the creator may close never-started work
    let blocked = a.create_issue(&spec("Issue that gets blocked")).unwrap();
    a.block(&blocked).unwrap();
    let in_progress = a.create_issue(&spec("Issue A is working on")).unwrap();
    a.start(&in_progress).unwrap();
    let mine = a.create_issue(&spec("Issue A implements")).unwrap();
    a.start(&mine).unwrap();
    a.review(&mine).unwrap();
    let deleted = a.create_issue(&spec("Issue that gets deleted")).unwrap();
    a.delete_issue(&deleted).unwrap();
    let open = a.create_issue(&spec("Open issue")).unwrap();
    a.add_dependency(&open, &mine).unwrap();
    let board = a.create_board("Board", "").unwrap();
    let ws = a.start_work_session("ws").unwrap();
    a.end_work_session(&ws).unwrap();
    let note = a.create_note("n", "c").unwrap();
    a.delete_note(&note).unwrap();

    let before = snapshot(db.connection());
    let refused: Vec<(&str, Result<(), WriterError>)> = vec![
        ("start closed", a.start(&closed)),
        ("start blocked", a.start(&blocked)),
        ("start someone else's", b.start(&in_progress)),
        ("start own twice", a.start(&in_progress)),
        ("approve own work", a.approve(&mine)),
        ("approve open", b.approve(&open)),
        ("approve closed", b.approve(&closed)),
        ("close in review", b.close(&mine)),
        ("close own implementation", a.close(&in_progress)),
        (
            "close own started work",
            b.close(&closed).and(a.close(&blocked)),
        ),
        ("reject open", b.reject(&open)),
        ("block closed", a.block(&closed)),
        ("block twice", a.block(&blocked)),
        ("unblock open", a.unblock(&open)),
        ("reopen open", a.reopen(&open)),
        ("review in review", a.review(&mine)),
        ("review closed", a.review(&closed)),
        ("self dependency", a.add_dependency(&open, &open)),
        ("cycle", a.add_dependency(&mine, &open)),
        ("duplicate dependency", a.add_dependency(&open, &mine)),
        (
            "remove missing dependency",
            a.remove_dependency(&mine, &open),
        ),
        ("unlink missing", a.unlink_file(&open, "nope.rs")),
        ("link outside repo", a.link_file(&open, "../x.rs", "")),
        ("unposition missing", a.unposition(&board, &open)),
        ("builtin board delete", a.delete_board("bd-all-issues")),
        (
            "builtin board update",
            a.update_board("bd-all-issues", Some("x"), None),
        ),
        ("generic title", a.create_issue(&spec("task")).map(drop)),
        ("empty title", a.create_issue(&spec("")).map(drop)),
        (
            "bad priority",
            a.create_issue(&IssueSpec {
                priority: "P9".into(),
                ..spec("Valid title")
            })
            .map(drop),
        ),
        (
            "bad type",
            a.create_issue(&IssueSpec {
                kind: "saga".into(),
                ..spec("Valid title")
            })
            .map(drop),
        ),
        (
            "bad points",
            a.create_issue(&IssueSpec {
                points: 4,
                ..spec("Valid title")
            })
            .map(drop),
        ),
        (
            "bad points update",
            a.update_issue(
                &open,
                &IssueChange {
                    points: Some(7),
                    ..IssueChange::default()
                },
            ),
        ),
        ("restore live issue", a.restore_issue(&open)),
        ("tag into ended ws", a.tag(&ws, &open)),
        ("tag into someone else's ws", b.tag(&ws, &open)),
        ("end ended ws", a.end_work_session(&ws)),
        (
            "empty note update",
            a.update_note(&note, None, None, None, None),
        ),
        ("board without a name", a.create_board("", "").map(drop)),
    ];
    for (what, outcome) in refused {
        match outcome {
            Err(WriterError::Refused(_)) => {}
            other => panic!("{what}: expected a refusal, got {other:?}"),
        }
    }
    let missing: Vec<(&str, Result<(), WriterError>)> = vec![
        ("start deleted", a.start(&deleted)),
        (
            "update deleted",
            a.update_issue(&deleted, &IssueChange::default()),
        ),
        ("delete deleted", a.delete_issue(&deleted)),
        ("log on deleted", a.add_log(&deleted, "x").map(drop)),
        (
            "comment on missing",
            a.add_comment("td-000000", "x").map(drop),
        ),
        ("dependency on deleted", a.add_dependency(&open, &deleted)),
        (
            "position on missing board",
            a.set_position("bd-00000000", &open, 1),
        ),
        (
            "position of deleted issue",
            a.set_position(&board, &deleted, 1),
        ),
        (
            "update deleted note",
            a.update_note(&note, Some("t"), None, None, None),
        ),
        ("delete deleted note", a.delete_note(&note)),
        ("end missing ws", a.end_work_session("ws-0000")),
        ("restore missing", a.restore_issue("td-000000")),
    ];
    for (what, outcome) in missing {
        match outcome {
            Err(WriterError::NotFound { .. }) => {}
            other => panic!("{what}: expected not found, got {other:?}"),
        }
    }
    // A second work session while one is active is refused before anything is written.
    let _active = b.start_work_session("b's session").unwrap();
    let before_second = snapshot(db.connection());
    assert!(matches!(
        b.start_work_session("again"),
        Err(WriterError::Refused(_))
    ));
    assert_eq!(before_second, snapshot(db.connection()));
    assert_ne!(before, before_second);
    // Everything refused above left the database as it was (the only change is b's session).
    let rows_after_refusals = snapshot(db.connection());
    let without_ws = |s: &str| {
        s.lines()
            .filter(|l| !l.contains("b's session") && !l.contains("work_sessions"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(without_ws(&before), without_ws(&rows_after_refusals));
}

#[test]
fn undo_skips_what_td_cannot_undo() {
    let (_dir, db) = fresh_db();
    let mut a = TdWriter::new(&db, A, 1);
    let mut b = TdWriter::new(&db, B, 2);
    assert_eq!(a.undo_last().unwrap(), None);
    let id = a.create_issue(&spec("Issue for undo")).unwrap();
    let create = action_log_after(db.connection(), 0).pop().unwrap();
    a.add_log(&id, "logs are never undone").unwrap();
    a.add_comment(&id, "nor are comments").unwrap();
    // The newest undoable action is the create: its undo is td's soft delete.
    assert_eq!(a.undo_last().unwrap(), Some(create.id));
    assert!(a.issue(&id).unwrap().unwrap().deleted);
    assert_eq!(b.undo_last().unwrap(), None, "undo is per session");
    // A work-session tag is a type td's undo does not know: refused, nothing written.
    let other = b.create_issue(&spec("Tagged issue")).unwrap();
    b.start(&other).unwrap();
    let ws = b.start_work_session("w").unwrap();
    b.tag(&ws, &other).unwrap();
    let before = max_rowid(db.connection());
    assert!(matches!(b.undo_last(), Err(WriterError::Refused(_))));
    assert_eq!(max_rowid(db.connection()), before);
}

/// A broad run of every command across two sessions (no td-known undo quirks).
fn broad_run(db: &TdDatabase) {
    let mut a = TdWriter::new(db, A, 11);
    let mut b = TdWriter::new(db, B, 12);
    let mut epic = spec("Epic of the broad run");
    epic.kind = "epic".into();
    epic.labels = vec!["x,y".into()];
    epic.description = "with <html> & \"quotes\"".into();
    let epic = a.create_issue(&epic).unwrap();
    let mut child = spec("Child of the broad run");
    child.parent_id = epic.clone();
    child.points = 5;
    child.acceptance = "done when done".into();
    child.due_date = Some("2026-12-31".into());
    child.defer_until = Some("2026-12-01".into());
    let child = a.create_issue(&child).unwrap();
    let other = b.create_issue(&spec("Other issue of the run")).unwrap();
    a.start(&child).unwrap();
    a.add_log_with_type(&child, "decided", LogType::Decision)
        .unwrap();
    a.add_comment(&child, "comment").unwrap();
    a.review(&epic).unwrap();
    b.approve(&child).unwrap();
    b.approve(&epic).ok();
    a.reopen(&child).unwrap();
    a.update_issue(
        &child,
        &IssueChange {
            title: Some("Child, renamed".into()),
            labels: Some(vec!["a".into()]),
            sprint: Some("s2".into()),
            defer_until: Some(Some("2027-01-15".into())),
            due_date: Some(None),
            minor: Some(true),
            ..IssueChange::default()
        },
    )
    .unwrap();
    a.add_dependency(&child, &other).unwrap();
    a.block(&child).unwrap();
    b.close(&other).unwrap(); // unblocks child
    a.link_file(&child, "src/main.rs", "implementation")
        .unwrap();
    a.link_file(&child, "tests/t.rs", "test").unwrap();
    a.unlink_file(&child, "tests/t.rs").unwrap();
    let board = a.create_board("Run board", "status = open").unwrap();
    a.set_position(&board, &child, 65536).unwrap();
    a.set_position(&board, &other, 131072).unwrap();
    a.unposition(&board, &other).unwrap();
    a.update_board(&board, Some("Run board 2"), Some("type = task"))
        .unwrap();
    let board2 = a.create_board("Doomed board", "").unwrap();
    a.set_position(&board2, &child, 1).unwrap();
    a.delete_board(&board2).unwrap();
    let ws = b.start_work_session("run ws").unwrap();
    let tagged = b.create_issue(&spec("Tagged in the work session")).unwrap();
    b.tag(&ws, &tagged).unwrap();
    b.add_log(&tagged, "ws progress").unwrap();
    b.tag(&ws, &child).unwrap();
    b.untag(&ws, &child).unwrap();
    b.end_work_session(&ws).unwrap();
    let note = a.create_note("Run note", "content <x>").unwrap();
    a.update_note(&note, None, Some("new content"), Some(true), None)
        .unwrap();
    let gone = a.create_note("Gone note", "").unwrap();
    a.delete_note(&gone).unwrap();
    let deleted = a.create_issue(&spec("Deleted in the run")).unwrap();
    a.delete_issue(&deleted).unwrap();
    a.update_issue(
        &child,
        &IssueChange {
            priority: Some("P0".into()),
            ..IssueChange::default()
        },
    )
    .unwrap();
    a.undo_last().unwrap(); // the priority change
    let undone = a.create_issue(&spec("Created then undone")).unwrap();
    a.undo_last().unwrap();
    assert!(a.issue(&undone).unwrap().is_some_and(|i| i.deleted));
}

#[test]
fn writer_output_pushes_cleanly_and_rebuilds_an_equal_replica() {
    let (_dir, db) = fresh_db();
    broad_run(&db);
    let sendable: i64 = db
        .connection()
        .query_row(
            "SELECT COUNT(*) FROM action_log WHERE undone = 0",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let before_push = max_rowid(db.connection());
    let pending = db.pending(A, 100_000).unwrap();
    assert!(pending.unsendable.is_empty(), "{:?}", pending.unsendable);
    assert!(pending.backfill_error.is_none());
    assert!(!pending.has_more);
    // td's first-push backfill re-creates issues deleted after their create (its rule, for td's
    // own rows too); nothing else may lack an event.
    let backfilled = action_log_after(db.connection(), before_push);
    assert_eq!(backfilled.len(), pending.backfilled);
    for r in &backfilled {
        let deleted = TdWriter::new(&db, A, 0)
            .issue(&r.entity_id)
            .unwrap()
            .is_some_and(|i| i.deleted);
        assert!(r.entity_type == "issue" && deleted, "backfilled: {r:?}");
    }
    // Creates td undid before any push, of rows that outlived the undo, are sent in their place.
    let undone_creates = pending
        .events
        .iter()
        .filter(|e| {
            db.connection()
                .query_row(
                    "SELECT undone FROM action_log WHERE rowid = ?1",
                    [e.client_action_id],
                    |r| r.get::<_, i64>(0),
                )
                .unwrap()
                != 0
        })
        .inspect(|e| assert_eq!(e.action_type, "create", "{e:?}"))
        .count() as i64;
    assert_eq!(
        pending.events.len() as i64,
        sendable + backfilled.len() as i64 + undone_creates
    );

    // A replica that applies exactly these events holds exactly the writer's rows.
    let (_rdir, replica) = fresh_db();
    replica.link("proj").unwrap();
    let events: Vec<PullEvent> = pending
        .events
        .iter()
        .enumerate()
        .map(|(i, e)| PullEvent {
            server_seq: i as i64 + 1,
            device_id: "writer-device".into(),
            session_id: A.into(),
            client_action_id: e.client_action_id,
            action_type: e.action_type.clone(),
            entity_type: e.entity_type.clone(),
            entity_id: e.entity_id.clone(),
            payload: e.payload.clone(),
            client_timestamp: e.client_timestamp.clone(),
        })
        .collect();
    let outcome = replica
        .apply_page(&events, events.len() as i64, "replica-device")
        .unwrap();
    assert!(outcome.skipped.is_empty(), "{:?}", outcome.skipped);
    let mut ours = tdsync_projection::Dump::read(db.connection()).unwrap();
    let mut theirs = tdsync_projection::Dump::read(replica.connection()).unwrap();
    for dump in [&mut ours, &mut theirs] {
        td_lossy_columns(dump);
    }
    if let Some(d) = ours.first_difference(&theirs) {
        panic!("replica diverges from the writer: {d}");
    }
}

/// What td itself loses between a row and its event, reproduced by the writer: some events
/// carry times at whole seconds (handoffs, file links, board positions), notes' rows store
/// whole seconds while their create event has nanoseconds, and soft deletes and restores are
/// applied with the push's second-precision client_timestamp; handoff lists are stored as
/// BLOBs (td binds []byte) where an applied event stores TEXT.
fn td_lossy_columns(dump: &mut tdsync_projection::Dump) {
    use tdsync_protocol::EntityType as E;
    let seconds_only: &[(E, &str)] = &[
        (E::Handoffs, "timestamp"),
        (E::IssueFiles, "linked_at"),
        (E::BoardIssuePositions, "added_at"),
        (E::Notes, "created_at"),
        (E::Notes, "updated_at"),
        (E::Issues, "updated_at"),
    ];
    for (entity, table) in dump.tables.iter_mut() {
        for row in table.rows.values_mut() {
            for (column, v) in row.iter_mut() {
                match v {
                    Norm::Blob(bytes) => {
                        *v = Norm::Text(String::from_utf8_lossy(bytes).into_owned())
                    }
                    Norm::Instant(ns)
                        if column == "deleted_at"
                            || seconds_only.contains(&(*entity, column.as_str())) =>
                    {
                        *ns = ns.div_euclid(1_000_000_000) * 1_000_000_000;
                    }
                    _ => {}
                }
            }
        }
    }
}

#[test]
fn schema_27_database_gets_older_json_and_refuses_newer_features() {
    let (_dir, path) = common::fixture_copy("nightshift-v27.db");
    // Sidecar created this project's notes table before td had one; td 27 itself has none.
    Connection::open(&path)
        .unwrap()
        .execute_batch("DROP TABLE notes")
        .unwrap();
    let db = TdDatabase::open(&path).unwrap();
    assert_eq!(db.schema_version(), 27);
    let mut a = TdWriter::new(&db, A, 5);
    let mut b = TdWriter::new(&db, B, 6);
    let before = max_rowid(db.connection());

    let existing: String = db
        .connection()
        .query_row("SELECT id FROM issues WHERE deleted_at IS NULL AND status = 'open' ORDER BY rowid LIMIT 1", [], |r| r.get(0))
        .unwrap();
    a.update_issue(
        &existing,
        &IssueChange {
            priority: Some("P1".into()),
            ..IssueChange::default()
        },
    )
    .unwrap();
    let id = a
        .create_issue(&spec("New issue in an old database"))
        .unwrap();
    a.start(&id).unwrap();
    a.review(&id).unwrap();
    b.approve(&id).unwrap();

    let v27_keys = [
        "id",
        "title",
        "status",
        "type",
        "priority",
        "points",
        "implementer_session",
        "creator_session",
        "reviewer_session",
        "created_at",
        "updated_at",
        "minor",
    ];
    let newer = [
        "defer_count",
        "defer_until",
        "due_date",
        "reviewed_at",
        "review_requested_by_session",
        "closed_by_session",
    ];
    let rows = action_log_after(db.connection(), before);
    assert!(rows.iter().all(|r| r.entity_type != "issue_reviews"));
    let approve = rows.iter().find(|r| r.action_type == "approve").unwrap();
    // No review row at schema 27, so no review wrapper either.
    assert!(
        approve.new_data.starts_with(r#"{"id":"#),
        "{}",
        approve.new_data
    );
    for r in rows.iter().filter(|r| r.entity_type == "issue") {
        for text in [&r.previous_data, &r.new_data] {
            if text.is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(text).unwrap();
            let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
            for k in v27_keys {
                assert!(keys.iter().any(|x| *x == k), "{k} missing in {text}");
            }
            for k in newer {
                assert!(
                    !keys.iter().any(|x| *x == k),
                    "{k} present at schema 27: {text}"
                );
            }
        }
    }
    // The fixture's Go time.String() times come out as RFC 3339.
    let update = rows.iter().find(|r| r.action_type == "update").unwrap();
    let prev: Value = serde_json::from_str(&update.previous_data).unwrap();
    let created = prev["created_at"].as_str().unwrap();
    assert!(
        tdsync_protocol::timestamp::parse(created).is_some() && created.contains('T'),
        "{created}"
    );

    let unsupported: Vec<Result<(), WriterError>> = vec![
        a.create_note("n", "c").map(drop),
        a.create_issue(&IssueSpec {
            due_date: Some("2026-01-01".into()),
            ..spec("With a due date")
        })
        .map(drop),
        a.update_issue(
            &id,
            &IssueChange {
                defer_until: Some(None),
                ..IssueChange::default()
            },
        ),
    ];
    for outcome in unsupported {
        assert!(
            matches!(outcome, Err(WriterError::Unsupported { schema: 27, .. })),
            "{outcome:?}"
        );
    }
    assert!(a.notes(true).unwrap().is_empty());

    // The writer's rows push like td's own.
    let pending = db.pending(A, 100_000).unwrap();
    let ours: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    assert!(
        pending
            .unsendable
            .iter()
            .all(|u| u.action_id.as_deref().is_none_or(|id| !ours.contains(&id))),
        "{:?}",
        pending.unsendable
    );
}

/// Review rows at the schemas that introduced their columns: no `self_review` before 32, no
/// `reviewed_by` before 37.
#[test]
fn review_rows_carry_only_the_columns_their_schema_has() {
    for (fixture, version, self_review) in [
        ("sindri-series/4-9f25b1e.db", 31, false),
        ("cycling-training-app-v32.db", 32, true),
    ] {
        let (_dir, path) = common::fixture_copy(fixture);
        let db = TdDatabase::open(&path).unwrap();
        assert_eq!(db.schema_version(), version);
        let mut a = TdWriter::new(&db, A, 7);
        let mut b = TdWriter::new(&db, B, 8);
        let before = max_rowid(db.connection());
        let id = a
            .create_issue(&spec("Reviewed in an older database"))
            .unwrap();
        a.review(&id).unwrap();
        b.approve(&id).unwrap();
        let rows = action_log_after(db.connection(), before);
        let review = rows
            .iter()
            .find(|r| r.entity_type == "issue_reviews")
            .unwrap();
        let v: Value = serde_json::from_str(&review.new_data).unwrap();
        assert_eq!(
            v.get("self_review").is_some(),
            self_review,
            "{fixture}: {v}"
        );
        assert!(v.get("reviewed_by").is_none(), "{fixture}: {v}");
        let approve = rows.iter().find(|r| r.action_type == "approve").unwrap();
        let wrapped: Value = serde_json::from_str(&approve.new_data).unwrap();
        assert_eq!(wrapped["issue"]["status"], "closed");
        assert_eq!(wrapped["created_review_id"], review.entity_id.as_str());
        // Reopening supersedes the approval with its own event.
        a.reopen(&id).unwrap();
        let last = action_log_after(db.connection(), before);
        assert!(
            last.iter()
                .any(|r| r.entity_type == "issue_reviews" && r.action_type == "update")
        );
        let pending = db.pending(A, 100_000).unwrap();
        let ours: Vec<&str> = last.iter().map(|r| r.id.as_str()).collect();
        assert!(
            pending
                .unsendable
                .iter()
                .all(|u| u.action_id.as_deref().is_none_or(|id| !ours.contains(&id)))
        );
    }
}

#[test]
fn undo_before_sync_sends_only_the_compensation() {
    let (_dir, db) = fresh_db();
    let mut a = TdWriter::new(&db, A, 3);
    let id = a.create_issue(&spec("Title before the edit")).unwrap();
    a.update_issue(
        &id,
        &IssueChange {
            title: Some("Edited title".into()),
            ..IssueChange::default()
        },
    )
    .unwrap();
    let edit = action_log_after(db.connection(), 0).pop().unwrap();
    let undone = a.undo_last().unwrap();
    assert_eq!(undone.as_deref(), Some(edit.id.as_str()));

    let rows = action_log_after(db.connection(), 0);
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[1].undone, 1, "the edit is marked undone");
    let compensation = &rows[2];
    assert_eq!(
        (compensation.action_type.as_str(), compensation.undone),
        ("update", 0)
    );
    let new: Value = serde_json::from_str(&compensation.new_data).unwrap();
    assert_eq!(new["title"], "Title before the edit");
    assert_eq!(
        a.issue(&id).unwrap().unwrap().title,
        "Title before the edit"
    );

    let pending = db.pending(A, 100).unwrap();
    let sent: Vec<i64> = pending.events.iter().map(|e| e.client_action_id).collect();
    assert_eq!(
        sent,
        vec![rows[0].rowid, rows[2].rowid],
        "the undone edit is never sent"
    );

    // td's undo of an undo is a redo (the compensation is itself an update).
    a.undo_last().unwrap();
    assert_eq!(a.issue(&id).unwrap().unwrap().title, "Edited title");
}

#[test]
fn undo_of_an_approval_rolls_the_review_back() {
    let (_dir, db) = fresh_db();
    let mut a = TdWriter::new(&db, A, 3);
    let mut b = TdWriter::new(&db, B, 4);
    let id = a.create_issue(&spec("Approved then undone")).unwrap();
    a.review(&id).unwrap();
    b.approve(&id).unwrap();
    let before = max_rowid(db.connection());
    b.undo_last().unwrap();
    let rows: Vec<(String, String)> = action_log_after(db.connection(), before)
        .into_iter()
        .map(|r| (r.action_type, r.entity_type))
        .collect();
    assert_eq!(
        rows,
        pairs(&[("review_delete", "issue_reviews"), ("update", "issue")])
    );
    let reviews: i64 = db
        .connection()
        .query_row("SELECT COUNT(*) FROM issue_reviews", [], |r| r.get(0))
        .unwrap();
    assert_eq!(reviews, 0);
    assert_eq!(a.issue(&id).unwrap().unwrap().status, "in_review");
}

#[test]
fn approval_policy_follows_td() {
    let (_dir, db) = fresh_db();
    let mut a = TdWriter::new(&db, A, 3);
    let mut b = TdWriter::new(&db, B, 4);
    let id = a.create_issue(&spec("Implemented by A")).unwrap();
    a.start(&id).unwrap();
    a.review(&id).unwrap();
    assert!(matches!(a.approve(&id), Err(WriterError::Refused(_))));
    b.approve(&id).unwrap();
    // A minor issue may be approved by its implementer.
    let minor = a
        .create_issue(&IssueSpec {
            minor: true,
            ..spec("Minor fix by A")
        })
        .unwrap();
    a.start(&minor).unwrap();
    a.review(&minor).unwrap();
    a.approve(&minor).unwrap();
    assert_eq!(a.issue(&minor).unwrap().unwrap().status, "closed");
}

#[test]
fn clock_skew_shifts_every_timestamp() {
    let (_dir, db) = fresh_db();
    let mut a = TdWriter::new(&db, A, 3).with_clock_skew(chrono::Duration::minutes(30));
    let before = chrono::Utc::now();
    let id = a.create_issue(&spec("Written by a fast clock")).unwrap();
    let row = action_log_after(db.connection(), 0).pop().unwrap();
    let logged = tdsync_protocol::timestamp::parse(&row.timestamp).unwrap();
    assert!(
        logged > before + chrono::Duration::minutes(29),
        "{}",
        row.timestamp
    );
    let created: String = db
        .connection()
        .query_row("SELECT created_at FROM issues WHERE id = ?1", [&id], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(
        created.ends_with("+00:00") && created.contains(' '),
        "{created}"
    );
    let created = tdsync_protocol::timestamp::parse(&created).unwrap();
    assert!(created > before + chrono::Duration::minutes(29));
}

#[test]
fn same_seed_and_session_mint_the_same_ids() {
    let run = |session: &str| -> Vec<String> {
        let (_dir, db) = fresh_db();
        let mut w = TdWriter::new(&db, session, 99);
        let id = w.create_issue(&spec("Reproducible ids")).unwrap();
        w.add_log(&id, "log").unwrap();
        w.create_board("b", "").unwrap();
        let mut ids: Vec<String> = action_log_after(db.connection(), 0)
            .into_iter()
            .flat_map(|r| [r.id, r.entity_id])
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(run(A), run(A));
    assert_ne!(run(A), run(B));
}

#[test]
fn readers_see_what_generators_need() {
    let (_dir, db) = fresh_db();
    let mut a = TdWriter::new(&db, A, 3);
    let x = a.create_issue(&spec("Reader issue one")).unwrap();
    let y = a.create_issue(&spec("Reader issue two")).unwrap();
    a.delete_issue(&y).unwrap();
    assert_eq!(a.issue_ids(false).unwrap(), vec![x.clone()]);
    assert_eq!(a.issue_ids(true).unwrap(), vec![x.clone(), y.clone()]);
    let board = a.create_board("b", "").unwrap();
    a.set_position(&board, &x, 65536).unwrap();
    assert_eq!(a.board_ids(false).unwrap(), vec![board.clone()]);
    assert_eq!(a.board_ids(true).unwrap().len(), 2);
    assert_eq!(a.positions(&board).unwrap(), vec![(x.clone(), 65536)]);
    let ws = a.start_work_session("w").unwrap();
    assert_eq!(a.active_work_session(), Some(ws.as_str()));
    a.tag(&ws, &x).unwrap();
    assert_eq!(a.work_session_tags(&ws).unwrap(), vec![x.clone()]);
    let snap = a.issue(&x).unwrap().unwrap();
    assert_eq!(
        (snap.status.as_str(), snap.implementer_session.as_str()),
        ("in_progress", A)
    );
    let log_ws: String = db
        .connection()
        .query_row(
            "SELECT work_session_id FROM logs ORDER BY rowid DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(log_ws, ws);
    a.end_work_session(&ws).unwrap();
    assert_eq!(a.active_work_session(), None);
    assert!(a.work_sessions().unwrap()[0].ended);
    let z = a.create_issue(&spec("Reader issue three")).unwrap();
    a.add_dependency(&z, &x).unwrap();
    a.link_file(&z, "./src//a.rs", "").unwrap();
    assert_eq!(a.dependencies().unwrap(), vec![(z.clone(), x.clone())]);
    assert_eq!(
        a.file_links().unwrap(),
        vec![(z.clone(), "src/a.rs".to_string())]
    );
    let n = a.create_note("t", "c").unwrap();
    assert_eq!(a.note_ids(false).unwrap(), vec![n]);
}
