//! The adapter against the real td binary (td v0.62.0): what td pushes from a database must
//! be what `pending()` reads from a copy of it, and what td's pull writes into a database must
//! be what `apply_page()` writes into a copy. td is found by `tdsync_harness::testing::td_binary`
//! (`TD_BIN`, or the copy `infra/test.sh` builds); without one the tests skip loudly, or fail
//! under `TDSYNC_REQUIRE_SERVICES=1`.

mod common;

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use common::{fake_server::FakeServer, *};
use rusqlite::Connection;
use serde_json::{Value, json};
use tdsync_client::tddb::{Pending, TdDatabase, acks_of};
use tdsync_projection::Dump;
use tdsync_protocol::{
    timestamp,
    wire::{PullEvent, PushRequest, PushResponse},
};

const DEVICE_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const DEVICE_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

/// One td installation: its own HOME (device id, config) talking to the fake server.
struct Td {
    bin: PathBuf,
    home: tempfile::TempDir,
    url: String,
}

impl Td {
    fn new(server: &FakeServer, device: &str) -> Option<Td> {
        let bin = tdsync_harness::testing::td_binary("client/tests/td_golden.rs")?;
        let home = tempfile::tempdir().unwrap();
        let config = home.path().join(".config/td");
        std::fs::create_dir_all(&config).unwrap();
        std::fs::write(
            config.join("auth.json"),
            json!({"api_key": "k", "user_id": "u", "email": "t@example.test", "server_url": server.url, "device_id": device})
                .to_string(),
        )
        .unwrap();
        std::fs::write(
            config.join("config.json"),
            json!({"sync": {"url": server.url, "snapshot_threshold": 0, "auto": {"enabled": false, "on_start": false}}})
                .to_string(),
        )
        .unwrap();
        Some(Td {
            bin,
            home,
            url: server.url.clone(),
        })
    }

    /// Runs td in `project`; returns stdout. Any failure fails the test.
    fn run(&self, project: &Path, args: &[&str]) -> String {
        let out = Command::new(&self.bin)
            .args(args)
            .current_dir(project)
            .env("HOME", self.home.path())
            .env("TD_AUTH_KEY", "k")
            .env("TD_SYNC_URL", &self.url)
            .env("TD_FEATURE_SYNC_CLI", "1")
            .env("TD_SYNC_AUTO", "false")
            .env("TD_SYNC_SNAPSHOT_THRESHOLD", "0")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "td {args:?} failed: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// The id td printed as `CREATED <id>`.
    fn create(&self, project: &Path, title: &str, extra: &[&str]) -> String {
        let mut args = vec!["create", title];
        args.extend_from_slice(extra);
        let out = self.run(project, &args);
        out.split_whitespace()
            .skip_while(|w| *w != "CREATED")
            .nth(1)
            .unwrap_or_else(|| panic!("no id in {out}"))
            .to_string()
    }
}

fn max_rowid(path: &Path) -> i64 {
    Connection::open(path)
        .unwrap()
        .query_row("SELECT COALESCE(MAX(rowid), 0) FROM action_log", [], |r| {
            r.get(0)
        })
        .unwrap()
}

/// Copies td's database (and nothing else) into a fresh project dir.
fn copy_db(from: &Path) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let dest = copy_fixture(from, dir.path());
    (dir, dest)
}

/// Every push td made, as (request, response).
fn td_pushes(server: &FakeServer) -> Vec<(PushRequest, PushResponse)> {
    server
        .log
        .lock()
        .unwrap()
        .pushes
        .iter()
        .map(|(req, resp)| {
            (
                serde_json::from_str(req).unwrap(),
                serde_json::from_str(resp).unwrap(),
            )
        })
        .collect()
}

