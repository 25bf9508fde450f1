//! Real-log replay as a library: every real td database of the fixtures and the sindri series
//! converge through the server; so do databases the simulated td writes (every entity type, at
//! the current and the oldest schema) and a series whose first push backfills; the input is
//! never written; what cannot be replayed says why; damage where sync never looks is a warning,
//! damage where it does refuses the input. (`cli/tests/harness_replay.rs` drives
//! the `tdsync harness replay` command itself.)

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tdsync_client::testing::change_behind_index;
use tdsync_harness::{
    fixtures,
    generator::Generator,
    plan::{Action, ClientSpec, NetworkFaults, Plan, WriteOp},
    replay::{ReplayOptions, ReplayReport, replay_db, replay_series, series_files},
    td_writer::{HandoffSpec, IssueSpec, TdWriter},
    world::World,
};
use tdsync_protocol::EntityType;

fn opts(clients: usize) -> ReplayOptions<'static> {
    ReplayOptions {
        clients,
        ..ReplayOptions::default()
    }
}

fn assert_passed(r: &ReplayReport) {
    assert!(
        r.run.passed,
        "{}\n{}",
        r.summary_line(),
        r.run.failure_text()
    );
}

/// The file's bytes and modification time: a replay must change neither.
fn fingerprint(path: &Path) -> (Vec<u8>, std::time::SystemTime) {
    let bytes = std::fs::read(path).unwrap();
    let modified = std::fs::metadata(path).unwrap().modified().unwrap();
    (Sha256::digest(&bytes).to_vec(), modified)
}

/// A one-step replay that pushed everything once and onboarded every fresh client.
fn assert_complete(r: &ReplayReport, clients: usize) {
    assert_passed(r);
    let f = &r.replay;
    assert!(f.sent > 0, "{}", r.summary_line());
    assert_eq!(
        (f.accepted, f.duplicates),
        (f.sent, 0),
        "{}",
        r.summary_line()
    );
    assert_eq!(
        f.sent,
        f.pending_rows + f.backfilled - f.unsendable,
        "every pending row was sent, and every backfilled one"
    );
    assert_eq!(r.run.events, f.accepted as i64);
    assert_eq!(f.pulled, vec![f.accepted; clients]);
    assert_eq!(
        f.pulled_back, f.accepted,
        "the source pulls its own events back"
    );
}

#[test]
fn every_real_td_database_converges_and_stays_untouched() {
    let dir = fixtures::default_dir();
    let expected_schemas = [
        ("nightshift-v27.db", 27),
        ("llmfit-v29.db", 29),
        ("cycling-training-app-v32.db", 32),
    ];
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "db"))
        .collect();
    files.sort();
    // Each version of the series is a td database in its own right too.
    files.extend(series_files(&dir.join("sindri-series")).unwrap());
    assert!(files.len() >= 7, "fixtures missing: {files:?}");
    for file in &files {
        let before = fingerprint(file);
        let r = replay_db(file, &opts(2)).unwrap();
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        assert_eq!(r.run.scenario, format!("replay:{name}"));
        assert_complete(&r, 2);
        if let Some((_, schema)) = expected_schemas.iter().find(|(n, _)| *n == name) {
            assert_eq!(r.replay.td_schema, *schema, "{name}");
        }
        assert_eq!(fingerprint(file), before, "{name}: the input was written");
    }
}

#[test]
fn the_sindri_series_replays_incrementally() {
    let dir = fixtures::default_dir().join("sindri-series");
    let steps: Vec<ReplayReport> = replay_series(&dir, &opts(2))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(steps.len(), 4);
    let mut known = 0;
    for (k, s) in steps.iter().enumerate() {
        assert_passed(s);
        let f = &s.replay;
        assert_eq!((f.step, f.steps), (Some(k + 1), Some(4)));
        assert_eq!(
            s.run.seed,
            k as u64 + 1,
            "reports of the steps do not collide"
        );
        assert_eq!(
            f.duplicates as i64,
            known,
            "step {}: everything pushed before comes back once, as duplicates",
            k + 1
        );
        assert_eq!(s.run.events, known + f.accepted as i64);
        assert_eq!(
            f.pulled,
            vec![f.accepted; 2],
            "fresh clients pull only what is new"
        );
        known = s.run.events;
    }
    assert_eq!(known, 31, "the last version holds 31 action_log rows");
}

