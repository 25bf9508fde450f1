//! SQLite's integrity check, read table by table.
//!
//! td runs `PRAGMA quick_check` before every sync and refuses any finding. But real td databases
//! carry damage that matters to nobody who syncs: an index of td's local-only `sessions` table
//! with a wrong entry count has been found in the wild, in a file td itself opens, migrates and
//! writes without complaint. So the findings are attributed to tables (an index to the table it
//! indexes, through `sqlite_master`) and judged by what sync does with each table:
//!
//! - damage only in tables sync never reads or writes is an [`IntegrityWarning`] naming the
//!   table and the fix, and sync proceeds;
//! - damage in a synced table, `action_log`, a sync bookkeeping table or a table tied to a
//!   synced one by a foreign key — and any page-level damage, which names no table — is
//!   [`TdDbError::Corrupt`]: sync never proceeds on damage in a table it reads or writes. Even
//!   index-only damage, which `REINDEX` repairs, stops it: a read through a damaged index can
//!   miss rows or return the wrong ones.
//!
//! The clean case costs one `quick_check`, as in td. Only when it finds something is every table
//! checked in full (`PRAGMA integrity_check(table)`), for the rows SQLite names and so that
//! "confined to a local-only table" is a verified claim, not an assumption.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    fmt,
    path::{Path, PathBuf},
};

use rusqlite::Connection;
use tdsync_protocol::EntityType;

use super::{
    error::{SqlContext, TdDbError},
    schema::SYNC_TABLES,
};

/// Findings the global `quick_check` lists at most; reaching it means some may be unlisted.
const QUICK_CHECK_LIMIT: usize = 10_000;
/// SQLite findings kept per damaged table (the count of all of them is kept too).
const FINDINGS_KEPT: usize = 5;
/// Rowids named per damaged table in messages (all of them stay in [`Damage`], up to
/// [`ROWS_KEPT`]).
const ROWS_SHOWN: usize = 10;
const ROWS_KEPT: usize = 1_000;

/// What sync does with a table, which decides whether damage in it stops sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableUse {
    /// One of td's twelve synced tables: pulls write it, td's backfill reads it.
    Synced,
    /// td's log of changes: pushes read it through its indexes and mark its rows.
    ActionLog,
    /// Sync bookkeeping the client reads or writes: `sync_state`, `sync_conflicts`,
    /// `sync_history`, `sync_skipped_events`, `schema_info` (td's version), `sqlite_sequence`.
    Bookkeeping,
    /// Tied to a synced table (the one named) by a foreign key: applying synced changes
    /// cascades into it or looks rows up in it.
    ForeignKey(String),
    /// A table sync never reads or writes (td's local-only tables such as `sessions`).
    LocalOnly,
    /// Page-level damage: SQLite names no table, so none can be ruled out.
    Unattributed,
}

impl TableUse {
    /// Whether sync must stop on damage in such a table.
    pub fn blocks_sync(&self) -> bool {
        *self != TableUse::LocalOnly
    }

    fn describe(&self) -> String {
        match self {
            TableUse::Synced => "a synced table".into(),
            TableUse::ActionLog => "td's action log, which every push reads".into(),
            TableUse::Bookkeeping => "sync bookkeeping".into(),
            TableUse::ForeignKey(other) => {
                format!("tied to the synced table {other} by a foreign key")
            }
            TableUse::LocalOnly => "local-only: sync never reads or writes it".into(),
            TableUse::Unattributed => "page-level damage, no table named".into(),
        }
    }
}

/// Damage SQLite found in one table (its rows or its indexes), or page-level damage that
/// names no table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// `None` for page-level damage.
    pub table: Option<String>,
    pub usage: TableUse,
    /// The table's damaged indexes, sorted.
    pub indexes: Vec<String>,
    /// Whether every finding is about an index: `REINDEX` rebuilds indexes from the table's
    /// rows, which are intact.
    pub index_only: bool,
    /// Rowids of table rows SQLite names (e.g. "row 7 missing from index …"), ascending.
    pub rows: Vec<i64>,
    /// Rowids an index still holds entries for although the table has no such row (what makes
    /// an index count too many entries), ascending.
    pub stale_entries: Vec<i64>,
    /// SQLite's own findings, the first few.
    pub findings: Vec<String>,
    /// How many findings SQLite listed in all.
    pub finding_count: usize,
}