/// `pending()` on our copy must produce td's push, event for event and byte for byte. The
/// only licence: backfilled rows (rowid above `backfill_from`) carry their time in UTC where
/// td keeps the row's own offset — the same instant (see backfill.rs).
fn assert_same_push(
    name: &str,
    td: &[(PushRequest, PushResponse)],
    ours: &Pending,
    backfill_from: i64,
) {
    let td_events: Vec<_> = td.iter().flat_map(|(req, _)| req.events.iter()).collect();
    assert!(ours.unsendable.is_empty(), "{name}: {:?}", ours.unsendable);
    assert_eq!(td_events.len(), ours.events.len(), "{name}: event count");
    for (t, o) in td_events.iter().zip(&ours.events) {
        let at = format!("{name} rowid {}", t.client_action_id);
        assert_eq!(t.client_action_id, o.client_action_id, "{at}");
        assert_eq!(t.action_type, o.action_type, "{at}");
        assert_eq!(t.entity_type, o.entity_type, "{at}");
        assert_eq!(t.entity_id, o.entity_id, "{at}");
        assert_eq!(t.payload.get(), o.payload.get(), "{at}: payload");
        if t.client_action_id > backfill_from {
            assert!(
                timestamp::same_instant(&t.client_timestamp, &o.client_timestamp),
                "{at}: {} vs {}",
                t.client_timestamp,
                o.client_timestamp
            );
        } else {
            assert_eq!(t.client_timestamp, o.client_timestamp, "{at}");
        }
    }
}

