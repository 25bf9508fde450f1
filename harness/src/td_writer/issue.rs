//! td's Issue as td reads, writes and serialises it (`internal/models` Issue; the logged write
//! path of `internal/db/issues_logged.go`), limited to the columns this database has.

use rusqlite::{Connection, Row, ToSql, types::ValueRef};
use serde_json::Value;

use super::{
    clock::{Instant, parse_stored, sqlite_text},
    error::{Sql, WriterError},
    gojson::GoStruct,
    schema::Schema,
};

pub(crate) const OPEN: &str = "open";
pub(crate) const IN_PROGRESS: &str = "in_progress";
pub(crate) const BLOCKED: &str = "blocked";
pub(crate) const IN_REVIEW: &str = "in_review";
pub(crate) const CLOSED: &str = "closed";

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Issue {
    pub id: String,
    pub title: String,
    pub description: String,
    pub status: String,
    pub kind: String,
    pub priority: String,
    pub points: i64,
    pub labels: Vec<String>,
    pub parent_id: String,
    pub acceptance: String,
    pub sprint: String,
    pub implementer_session: String,
    pub creator_session: String,
    pub reviewer_session: String,
    pub review_requested_by_session: String,
    pub closed_by_session: String,
    pub created_at: Instant,
    pub updated_at: Instant,
    pub reviewed_at: Option<Instant>,
    pub closed_at: Option<Instant>,
    pub deleted_at: Option<Instant>,
    pub minor: bool,
    pub created_branch: String,
    pub defer_until: Option<String>,
    pub due_date: Option<String>,
    pub defer_count: i64,
}

/// Go's zero `time.Time`, what td holds for a time it could not read.
pub(crate) fn zero_time() -> Instant {
    chrono::DateTime::parse_from_rfc3339("0001-01-01T00:00:00Z").unwrap_or_default()
}

impl Issue {
    /// A new issue with td's defaults.
    pub fn new(id: String, title: String, now: Instant) -> Issue {
        Issue {
            id,
            title,
            description: String::new(),
            status: OPEN.into(),
            kind: "task".into(),
            priority: "P2".into(),
            points: 0,
            labels: Vec::new(),
            parent_id: String::new(),
            acceptance: String::new(),
            sprint: String::new(),
            implementer_session: String::new(),
            creator_session: String::new(),
            reviewer_session: String::new(),
            review_requested_by_session: String::new(),
            closed_by_session: String::new(),
            created_at: now,
            updated_at: now,
            reviewed_at: None,
            closed_at: None,
            deleted_at: None,
            minor: false,
            created_branch: String::new(),
            defer_until: None,
            due_date: None,
            defer_count: 0,
        }
    }

    /// The row as td scans it (NULL text as '', unreadable times as Go's zero time), whether
    /// soft-deleted or not.
    pub fn load(conn: &Connection, id: &str) -> Result<Option<Issue>, WriterError> {
        let mut stmt = conn
            .prepare_cached("SELECT * FROM issues WHERE id = ?1")
            .op("read issue")?;
        let mut rows = stmt.query([id]).op("read issue")?;
        match rows.next().op("read issue")? {
            Some(row) => Ok(Some(Issue::from_row(row)?)),
            None => Ok(None),
        }
    }