impl Damage {
    fn new(table: Option<String>, usage: TableUse) -> Damage {
        Damage {
            table,
            usage,
            indexes: Vec::new(),
            index_only: true,
            rows: Vec::new(),
            stale_entries: Vec::new(),
            findings: Vec::new(),
            finding_count: 0,
        }
    }

    /// The one command (or step) that repairs it.
    pub fn fix(&self, db_path: &Path) -> String {
        let file = shell_quote(&db_path.to_string_lossy());
        if self.index_only && self.table.is_some() && !self.indexes.is_empty() {
            let sql: Vec<String> = self
                .indexes
                .iter()
                .map(|i| format!("REINDEX {}", sql_ident(i)))
                .collect();
            let sql = sql.join("; ");
            // Double quotes, as people write it, when the shell leaves the text alone.
            let arg = if sql
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_ ;".contains(c))
            {
                format!("\"{sql}\"")
            } else {
                shell_quote(&sql)
            };
            format!("sqlite3 {file} {arg}")
        } else {
            format!(
                "restore {file} from a backup, or move it aside and sync the project into a \
                 fresh td database (changes never pushed are lost; `sqlite3 {file} .recover` \
                 salvages what SQLite can still read)"
            )
        }
    }

    /// "table T (its use): index I damaged: findings; rows …".
    fn describe(&self) -> String {
        let mut out = match &self.table {
            Some(t) => format!("table {t} ({})", self.usage.describe()),
            None => self.usage.describe(),
        };
        if !self.indexes.is_empty() {
            let what = if self.index_only {
                "damaged"
            } else {
                "damaged, and so are its rows"
            };
            let s = if self.indexes.len() == 1 { "" } else { "es" };
            out.push_str(&format!(": index{s} {} {what}", self.indexes.join(", ")));
        } else if self.table.is_some() {
            out.push_str(": rows damaged");
        }
        let mut findings = self.findings.join("; ");
        if self.finding_count > self.findings.len() {
            findings.push_str(&format!("; … {} finding(s) in all", self.finding_count));
        }
        out.push_str(&format!(" (SQLite: {})", findings.replace('\n', " ")));
        if !self.rows.is_empty() {
            out.push_str(&format!("; rows affected (rowid): {}", list(&self.rows)));
        }
        if !self.stale_entries.is_empty() {
            out.push_str(&format!(
                "; index entries for rowids the table no longer has: {}",
                list(&self.stale_entries)
            ));
        }
        out
    }
}

/// Damage sync proceeds on: confined to a table it never reads or writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntegrityWarning {
    /// The database it is about.
    pub path: PathBuf,
    pub damage: Damage,
}

impl IntegrityWarning {
    /// The damaged table.
    pub fn table(&self) -> &str {
        self.damage.table.as_deref().unwrap_or_default()
    }

    /// The command that repairs it (`sqlite3 <file> "REINDEX <index>"` for a damaged index).
    pub fn fix(&self) -> String {
        self.damage.fix(&self.path)
    }
}

impl fmt::Display for IntegrityWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: SQLite's integrity check found damage sync can work around: {}; sync proceeds; fix: {}",
            self.path.display(),
            self.damage.describe(),
            self.fix()
        )
    }
}

/// The message of [`TdDbError::Corrupt`] (after the path): each damage that stops sync with its
/// recovery, then the damage that alone would not have.
pub(crate) fn describe_fatal(path: &Path, damage: &[Damage]) -> String {
    let (fatal, benign): (Vec<&Damage>, Vec<&Damage>) =
        damage.iter().partition(|d| d.usage.blocks_sync());
    let mut out = String::from(
        "SQLite's integrity check found damage in what sync reads or writes, so sync does not proceed until it is repaired",
    );
    for d in fatal {
        out.push_str(&format!(" — {}; recover: {}", d.describe(), d.fix(path)));
        if d.index_only && d.table.is_some() {
            out.push_str(
                " (rebuilds the index from the table's rows, which are intact; until then a read \
                 through the index may miss rows or return the wrong ones), then sync again",
            );
        }
    }
    for d in benign {
        out.push_str(&format!(
            " — also damaged: {}; fix: {}",
            d.describe(),
            d.fix(path)
        ));
    }
    out
}

