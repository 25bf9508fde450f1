//! The writer against the real td v0.62 CLI: the same command sequence is run through the real
//! td (found by `tdsync_harness::testing::td_binary`: `TD_BIN`, or the copy `infra/test.sh`
//! builds) and through `TdWriter` on a fresh database, and after every command the new
//! action_log rows must be the same once ids, times and hashes are replaced by placeholders (so
//! action and entity names, JSON key order, omitted fields, escaping and time formats must all
//! match). At the end every table td writes must hold the same rows. Without a td binary it
//! skips loudly, or fails under `TDSYNC_REQUIRE_SERVICES=1`.

mod common;

use common::{Normalizer, TdCli, action_log_after, fresh_db, max_rowid, table_rows};
use rusqlite::{Connection, OpenFlags};
use tdsync_harness::td_writer::{
    HandoffSpec, IssueChange, IssueSpec, LogType, TdWriter, WriterError,
};

const SESSIONS: [&str; 3] = ["sessA", "sessB", "sessC"];
const WRITER_SESSIONS: [&str; 3] = ["ses_a00001", "ses_b00002", "ses_c00003"];
const A: usize = 0;
const B: usize = 1;
const C: usize = 2;

/// One td command; issues, boards and notes are referred to by creation order.
#[derive(Debug, Clone)]
enum Op {
    Create {
        s: usize,
        title: &'static str,
        kind: &'static str,
        priority: &'static str,
        points: i64,
        labels: &'static str,
        parent: Option<usize>,
        desc: &'static str,
        acceptance: &'static str,
        minor: bool,
    },
    Update {
        s: usize,
        i: usize,
        title: Option<&'static str>,
        priority: Option<&'static str>,
        sprint: Option<&'static str>,
        labels: Option<&'static str>,
    },
    Start(usize, usize),
    Review(usize, usize),
    Approve(usize, usize),
    Reject(usize, usize),
    Block(usize, usize),
    Unblock(usize, usize),
    Close(usize, usize),
    Reopen(usize, usize),
    Delete(usize, usize),
    Restore(usize, usize),
    Log(usize, usize, &'static str, Option<&'static str>),
    Comment(usize, usize, &'static str),
    Handoff(usize, usize, &'static str, &'static str),
    BoardCreate(usize, &'static str, &'static str),
    BoardEdit(usize, usize, &'static str),
    BoardMove(usize, usize, usize),
    BoardUnposition(usize, usize, usize),
    BoardDelete(usize, usize),
    DepAdd(usize, usize, usize),
    DepRm(usize, usize, usize),
    Link(usize, usize, &'static str, &'static str),
    Unlink(usize, usize, &'static str),
    WsStart(usize, &'static str),
    WsTag(usize, usize),
    WsUntag(usize, usize),
    WsEnd(usize),
    NoteAdd(usize, &'static str, &'static str),
    NoteEdit(usize, usize, &'static str),
    NotePin(usize, usize),
    NoteArchive(usize, usize),
    NoteDelete(usize, usize),
    NoteRestore(usize, usize),
    Undo(usize),
}

fn create(s: usize, title: &'static str) -> Op {
    Op::Create {
        s,
        title,
        kind: "task",
        priority: "P2",
        points: 0,
        labels: "",
        parent: None,
        desc: "",
        acceptance: "",
        minor: false,
    }
}

/// A session of td commands covering every writer operation, td's refusals, its cascades
/// (review down an epic, epic close up, auto-unblock), review rows and undo.
fn scenario() -> Vec<Op> {
    use Op::*;
    vec![
        Create {
            s: A,
            title: "Epic for the comparison run",
            kind: "epic",
            priority: "P1",
            points: 0,
            labels: "x,y",
            parent: None,
            desc: "desc <b>&\"quoted\"\nsecond line",
            acceptance: "",
            minor: false,
        },
        Create {
            s: A,
            title: "First child task of the epic",
            kind: "task",
            priority: "P2",
            points: 3,
            labels: "",
            parent: Some(0),
            desc: "",
            acceptance: "it works",
            minor: false,
        },
        Create {
            s: A,
            title: "Second child task of the epic",
            kind: "feature",
            priority: "P3",
            points: 0,
            labels: "",
            parent: Some(0),
            desc: "",
            acceptance: "",
            minor: false,
        },
        Create {
            s: A,
            title: "Independent bug to fix now",
            kind: "bug",
            priority: "P0",
            points: 8,
            labels: "backend",
            parent: None,
            desc: "",
            acceptance: "",
            minor: false,
        },
        Start(A, 1),
        Log(A, 1, "Investigated the failure", None),
        Log(A, 1, "Chose approach A over B", Some("decision")),
        Comment(A, 1, "Looks tricky <really>"),
        Handoff(A, 1, "did the first half", "second half"),
        Review(A, 0),
        Approve(A, 1),
        Approve(B, 1),
        Approve(B, 2),
        Approve(B, 0),
        Reopen(A, 1),
        Update {
            s: A,
            i: 1,
            title: Some("First child task, renamed"),
            priority: Some("P1"),
            sprint: Some("sprint-7"),
            labels: Some("a,b"),
        },
        Update {
            s: A,
            i: 1,
            title: None,
            priority: None,
            sprint: None,
            labels: Some(""),
        },
        Block(A, 3),
        Block(A, 3),
        Unblock(A, 3),
        Start(A, 3),
        Start(C, 3),
        Review(A, 3),
        Reject(B, 3),
        Close(A, 3),
        Close(C, 3),
        Reopen(C, 3),
        DepAdd(A, 1, 3),
        DepAdd(A, 3, 1),
        DepAdd(A, 1, 1),
        DepAdd(A, 1, 3),
        DepRm(A, 1, 3),
        DepRm(A, 1, 3),
        create(A, "Blocked until its dependency closes"),
        create(A, "The dependency that gets closed"),
        DepAdd(A, 4, 5),
        Block(A, 4),
        Close(C, 5),
        create(A, "Issue that will be deleted"),
        Delete(A, 6),
        Restore(A, 6),
        Delete(A, 6),
        BoardCreate(A, "Sprint board", "status = open"),
        BoardMove(A, 0, 1),
        BoardMove(A, 0, 3),
        BoardEdit(A, 0, "Renamed sprint board"),
        BoardUnposition(A, 0, 1),
        BoardMove(A, 0, 4),
        BoardDelete(A, 0),
        Link(A, 1, "f.txt", "test"),
        Link(A, 1, "src/g.rs", "implementation"),
        Unlink(A, 1, "f.txt"),
        WsStart(B, "pairing session"),
        WsTag(B, 4),
        WsTag(B, 1),
        Log(B, 4, "progress inside the work session", None),
        WsUntag(B, 1),
        WsEnd(B),
        NoteAdd(A, "A note title", "body <text>"),
        NoteEdit(A, 0, "New note title"),
        NotePin(A, 0),
        NoteArchive(A, 0),
        NoteDelete(A, 0),
        NoteRestore(A, 0),
        Undo(A),
        create(C, "Task for the undo round trip"),
        Update {
            s: C,
            i: 7,
            title: None,
            priority: Some("P4"),
            sprint: None,
            labels: None,
        },
        Undo(C),
        Undo(C),
        Start(C, 7),
        Undo(C),
        create(A, "Task approved then undone"),
        Review(A, 8),
        Approve(B, 8),
        Undo(B),
        Undo(A),
        create(C, "Created and undone at once"),
        Undo(C),
        Undo(C),
        Handoff(C, 7, "handoff to undo", ""),
        Undo(C),
        // Edits that void a standing approval: a content change, then a dependency change.
        create(A, "Approved issue edited later"),
        Review(A, 10),
        Approve(B, 10),
        Update {
            s: A,
            i: 10,
            title: Some("Approved issue, edited afterwards"),
            priority: None,
            sprint: None,
            labels: None,
        },
        DepAdd(A, 2, 3),
        // An epic follows its only child into review.
        Create {
            s: A,
            title: "Second epic for the review cascade",
            kind: "epic",
            priority: "P2",
            points: 0,
            labels: "",
            parent: None,
            desc: "",
            acceptance: "",
            minor: false,
        },
        Create {
            s: A,
            title: "Only child of the second epic",
            kind: "chore",
            priority: "P2",
            points: 0,
            labels: "",
            parent: Some(11),
            desc: "",
            acceptance: "",
            minor: false,
        },
        Review(C, 12),
        // Undo of relations, links and boards, including the ones td cannot undo.
        DepAdd(A, 12, 3),
        Undo(A),
        DepAdd(A, 12, 3),
        DepRm(A, 12, 3),
        Undo(A),
        Link(A, 12, "h.txt", "reference"),
        Link(A, 12, "h.txt", "test"),
        Undo(A),
        BoardCreate(A, "Board created then undone", ""),
        Undo(A),
        BoardCreate(A, "Board that is kept", "type = bug"),
        BoardMove(A, 2, 12),
        Undo(A),
        BoardMove(A, 2, 10),
        BoardUnposition(A, 2, 10),
        Undo(A),
        BoardEdit(A, 2, "Kept board renamed"),
        Undo(A),
        BoardDelete(A, 2),
        Undo(A),
        Undo(A),
        // Work-session tags: re-tag, untag of a tag that never existed, undo refused.
        WsStart(C, "second work session"),
        WsTag(C, 12),
        WsTag(C, 12),
        WsUntag(C, 3),
        Undo(C),
        WsEnd(C),
    ]
}

/// Ids each side minted, by creation order.
#[derive(Default)]
struct Refs {
    issues: Vec<String>,
    boards: Vec<String>,
    notes: Vec<String>,
}

fn td_conn(path: &std::path::Path) -> Connection {
    Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).expect("open td db")
}

fn newest(conn: &Connection, table: &str) -> String {
    conn.query_row(
        &format!("SELECT id FROM {table} ORDER BY rowid DESC LIMIT 1"),
        [],
        |r| r.get(0),
    )
    .expect("newest id")
}

/// td's `board move` slot → sparse key (the writer takes the key).
fn slot_key(positions: &[(String, i64)], slot: usize) -> i64 {
    const GAP: i64 = 65536;
    match positions {
        [] => GAP,
        _ if slot <= 1 => positions[0].1 - GAP,
        _ if slot > positions.len() => positions[positions.len() - 1].1 + GAP,
        _ => (positions[slot - 2].1 + positions[slot - 1].1) / 2,
    }
}

fn run_td(cli: &TdCli, refs: &mut Refs, op: &Op) -> (bool, String) {
    let s = |i: usize| SESSIONS[i];
    let issue = |i: usize| refs.issues[i].clone();
    match op {
        Op::Create {
            s: sess,
            title,
            kind,
            priority,
            points,
            labels,
            parent,
            desc,
            acceptance,
            minor,
        } => {
            let mut args: Vec<String> = vec![
                "create".into(),
                title.to_string(),
                "--type".into(),
                kind.to_string(),
                "--priority".into(),
                priority.to_string(),
            ];
            if *points > 0 {
                args.extend(["--points".into(), points.to_string()]);
            }
            if !labels.is_empty() {
                args.extend(["-l".into(), labels.to_string()]);
            }
            if !desc.is_empty() {
                args.extend(["--description".into(), desc.to_string()]);
            }
            if !acceptance.is_empty() {
                args.extend(["--acceptance".into(), acceptance.to_string()]);
            }
            if let Some(p) = parent {
                args.extend(["--parent".into(), issue(*p)]);
            }
            if *minor {
                args.push("--minor".into());
            }
            let argv: Vec<&str> = args.iter().map(String::as_str).collect();
            let (ok, out) = cli.run(s(*sess), &argv);
            let id = out
                .lines()
                .find_map(|l| l.strip_prefix("CREATED "))
                .map(|rest| rest.split_whitespace().next().unwrap_or("").to_string());
            refs.issues
                .push(id.unwrap_or_else(|| panic!("td create printed no id: {out}")));
            (ok, out)
        }
        Op::Update {
            s: sess,
            i,
            title,
            priority,
            sprint,
            labels,
        } => {
            let mut args: Vec<String> = vec!["update".into(), issue(*i)];
            if let Some(t) = title {
                args.extend(["--title".into(), t.to_string()]);
            }
            if let Some(p) = priority {
                args.extend(["--priority".into(), p.to_string()]);
            }
            if let Some(sp) = sprint {
                args.extend(["--sprint".into(), sp.to_string()]);
            }
            if let Some(l) = labels {
                args.extend(["--labels".into(), l.to_string()]);
            }
            let argv: Vec<&str> = args.iter().map(String::as_str).collect();
            cli.run(s(*sess), &argv)
        }
        Op::Start(a, i) => cli.run(s(*a), &["start", &issue(*i)]),
        Op::Review(a, i) => cli.run(s(*a), &["review", &issue(*i)]),
        Op::Approve(a, i) => cli.run(s(*a), &["approve", &issue(*i)]),
        Op::Reject(a, i) => cli.run(s(*a), &["reject", &issue(*i)]),
        Op::Block(a, i) => cli.run(s(*a), &["block", &issue(*i)]),
        Op::Unblock(a, i) => cli.run(s(*a), &["unblock", &issue(*i)]),
        Op::Close(a, i) => cli.run(s(*a), &["close", &issue(*i)]),
        Op::Reopen(a, i) => cli.run(s(*a), &["reopen", &issue(*i)]),
        Op::Delete(a, i) => cli.run(s(*a), &["delete", &issue(*i)]),
        Op::Restore(a, i) => cli.run(s(*a), &["restore", &issue(*i)]),
        Op::Log(a, i, msg, ty) => {
            let id = issue(*i);
            let mut args = vec!["log", id.as_str(), msg];
            if let Some(t) = ty {
                args.extend(["--type", t]);
            }
            cli.run(s(*a), &args)
        }
        Op::Comment(a, i, text) => cli.run(s(*a), &["comment", &issue(*i), text]),
        Op::Handoff(a, i, done, remaining) => {
            let id = issue(*i);
            let mut args = vec!["handoff", id.as_str(), "--done", done];
            if !remaining.is_empty() {
                args.extend(["--remaining", remaining]);
            }
            cli.run(s(*a), &args)
        }
        Op::BoardCreate(a, name, query) => {
            let out = cli.run(s(*a), &["board", "create", name, "--query", query]);
            refs.boards.push(newest(&td_conn(&cli.db_path()), "boards"));
            out
        }
        Op::BoardEdit(a, b, name) => {
            cli.run(s(*a), &["board", "edit", &refs.boards[*b], "--name", name])
        }
        Op::BoardMove(a, b, i) => {
            let slot = "99";
            cli.run(
                s(*a),
                &["board", "move", &refs.boards[*b], &issue(*i), slot],
            )
        }
        Op::BoardUnposition(a, b, i) => cli.run(
            s(*a),
            &["board", "unposition", &refs.boards[*b], &issue(*i)],
        ),
        Op::BoardDelete(a, b) => cli.run(s(*a), &["board", "delete", &refs.boards[*b]]),
        Op::DepAdd(a, i, j) => cli.run(s(*a), &["dep", "add", &issue(*i), &issue(*j)]),
        Op::DepRm(a, i, j) => cli.run(s(*a), &["dep", "rm", &issue(*i), &issue(*j)]),
        Op::Link(a, i, path, role) => {
            let file = cli.project().join(path);
            std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
            std::fs::write(&file, format!("content of {path}\n")).expect("write file");
            cli.run(s(*a), &["link", &issue(*i), path, "--role", role])
        }
        Op::Unlink(a, i, path) => cli.run(s(*a), &["unlink", &issue(*i), path]),
        Op::WsStart(a, name) => cli.run(s(*a), &["ws", "start", name]),
        Op::WsTag(a, i) => cli.run(s(*a), &["ws", "tag", &issue(*i)]),
        Op::WsUntag(a, i) => cli.run(s(*a), &["ws", "untag", &issue(*i)]),
        Op::WsEnd(a) => cli.run(s(*a), &["ws", "end"]),
        Op::NoteAdd(a, title, content) => {
            let out = cli.run(s(*a), &["note", "add", title, "--content", content]);
            refs.notes.push(newest(&td_conn(&cli.db_path()), "notes"));
            out
        }
        Op::NoteEdit(a, n, title) => {
            cli.run(s(*a), &["note", "edit", &refs.notes[*n], "--title", title])
        }
        Op::NotePin(a, n) => cli.run(s(*a), &["note", "pin", &refs.notes[*n]]),
        Op::NoteArchive(a, n) => cli.run(s(*a), &["note", "archive", &refs.notes[*n]]),
        Op::NoteDelete(a, n) => cli.run(s(*a), &["note", "delete", &refs.notes[*n]]),
        Op::NoteRestore(a, n) => cli.run(s(*a), &["note", "restore", &refs.notes[*n]]),
        Op::Undo(a) => cli.run(s(*a), &["undo"]),
    }
}

fn run_writer(w: &mut [TdWriter<'_>], refs: &mut Refs, op: &Op) -> Result<(), WriterError> {
    let issue = |i: usize| refs.issues[i].clone();
    match op {
        Op::Create {
            s,
            title,
            kind,
            priority,
            points,
            labels,
            parent,
            desc,
            acceptance,
            minor,
        } => {
            let spec = IssueSpec {
                title: title.to_string(),
                description: desc.to_string(),
                kind: kind.to_string(),
                priority: priority.to_string(),
                points: *points,
                labels: vec![labels.to_string()],
                parent_id: parent.map(issue).unwrap_or_default(),
                acceptance: acceptance.to_string(),
                minor: *minor,
                ..IssueSpec::default()
            };
            let id = w[*s].create_issue(&spec)?;
            refs.issues.push(id);
            Ok(())
        }
        Op::Update {
            s,
            i,
            title,
            priority,
            sprint,
            labels,
        } => {
            let change = IssueChange {
                title: title.map(str::to_string),
                priority: priority.map(str::to_string),
                sprint: sprint.map(str::to_string),
                labels: labels.map(|l| vec![l.to_string()]),
                ..IssueChange::default()
            };
            w[*s].update_issue(&issue(*i), &change)
        }
        Op::Start(a, i) => w[*a].start(&issue(*i)),
        Op::Review(a, i) => w[*a].review(&issue(*i)),
        Op::Approve(a, i) => w[*a].approve(&issue(*i)),
        Op::Reject(a, i) => w[*a].reject(&issue(*i)),
        Op::Block(a, i) => w[*a].block(&issue(*i)),
        Op::Unblock(a, i) => w[*a].unblock(&issue(*i)),
        Op::Close(a, i) => w[*a].close(&issue(*i)),
        Op::Reopen(a, i) => w[*a].reopen(&issue(*i)),
        Op::Delete(a, i) => w[*a].delete_issue(&issue(*i)),
        Op::Restore(a, i) => w[*a].restore_issue(&issue(*i)),
        Op::Log(a, i, msg, ty) => {
            let t = match ty {
                Some("decision") => LogType::Decision,
                _ => LogType::Progress,
            };
            w[*a].add_log_with_type(&issue(*i), msg, t).map(drop)
        }
        Op::Comment(a, i, text) => w[*a].add_comment(&issue(*i), text).map(drop),
        Op::Handoff(a, i, done, remaining) => {
            let spec = HandoffSpec {
                done: vec![done.to_string()],
                remaining: if remaining.is_empty() {
                    vec![]
                } else {
                    vec![remaining.to_string()]
                },
                ..HandoffSpec::default()
            };
            w[*a].add_handoff(&issue(*i), &spec).map(drop)
        }
        Op::BoardCreate(a, name, query) => {
            let id = w[*a].create_board(name, query)?;
            refs.boards.push(id);
            Ok(())
        }
        Op::BoardEdit(a, b, name) => w[*a].update_board(&refs.boards[*b], Some(name), None),
        Op::BoardMove(a, b, i) => {
            let board = refs.boards[*b].clone();
            let key = slot_key(&w[*a].positions(&board)?, 99);
            w[*a].set_position(&board, &issue(*i), key)
        }
        Op::BoardUnposition(a, b, i) => w[*a].unposition(&refs.boards[*b], &issue(*i)),
        Op::BoardDelete(a, b) => w[*a].delete_board(&refs.boards[*b]),
        Op::DepAdd(a, i, j) => w[*a].add_dependency(&issue(*i), &issue(*j)),
        Op::DepRm(a, i, j) => w[*a].remove_dependency(&issue(*i), &issue(*j)),
        Op::Link(a, i, path, role) => w[*a].link_file(&issue(*i), path, role),
        Op::Unlink(a, i, path) => w[*a].unlink_file(&issue(*i), path),
        Op::WsStart(a, name) => w[*a].start_work_session(name).map(drop),
        Op::WsTag(a, i) => {
            let ws = w[*a].active_work_session().unwrap_or_default().to_string();
            w[*a].tag(&ws, &issue(*i))
        }
        Op::WsUntag(a, i) => {
            let ws = w[*a].active_work_session().unwrap_or_default().to_string();
            w[*a].untag(&ws, &issue(*i))
        }
        Op::WsEnd(a) => {
            let ws = w[*a].active_work_session().unwrap_or_default().to_string();
            w[*a].end_work_session(&ws)
        }
        Op::NoteAdd(a, title, content) => {
            let id = w[*a].create_note(title, content)?;
            refs.notes.push(id);
            Ok(())
        }
        Op::NoteEdit(a, n, title) => {
            w[*a].update_note(&refs.notes[*n], Some(title), None, None, None)
        }
        Op::NotePin(a, n) => w[*a].update_note(&refs.notes[*n], None, None, Some(true), None),
        Op::NoteArchive(a, n) => w[*a].update_note(&refs.notes[*n], None, None, None, Some(true)),
        Op::NoteDelete(a, n) => w[*a].delete_note(&refs.notes[*n]),
        Op::NoteRestore(a, n) => w[*a].restore_note(&refs.notes[*n]),
        Op::Undo(a) => w[*a].undo_last().map(drop),
    }
}

/// td emits some batches (a deleted board's positions) in index order, i.e. by random id, so
/// the two sides may order a run of same-kind rows differently; rows of different kinds must
/// still come in the same order.
fn same_kind_runs_sorted(rows: Vec<String>) -> Vec<String> {
    let kind = |r: &str| {
        r.split(" | ").next().map(|h| {
            h.split_whitespace()
                .skip(1)
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
        })
    };
    let mut out: Vec<String> = Vec::with_capacity(rows.len());
    let mut run: Vec<String> = Vec::new();
    for row in rows {
        if run.last().is_some_and(|last| kind(last) != kind(&row)) {
            run.sort();
            out.append(&mut run);
        }
        run.push(row);
    }
    run.sort();
    out.append(&mut run);
    out
}

#[test]
fn writer_matches_real_td_row_for_row() {
    let Some(bin) = tdsync_harness::testing::td_binary("writer_matches_real_td_row_for_row") else {
        return;
    };
    let cli = TdCli::init(bin);
    let (dir, db) = fresh_db();
    let mut writers: Vec<TdWriter<'_>> = WRITER_SESSIONS
        .iter()
        .enumerate()
        .map(|(i, s)| TdWriter::new(&db, s, 42 + i as u64))
        .collect();
    let mut td_norm = Normalizer::new(cli.project());
    let mut w_norm = Normalizer::new(&dir.path().join("p"));
    let (mut td_refs, mut w_refs) = (Refs::default(), Refs::default());
    let (mut td_seen, mut w_seen) = (
        max_rowid(&td_conn(&cli.db_path())),
        max_rowid(db.connection()),
    );
    let mut problems = Vec::new();

    for (n, op) in scenario().iter().enumerate() {
        let (td_ok, td_out) = run_td(&cli, &mut td_refs, op);
        let outcome = run_writer(&mut writers, &mut w_refs, op);
        if let Err(e) = &outcome {
            assert!(e.is_expected(), "step {n} {op:?}: writer failed: {e}");
        }
        let td_rows = action_log_after(&td_conn(&cli.db_path()), td_seen);
        let w_rows = action_log_after(db.connection(), w_seen);
        td_seen = td_rows.last().map_or(td_seen, |r| r.rowid);
        w_seen = w_rows.last().map_or(w_seen, |r| r.rowid);
        let td_text = same_kind_runs_sorted(td_rows.iter().map(|r| td_norm.log_row(r)).collect());
        let w_text = same_kind_runs_sorted(w_rows.iter().map(|r| w_norm.log_row(r)).collect());
        if td_text != w_text {
            problems.push(format!(
                "step {n} {op:?}\n  td (ok={td_ok}): {}\n  td rows:\n    {}\n  writer ({outcome:?}) rows:\n    {}",
                td_out.trim().replace('\n', " / "),
                td_text.join("\n    "),
                w_text.join("\n    ")
            ));
        }
        // Undone marks land on earlier rows: compare the whole undone column as we go.
        let undone = |c: &Connection| -> Vec<i64> {
            let mut st = c
                .prepare("SELECT undone FROM action_log ORDER BY rowid")
                .expect("prep");
            st.query_map([], |r| r.get(0))
                .expect("q")
                .map(|x| x.expect("v"))
                .collect()
        };
        if undone(&td_conn(&cli.db_path())) != undone(db.connection()) {
            problems.push(format!("step {n} {op:?}: undone marks differ"));
        }
    }
    assert!(
        problems.is_empty(),
        "{} step(s) differ from td:\n{}",
        problems.len(),
        problems.join("\n\n")
    );

    let td_db = td_conn(&cli.db_path());
    for table in tdsync_harness::td_writer::written_tables() {
        let td_rows: Vec<String> = table_rows(&td_db, table)
            .iter()
            .map(|r| td_norm.row(r))
            .collect();
        let w_rows: Vec<String> = table_rows(db.connection(), table)
            .iter()
            .map(|r| w_norm.row(r))
            .collect();
        assert_eq!(
            td_rows.join("\n"),
            w_rows.join("\n"),
            "table {table} differs from td's"
        );
    }
}
