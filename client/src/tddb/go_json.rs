//! A database row as td's Go code turns it into JSON when it reads it generically (backfill's
//! `SELECT *`): its SQLite driver hands back DATE/DATETIME/TIMESTAMP text it can read as a time
//! value (which `encoding/json` prints as RFC 3339 with nanoseconds and the stored offset),
//! integers and reals as numbers, NULL as null, BLOBs as base64; then the object is printed with
//! sorted keys and Go's escaping. Payloads synthesised here must be byte-identical to td's, so
//! that a row backfilled by tdsync and one backfilled by td carry the same event.

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use std::collections::HashMap;

use rusqlite::{Connection, types::ValueRef};
use serde_json::{Map, Value};
use tdsync_protocol::timestamp;

/// Declared column types of a table, by column name (what the driver consults).
pub fn declared_types(conn: &Connection, table: &str) -> rusqlite::Result<HashMap<String, String>> {
    let mut stmt = conn.prepare(&format!("PRAGMA table_info({table})"))?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(1)?,
            r.get::<_, Option<String>>(2)?.unwrap_or_default(),
        ))
    })?;
    rows.collect()
}

/// Whether the driver reads this declared type as a time value.
pub fn is_time_type(decl: &str) -> bool {
    let upper = decl.trim().to_ascii_uppercase();
    matches!(upper.as_str(), "DATE" | "DATETIME" | "TIMESTAMP")
}

/// One cell as JSON, the way td's driver + `encoding/json` would print it.
pub fn cell(decl: Option<&str>, v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::from(i),
        ValueRef::Real(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
        ValueRef::Text(bytes) => {
            let text = String::from_utf8_lossy(bytes);
            if decl.is_some_and(is_time_type)
                && let Some(t) = tdsync_protocol::timestamp::parse(&text)
            {
                return Value::String(timestamp::format_rfc3339_nano(&t));
            }
            Value::String(text.into_owned())
        }
        // Go's encoding/json prints a []byte as standard base64 with padding.
        ValueRef::Blob(b) => Value::String(BASE64.encode(b)),
    }
}

/// Prints an object as Go's `json.Marshal` of a `map[string]any`.
pub fn marshal(map: Map<String, Value>) -> String {
    tdsync_protocol::payload::go_marshal(&Value::Object(map))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_print_like_td() {
        assert_eq!(
            cell(
                Some("DATETIME"),
                ValueRef::Text(b"2026-04-04 03:38:42.259499426-04:00")
            ),
            Value::String("2026-04-04T03:38:42.259499426-04:00".into())
        );
        assert_eq!(
            cell(
                Some("DATETIME"),
                ValueRef::Text(b"2026-02-03 20:53:53.519728 -0800 PST m=+0.036937834")
            ),
            Value::String("2026-02-03T20:53:53.519728-08:00".into())
        );
        assert_eq!(
            cell(Some("datetime"), ValueRef::Text(b"2026-02-04 04:53:53")),
            Value::String("2026-02-04T04:53:53Z".into())
        );
        // TEXT columns (notes' timestamps) stay as stored; unreadable times too.
        assert_eq!(
            cell(Some("TEXT"), ValueRef::Text(b"2026-02-04 04:53:53")),
            Value::String("2026-02-04 04:53:53".into())
        );
        assert_eq!(
            cell(Some("DATETIME"), ValueRef::Text(b"soon")),
            Value::String("soon".into())
        );
        assert_eq!(cell(None, ValueRef::Integer(7)), Value::from(7));
        assert_eq!(cell(None, ValueRef::Null), Value::Null);
        assert_eq!(
            cell(None, ValueRef::Blob(b"hello")),
            Value::String("aGVsbG8=".into())
        );
    }

    #[test]
    fn marshal_sorts_and_escapes() {
        let mut m = Map::new();
        m.insert("b".into(), Value::from(1));
        m.insert("a".into(), Value::String("<x>".into()));
        assert_eq!(marshal(m), r#"{"a":"\u003cx\u003e","b":1}"#);
    }
}
