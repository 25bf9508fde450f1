//! The replay's working copy of a td database. The input is only ever read: it is copied with
//! the SQLite side files that hold its latest commits, the copy is opened as a td database the
//! client understands, and its whole history is made pending again — what td's own real-data
//! replay does (`scripts/e2e/test_sync_real_data.sh`).

use std::{
    collections::HashMap,
    fs::File,
    path::{Path, PathBuf},
};

use rusqlite::{Connection, Transaction, TransactionBehavior};
use tdsync_client::tddb::TdDatabase;

/// Why a file cannot be replayed at all (as opposed to a replay that fails its checks).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct InputError {
    pub path: PathBuf,
    pub message: String,
}

impl InputError {
    pub fn new(path: &Path, message: impl Into<String>) -> InputError {
        InputError {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}

/// A WAL holds commits the main file does not have yet, a hot rollback journal what an
/// interrupted transaction must undo: both are part of the database's state.
const SIDE_FILES: [&str; 2] = ["-wal", "-journal"];

/// Copies `input` and its side files to `dest` (created writable, whatever the input's mode).
pub fn copy_input(input: &Path, dest: &Path) -> Result<(), InputError> {
    let meta = std::fs::metadata(input).map_err(|e| {
        InputError::new(
            input,
            match e.kind() {
                std::io::ErrorKind::NotFound => "no such file".to_string(),
                _ => format!("cannot read it: {e}"),
            },
        )
    })?;
    if meta.is_dir() {
        let hint = input.join(".todos/issues.db");
        let hint = if hint.is_file() {
            format!("; did you mean {}?", hint.display())
        } else {
            String::new()
        };
        return Err(InputError::new(
            input,
            format!("is a directory, not a td database file{hint}"),
        ));
    }
    if meta.len() == 0 {
        return Err(InputError::new(input, "is empty, not a td database"));
    }
    let setup = |e: std::io::Error| InputError::new(input, format!("copying it: {e}"));
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir).map_err(setup)?;
    }
    copy_file(input, dest).map_err(|e| InputError::new(input, format!("cannot read it: {e}")))?;
    for suffix in SIDE_FILES {
        let side = with_suffix(input, suffix);
        if side.is_file() {
            copy_file(&side, &with_suffix(dest, suffix)).map_err(setup)?;
        }
    }
    Ok(())
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn copy_file(from: &Path, to: &Path) -> std::io::Result<()> {
    let mut reader = File::open(from)?;
    let mut writer = File::create(to)?;
    std::io::copy(&mut reader, &mut writer)?;
    Ok(())
}

/// Opens the copy as a td database (schema, and integrity: the adapter's one check, which
/// refuses damage where sync reads or writes and warns of the rest), naming the input in
/// errors: the user knows the file they passed, not our copy of it.
pub fn open_copy(copy: &Path, input: &Path) -> Result<TdDatabase, InputError> {
    TdDatabase::open(copy).map_err(|e| {
        // Every adapter message starts with the path it is about; a fix it names (REINDEX)
        // is for the input too.
        let text = e.to_string();
        let prefix = format!("{}: ", copy.display());
        let text = text.strip_prefix(&prefix).unwrap_or(&text);
        InputError::new(
            input,
            text.replace(&copy.display().to_string(), &input.display().to_string()),
        )
    })
}

/// Runs `f` in one transaction on the copy, under td's writer lock like every td write.
fn write<T>(
    db: &TdDatabase,
    f: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<T>,
) -> Result<T, String> {
    let _lock = db.write_lock().acquire().map_err(|e| e.to_string())?;
    let tx = Transaction::new_unchecked(db.connection(), TransactionBehavior::Immediate)
        .map_err(|e| e.to_string())?;
    let out = f(&tx).map_err(|e| e.to_string())?;
    tx.commit().map_err(|e| e.to_string())?;
    Ok(out)
}

/// td's replay reset: forget the link and cursor, clear every row's pushed marks, and delete
/// the rows no server accepts because they name nothing (no id or entity id). Returns how many
/// rows were deleted.
pub fn mark_pending(db: &TdDatabase) -> Result<usize, String> {
    write(db, |tx| {
        tx.execute("DELETE FROM sync_state", [])?;
        tx.execute(
            "UPDATE action_log SET synced_at = NULL, server_seq = NULL \
             WHERE synced_at IS NOT NULL OR server_seq IS NOT NULL",
            [],
        )?;
        tx.execute(
            "DELETE FROM action_log WHERE id IS NULL OR id = '' \
             OR entity_id IS NULL OR entity_id = ''",
            [],
        )
    })
}

/// Sets the pull cursor back to the start (the link and everything else stay).
pub fn rewind_cursor(db: &TdDatabase) -> Result<(), String> {
    write(db, |tx| {
        tx.execute("UPDATE sync_state SET last_pulled_server_seq = 0", [])
            .map(drop)
    })
}

/// The ids of every issue the database holds (soft-deleted ones too): the server must have
/// them all after the push.
pub fn issue_ids(db: &TdDatabase) -> rusqlite::Result<Vec<String>> {
    db.connection()
        .prepare("SELECT id FROM issues ORDER BY id")?
        .query_map([], |r| r.get(0))?
        .collect()
}

pub fn action_log_rows(db: &TdDatabase) -> rusqlite::Result<i64> {
    db.connection()
        .query_row("SELECT count(*) FROM action_log", [], |r| r.get(0))
}

/// Makes `db` — a reset copy of a series' next file — continue `previous`, the working copy of
/// the step before, as the same td installation would have:
/// - rows both hold keep the rowid they were pushed under, so the server sees them again as
///   duplicates (with their seqs);
/// - rows only `previous` holds (the previous sync wrote them, e.g. td's first-push backfill)
///   stay, synced, so no new row is pushed under their keys;
/// - rows new in this file follow them, and the link and cursor carry over;
/// - a pushed row td has since undone keeps its pushed marks (td never sends it again).
///
/// Returns how many rows the previous step had pushed that are sent again.
pub fn continue_from(db: &TdDatabase, previous: &Path) -> Result<usize, String> {
    let conn = db.connection();
    // ATTACH cannot run inside a transaction.
    conn.execute(
        "ATTACH DATABASE ?1 AS prev",
        [previous.to_string_lossy().as_ref()],
    )
    .map_err(|e| format!("opening the previous step's copy: {e}"))?;
    let result = write(db, |tx| {
        let plan = Continuation::plan(tx)?;
        plan.carry_out(tx)?;
        tx.execute(
            "UPDATE main.action_log SET \
               synced_at = (SELECT p.synced_at FROM prev.action_log p WHERE p.id = action_log.id), \
               server_seq = (SELECT p.server_seq FROM prev.action_log p WHERE p.id = action_log.id) \
             WHERE undone != 0 AND id IN (SELECT id FROM prev.action_log WHERE synced_at IS NOT NULL)",
            [],
        )?;
        carry_columns(tx, "sync_state", "1")?;
        Ok(plan.returning)
    });
    let detached = conn.execute("DETACH DATABASE prev", []);
    let returning = result?;
    detached.map_err(|e| e.to_string())?;
    Ok(returning)
}

/// Where each row of the new file goes, and which rows of the previous copy come along.
struct Continuation {
    /// (current rowid, new rowid) of rows that move.
    moves: Vec<(i64, i64)>,
    /// Rowids of the previous copy's rows this file lacks.
    carried: Vec<i64>,
    returning: usize,
}

impl Continuation {
    fn plan(conn: &Connection) -> rusqlite::Result<Continuation> {
        // (rowid, id, flag): synced in the previous copy, undone in this one.
        let rows = |sql: &str| -> rusqlite::Result<Vec<(i64, String, bool)>> {
            conn.prepare(sql)?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect()
        };
        let previous =
            rows("SELECT rowid, id, synced_at IS NOT NULL FROM prev.action_log ORDER BY rowid")?;
        let current =
            rows("SELECT rowid, id, COALESCE(undone, 0) != 0 FROM main.action_log ORDER BY rowid")?;
        let mut next = previous.last().map_or(1, |(rowid, _, _)| rowid + 1);
        let mut known: HashMap<&str, (i64, bool)> = previous
            .iter()
            .map(|(rowid, id, synced)| (id.as_str(), (*rowid, *synced)))
            .collect();
        let mut plan = Continuation {
            moves: Vec::new(),
            carried: Vec::new(),
            returning: 0,
        };
        for (rowid, id, undone) in &current {
            let target = match known.remove(id.as_str()) {
                Some((was, synced)) => {
                    plan.returning += usize::from(synced && !undone);
                    was
                }
                None => {
                    let target = (*rowid).max(next);
                    next = target + 1;
                    target
                }
            };
            if target != *rowid {
                plan.moves.push((*rowid, target));
            }
        }
        plan.carried = known.into_values().map(|(rowid, _)| rowid).collect();
        plan.carried.sort_unstable();
        Ok(plan)
    }