/// A series whose first version needs td's first-push backfill (rows without events): the
/// synthetic rows the first push writes take rowids the next version uses for new rows. Those
/// new rows must still reach the server, not be taken for the synthetic ones' duplicates.
#[test]
fn a_series_whose_first_push_backfills_loses_nothing() {
    let original = fixtures::default_dir().join("llmfit-v29.db");
    let series = tempfile::tempdir().unwrap();
    let early = series.path().join("1-early.db");
    std::fs::write(&early, std::fs::read(&original).unwrap()).unwrap();
    let conn = rusqlite::Connection::open(&early).unwrap();
    let cut = conn
        .execute("DELETE FROM action_log WHERE rowid > 300", [])
        .unwrap();
    drop(conn);
    std::fs::write(
        series.path().join("2-late.db"),
        std::fs::read(&original).unwrap(),
    )
    .unwrap();

    let steps: Vec<ReplayReport> = replay_series(series.path(), &opts(1))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let (first, second) = (&steps[0], &steps[1]);
    assert_passed(first);
    assert_passed(second);
    assert!(
        first.replay.backfilled > 0,
        "the cut history needs a backfill: {}",
        first.summary_line()
    );
    assert_eq!(second.replay.duplicates, 300, "{}", second.summary_line());
    assert_eq!(second.replay.accepted, cut, "{}", second.summary_line());
    assert_eq!(second.replay.pulled, vec![cut]);
}

/// A td database written by the simulated td CLI: up to `ops` random td commands from one client,
/// then a review approved by a second session (td refuses self-approval); never synced
/// (`world` keeps it alive).
fn simulated_td_database(schema: i64, ops: usize, seed: u64) -> (World, PathBuf) {
    let mut generator = Generator::new(seed);
    // A few issues first, so that commands have something to act on from the start.
    // No undo: undoing a create before a push trips a known engine bug (see
    // `children_of_a_restored_undone_create_reach_every_replica`).
    let actions: Vec<Action> = (0..ops)
        .map(|i| {
            if i < 20 {
                generator.create_issue()
            } else {
                generator.write_op()
            }
        })
        .filter(|op| *op != WriteOp::Undo)
        .map(|op| Action::Write { client: 0, op })
        .collect();
    let plan = Plan {
        scenario: "replay-source".into(),
        seed,
        clients: vec![ClientSpec {
            schema,
            ..ClientSpec::default()
        }],
        network: NetworkFaults::default(),
        faults: Vec::new(),
        actions,
    };
    let mut world = World::new(&plan, &fixtures::default_dir()).unwrap();
    for (step, action) in plan.actions.iter().enumerate() {
        world.execute(step, action).unwrap();
    }
    let db = world.clients[0].sync().db();
    let mut author = TdWriter::new(db, "ses_author", seed);
    let mut reviewer = TdWriter::new(db, "ses_reviewer", seed + 1);
    let spec = IssueSpec {
        title: "Reviewed by another session".into(),
        ..IssueSpec::default()
    };
    let id = author.create_issue(&spec).unwrap();
    author.start(&id).unwrap();
    author.review(&id).unwrap();
    reviewer.approve(&id).unwrap();
    let path = world.clients[0].db_path.clone();
    (world, path)
}

fn entity_types_logged(path: &Path) -> Vec<EntityType> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let names: Vec<String> = conn
        .prepare("SELECT DISTINCT entity_type FROM action_log")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut types: Vec<EntityType> = names.iter().filter_map(|n| EntityType::parse(n)).collect();
    types.sort_by_key(|t| t.as_str());
    types.dedup();
    types
}

#[test]
fn td_databases_the_simulated_td_writes_converge() {
    let (_world, path) = simulated_td_database(38, 900, 42);
    let logged = entity_types_logged(&path);
    for t in EntityType::SYNCED {
        assert!(
            logged.contains(&t),
            "the history lacks {t:?} events: {logged:?}"
        );
    }
    let r = replay_db(&path, &opts(2)).unwrap();
    assert_complete(&r, 2);
    assert_eq!(r.replay.td_schema, 38);

    // The oldest schema a td database can have: the simulated td writes what that td wrote.
    let (_world, path) = simulated_td_database(27, 400, 7);
    let r = replay_db(&path, &opts(1)).unwrap();
    assert_complete(&r, 1);
    assert_eq!(r.replay.td_schema, 27);
}

#[test]
fn rows_td_never_sends_stay_pending_and_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("issues.db");
    std::fs::write(
        &path,
        std::fs::read(fixtures::default_dir().join("cycling-training-app-v32.db")).unwrap(),
    )
    .unwrap();
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(
            "INSERT INTO action_log (id, session_id, action_type, entity_type, entity_id, new_data, timestamp) VALUES
               ('al-u1', 's', 'create', 'spaceship', 'sp-1', '{}', '2026-06-16T10:00:00Z'),
               ('al-u2', 's', 'create', 'issue', '', '{}', '2026-06-16T10:00:00Z');",
        )
        .unwrap();
    let r = replay_db(&path, &opts(1)).unwrap();
    assert_passed(&r);
    assert_eq!(
        r.replay.dropped_rows, 1,
        "no entity id: deleted, as td's replay does"
    );
    assert_eq!(
        r.replay.unsendable, 1,
        "an unknown entity type stays pending"
    );
    assert_eq!(r.replay.sent, 17);
}