    fn from_row(row: &Row<'_>) -> Result<Issue, WriterError> {
        let cols: Vec<String> = row
            .as_ref()
            .column_names()
            .iter()
            .map(|c| c.to_string())
            .collect();
        let cell = |name: &str| -> Option<ValueRef<'_>> {
            let i = cols.iter().position(|c| c == name)?;
            row.get_ref(i).ok()
        };
        let text = |name: &str| cell(name).and_then(value_text).unwrap_or_default();
        let opt_text = |name: &str| cell(name).and_then(value_text);
        let int = |name: &str| cell(name).map_or(0, value_int);
        let time = |name: &str| opt_text(name).and_then(|t| parse_stored(&t));
        let labels = text("labels");
        Ok(Issue {
            id: text("id"),
            title: text("title"),
            description: text("description"),
            status: text("status"),
            kind: text("type"),
            priority: text("priority"),
            points: int("points"),
            labels: split_labels(&labels),
            parent_id: text("parent_id"),
            acceptance: text("acceptance"),
            sprint: text("sprint"),
            implementer_session: text("implementer_session"),
            creator_session: text("creator_session"),
            reviewer_session: text("reviewer_session"),
            review_requested_by_session: text("review_requested_by_session"),
            closed_by_session: text("closed_by_session"),
            created_at: time("created_at").unwrap_or_else(zero_time),
            updated_at: time("updated_at").unwrap_or_else(zero_time),
            reviewed_at: time("reviewed_at"),
            closed_at: time("closed_at"),
            deleted_at: time("deleted_at"),
            minor: int("minor") != 0,
            created_branch: text("created_branch"),
            defer_until: opt_text("defer_until"),
            due_date: opt_text("due_date"),
            defer_count: int("defer_count"),
        })
    }

    /// td's Issue JSON (`json.Marshal(issue)`): declaration order, `omitempty` fields absent
    /// when empty, labels as an array, minor as a bool; fields whose column this schema lacks
    /// are left out, as the td that wrote such a database had no such field.
    pub fn to_json(&self, schema: &Schema) -> String {
        let has = |c: &str| schema.has("issues", c);
        let mut s = GoStruct::new();
        s.str("id", &self.id)
            .str("title", &self.title)
            .str_opt("description", &self.description)
            .str("status", &self.status)
            .str("type", &self.kind)
            .str("priority", &self.priority)
            .int("points", self.points);
        if !self.labels.is_empty() {
            let labels = Value::Array(self.labels.iter().cloned().map(Value::String).collect());
            s.value("labels", &labels);
        }
        s.str_opt("parent_id", &self.parent_id)
            .str_opt("acceptance", &self.acceptance);
        if has("sprint") {
            s.str_opt("sprint", &self.sprint);
        }
        s.str("implementer_session", &self.implementer_session);
        if has("creator_session") {
            s.str("creator_session", &self.creator_session);
        }
        s.str("reviewer_session", &self.reviewer_session);
        if has("review_requested_by_session") {
            s.str_opt(
                "review_requested_by_session",
                &self.review_requested_by_session,
            );
        }
        if has("closed_by_session") {
            s.str_opt("closed_by_session", &self.closed_by_session);
        }
        s.time("created_at", &self.created_at)
            .time("updated_at", &self.updated_at);
        if has("reviewed_at") {
            s.time_opt("reviewed_at", self.reviewed_at.as_ref());
        }
        s.time_opt("closed_at", self.closed_at.as_ref())
            .time_opt("deleted_at", self.deleted_at.as_ref());
        if has("minor") {
            s.bool("minor", self.minor);
        }
        if has("created_branch") {
            s.str_opt("created_branch", &self.created_branch);
        }
        if has("defer_until")
            && let Some(d) = &self.defer_until
        {
            s.str("defer_until", d);
        }
        if has("due_date")
            && let Some(d) = &self.due_date
        {
            s.str("due_date", d);
        }
        if has("defer_count") {
            s.int("defer_count", self.defer_count);
        }
        s.finish()
    }

    /// An Issue decoded from td's JSON (`json.Unmarshal`): absent fields take Go's zero values.
    pub fn from_json(text: &str) -> Result<Issue, WriterError> {
        let v: Value = serde_json::from_str(text)
            .map_err(|e| WriterError::BadData(format!("issue JSON: {e}")))?;
        // Review-aware actions wrap the issue; td's undo reads previous_data, which is bare.
        let v = match v.get("issue") {
            Some(inner) if inner.is_object() => inner.clone(),
            _ => v,
        };
        let Value::Object(m) = v else {
            return Err(WriterError::BadData("issue JSON is not an object".into()));
        };
        let s = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let int = |k: &str| m.get(k).and_then(Value::as_i64).unwrap_or(0);
        let time = |k: &str| m.get(k).and_then(Value::as_str).and_then(parse_stored);
        let opt_s = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_string);
        let labels = match m.get("labels") {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|l| l.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        };
        Ok(Issue {
            id: s("id"),
            title: s("title"),
            description: s("description"),
            status: s("status"),
            kind: s("type"),
            priority: s("priority"),
            points: int("points"),
            labels,
            parent_id: s("parent_id"),
            acceptance: s("acceptance"),
            sprint: s("sprint"),
            implementer_session: s("implementer_session"),
            creator_session: s("creator_session"),
            reviewer_session: s("reviewer_session"),
            review_requested_by_session: s("review_requested_by_session"),
            closed_by_session: s("closed_by_session"),
            created_at: time("created_at").unwrap_or_else(zero_time),
            updated_at: time("updated_at").unwrap_or_else(zero_time),
            reviewed_at: time("reviewed_at"),
            closed_at: time("closed_at"),
            deleted_at: time("deleted_at"),
            minor: m.get("minor").and_then(Value::as_bool).unwrap_or(false),
            created_branch: s("created_branch"),
            defer_until: opt_s("defer_until"),
            due_date: opt_s("due_date"),
            defer_count: int("defer_count"),
        })
    }

    /// td's create INSERT (note: td's create never writes `sprint`).
    pub fn insert(&self, conn: &Connection, schema: &Schema) -> Result<(), WriterError> {
        let labels = self.labels.join(",");
        let created = sqlite_text(&self.created_at);
        let updated = sqlite_text(&self.updated_at);
        let values: Vec<(&str, &dyn ToSql)> = vec![
            ("id", &self.id),
            ("title", &self.title),
            ("description", &self.description),
            ("status", &self.status),
            ("type", &self.kind),
            ("priority", &self.priority),
            ("points", &self.points),
            ("labels", &labels),
            ("parent_id", &self.parent_id),
            ("acceptance", &self.acceptance),
            ("created_at", &created),
            ("updated_at", &updated),
            ("minor", &self.minor),
            ("created_branch", &self.created_branch),
            ("creator_session", &self.creator_session),
            ("defer_until", &self.defer_until),
            ("due_date", &self.due_date),
            ("defer_count", &self.defer_count),
        ];
        let values: Vec<_> = values
            .into_iter()
            .filter(|(c, _)| schema.has("issues", c))
            .collect();
        let cols: Vec<&str> = values.iter().map(|(c, _)| *c).collect();
        let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
        let sql = format!(
            "INSERT INTO issues ({}) VALUES ({})",
            cols.join(", "),
            marks.join(", ")
        );
        let params: Vec<&dyn ToSql> = values.iter().map(|(_, v)| *v).collect();
        conn.execute(&sql, params.as_slice()).op("insert issue")?;
        Ok(())
    }

    /// td's full-row UPDATE of the logged write path (every mutable column from this struct).
    pub fn write_update(&self, conn: &Connection, schema: &Schema) -> Result<(), WriterError> {
        let labels = self.labels.join(",");
        let updated = sqlite_text(&self.updated_at);
        let reviewed = self.reviewed_at.as_ref().map(sqlite_text);
        let closed = self.closed_at.as_ref().map(sqlite_text);
        let deleted = self.deleted_at.as_ref().map(sqlite_text);
        let values: Vec<(&str, &dyn ToSql)> = vec![
            ("title", &self.title),
            ("description", &self.description),
            ("status", &self.status),
            ("type", &self.kind),
            ("priority", &self.priority),
            ("points", &self.points),
            ("labels", &labels),
            ("parent_id", &self.parent_id),
            ("acceptance", &self.acceptance),
            ("sprint", &self.sprint),
            ("implementer_session", &self.implementer_session),
            ("reviewer_session", &self.reviewer_session),
            (
                "review_requested_by_session",
                &self.review_requested_by_session,
            ),
            ("closed_by_session", &self.closed_by_session),
            ("updated_at", &updated),
            ("reviewed_at", &reviewed),
            ("closed_at", &closed),
            ("deleted_at", &deleted),
            ("defer_until", &self.defer_until),
            ("due_date", &self.due_date),
            ("defer_count", &self.defer_count),
            ("creator_session", &self.creator_session),
            ("minor", &self.minor),
            ("created_branch", &self.created_branch),
        ];
        let values: Vec<_> = values
            .into_iter()
            .filter(|(c, _)| schema.has("issues", c))
            .collect();
        let sets: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(i, (c, _))| format!("{c} = ?{}", i + 1))
            .collect();
        let sql = format!(
            "UPDATE issues SET {} WHERE id = ?{}",
            sets.join(", "),
            values.len() + 1
        );
        let mut params: Vec<&dyn ToSql> = values.iter().map(|(_, v)| *v).collect();
        params.push(&self.id);
        conn.execute(&sql, params.as_slice()).op("update issue")?;
        Ok(())
    }
}