/// Checks the database and judges what it finds: `Ok` with the warnings sync proceeds on, or
/// [`TdDbError::Corrupt`] naming every damaged table.
pub(crate) fn check(conn: &Connection, path: &Path) -> Result<Vec<IntegrityWarning>, TdDbError> {
    let quick = findings(conn, &format!("PRAGMA quick_check({QUICK_CHECK_LIMIT})"))
        .ctx(path, "run quick_check")?;
    if quick.iter().all(|r| r == "ok") {
        return Ok(Vec::new());
    }
    let schema = Schema::read(conn).ctx(path, "read schema for the integrity check")?;
    let mut by_table: BTreeMap<Option<String>, Vec<String>> = BTreeMap::new();
    let truncated = quick.len() >= QUICK_CHECK_LIMIT;
    for line in quick {
        let table = schema.table_of(&line);
        by_table.entry(table).or_default().push(line);
    }
    if truncated {
        by_table.entry(None).or_default().push(format!(
            "SQLite stopped listing problems after {QUICK_CHECK_LIMIT}; more may be unlisted"
        ));
    }
    // Every table in full: the rows SQLite names, and the proof that the others are sound.
    for table in &schema.tables {
        let sql = format!("PRAGMA integrity_check({})", quote_literal(table));
        for line in findings(conn, &sql).ctx(path, "run integrity_check")? {
            if line == "ok" {
                continue;
            }
            let found = match schema.table_of(&line) {
                // A finding about a table's own b-tree is page-level: pages can be shared.
                Some(t) if &t == table => Some(t),
                _ => None,
            };
            let lines = by_table.entry(found).or_default();
            if !lines.contains(&line) {
                lines.push(line);
            }
        }
    }
    let page_level = by_table.contains_key(&None);
    let mut damage = Vec::new();
    for (table, lines) in by_table {
        let usage = match &table {
            Some(t) => schema.usage(t),
            None => TableUse::Unattributed,
        };
        let mut d = Damage::new(table.clone(), usage);
        let mut ordinals = BTreeSet::new();
        let mut indexes = BTreeSet::new();
        for line in &lines {
            match parse(line) {
                Finding::Index { index, row } => {
                    indexes.insert(index.to_string());
                    ordinals.extend(row);
                }
                Finding::Column { .. } | Finding::Table(_) | Finding::Page => d.index_only = false,
            }
        }
        // Reading the table, and through its indexes, is safe once no page is damaged.
        if let (Some(t), false) = (&table, page_level) {
            d.rows = rowids_at(conn, t, &ordinals);
            let mut stale = BTreeSet::new();
            for index in &indexes {
                stale.extend(stale_entries(conn, t, index));
            }
            d.stale_entries = stale.into_iter().take(ROWS_KEPT).collect();
        }
        d.indexes = indexes.into_iter().collect();
        d.finding_count = lines.len();
        d.findings = lines.into_iter().take(FINDINGS_KEPT).collect();
        damage.push(d);
    }
    // Page-level damage first, then tables by name.
    if damage.iter().any(|d| d.usage.blocks_sync()) {
        return Err(TdDbError::Corrupt {
            path: path.to_path_buf(),
            damage,
        });
    }
    Ok(damage
        .into_iter()
        .map(|damage| IntegrityWarning {
            path: path.to_path_buf(),
            damage,
        })
        .collect())
}