#[test]
fn a_history_the_push_cannot_read_fails_the_replay_naming_the_input() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad-times.db");
    std::fs::write(
        &path,
        std::fs::read(fixtures::default_dir().join("cycling-training-app-v32.db")).unwrap(),
    )
    .unwrap();
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute(
            "UPDATE action_log SET timestamp = 'yesterday' WHERE rowid = 3",
            [],
        )
        .unwrap();
    let r = replay_db(&path, &opts(1)).unwrap();
    assert!(!r.run.passed);
    assert_eq!(r.run.failures.len(), 1, "{}", r.run.failure_text());
    let f = &r.run.failures[0];
    assert_eq!(f.kind, "push");
    assert!(
        f.message.contains(&path.display().to_string())
            && f.message.contains("rowid 3")
            && f.message.contains("yesterday"),
        "{}",
        f.message
    );
    assert!(r.run.failure_text().contains("tdsync harness replay --db"));
}

#[test]
fn what_is_not_a_td_database_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "not a database").unwrap();
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, "").unwrap();
    let other = dir.path().join("other.db");
    rusqlite::Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE t (x)")
        .unwrap();
    let schema = |version: &str| {
        let p = dir.path().join(format!("v{version}.db"));
        std::fs::write(
            &p,
            std::fs::read(fixtures::default_dir().join("cycling-training-app-v32.db")).unwrap(),
        )
        .unwrap();
        rusqlite::Connection::open(&p)
            .unwrap()
            .execute(
                "UPDATE schema_info SET value = ?1 WHERE key = 'version'",
                [version],
            )
            .unwrap();
        p
    };
    let cases: Vec<(PathBuf, &str)> = vec![
        (text, "not a td database"),
        (empty, "is empty"),
        (other, "no schema_info table"),
        (dir.path().join("missing.db"), "no such file"),
        (dir.path().to_path_buf(), "is a directory"),
        (
            schema("26"),
            "td schema version 26 is not supported (tdsync supports 27..=38)",
        ),
        (schema("39"), "td schema version 39 is not supported"),
        (text_child(dir.path()), "cannot read it"),
    ];
    for (path, why) in cases {
        let e = replay_db(&path, &opts(1)).unwrap_err();
        assert_eq!(e.path, path);
        assert!(e.message.contains(why), "{}: {e}", path.display());
        assert!(
            !e.message.contains("source-1"),
            "errors name the input, not the copy: {e}"
        );
    }
}

/// A path through a regular file: unreadable for every user (root included).
fn text_child(dir: &Path) -> PathBuf {
    dir.join("notes.txt").join("issues.db")
}

#[test]
fn a_series_stops_at_a_version_it_cannot_replay() {
    let series = tempfile::tempdir().unwrap();
    let dir = fixtures::default_dir().join("sindri-series");
    for f in series_files(&dir).unwrap().iter().take(2) {
        std::fs::write(
            series.path().join(f.file_name().unwrap()),
            std::fs::read(f).unwrap(),
        )
        .unwrap();
    }
    std::fs::write(series.path().join("3-broken.db"), "garbage").unwrap();
    std::fs::write(series.path().join("10-later.db"), "never reached").unwrap();
    let steps: Vec<_> = replay_series(series.path(), &opts(1)).unwrap().collect();
    assert_eq!(steps.len(), 3, "the series stops at the broken version");
    assert_passed(steps[0].as_ref().unwrap());
    assert_passed(steps[1].as_ref().unwrap());
    let e = steps[2].as_ref().unwrap_err();
    assert!(e.path.ends_with("3-broken.db") && e.message.contains("not a td database"));

    let empty = tempfile::tempdir().unwrap();
    let e = replay_series(empty.path(), &opts(1)).err().unwrap();
    assert!(e.message.contains("no td databases"), "{e}");
}

/// A create td undid before it was pushed, then a restore and children of the row: the client
/// sends the row's create in the undone create's place, before the children's events, so every
/// replica keeps the comment and the handoff (they were once skipped as orphans everywhere but
/// on the source).
#[test]
fn children_of_a_restored_undone_create_reach_every_replica() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p/.todos/issues.db");
    let db = tdsync_client::tddb::TdDatabase::create(&path).unwrap();
    let mut w = TdWriter::new(&db, "ses_a", 1);
    let spec = IssueSpec {
        title: "Undone, then restored".into(),
        ..IssueSpec::default()
    };
    let id = w.create_issue(&spec).unwrap();
    w.undo_last().unwrap();
    w.restore_issue(&id).unwrap();
    w.add_comment(&id, "a comment").unwrap();
    let handoff = HandoffSpec {
        done: vec!["restored".into()],
        ..HandoffSpec::default()
    };
    w.add_handoff(&id, &handoff).unwrap();
    drop(w);
    drop(db);
    assert_passed(&replay_db(&path, &opts(1)).unwrap());
}

