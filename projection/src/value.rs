//! How a JSON payload value becomes a SQLite value under td's apply rules, and when two stored
//! values mean the same thing.

use std::sync::Arc;

use rusqlite::types::Value as SqlValue;
use serde_json::{Map, Value};
use tdsync_protocol::{
    EntityType,
    payload::{go_marshal, go_number},
    timestamp,
};

use crate::table::{Column, TableInfo};

/// A row as stored, its values in the table's column order.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    columns: Arc<[String]>,
    values: Vec<SqlValue>,
}

impl Row {
    /// The value of `column`, if the table has it.
    pub fn get(&self, column: &str) -> Option<&SqlValue> {
        let i = self.columns.iter().position(|c| c == column)?;
        self.values.get(i)
    }

    /// The value at a column position of the table this row came from.
    pub fn at(&self, index: usize) -> &SqlValue {
        self.values.get(index).unwrap_or(&SqlValue::Null)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &SqlValue)> {
        self.columns
            .iter()
            .map(String::as_str)
            .zip(self.values.iter())
    }
}

/// Converts one payload field to what td binds for it:
/// - null → '' for `TEXT DEFAULT ''` columns, else NULL;
/// - bool → 1/0; numbers → float64 (SQLite's column affinity turns integral values back into
///   integers, exactly as for td's Go driver);
/// - `issues.labels` array → comma-joined text; any other array or object → Go-style JSON text.
pub fn to_sql(table: &TableInfo, column: &Column, value: &Value) -> SqlValue {
    match value {
        Value::Null if column.is_text_empty_default() => SqlValue::Text(String::new()),
        Value::Null => SqlValue::Null,
        Value::Bool(b) => SqlValue::Integer(i64::from(*b)),
        Value::Number(n) => SqlValue::Real(n.as_f64().unwrap_or(0.0)),
        Value::String(s) => SqlValue::Text(s.clone()),
        Value::Array(items) if table.entity == EntityType::Issues && column.name == "labels" => {
            SqlValue::Text(join_labels(items))
        }
        Value::Array(_) | Value::Object(_) => SqlValue::Text(go_marshal(value)),
    }
}

/// `["a","b"]` → `a,b`, each item printed as Go's `fmt.Sprint` would.
fn join_labels(items: &[Value]) -> String {
    items
        .iter()
        .map(|item| match item {
            Value::String(s) => s.clone(),
            Value::Number(n) => go_number(n),
            Value::Bool(b) => b.to_string(),
            Value::Null => "<nil>".to_string(),
            other => go_marshal(other),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Whether two stored values of `column` mean the same: equal numbers whatever their storage
/// class, equal instants for timestamp columns, and '' ≡ NULL where td treats them alike.
pub fn same_value(column: &Column, a: &SqlValue, b: &SqlValue) -> bool {
    use SqlValue::{Integer, Null, Real, Text};
    match (a, b) {
        (Integer(x), Real(y)) | (Real(y), Integer(x)) => (*x as f64) == *y,
        (Text(x), Text(y)) => x == y || (column.is_timestamp() && timestamp::same_instant(x, y)),
        (Text(t), Null) | (Null, Text(t)) => t.is_empty() && column.is_text_empty_default(),
        _ => a == b,
    }
}

/// A stored row as a JSON object (for conflict records, history and client conflict rows).
pub fn row_to_json(row: &Row) -> Value {
    Value::Object(
        row.iter()
            .map(|(k, v)| (k.to_string(), sql_to_json(v)))
            .collect::<Map<_, _>>(),
    )
}

/// One stored value as JSON.
pub fn sql_to_json(v: &SqlValue) -> Value {
    match v {
        SqlValue::Null => Value::Null,
        SqlValue::Integer(i) => Value::from(*i),
        SqlValue::Real(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        SqlValue::Text(s) => Value::String(s.clone()),
        SqlValue::Blob(b) => Value::String(b.iter().map(|x| format!("{x:02x}")).collect()),
    }
}

/// Reads a row by id with every column of `table`.
pub fn read_row(
    conn: &rusqlite::Connection,
    table: &TableInfo,
    id: &str,
) -> rusqlite::Result<Option<Row>> {
    let mut stmt = conn.prepare_cached(table.select_by_id())?;
    let mut rows = stmt.query([id])?;
    let Some(r) = rows.next()? else {
        return Ok(None);
    };
    let n = table.columns.len();
    let mut values = Vec::with_capacity(n);
    for i in 0..n {
        values.push(r.get::<_, SqlValue>(i)?);
    }
    Ok(Some(Row {
        columns: table.names(),
        values,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{schema::create_synced_tables, table::Schema};

    fn issues() -> TableInfo {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        create_synced_tables(&conn).unwrap();
        Schema::load(&conn)
            .unwrap()
            .table(EntityType::Issues)
            .unwrap()
            .clone()
    }

    #[test]
    fn converts_like_td() {
        let t = issues();
        let col = |n: &str| t.column(n).unwrap().clone();
        let labels = serde_json::json!(["a", "b c", 3]);
        assert_eq!(
            to_sql(&t, &col("labels"), &labels),
            SqlValue::Text("a,b c,3".into())
        );
        assert_eq!(
            to_sql(&t, &col("description"), &Value::Null),
            SqlValue::Text(String::new())
        );
        assert_eq!(to_sql(&t, &col("closed_at"), &Value::Null), SqlValue::Null);
        assert_eq!(
            to_sql(&t, &col("minor"), &Value::Bool(true)),
            SqlValue::Integer(1)
        );
        assert_eq!(
            to_sql(
                &t,
                &col("acceptance"),
                &serde_json::json!({"b":1,"a":["<"]})
            ),
            SqlValue::Text(r#"{"a":["\u003c"],"b":1}"#.into())
        );
    }

    #[test]
    fn sameness_is_semantic() {
        let t = issues();
        let col = |n: &str| t.column(n).unwrap().clone();
        assert!(same_value(
            &col("points"),
            &SqlValue::Integer(3),
            &SqlValue::Real(3.0)
        ));
        assert!(same_value(
            &col("updated_at"),
            &SqlValue::Text("2026-01-01T00:00:00Z".into()),
            &SqlValue::Text("2026-01-01 00:00:00+00:00".into())
        ));
        assert!(!same_value(
            &col("title"),
            &SqlValue::Text("2026-01-01T00:00:00Z".into()),
            &SqlValue::Text("2026-01-01 00:00:00+00:00".into())
        ));
        assert!(same_value(
            &col("labels"),
            &SqlValue::Null,
            &SqlValue::Text(String::new())
        ));
        assert!(!same_value(
            &col("closed_at"),
            &SqlValue::Null,
            &SqlValue::Text(String::new())
        ));
    }
}