/// One finding of `PRAGMA integrity_check`, as far as it names a table or an index.
#[derive(Debug, PartialEq, Eq)]
enum Finding<'a> {
    /// About an index, with the table row it names if any: "row N" counts rows in the table's
    /// order from 1 (for a rowid table, rowid order), it is not the rowid.
    Index { index: &'a str, row: Option<i64> },
    /// About a column of a table's rows: "NULL value in T.C" and the type checks.
    Column { table_dot_column: &'a str },
    /// About a table's rows: "CHECK constraint failed in T".
    Table(&'a str),
    /// Anything else: b-tree pages, the freelist (SQLite prefixes these with
    /// "*** in database main ***").
    Page,
}

fn parse(line: &str) -> Finding<'_> {
    fn index(index: &str, row: Option<i64>) -> Finding<'_> {
        Finding::Index { index, row }
    }
    if let Some(i) = line.strip_prefix("wrong # of entries in index ") {
        return index(i, None);
    }
    if let Some(i) = line.strip_prefix("non-unique entry in index ") {
        return index(i, None);
    }
    if let Some(rest) = line.strip_prefix("rowid not at end-of-record for row ")
        && let Some((n, i)) = rest.split_once(" of index ")
        && let Ok(n) = n.parse()
    {
        return index(i, Some(n));
    }
    if let Some(rest) = line.strip_prefix("row ") {
        for sep in [" missing from index ", " values differ from index "] {
            if let Some((n, i)) = rest.split_once(sep)
                && let Ok(n) = n.parse()
            {
                return index(i, Some(n));
            }
        }
    }
    if let Some(t) = line.strip_prefix("CHECK constraint failed in ") {
        return Finding::Table(t);
    }
    for prefix in ["NULL value in ", "NUMERIC value in ", "TEXT value in "] {
        if let Some(tc) = line.strip_prefix(prefix) {
            return Finding::Column {
                table_dot_column: tc,
            };
        }
    }
    // "non-INTEGER value in T.C" (and the other types of STRICT tables).
    if let Some(rest) = line.strip_prefix("non-")
        && let Some((_, tc)) = rest.split_once(" value in ")
    {
        return Finding::Column {
            table_dot_column: tc,
        };
    }
    Finding::Page
}

/// What the integrity check needs to know of the file's schema.
struct Schema {
    tables: Vec<String>,
    /// Index name → its table.
    index_table: HashMap<String, String>,
    /// (child, parent) of every foreign key.
    foreign_keys: Vec<(String, String)>,
}

impl Schema {
    fn read(conn: &Connection) -> rusqlite::Result<Schema> {
        let tables: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let index_table = conn
            .prepare("SELECT name, tbl_name FROM sqlite_master WHERE type = 'index'")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let mut foreign_keys = Vec::new();
        let mut stmt =
            conn.prepare("SELECT DISTINCT \"table\" FROM pragma_foreign_key_list(?1)")?;
        for t in &tables {
            for parent in stmt.query_map([t], |r| r.get::<_, String>(0))? {
                foreign_keys.push((t.clone(), parent?));
            }
        }
        Ok(Schema {
            tables,
            index_table,
            foreign_keys,
        })
    }

    /// The table a finding is about; `None` when it names none (or an index or table this
    /// schema does not have).
    fn table_of(&self, line: &str) -> Option<String> {
        match parse(line) {
            Finding::Index { index, .. } => self.index_table.get(index).cloned(),
            Finding::Table(t) => self.tables.iter().find(|n| *n == t).cloned(),
            // Table names may hold dots: the longest table the text starts with.
            Finding::Column { table_dot_column } => self
                .tables
                .iter()
                .filter(|t| {
                    table_dot_column
                        .strip_prefix(t.as_str())
                        .is_some_and(|rest| rest.starts_with('.'))
                })
                .max_by_key(|t| t.len())
                .cloned(),
            Finding::Page => None,
        }
    }

    /// What sync does with `table`.
    fn usage(&self, table: &str) -> TableUse {
        let synced = |t: &str| EntityType::SYNCED.iter().any(|e| e.table() == t);
        if synced(table) {
            return TableUse::Synced;
        }
        if table == "action_log" {
            return TableUse::ActionLog;
        }
        if SYNC_TABLES.iter().any(|(name, _)| *name == table)
            || table == "schema_info"
            || table == "sqlite_sequence"
        {
            return TableUse::Bookkeeping;
        }
        // Children of synced tables, transitively (cascades run through them), each with the
        // synced table it hangs off.
        let mut reached: HashMap<&str, &str> = HashMap::new();
        loop {
            let before = reached.len();
            for (child, parent) in &self.foreign_keys {
                if reached.contains_key(child.as_str()) || synced(child) {
                    continue;
                }
                let root = if synced(parent) {
                    Some(parent.as_str())
                } else {
                    reached.get(parent.as_str()).copied()
                };
                if let Some(root) = root {
                    reached.insert(child, root);
                }
            }
            if reached.len() == before {
                break;
            }
        }
        if let Some(root) = reached.get(table) {
            return TableUse::ForeignKey(root.to_string());
        }
        // Parents of synced tables: applying a child row looks its parent up.
        if let Some((child, _)) = self
            .foreign_keys
            .iter()
            .find(|(child, parent)| parent == table && synced(child))
        {
            return TableUse::ForeignKey(child.clone());
        }
        TableUse::LocalOnly
    }
}

