//! What this database's td schema (27..=38) has: the writer writes only columns that exist and
//! includes in its JSON only fields whose columns exist, as the td of that schema did.

use std::collections::{HashMap, HashSet};

use rusqlite::Connection;

use super::error::{Sql, WriterError};

/// The tables the writer touches: td's synced tables and its local session history.
pub fn written_tables() -> impl Iterator<Item = &'static str> {
    tdsync_protocol::EntityType::SYNCED
        .iter()
        .map(|e| e.table())
        .chain(["issue_session_history"])
}

#[derive(Debug, Clone)]
pub(crate) struct Schema {
    pub version: i64,
    /// SQLite's schema cookie when read: a change means td migrated the file.
    pub cookie: i64,
    columns: HashMap<&'static str, HashSet<String>>,
}

impl Schema {
    pub fn read(conn: &Connection) -> Result<Schema, WriterError> {
        let cookie = cookie(conn)?;
        let version: i64 = conn
            .query_row(
                "SELECT CAST(value AS INTEGER) FROM schema_info WHERE key = 'version'",
                [],
                |r| r.get(0),
            )
            .op("read schema_info")?;
        let mut columns = HashMap::new();
        for table in written_tables() {
            let mut stmt = conn
                .prepare(&format!("PRAGMA table_info({table})"))
                .op("read table_info")?;
            let cols: HashSet<String> = stmt
                .query_map([], |r| r.get::<_, String>(1))
                .op("read table_info")?
                .collect::<Result<_, _>>()
                .op("read table_info")?;
            if !cols.is_empty() {
                columns.insert(table, cols);
            }
        }
        Ok(Schema {
            version,
            cookie,
            columns,
        })
    }

    pub fn has_table(&self, table: &str) -> bool {
        self.columns.contains_key(table)
    }

    pub fn has(&self, table: &str, column: &str) -> bool {
        self.columns.get(table).is_some_and(|c| c.contains(column))
    }

    /// `Unsupported` unless the table exists.
    pub fn require(&self, table: &str, what: &str) -> Result<(), WriterError> {
        if self.has_table(table) {
            Ok(())
        } else {
            Err(WriterError::Unsupported {
                schema: self.version,
                what: format!("{what} (no {table} table)"),
            })
        }
    }

    /// `Unsupported` unless the column exists.
    pub fn require_column(&self, table: &str, column: &str, what: &str) -> Result<(), WriterError> {
        if self.has(table, column) {
            Ok(())
        } else {
            Err(WriterError::Unsupported {
                schema: self.version,
                what: format!("{what} (no {table}.{column})"),
            })
        }
    }
}

pub(crate) fn cookie(conn: &Connection) -> Result<i64, WriterError> {
    conn.query_row("PRAGMA schema_version", [], |r| r.get(0))
        .op("read schema cookie")
}