/// After td's push and our `mark_pushed` with the same acks, the two databases agree on every
/// mark, the cursor row and the push history.
fn assert_same_marks(name: &str, td_db: &Path, ours: &TdDatabase) {
    let td = Connection::open(td_db).unwrap();
    let marks = |c: &Connection| -> Vec<(i64, Option<i64>, bool)> {
        c.prepare("SELECT rowid, server_seq, synced_at IS NOT NULL FROM action_log ORDER BY rowid")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert_eq!(
        marks(&td),
        marks(ours.connection()),
        "{name}: action_log marks"
    );
    let state = |c: &Connection| -> (String, i64, i64, bool) {
        c.query_row(
            "SELECT project_id, last_pushed_action_id, last_pulled_server_seq, last_sync_at IS NOT NULL FROM sync_state",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap()
    };
    assert_eq!(state(&td), state(ours.connection()), "{name}: sync_state");
    assert_eq!(
        history(&td, "push"),
        history(ours.connection(), "push"),
        "{name}: push history"
    );
}

type HistoryRow = (String, String, String, i64, String);

fn history(c: &Connection, direction: &str) -> Vec<HistoryRow> {
    c.prepare(
        "SELECT action_type, entity_type, entity_id, server_seq, device_id FROM sync_history \
         WHERE direction = ?1 ORDER BY id",
    )
    .unwrap()
    .query_map([direction], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

/// Pushes `project` with td and checks `pending()`/`mark_pushed()` on a copy taken just before.
fn push_and_compare(name: &str, td: &Td, server: &FakeServer, project: &Path) {
    let td_db = db_path(project);
    let (_keep, ours_path) = copy_db(&td_db);
    let backfill_from = max_rowid(&td_db);
    let pushes_before = server.log.lock().unwrap().pushes.len();
    td.run(project, &["sync", "--push"]);
    let pushes = td_pushes(server).split_off(pushes_before);
    assert!(!pushes.is_empty(), "{name}: td pushed nothing");

    let ours = TdDatabase::open(&ours_path).unwrap();
    let session = pushes[0].0.session_id.clone();
    let pending = ours.pending(&session, 100_000).unwrap();
    assert_same_push(name, &pushes, &pending, backfill_from);

    // The synthetic rows themselves: same rows, same data, same instant.
    let synthetic = |c: &Connection| -> Vec<(String, String, String, String, String, String)> {
        c.prepare(
            "SELECT action_type, entity_type, entity_id, new_data, previous_data, timestamp \
             FROM action_log WHERE rowid > ?1 ORDER BY rowid",
        )
        .unwrap()
        .query_map([backfill_from], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    };
    let td_rows = synthetic(&Connection::open(&td_db).unwrap());
    let our_rows = synthetic(ours.connection());
    assert_eq!(td_rows.len(), our_rows.len(), "{name}: backfilled rows");
    assert_eq!(td_rows.len(), pending.backfilled, "{name}");
    for (t, o) in td_rows.iter().zip(&our_rows) {
        assert_eq!(
            (&t.0, &t.1, &t.2, &t.3, &t.4),
            (&o.0, &o.1, &o.2, &o.3, &o.4),
            "{name}: backfill row"
        );
        assert!(
            timestamp::same_instant(&t.5, &o.5),
            "{name}: {} vs {}",
            t.5,
            o.5
        );
    }

    for (req, resp) in &pushes {
        ours.mark_pushed(&acks_of(resp), &req.device_id).unwrap();
    }
    assert_same_marks(name, &td_db, &ours);
    assert!(
        ours.pending(&session, 10).unwrap().events.is_empty(),
        "{name}: all pushed"
    );
}

/// td writes a project with most of its writers, plus rows td's backfill must pick up.
fn td_written_project(td: &Td) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    td.run(p, &["init"]);
    let one = td.create(p, "Golden issue number one", &["--labels", "x,y"]);
    let two = td.create(p, "Golden issue number two <b> & co", &[]);
    td.run(p, &["comment", &one, "a comment <b>"]);
    td.run(p, &["dep", "add", &two, &one]);
    td.run(p, &["board", "create", "My board"]);
    std::fs::write(p.join("README.md"), "hi").unwrap();
    td.run(p, &["link", &one, "README.md"]);
    td.run(p, &["handoff", &one, "--done", "first part"]);
    td.run(
        p,
        &["note", "add", "Note <one>", "--content", "body & more"],
    );
    td.run(p, &["ws", "start", "sprint ws"]);
    td.run(p, &["ws", "tag", &two]);
    td.run(p, &["ws", "end"]);
    td.run(p, &["delete", &two]);
    td.run(p, &["restore", &two]);
    td.run(
        p,
        &[
            "update",
            &two,
            "--priority",
            "P1",
            "--description",
            "multi\nline",
        ],
    );
    td.run(p, &["review", &one]);

    // Rows without events, as an import or an older td leaves them: backfill material.
    let c = Connection::open(db_path(p)).unwrap();
    c.execute_batch(
        "INSERT INTO issues (id, title, status, labels, created_at, updated_at) \
           VALUES ('td-0ld001', 'Imported', 'open', 'imp', '2026-08-01 10:00:00.5-07:00', '2026-08-01 10:00:00.5-07:00');
         INSERT INTO boards (id, name, query, created_at, updated_at) \
           VALUES ('bd-0ld00001', 'Old board', '', '2026-08-01 09:00:00', '2026-08-01 09:00:00');
         INSERT INTO logs (id, issue_id, session_id, message, timestamp) \
           VALUES ('lg-0ld00001', 'td-0ld001', 'ses_old', 'old log', '2026-02-03 20:53:53.519728 -0800 PST m=+0.036937834');",
    )
    .unwrap();
    // Closed behind td's back: a stale issue.
    c.execute("UPDATE issues SET status = 'closed' WHERE id = ?1", [&two])
        .unwrap();
    dir
}

#[test]
fn pending_and_mark_pushed_match_tds_own_push() {
    let server = common::fake_server::start();
    let Some(td) = Td::new(&server, DEVICE_A) else {
        return;
    };
    let project = td_written_project(&td);
    td.run(project.path(), &["sync-project", "link", "p_golden"]);
    push_and_compare("td-written", &td, &server, project.path());
}

#[test]
fn pending_matches_tds_push_on_every_real_td_database() {
    let fixtures = fixtures_dir();
    let server = common::fake_server::start();
    let Some(td) = Td::new(&server, DEVICE_A) else {
        return;
    };
    for fixture in fixture_files(&fixtures) {
        let name = fixture.file_name().unwrap().to_string_lossy().to_string();
        let project = tempfile::tempdir().unwrap();
        copy_fixture(&fixture, project.path());
        // Linking runs td's migrations; the copy we compare on is taken after them.
        td.run(
            project.path(),
            &["sync-project", "link", &format!("p_{name}")],
        );
        push_and_compare(&name, &td, &server, project.path());
    }
}

/// The server's log as pull events, from `after` on.
fn server_events(server: &FakeServer, after: i64) -> (Vec<PullEvent>, i64) {
    let log = server.log.lock().unwrap();
    let events: Vec<PullEvent> = log
        .events
        .iter()
        .filter(|e| e["server_seq"].as_i64().unwrap() > after)
        .map(|e| serde_json::from_value(e.clone()).unwrap())
        .collect();
    let last = events.last().map_or(after, |e| e.server_seq);
    (events, last)
}

/// The one difference allowed, in td's disfavour: td applies a `create`, or an `update` without
/// a previous image, with INSERT OR REPLACE; with foreign keys on, the REPLACE deletes the old
/// row first and its ON DELETE CASCADE children go with it (the reference's pitfall 4). The
/// shared engine upserts and keeps them. Removes from `mine` exactly the child rows td lacks
/// whose cascade parent received such an event, and returns them.
fn forgive_tds_cascade_loss(theirs: &Dump, mine: &mut Dump, events: &[PullEvent]) -> Vec<String> {
    use tdsync_projection::compare::Norm;
    use tdsync_protocol::EntityType as E;
    let replaced: Vec<(&str, &str)> = events
        .iter()
        .filter(|e| {
            let payload: Value = serde_json::from_str(e.payload.get()).unwrap_or_default();
            let no_previous = payload["previous_data"]
                .as_object()
                .is_none_or(|m| m.is_empty());
            e.action_type == "create" || (e.action_type == "update" && no_previous)
        })
        .map(|e| (e.entity_type.as_str(), e.entity_id.as_str()))
        .collect();
    // Each child table's cascade columns and the parent table they point at.
    let children: [(E, &[(&str, &str)]); 6] = [
        (E::Comments, &[("issue_id", "issues")]),
        (E::Handoffs, &[("issue_id", "issues")]),
        (E::IssueFiles, &[("issue_id", "issues")]),
        (
            E::IssueDependencies,
            &[("issue_id", "issues"), ("depends_on_id", "issues")],
        ),
        (
            E::BoardIssuePositions,
            &[("board_id", "boards"), ("issue_id", "issues")],
        ),
        (
            E::WorkSessionIssues,
            &[("work_session_id", "work_sessions"), ("issue_id", "issues")],
        ),
    ];
    let mut lost = Vec::new();
    for (entity, fks) in children {
        let Some(ours) = mine.tables.get_mut(&entity) else {
            continue;
        };
        let td_rows = theirs.tables.get(&entity).map(|t| &t.rows);
        ours.rows.retain(|id, row| {
            if td_rows.is_some_and(|r| r.contains_key(id)) {
                return true;
            }
            let parent_replaced = fks.iter().any(|(col, parent)| match row.get(*col) {
                Some(Norm::Text(pid)) => replaced.contains(&(*parent, pid.as_str())),
                _ => false,
            });
            if parent_replaced {
                lost.push(format!("{entity}/{id}"));
            }
            !parent_replaced
        });
    }
    lost
}

fn skipped_rows(c: &Connection) -> Vec<(i64, String, String, String, String, Option<String>)> {
    c.prepare(
        "SELECT server_seq, reason, device_id, entity_type, entity_id, payload FROM sync_skipped_events ORDER BY server_seq",
    )
    .unwrap()
    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

fn cursor(c: &Connection) -> i64 {
    c.query_row("SELECT last_pulled_server_seq FROM sync_state", [], |r| {
        r.get(0)
    })
    .unwrap()
}

#[test]
fn apply_page_writes_what_tds_pull_writes() {
    let server = common::fake_server::start();
    let Some(td_a) = Td::new(&server, DEVICE_A) else {
        return;
    };
    let td_b = Td::new(&server, DEVICE_B).unwrap();

    // Device A writes a project and pushes it; two events no peer can apply follow.
    let a = td_written_project(&td_a);
    td_a.run(a.path(), &["sync-project", "link", "p_shared"]);
    td_a.run(a.path(), &["sync", "--push"]);
    {
        let mut log = server.log.lock().unwrap();
        let base = json!({"device_id": DEVICE_A, "session_id": "ses_a", "client_action_id": 9001,
                          "client_timestamp": "2026-08-21T21:41:18Z"});
        let mut orphan = base.clone();
        orphan["action_type"] = json!("create");
        orphan["entity_type"] = json!("comments");
        orphan["entity_id"] = json!("cm-orphan1");
        orphan["payload"] = create_payload(
            json!({"id": "cm-orphan1", "issue_id": "td-nope00", "session_id": "s",
                                                   "text": "orphan", "created_at": "2026-08-21T21:41:18Z"}),
        );
        log.append(orphan);
        let mut poison = base.clone();
        poison["action_type"] = json!("create");
        poison["entity_type"] = json!("widgets");
        poison["entity_id"] = json!("w-1");
        poison["payload"] = create_payload(json!({"id": "w-1"}));
        log.append(poison);
    }

    // Device B: a fresh td project linked to the same project.
    let b = tempfile::tempdir().unwrap();
    td_b.run(b.path(), &["init"]);
    td_b.run(b.path(), &["sync-project", "link", "p_shared"]);
    let td_db = db_path(b.path());
    let (_keep, ours_path) = copy_db(&td_db);
    let ours = TdDatabase::open(&ours_path).unwrap();

    td_b.run(b.path(), &["sync", "--pull"]);
    let (events, last) = server_events(&server, 0);
    let out = ours.apply_page(&events, last, DEVICE_B).unwrap();
    assert_eq!(out.skipped.len(), 2, "{out:?}");
    assert_eq!(out.applied + 2, events.len());

    let td = Connection::open(&td_db).unwrap();
    let (theirs, mut mine) = (
        Dump::read(&td).unwrap(),
        Dump::read(ours.connection()).unwrap(),
    );
    assert!(theirs.row_count() > 10);
    let lost = forgive_tds_cascade_loss(&theirs, &mut mine, &events);
    // The work-session update and the stale issue's re-create cost td the tag and the dependency.
    assert!(lost.len() >= 2, "{lost:?}");
    if let Some(d) = theirs.first_difference(&mine) {
        panic!("td's pull and apply_page diverge: {d:?}");
    }
    assert_eq!(cursor(&td), cursor(ours.connection()));
    assert_eq!(skipped_rows(&td), skipped_rows(ours.connection()));
    assert_eq!(history(&td, "pull"), history(ours.connection(), "pull"));

    // Round two: B edits an issue locally after that sync; A's full rewrite of the same issue
    // arrives. Both must keep B's version as a conflict.
    let issue: String = td
        .query_row("SELECT id FROM issues WHERE title = 'Imported'", [], |r| {
            r.get(0)
        })
        .unwrap();
    drop(td);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    td_b.run(
        b.path(),
        &["update", &issue, "--title", "Edited on B after the sync"],
    );
    let (_keep2, ours2_path) = copy_db(&td_db);
    drop(ours);
    let ours = TdDatabase::open(&ours2_path).unwrap();
    let before = last;
    {
        let mut log = server.log.lock().unwrap();
        let row = json!({"id": issue, "title": "Rewritten on A", "status": "open", "type": "task",
                         "priority": "P2", "points": 0, "implementer_session": "", "creator_session": "",
                         "reviewer_session": "", "created_at": "2026-08-01T10:00:00Z",
                         "updated_at": "2026-08-21T21:41:18Z", "minor": false, "defer_count": 0});
        log.append(json!({"device_id": DEVICE_A, "session_id": "ses_a", "client_action_id": 9003,
                          "action_type": "create", "entity_type": "issues", "entity_id": issue,
                          "payload": create_payload(row), "client_timestamp": "2026-08-21T21:41:18Z"}));
    }
    td_b.run(b.path(), &["sync", "--pull"]);
    let (events, last) = server_events(&server, before);
    let out = ours.apply_page(&events, last, DEVICE_B).unwrap();
    assert_eq!(out.conflicts, 1, "{out:?}");

    let td = Connection::open(&td_db).unwrap();
    let conflicts = |c: &Connection| -> Vec<(String, String, i64, String, Value)> {
        c.prepare("SELECT entity_type, entity_id, server_seq, remote_data, local_data FROM sync_conflicts")
            .unwrap()
            .query_map([], |r| {
                let local: String = r.get(4)?;
                let local: Value = serde_json::from_str(&local).unwrap();
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, local["title"].clone()))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let theirs = conflicts(&td);
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0].4, "Edited on B after the sync");
    assert_eq!(theirs, conflicts(ours.connection()));
    let (theirs, mut mine) = (
        Dump::read(&td).unwrap(),
        Dump::read(ours.connection()).unwrap(),
    );
    forgive_tds_cascade_loss(&theirs, &mut mine, &server_events(&server, 0).0);
    if let Some(d) = theirs.first_difference(&mine) {
        panic!("round two diverges: {d:?}");
    }
    assert_eq!(cursor(&td), cursor(ours.connection()));
}