/// Rowids `index` holds entries for that `table` does not have. Best effort: an index the
/// query cannot be forced through (a partial one) gives none.
fn stale_entries(conn: &Connection, table: &str, index: &str) -> Vec<i64> {
    let sql = format!(
        "SELECT rowid FROM {t} INDEXED BY {i} EXCEPT SELECT rowid FROM {t} NOT INDEXED LIMIT {ROWS_KEPT}",
        t = quote_ident(table),
        i = quote_ident(index),
    );
    let rows = || -> rusqlite::Result<Vec<i64>> {
        conn.prepare(&sql)?.query_map([], |r| r.get(0))?.collect()
    };
    rows().unwrap_or_default()
}

/// The rowids of the table rows at `ordinals` (SQLite's "row N": the Nth row of the table, in
/// rowid order, from 1), read in one scan. Empty for a table without rowids.
fn rowids_at(conn: &Connection, table: &str, ordinals: &BTreeSet<i64>) -> Vec<i64> {
    let Some(&last) = ordinals.last() else {
        return Vec::new();
    };
    let sql = format!(
        "SELECT rowid FROM {} NOT INDEXED ORDER BY rowid LIMIT ?1",
        quote_ident(table)
    );
    let scan = || -> rusqlite::Result<Vec<i64>> {
        conn.prepare(&sql)?
            .query_map([last], |r| r.get::<_, i64>(0))?
            .zip(1..)
            .filter(|(_, n)| ordinals.contains(n))
            .map(|(rowid, _)| rowid)
            .take(ROWS_KEPT)
            .collect()
    };
    scan().unwrap_or_default()
}

/// The lines of an integrity check; a check SQLite abandons because a page is unreadable
/// gives that error as its one (page-level) finding.
fn findings(conn: &Connection, sql: &str) -> rusqlite::Result<Vec<String>> {
    let rows = || -> rusqlite::Result<Vec<String>> {
        conn.prepare(sql)?
            .query_map([], |r| r.get::<_, String>(0))?
            .collect()
    };
    match rows() {
        Err(e)
            if matches!(
                e.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
            ) =>
        {
            Ok(vec![format!("check stopped: {e}")])
        }
        other => other,
    }
}

fn list(rows: &[i64]) -> String {
    let mut out: Vec<String> = rows.iter().take(ROWS_SHOWN).map(i64::to_string).collect();
    if rows.len() > ROWS_SHOWN {
        out.push(format!("… ({} in all)", rows.len()));
    }
    out.join(", ")
}

