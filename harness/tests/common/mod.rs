//! Shared test support: fresh td databases, the real td CLI (when present), and a normaliser
//! that turns two databases' rows into comparable text (ids, times, hashes, paths replaced by
//! placeholders numbered in order of first appearance; key order and escaping kept).

#![allow(dead_code)]

use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use rusqlite::{Connection, types::ValueRef};
use tdsync_client::tddb::TdDatabase;

/// A fresh schema-38 td database in a temp project (`<tmp>/p/.todos/issues.db`).
pub fn fresh_db() -> (tempfile::TempDir, TdDatabase) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = TdDatabase::create(&dir.path().join("p/.todos/issues.db")).expect("create td db");
    (dir, db)
}

/// A writable copy of a real td database from `shared/fixtures/real-td/` (the share is
/// read-only; `TDSYNC_FIXTURES` names another copy), at `<tmp>/p/.todos/issues.db`.
pub fn fixture_copy(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("p/.todos/issues.db");
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let src = tdsync_harness::fixtures::default_dir().join(name);
    std::fs::write(&path, std::fs::read(&src).expect("read fixture")).expect("copy fixture");
    (dir, path)
}

/// A td project driven through the real CLI, one HOME, sessions chosen per command.
pub struct TdCli {
    bin: PathBuf,
    home: tempfile::TempDir,
    project: tempfile::TempDir,
}

impl TdCli {
    pub fn init(bin: PathBuf) -> TdCli {
        let cli = TdCli {
            bin,
            home: tempfile::tempdir().expect("tempdir"),
            project: tempfile::tempdir().expect("tempdir"),
        };
        let (ok, out) = cli.run("init", &["init"]);
        assert!(ok, "td init failed: {out}");
        cli
    }

    pub fn project(&self) -> &Path {
        self.project.path()
    }

    pub fn db_path(&self) -> PathBuf {
        self.project.path().join(".todos/issues.db")
    }

    /// Runs `td args…` as session `session` (TD_SESSION_ID); (success, stdout + stderr).
    pub fn run(&self, session: &str, args: &[&str]) -> (bool, String) {
        let out = Command::new(&self.bin)
            .args(args)
            .current_dir(self.project.path())
            .env("HOME", self.home.path())
            .env("TD_SESSION_ID", session)
            .env_remove("TD_SYNC_URL")
            .env_remove("TD_AUTH_KEY")
            .stdin(Stdio::null())
            .output()
            .expect("run td");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }
}

/// One action_log row, all columns td writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRow {
    pub rowid: i64,
    pub id: String,
    pub session_id: String,
    pub action_type: String,
    pub entity_type: String,
    pub entity_id: String,
    pub previous_data: String,
    pub new_data: String,
    pub timestamp: String,
    pub undone: i64,
    pub synced_at: Option<String>,
}

pub fn action_log_after(conn: &Connection, after: i64) -> Vec<LogRow> {
    let mut stmt = conn
        .prepare(
            "SELECT rowid, id, session_id, action_type, entity_type, entity_id, \
             COALESCE(previous_data, ''), COALESCE(new_data, ''), timestamp, undone, synced_at \
             FROM action_log WHERE rowid > ?1 ORDER BY rowid",
        )
        .expect("prepare");
    stmt.query_map([after], |r| {
        Ok(LogRow {
            rowid: r.get(0)?,
            id: r.get(1)?,
            session_id: r.get(2)?,
            action_type: r.get(3)?,
            entity_type: r.get(4)?,
            entity_id: r.get(5)?,
            previous_data: r.get(6)?,
            new_data: r.get(7)?,
            timestamp: r.get(8)?,
            undone: r.get(9)?,
            synced_at: r.get(10)?,
        })
    })
    .expect("query")
    .collect::<Result<_, _>>()
    .expect("rows")
}

pub fn max_rowid(conn: &Connection) -> i64 {
    conn.query_row("SELECT COALESCE(MAX(rowid), 0) FROM action_log", [], |r| {
        r.get(0)
    })
    .expect("max rowid")
}

/// Rows of a table in insertion order, each as column → raw text form.
pub fn table_rows(conn: &Connection, table: &str) -> Vec<BTreeMap<String, String>> {
    let mut stmt = conn
        .prepare(&format!("SELECT * FROM {table} ORDER BY rowid"))
        .expect("prepare");
    let names: Vec<String> = stmt.column_names().iter().map(|s| s.to_string()).collect();
    let mut rows = stmt.query([]).expect("query");
    let mut out = Vec::new();
    while let Some(r) = rows.next().expect("row") {
        let mut row = BTreeMap::new();
        for (i, name) in names.iter().enumerate() {
            let v = match r.get_ref(i).expect("cell") {
                ValueRef::Null => "NULL".to_string(),
                ValueRef::Integer(n) => format!("int:{n}"),
                ValueRef::Real(f) => format!("real:{f}"),
                ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                ValueRef::Blob(b) => format!("blob:{}", b.len()),
            };
            row.insert(name.clone(), v);
        }
        out.push(row);
    }
    out
}

/// Replaces what legitimately differs between two runs of the same commands.
#[derive(Default)]
pub struct Normalizer {
    ids: HashMap<String, String>,
    counters: HashMap<&'static str, usize>,
    dirs: Vec<String>,
}

const ID_SHAPES: &[(&str, usize)] = &[
    ("td-", 6),
    ("lg-", 8),
    ("al-", 8),
    ("ho-", 8),
    ("cm-", 8),
    ("bd-", 8),
    ("rv-", 8),
    ("ws-", 4),
    ("nt-", 6),
    ("ses_", 6),
    ("bip_", 16),
    ("dep_", 16),
    ("ifl_", 16),
    ("wsi_", 16),
    ("wt_", 12),
];

