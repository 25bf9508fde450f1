//! Test support (feature `test-support`): td databases damaged the way real ones are found.

use std::path::Path;

use rusqlite::Connection;

/// Runs `sql` on the database at `db_path` while `index` is hidden from SQLite, so the table
/// changes and the index does not: deleted rows leave entries behind (SQLite's "wrong # of
/// entries in index"), inserted rows are missing from it ("row N missing from index"). The
/// index then comes back exactly as it was — same b-tree, same SQL — so SQLite uses it again
/// and reads through it can be wrong, as with the damaged `sessions` index found in the wild.
///
/// Each step uses a new connection (SQLite reads the schema when a connection opens). A handle
/// already open on the file keeps the schema it read, which ends up the same. `index` must be
/// one with SQL (not an automatic index of a UNIQUE or PRIMARY KEY constraint).
pub fn change_behind_index(db_path: &Path, index: &str, sql: &str) -> rusqlite::Result<()> {
    let conn = Connection::open(db_path)?;
    let (table, root, ddl): (String, i64, String) = conn.query_row(
        "SELECT tbl_name, rootpage, sql FROM sqlite_master WHERE type = 'index' AND name = ?1 \
         AND sql IS NOT NULL",
        [index],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    conn.execute_batch("PRAGMA writable_schema = ON")?;
    conn.execute(
        "DELETE FROM sqlite_master WHERE type = 'index' AND name = ?1",
        [index],
    )?;
    drop(conn);

    Connection::open(db_path)?.execute_batch(sql)?;

    let conn = Connection::open(db_path)?;
    conn.execute_batch("PRAGMA writable_schema = ON")?;
    conn.execute(
        "INSERT INTO sqlite_master (type, name, tbl_name, rootpage, sql) \
         VALUES ('index', ?1, ?2, ?3, ?4)",
        rusqlite::params![index, table, root, ddl],
    )?;
    Ok(())
}
