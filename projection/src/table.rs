//! What the apply rules need to know about a table, read from the database itself (so a td
//! database at schema 27 and one at 38 are each handled with their own columns).

use std::{collections::HashMap, sync::Arc};

use rusqlite::Connection;
use tdsync_protocol::EntityType;

/// One column as `PRAGMA table_info` reports it.
#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub decl_type: String,
    pub not_null: bool,
    /// The default as SQL text (`''`, `0`, `CURRENT_TIMESTAMP`), straight from the schema.
    pub default_sql: Option<String>,
    pub primary_key: bool,
}

impl Column {
    /// td turns JSON null into '' for TEXT columns declared `DEFAULT ''`, because its readers
    /// scan them into plain strings.
    pub fn is_text_empty_default(&self) -> bool {
        self.decl_type.eq_ignore_ascii_case("TEXT") && self.default_sql.as_deref() == Some("''")
    }

    /// Whether values of this column are points in time (compared as instants, not text).
    pub fn is_timestamp(&self) -> bool {
        let ty = self.decl_type.to_ascii_uppercase();
        ty.contains("DATE")
            || ty.contains("TIME")
            || self.name.ends_with("_at")
            || self.name == "timestamp"
    }
}

/// A single-column `ON DELETE CASCADE` foreign key: a child row that must not outlive its parent.
#[derive(Debug, Clone)]
pub struct CascadeParent {
    pub column: String,
    pub parent_table: String,
    pub parent_column: String,
}

/// Everything about one synced table that apply needs.
#[derive(Debug, Clone)]
pub struct TableInfo {
    pub entity: EntityType,
    pub columns: Vec<Column>,
    index: HashMap<String, usize>,
    names: Arc<[String]>,
    select_by_id: String,
    pub cascade_parents: Vec<CascadeParent>,
    /// UNIQUE constraints other than the primary key (column lists).
    pub unique_keys: Vec<Vec<String>>,
}

impl TableInfo {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.index.get(name).map(|&i| &self.columns[i])
    }

    /// Position of a column in the table (and in its [`crate::Row`]s).
    pub fn position(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// Column names in table order, shared by every row read from this table.
    pub fn names(&self) -> Arc<[String]> {
        self.names.clone()
    }

    /// `SELECT * … WHERE id = ?1` for this table.
    pub fn select_by_id(&self) -> &str {
        &self.select_by_id
    }

    pub fn has_column(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    pub fn name(&self) -> &'static str {
        self.entity.table()
    }

    fn load(conn: &Connection, entity: EntityType) -> rusqlite::Result<Option<TableInfo>> {
        let table = entity.table();
        let mut stmt = conn.prepare(&format!("PRAGMA table_info({table})"))?;
        let columns: Vec<Column> = stmt
            .query_map([], |r| {
                Ok(Column {
                    name: r.get(1)?,
                    decl_type: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                    not_null: r.get::<_, i64>(3)? != 0,
                    default_sql: r.get(4)?,
                    primary_key: r.get::<_, i64>(5)? != 0,
                })
            })?
            .collect::<Result<_, _>>()?;
        if columns.is_empty() {
            return Ok(None);
        }
        let index = columns
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.clone(), i))
            .collect();
        let names: Arc<[String]> = columns.iter().map(|c| c.name.clone()).collect();
        Ok(Some(TableInfo {
            entity,
            columns,
            index,
            names,
            select_by_id: format!("SELECT * FROM {table} WHERE id = ?1"),
            cascade_parents: cascade_parents(conn, table)?,
            unique_keys: unique_keys(conn, table)?,
        }))
    }
}

fn cascade_parents(conn: &Connection, table: &str) -> rusqlite::Result<Vec<CascadeParent>> {
    // (id, seq, parent table, from, to, on_update, on_delete, match); composite keys share an id.
    let mut stmt = conn.prepare(&format!("PRAGMA foreign_key_list({table})"))?;
    let rows: Vec<(i64, String, String, Option<String>, String)> = stmt
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(6)?))
        })?
        .collect::<Result<_, _>>()?;
    let mut out = Vec::new();
    for (id, parent, from, to, on_delete) in &rows {
        let single = rows.iter().filter(|r| r.0 == *id).count() == 1;
        if single && on_delete.eq_ignore_ascii_case("CASCADE") {
            out.push(CascadeParent {
                column: from.clone(),
                parent_table: parent.clone(),
                parent_column: to.clone().filter(|t| !t.is_empty()).unwrap_or("id".into()),
            });
        }
    }
    Ok(out)
}

fn unique_keys(conn: &Connection, table: &str) -> rusqlite::Result<Vec<Vec<String>>> {
    // (seq, name, unique, origin, partial); origin 'u' is a UNIQUE constraint.
    let mut stmt = conn.prepare(&format!("PRAGMA index_list({table})"))?;
    let names: Vec<String> = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
            ))
        })?
        .filter_map(|r| match r {
            Ok((name, 1, origin)) if origin == "u" => Some(Ok(name)),
            Ok(_) => None,
            Err(e) => Some(Err(e)),
        })
        .collect::<Result<_, _>>()?;
    let mut keys = Vec::new();
    for name in names {
        let mut info = conn.prepare(&format!("PRAGMA index_info(\"{name}\")"))?;
        let cols: Vec<String> = info
            .query_map([], |r| r.get::<_, String>(2))?
            .collect::<Result<_, _>>()?;
        keys.push(cols);
    }
    Ok(keys)
}

/// The synced tables present in one database, and whether it enforces foreign keys.
#[derive(Debug, Clone)]
pub struct Schema {
    tables: HashMap<EntityType, TableInfo>,
    pub foreign_keys_enforced: bool,
}

impl Schema {
    /// Reads the schema of the synced tables that exist in `conn`.
    pub fn load(conn: &Connection) -> rusqlite::Result<Schema> {
        let mut tables = HashMap::new();
        for entity in EntityType::SYNCED {
            if let Some(info) = TableInfo::load(conn, entity)? {
                tables.insert(entity, info);
            }
        }
        let fk: i64 = conn.query_row("PRAGMA foreign_keys", [], |r| r.get(0))?;
        Ok(Schema {
            tables,
            foreign_keys_enforced: fk != 0,
        })
    }

    pub fn table(&self, entity: EntityType) -> Option<&TableInfo> {
        self.tables.get(&entity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::create_synced_tables;

    #[test]
    fn reads_defaults_cascades_and_unique_keys() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("PRAGMA foreign_keys = ON").unwrap();
        create_synced_tables(&conn).unwrap();
        let schema = Schema::load(&conn).unwrap();
        assert!(schema.foreign_keys_enforced);
        let issues = schema.table(EntityType::Issues).unwrap();
        assert!(issues.column("labels").unwrap().is_text_empty_default());
        assert!(!issues.column("points").unwrap().is_text_empty_default());
        assert!(issues.column("deleted_at").unwrap().is_timestamp());
        assert!(
            issues.cascade_parents.is_empty(),
            "parent_id has no FK in td"
        );
        let pos = schema.table(EntityType::BoardIssuePositions).unwrap();
        assert_eq!(pos.cascade_parents.len(), 2);
        assert_eq!(
            pos.unique_keys,
            vec![vec!["board_id".to_string(), "issue_id".into()]]
        );
        let reviews = schema.table(EntityType::IssueReviews).unwrap();
        assert!(
            reviews.cascade_parents.is_empty(),
            "reviews' FK does not cascade"
        );
    }
}