fn is_hex(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl Normalizer {
    /// `dir` (the project directory) is replaced by `<dir>` wherever a value equals it.
    pub fn new(dir: &Path) -> Normalizer {
        let mut dirs = vec![dir.to_string_lossy().into_owned()];
        if let Ok(c) = std::fs::canonicalize(dir) {
            dirs.push(c.to_string_lossy().into_owned());
        }
        Normalizer {
            dirs,
            ..Normalizer::default()
        }
    }

    /// The placeholder for one whole string value, if it is an id, hash, time or path.
    fn classify(&mut self, s: &str) -> Option<String> {
        if self.dirs.iter().any(|d| d == s) {
            return Some("<dir>".into());
        }
        for (prefix, len) in ID_SHAPES {
            if let Some(rest) = s.strip_prefix(prefix)
                && rest.len() == *len
                && is_hex(rest)
            {
                if let Some(p) = self.ids.get(s) {
                    return Some(p.clone());
                }
                let n = self.counters.entry(prefix).or_insert(0);
                *n += 1;
                let p = format!("<{prefix}{n}>");
                self.ids.insert(s.to_string(), p.clone());
                return Some(p);
            }
        }
        if s.len() == 64 && is_hex(s) {
            return Some("<sha>".into());
        }
        time_class(s)
    }

    /// Ids inside free text ("Cascaded review from td-1a2b3c").
    fn embedded_ids(&mut self, s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        'scan: while !rest.is_empty() {
            let at_boundary = out
                .chars()
                .last()
                .is_none_or(|c| !c.is_ascii_alphanumeric() && c != '_' && c != '-');
            if at_boundary {
                for (prefix, len) in ID_SHAPES {
                    let end = prefix.len() + len;
                    if rest.starts_with(prefix)
                        && rest.len() >= end
                        && rest.is_char_boundary(end)
                        && is_hex(&rest[prefix.len()..end])
                        && rest[end..]
                            .chars()
                            .next()
                            .is_none_or(|c| !c.is_ascii_alphanumeric())
                    {
                        let id = &rest[..end];
                        let p = self.classify(id).unwrap_or_else(|| id.to_string());
                        out.push_str(&p);
                        rest = &rest[end..];
                        continue 'scan;
                    }
                }
            }
            let mut chars = rest.chars();
            if let Some(c) = chars.next() {
                out.push(c);
            }
            rest = chars.as_str();
        }
        out
    }

    /// A column value or JSON text: string literals are classified one by one, everything
    /// else (key order, escaping, numbers) is kept byte for byte.
    pub fn text(&mut self, s: &str) -> String {
        if let Some(whole) = self.classify(s) {
            return whole;
        }
        if !s.contains('"') {
            return self.embedded_ids(s);
        }
        let mut out = String::with_capacity(s.len());
        let mut chars = s.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c != '"' {
                out.push(c);
                continue;
            }
            let mut end = None;
            let mut escaped = false;
            for (j, d) in chars.by_ref() {
                if escaped {
                    escaped = false;
                } else if d == '\\' {
                    escaped = true;
                } else if d == '"' {
                    end = Some(j);
                    break;
                }
            }
            let Some(j) = end else {
                out.push_str(&s[i..]);
                break;
            };
            let lit = &s[i + 1..j];
            out.push('"');
            match self.classify(lit) {
                Some(p) => out.push_str(&p),
                None => out.push_str(&self.embedded_ids(lit)),
            }
            out.push('"');
        }
        out
    }

    pub fn log_row(&mut self, r: &LogRow) -> String {
        format!(
            "{} {} {} {} | prev={} | new={} | ts={} undone={} synced={:?}",
            self.text(&r.session_id),
            r.action_type,
            r.entity_type,
            self.text(&r.entity_id),
            self.text(&r.previous_data),
            self.text(&r.new_data),
            self.text(&r.timestamp),
            r.undone,
            r.synced_at
        )
    }

    pub fn row(&mut self, row: &BTreeMap<String, String>) -> String {
        row.iter()
            .map(|(k, v)| format!("{k}={}", self.text(v)))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The form of a time text: RFC 3339 (`T`) or SQLite (` `), with or without a fraction, UTC
/// `Z`, numeric offset, or naive.
fn time_class(s: &str) -> Option<String> {
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    tdsync_protocol::timestamp::parse(s)?;
    let form = match b[10] {
        b'T' => "rfc3339",
        b' ' => "sqlite",
        _ => return None,
    };
    let frac = if s.contains('.') { "frac" } else { "secs" };
    let zone = if s.ends_with('Z') {
        "Z"
    } else if s.len() > 19 && (s[19..].contains('+') || s[19..].contains('-')) {
        "offset"
    } else {
        "naive"
    };
    Some(format!("<{form}-{frac}-{zone}>"))
}

#[test]
fn normalizer_keeps_shape_and_numbers_ids() {
    let mut n = Normalizer::new(Path::new("/x"));
    let a = n.text(r#"{"id":"td-abc123","p":"td-abc123","q":"td-000001","t":"2026-11-25T21:38:10.99Z","s":"2026-11-25 21:38:10.99+00:00","d":"/x","k":"a\"b"}"#);
    assert_eq!(
        a,
        r#"{"id":"<td-1>","p":"<td-1>","q":"<td-2>","t":"<rfc3339-frac-Z>","s":"<sqlite-frac-offset>","d":"<dir>","k":"a\"b"}"#
    );
}
