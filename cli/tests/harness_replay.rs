//! `tdsync harness replay` through the real binary: one line per database or series step, the
//! exit status (0 only when every replay converged, 1 when one failed, 2 when a file could not
//! be replayed), JSON lines, and reports the dashboard reads; damage where sync never looks is a
//! warning line and the replay passes, damage where it does is refused saying how to recover.

use std::{path::Path, process::Command};

use tdsync_client::testing::change_behind_index;
use tdsync_harness::{fixtures, report::RunReport};

/// (exit code, stdout, stderr) of `tdsync harness replay ARGS`.
fn replay(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tdsync"))
        .args(["harness", "replay"])
        .args(args)
        .output()
        .expect("run tdsync");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn fixture(name: &str) -> String {
    fixtures::default_dir().join(name).display().to_string()
}

#[test]
fn the_fixtures_and_the_series_pass_with_one_line_each() {
    let names = [
        "nightshift-v27.db",
        "llmfit-v29.db",
        "cycling-training-app-v32.db",
    ];
    let files: Vec<String> = names.iter().map(|n| fixture(n)).collect();
    let mut args = vec!["--db"];
    args.extend(files.iter().map(String::as_str));
    let (code, out, err) = replay(&args);
    assert_eq!(code, Some(0), "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    for (line, name) in lines.iter().zip(names) {
        assert!(line.starts_with(&format!("PASS replay:{name} ")), "{line}");
        assert!(
            line.contains(" pushed=") && line.contains(" pulled="),
            "{line}"
        );
    }

    let reports = tempfile::tempdir().unwrap();
    let series = fixture("sindri-series");
    let dir = reports.path().display().to_string();
    let (code, out, err) = replay(&[
        "--series",
        &series,
        "--clients",
        "2",
        "--json",
        "--report",
        &dir,
    ]);
    assert_eq!(code, Some(0), "{out}{err}");
    let steps: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(steps.len(), 4);
    for (k, step) in steps.iter().enumerate() {
        assert_eq!(step["passed"], true, "{step}");
        assert_eq!(step["replay"]["step"], k + 1);
        assert_eq!(step["replay"]["pulled"].as_array().map(Vec::len), Some(2));
    }
    let written = RunReport::read_dir(reports.path()).unwrap();
    let names: Vec<&str> = written.iter().map(|r| r.scenario.as_str()).collect();
    assert_eq!(
        names,
        [
            "replay:1-e89f9e9.db",
            "replay:2-6db9d65.db",
            "replay:3-60055a1.db",
            "replay:4-9f25b1e.db"
        ]
    );
}

/// A copy of a fixture whose action_log row 3 has a timestamp no td could write.
fn damaged_copy(dir: &Path) -> String {
    let path = dir.join("damaged.db");
    std::fs::write(
        &path,
        std::fs::read(fixture("cycling-training-app-v32.db")).unwrap(),
    )
    .unwrap();
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("UPDATE action_log SET timestamp = 'yesterday' WHERE rowid = 3")
        .unwrap();
    path.display().to_string()
}

#[test]
fn a_failed_replay_exits_1_and_a_file_it_cannot_read_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let damaged = damaged_copy(dir.path());
    let (code, out, err) = replay(&["--db", &damaged]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(out.starts_with("FAIL replay:damaged.db "), "{out}");
    assert!(out.contains("[push]") && out.contains("rowid 3"), "{out}");
    assert!(
        out.contains(&format!("reproduce: tdsync harness replay --db {damaged}")),
        "{out}"
    );

    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "not a database").unwrap();
    let text = text.display().to_string();
    let good = fixture("nightshift-v27.db");
    let (code, out, err) = replay(&["--db", &text, &good]);
    assert_eq!(code, Some(2), "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        format!("ERROR {text}: not a td database: file is not a database")
    );
    assert!(
        lines[1].starts_with("PASS replay:nightshift-v27.db"),
        "the others still run: {out}"
    );

    let (code, out, _) = replay(&["--db", &text, "--json"]);
    assert_eq!(code, Some(2));
    let line: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(line["file"], text.as_str());
    assert!(
        line["error"]
            .as_str()
            .unwrap()
            .contains("not a td database")
    );

    let (code, _, err) = replay(&[]);
    assert_eq!(code, Some(2), "usage error: {err}");
    assert!(err.contains("--db") && err.contains("--series"), "{err}");
}

/// A copy of a real td database (four agent sessions) with `sql` run while `index` is hidden
/// from SQLite: damage td itself never notices.
fn index_damaged_copy(dir: &Path, name: &str, index: &str, sql: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, std::fs::read(fixture("llmfit-v29.db")).unwrap()).unwrap();
    change_behind_index(&path, index, sql).unwrap();
    path.display().to_string()
}

#[test]
fn a_damaged_local_only_index_warns_and_passes_a_damaged_synced_one_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let sessions = index_damaged_copy(
        dir.path(),
        "sessions.db",
        "idx_sessions_branch",
        "DELETE FROM sessions WHERE rowid = (SELECT max(rowid) FROM sessions)",
    );
    let fix = format!("sqlite3 {sessions} \"REINDEX idx_sessions_branch\"");
    let (code, out, err) = replay(&["--db", &sessions]);
    assert_eq!(code, Some(0), "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].starts_with(&format!("WARNING {sessions}: "))
            && lines[0].contains("table sessions")
            && lines[0].ends_with(&format!("sync proceeds; fix: {fix}")),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].starts_with("PASS replay:sessions.db ") && lines[1].contains(" damaged=1 "),
        "{}",
        lines[1]
    );

    let (code, out, err) = replay(&["--db", &sessions, "--json"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let line: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON line");
    assert_eq!(line["passed"], true);
    let warning = &line["replay"]["integrity_warnings"][0];
    assert_eq!(warning["table"], "sessions");
    assert_eq!(warning["fix"], fix.as_str());

    let issues = index_damaged_copy(
        dir.path(),
        "issues.db",
        "idx_issues_status",
        // Schema 29 still declares parent_id a foreign key, which td ran unenforced.
        "PRAGMA foreign_keys = OFF;
         INSERT INTO issues (rowid, id, title) VALUES (5000, 'td-behind', 'behind the index')",
    );
    let (code, out, err) = replay(&["--db", &issues]);
    assert_eq!(code, Some(2), "{out}{err}");
    let line = out.trim();
    assert!(line.starts_with(&format!("ERROR {issues}: ")), "{line}");
    for part in [
        "sync does not proceed",
        "table issues (a synced table)",
        "rows affected (rowid): 5000",
        &format!("recover: sqlite3 {issues} \"REINDEX idx_issues_status\""),
    ] {
        assert!(line.contains(part), "{part:?} not in {line}");
    }
}