    fn carry_out(&self, tx: &Connection) -> rusqlite::Result<()> {
        // Through negative rowids, so that no move lands on a row that has yet to move.
        let mut set = tx.prepare("UPDATE main.action_log SET rowid = ?2 WHERE rowid = ?1")?;
        for (from, to) in &self.moves {
            set.execute([from, &-to])?;
        }
        for (_, to) in &self.moves {
            set.execute([&-to, to])?;
        }
        for rowid in &self.carried {
            carry_columns(tx, "action_log", &format!("rowid = {rowid}"))?;
        }
        Ok(())
    }
}

/// Copies the rows of `table` matching `filter` from the previous copy, with the columns both
/// schemas have (a series may cross a td migration); for `action_log` the rowid comes along.
fn carry_columns(conn: &Connection, table: &str, filter: &str) -> rusqlite::Result<()> {
    let columns: Vec<String> = conn
        .prepare(
            "SELECT m.name FROM pragma_table_info(?1, 'main') m \
             JOIN pragma_table_info(?1, 'prev') p ON p.name = m.name ORDER BY m.cid",
        )?
        .query_map([table], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut list: Vec<String> = columns.iter().map(|c| format!("\"{c}\"")).collect();
    if table == "action_log" {
        list.insert(0, "rowid".into());
    } else {
        conn.execute(&format!("DELETE FROM main.\"{table}\""), [])?;
    }
    let list = list.join(", ");
    // Names come from the databases' own schemas.
    conn.execute(
        &format!(
            "INSERT INTO main.\"{table}\" ({list}) SELECT {list} FROM prev.\"{table}\" WHERE {filter}"
        ),
        [],
    )?;
    Ok(())
}