/// td splits stored labels on commas without trimming; empty text is no labels.
pub(crate) fn split_labels(text: &str) -> Vec<String> {
    if text.is_empty() {
        Vec::new()
    } else {
        text.split(',').map(str::to_string).collect()
    }
}

fn value_text(v: ValueRef<'_>) -> Option<String> {
    match v {
        ValueRef::Null => None,
        ValueRef::Integer(i) => Some(i.to_string()),
        ValueRef::Real(f) => Some(f.to_string()),
        ValueRef::Text(t) | ValueRef::Blob(t) => Some(String::from_utf8_lossy(t).into_owned()),
    }
}

fn value_int(v: ValueRef<'_>) -> i64 {
    match v {
        ValueRef::Integer(i) => i,
        // Truncation is what td's driver does when it scans a REAL into an int.
        ValueRef::Real(f) => f as i64,
        ValueRef::Text(t) => String::from_utf8_lossy(t).trim().parse().unwrap_or(0),
        ValueRef::Null | ValueRef::Blob(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_split_like_td() {
        assert!(split_labels("").is_empty());
        assert_eq!(split_labels("a,b"), vec!["a", "b"]);
        assert_eq!(split_labels("a, b"), vec!["a", " b"]);
    }

    #[test]
    fn json_round_trips_through_go_shape() {
        let now = tdsync_protocol::timestamp::parse("2026-11-25T21:38:10.9964259Z").unwrap();
        let mut i = Issue::new("td-abc123".into(), "T".into(), now);
        i.labels = vec!["a".into(), "b".into()];
        i.closed_at = Some(now);
        let text = r#"{"id":"td-abc123","title":"T","status":"open","type":"task","priority":"P2","points":0,"labels":["a","b"],"implementer_session":"","creator_session":"","reviewer_session":"","created_at":"2026-11-25T21:38:10.9964259Z","updated_at":"2026-11-25T21:38:10.9964259Z","closed_at":"2026-11-25T21:38:10.9964259Z","minor":false,"defer_count":0}"#;
        let back = Issue::from_json(text).unwrap();
        assert_eq!(back, i);
    }
}
