//! td's schema (version 38) as DDL, and helpers to create it.

use rusqlite::Connection;

/// The td schema version these tables correspond to.
pub const TD_SCHEMA_VERSION: i64 = 38;

/// DDL of the twelve synced tables.
pub const SYNCED_TABLES_SQL: &str = include_str!("schema/synced_tables.sql");

/// Rows every td database creates for itself at init (the builtin board), never synced.
pub const BUILTIN_ROWS_SQL: &str = include_str!("schema/builtin_rows.sql");

/// DDL of td's local-only tables (action_log, sync_state, sessions, …) and `schema_info`.
pub const LOCAL_TABLES_SQL: &str = include_str!("schema/local_tables.sql");

/// Creates the twelve synced tables (a projection) with td's builtin rows in an empty database.
pub fn create_synced_tables(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(SYNCED_TABLES_SQL)?;
    conn.execute_batch(BUILTIN_ROWS_SQL)
}

/// Creates a complete td database (schema 38) in an empty database: what `td init` makes.
pub fn create_td_database(conn: &Connection) -> rusqlite::Result<()> {
    create_synced_tables(conn)?;
    conn.execute_batch(LOCAL_TABLES_SQL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_td_database_has_every_table_and_version_38() {
        let conn = Connection::open_in_memory().unwrap();
        create_td_database(&conn).unwrap();
        let version: String = conn
            .query_row(
                "SELECT value FROM schema_info WHERE key = 'version'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(version, TD_SCHEMA_VERSION.to_string());
        for table in tdsync_protocol::EntityType::SYNCED {
            let n: i64 = conn
                .query_row(
                    "SELECT count(*) FROM sqlite_master WHERE type='table' AND name=?1",
                    [table.table()],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(n, 1, "{table}");
        }
        let builtin: String = conn
            .query_row(
                "SELECT name FROM boards WHERE id='bd-all-issues'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(builtin, "All Issues");
    }
}