#[test]
fn progress_says_how_far_the_push_and_the_pulls_have_come() {
    let lines = std::sync::Mutex::new(Vec::<String>::new());
    let collect = |line: &str| lines.lock().unwrap().push(line.to_string());
    let opts = ReplayOptions {
        clients: 1,
        progress: &collect,
        // Every page says something (by default: once a second, after the first second).
        progress_every: std::time::Duration::ZERO,
    };
    let file = fixtures::default_dir().join("nightshift-v27.db");
    assert_passed(&replay_db(&file, &opts).unwrap());
    let lines = lines.into_inner().unwrap();
    for expected in [
        "replay nightshift-v27.db: source: pushed 119 of 119 events so far",
        "replay nightshift-v27.db: fresh 1: pulled 119 of 119 events so far",
        "replay nightshift-v27.db: source: pulled 119 of 119 events so far",
        "replay nightshift-v27.db: checking convergence",
    ] {
        assert!(
            lines.iter().any(|l| l == expected),
            "{expected:?} not in {lines:#?}"
        );
    }
}

/// A td database the simulated td wrote, with agent sessions (td's local-only table), copied to
/// `dir/name` so that no handle is open on it, then `sql` run with `index` hidden from SQLite:
/// damage td itself never notices.
fn damaged_td_database(dir: &Path, name: &str, index: &str, sql: &str) -> PathBuf {
    let (_world, source) = simulated_td_database(38, 60, 11);
    rusqlite::Connection::open(&source)
        .unwrap()
        .execute_batch(
            "INSERT INTO sessions (id, name, branch) VALUES
               ('ses_a', 'a', 'main'), ('ses_b', 'b', 'main'), ('ses_c', 'c', 'feature');",
        )
        .unwrap();
    let path = dir.join(name);
    std::fs::copy(&source, &path).unwrap();
    change_behind_index(&path, index, sql).unwrap();
    path
}

#[test]
fn damage_only_in_a_local_only_index_warns_and_the_replay_converges() {
    let dir = tempfile::tempdir().unwrap();
    let path = damaged_td_database(
        dir.path(),
        "sessions-index.db",
        "idx_sessions_branch",
        "DELETE FROM sessions WHERE id = 'ses_b'",
    );
    let before = fingerprint(&path);
    let r = replay_db(&path, &opts(2)).expect("not refused");
    assert_complete(&r, 2);
    assert_eq!(fingerprint(&path), before, "the input is never written");

    let warnings = &r.replay.integrity_warnings;
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let w = &warnings[0];
    assert_eq!(w.table, "sessions");
    assert_eq!(w.indexes, ["idx_sessions_branch"]);
    assert_eq!(
        w.findings,
        ["wrong # of entries in index idx_sessions_branch"]
    );
    assert_eq!(
        w.fix,
        format!("sqlite3 {} \"REINDEX idx_sessions_branch\"", path.display()),
        "the fix is for the input, not the replay's copy"
    );
    assert!(
        w.message.starts_with(&format!("{}: ", path.display()))
            && w.message.contains("sync proceeds")
            && !w.message.contains("source-1"),
        "{}",
        w.message
    );
    assert!(
        r.summary_line().contains(" damaged=1 "),
        "{}",
        r.summary_line()
    );
}

#[test]
fn damage_in_a_synced_table_or_the_action_log_refuses_the_input_with_rows_and_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let issues = damaged_td_database(
        dir.path(),
        "issues-index.db",
        "idx_issues_status",
        "INSERT INTO issues (rowid, id, title) VALUES (1000, 'td-behind', 'behind the index')",
    );
    let log = damaged_td_database(
        dir.path(),
        "action-log-index.db",
        "idx_action_log_session",
        "DELETE FROM action_log WHERE rowid = 5",
    );
    let cases = [
        (
            &issues,
            vec![
                "table issues (a synced table)".to_string(),
                "rows affected (rowid): 1000".into(),
                format!("sqlite3 {} \"REINDEX idx_issues_status\"", issues.display()),
            ],
        ),
        (
            &log,
            vec![
                "table action_log".to_string(),
                "index entries for rowids the table no longer has: 5".into(),
                format!(
                    "sqlite3 {} \"REINDEX idx_action_log_session\"",
                    log.display()
                ),
            ],
        ),
    ];
    for (path, parts) in cases {
        let e = replay_db(path, &opts(1)).unwrap_err();
        assert_eq!(&e.path, path);
        for part in parts
            .iter()
            .map(String::as_str)
            .chain(["sync does not proceed"])
        {
            assert!(e.message.contains(part), "{part:?} not in {e}");
        }
        assert!(!e.message.contains("source-1"), "names the input: {e}");
    }
}