/// An SQL name, bare when it can be.
fn sql_ident(name: &str) -> String {
    let bare = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if bare {
        name.to_string()
    } else {
        quote_ident(name)
    }
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// `text` as one shell word.
fn shell_quote(text: &str) -> String {
    if !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+,:@%".contains(c))
    {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_name_their_index_table_or_nothing() {
        let cases = [
            (
                "wrong # of entries in index idx_sessions_branch",
                Finding::Index {
                    index: "idx_sessions_branch",
                    row: None,
                },
            ),
            (
                "row 12 missing from index idx_issues_status",
                Finding::Index {
                    index: "idx_issues_status",
                    row: Some(12),
                },
            ),
            (
                "row 3 values differ from index idx_boards_name",
                Finding::Index {
                    index: "idx_boards_name",
                    row: Some(3),
                },
            ),
            (
                "rowid not at end-of-record for row 9 of index idx_x",
                Finding::Index {
                    index: "idx_x",
                    row: Some(9),
                },
            ),
            (
                "non-unique entry in index sqlite_autoindex_issues_1",
                Finding::Index {
                    index: "sqlite_autoindex_issues_1",
                    row: None,
                },
            ),
            (
                "NULL value in sessions.started_at",
                Finding::Column {
                    table_dot_column: "sessions.started_at",
                },
            ),
            (
                "non-INTEGER value in t.n",
                Finding::Column {
                    table_dot_column: "t.n",
                },
            ),
            ("CHECK constraint failed in notes", Finding::Table("notes")),
            (
                "*** in database main ***\nTree 5 page 5 cell 0: invalid page number 99",
                Finding::Page,
            ),
            ("Page 7: never used", Finding::Page),
            ("row x missing from index i", Finding::Page),
        ];
        for (line, expected) in cases {
            assert_eq!(parse(line), expected, "{line}");
        }
    }

    fn schema() -> Schema {
        let conn = Connection::open_in_memory().unwrap();
        tdsync_projection::schema::create_td_database(&conn).unwrap();
        conn.execute_batch(
            "CREATE TABLE \"a.b\" (c); CREATE TABLE a (b);
             CREATE TABLE snapshot_notes (id, snap REFERENCES git_snapshots(id));",
        )
        .unwrap();
        Schema::read(&conn).unwrap()
    }

    #[test]
    fn tables_are_judged_by_what_sync_does_with_them() {
        let s = schema();
        for t in [
            "issues",
            "notes",
            "work_session_issues",
            "board_issue_positions",
        ] {
            assert_eq!(s.usage(t), TableUse::Synced, "{t}");
        }
        assert_eq!(s.usage("action_log"), TableUse::ActionLog);
        for t in [
            "sync_state",
            "sync_conflicts",
            "sync_history",
            "sync_skipped_events",
            "schema_info",
        ] {
            assert_eq!(s.usage(t), TableUse::Bookkeeping, "{t}");
        }
        // td's cascades from issues, and what hangs off them in turn.
        for t in ["git_snapshots", "issue_session_history", "snapshot_notes"] {
            assert_eq!(s.usage(t), TableUse::ForeignKey("issues".into()), "{t}");
        }
        for t in ["sessions", "session_state", "a"] {
            assert_eq!(s.usage(t), TableUse::LocalOnly, "{t}");
            assert!(!s.usage(t).blocks_sync());
        }
        assert!(TableUse::Unattributed.blocks_sync());
    }

    #[test]
    fn a_finding_is_attributed_through_sqlite_master() {
        let s = schema();
        let table = |line: &str| s.table_of(line);
        assert_eq!(
            table("wrong # of entries in index idx_sessions_branch_agent").as_deref(),
            Some("sessions")
        );
        assert_eq!(
            table("row 2 missing from index idx_action_log_session").as_deref(),
            Some("action_log")
        );
        assert_eq!(
            table("non-unique entry in index sqlite_autoindex_sessions_1").as_deref(),
            Some("sessions")
        );
        assert_eq!(table("NULL value in a.b.c").as_deref(), Some("a.b"));
        assert_eq!(table("NULL value in a.b").as_deref(), Some("a"));
        assert_eq!(table("wrong # of entries in index no_such_index"), None);
        assert_eq!(table("Page 7: never used"), None);
    }

    #[test]
    fn the_fix_of_index_damage_is_reindex_and_of_anything_else_a_restore() {
        let mut d = Damage::new(Some("sessions".into()), TableUse::LocalOnly);
        d.indexes = vec!["idx_sessions_branch".into()];
        assert_eq!(
            d.fix(Path::new("/p/.todos/issues.db")),
            r#"sqlite3 /p/.todos/issues.db "REINDEX idx_sessions_branch""#
        );
        d.indexes.push("odd index".into());
        assert_eq!(
            d.fix(Path::new("/my p/issues.db")),
            r#"sqlite3 '/my p/issues.db' 'REINDEX idx_sessions_branch; REINDEX "odd index"'"#
        );
        d.index_only = false;
        assert!(
            d.fix(Path::new("/p/issues.db"))
                .starts_with("restore /p/issues.db from a backup"),
            "{}",
            d.fix(Path::new("/p/issues.db"))
        );
    }
}
