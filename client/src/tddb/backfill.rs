//! td's first-sync backfill: before a database has ever pulled, rows that no action_log event
//! would reproduce on a peer get a synthetic `create` event, so the first push carries the
//! whole database.
//!
//! Two passes, as td runs them: rows of synced tables with no create-style event at all
//! (data from before td logged actions, or from imports), then issues whose events would not
//! rebuild their current state (edited without a log row, deleted after their last create, or
//! with a status no event sets). It stops for good after the first pull, because pulled rows
//! also lack local events and must not be echoed back.
//!
//! Which rows qualify and what their events carry is td's rule, byte for byte. Two details
//! differ on purpose, both so that running it again finds nothing new (td runs it once per
//! push; a sync agent may page through a backlog and call it again before its first pull):
//! - a synthetic `create` counts as the row's create event for every table (td looks only for
//!   `board_create`, `handoff`, … and so re-synthesises those rows on every run);
//! - its timestamp is written in td's canonical action_log form, RFC 3339 UTC with nanoseconds,
//!   not in the driver's `2006-01-02 15:04:05-07:00` form td's backfill binds, which sorts
//!   before every RFC 3339 time of the same day and so hides the synthetic event from td's
//!   own "newest event of this issue" test.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, FixedOffset, TimeDelta};
use rusqlite::{Connection, OptionalExtension, params, types::ValueRef};
use serde_json::{Map, Value};
use tdsync_protocol::EntityType;

use super::{
    TdDatabase,
    error::{SqlContext, TdDbError},
    go_json, schema,
    state::max_pulled_seq,
    td_time,
};

/// One synced table as backfill sees it: the entity type its synthetic rows are written with
/// (td's own, often singular, spelling), every spelling action_log may use for it, the action
/// types that count as its create, and whether soft-deleted rows are left out.
struct Backfillable {
    entity: EntityType,
    written_as: &'static str,
    aliases: &'static [&'static str],
    creates: &'static [&'static str],
    skip_soft_deleted: bool,
}

const TABLES: [Backfillable; 12] = [
    bf(
        EntityType::Issues,
        "issue",
        &["issue", "issues"],
        &["create"],
        false,
    ),
    bf(
        EntityType::Logs,
        "logs",
        &["log", "logs"],
        &["create"],
        false,
    ),
    bf(
        EntityType::Comments,
        "comments",
        &["comment", "comments"],
        &["create"],
        false,
    ),
    bf(
        EntityType::Handoffs,
        "handoff",
        &["handoff", "handoffs"],
        &["handoff"],
        false,
    ),
    bf(
        EntityType::Boards,
        "boards",
        &["board", "boards"],
        &["board_create"],
        false,
    ),
    bf(
        EntityType::WorkSessions,
        "work_sessions",
        &["work_session", "work_sessions"],
        &["create"],
        false,
    ),
    bf(
        EntityType::BoardIssuePositions,
        "board_position",
        &["board_position", "board_issue_positions"],
        &["board_set_position", "board_add_issue"],
        true,
    ),
    bf(
        EntityType::IssueDependencies,
        "dependency",
        &["dependency", "issue_dependencies"],
        &["add_dependency"],
        false,
    ),
    bf(
        EntityType::IssueFiles,
        "file_link",
        &["file_link", "issue_files"],
        &["link_file"],
        false,
    ),
    bf(
        EntityType::WorkSessionIssues,
        "work_session_issues",
        &["work_session_issue", "work_session_issues"],
        &["work_session_tag"],
        false,
    ),
    bf(
        EntityType::IssueReviews,
        "issue_reviews",
        &["issue_review", "issue_reviews"],
        &["create"],
        false,
    ),
    bf(
        EntityType::Notes,
        "notes",
        &["note", "notes"],
        &["create"],
        true,
    ),
];

const fn bf(
    entity: EntityType,
    written_as: &'static str,
    aliases: &'static [&'static str],
    creates: &'static [&'static str],
    skip_soft_deleted: bool,
) -> Backfillable {
    Backfillable {
        entity,
        written_as,
        aliases,
        creates,
        skip_soft_deleted,
    }
}

/// An issue counts as edited after its last event only beyond this slack (td's).
const STALE_SLACK: TimeDelta = TimeDelta::seconds(1);

impl TdDatabase {
    /// Runs td's backfill (orphan rows, then stale issues) in one transaction under td's lock,
    /// while the database has never pulled; returns how many events it synthesised. Checks
    /// the file's integrity first ([`TdDatabase::check_integrity`]): backfill reads every
    /// synced row, and must never turn corrupt pages into events.
    pub fn backfill(&self, session_id: &str) -> Result<usize, TdDbError> {
        let path = &self.path;
        if max_pulled_seq(&self.conn).ctx(path, "read sync_state")? > 0 {
            return Ok(0);
        }
        self.check_integrity()?;
        let n = self.write("backfill", |tx| {
            // Re-checked under the lock: a pull may have committed while we waited.
            if max_pulled_seq(tx).ctx(path, "read sync_state")? > 0 {
                return Ok(0);
            }
            let mut n = 0;
            for table in &TABLES {
                n += backfill_rows(tx, path, table, session_id)?;
            }
            n += backfill_stale_issues(tx, path, session_id)?;
            Ok(n)
        })?;
        self.backfill_ran.set(true);
        Ok(n)
    }

    /// Whether this handle has run the backfill (see [`TdDatabase::pending`]).
    pub(crate) fn backfill_has_run(&self) -> bool {
        self.backfill_ran.get()
    }
}

/// A row turned into td's synthetic event: JSON of all its columns and the time it carries.
struct Synthetic {
    entity_id: String,
    new_data: String,
    timestamp: String,
}

/// The rowids of creates td undid before they were ever pushed, for rows that outlived the
/// undo (td's undo of an issue create soft-deletes the issue; a later `restore` brings it
/// back; a position's undo soft-deletes the position). td never sends an undone row, so every
/// other replica would lack the row for good — and the row's later events (its delete, its
/// comments) would reach them without it. tdsync sends such a create after all, in its own
/// place in the log: before everything that followed it. Only entities without a live
/// create-style event qualify (one that has one reaches peers through it).
pub(crate) fn lost_creates(
    conn: &Connection,
    path: &std::path::Path,
) -> Result<BTreeSet<i64>, TdDbError> {
    let mut out = BTreeSet::new();
    for t in &TABLES {
        let table = t.entity.table();
        if !schema::table_exists(conn, table).ctx(path, "read schema")? {
            continue;
        }
        let (aliases, creates) = t.lists();
        let sql = format!(
            "SELECT MIN(al.rowid) FROM action_log al JOIN {table} t ON t.id = al.entity_id \
             WHERE al.entity_type IN ({aliases}) AND al.action_type IN ({creates}) \
             AND al.undone = 1 AND al.synced_at IS NULL AND NOT EXISTS (\
               SELECT 1 FROM action_log l WHERE l.entity_id = al.entity_id \
               AND l.entity_type IN ({aliases}) AND l.action_type IN ({creates}) AND l.undone = 0) \
             GROUP BY al.entity_id"
        );
        let mut stmt = conn.prepare(&sql).ctx(path, "find lost creates")?;
        let rows = stmt
            .query_map([], |r| r.get::<_, i64>(0))
            .ctx(path, "find lost creates")?;
        for rowid in rows {
            out.insert(rowid.ctx(path, "find lost creates")?);
        }
    }
    Ok(out)
}

impl Backfillable {
    /// Its entity-type spellings and its create-style action types, as SQL lists.
    fn lists(&self) -> (String, String) {
        let list = |items: &[&str]| {
            items
                .iter()
                .map(|s| format!("'{s}'"))
                .collect::<Vec<_>>()
                .join(",")
        };
        (
            list(self.aliases),
            list(&[self.creates, &["create"]].concat()),
        )
    }
}

fn backfill_rows(
    conn: &Connection,
    path: &std::path::Path,
    t: &Backfillable,
    session_id: &str,
) -> Result<usize, TdDbError> {
    let table = t.entity.table();
    if !schema::table_exists(conn, table).ctx(path, "read schema")? {
        return Ok(0);
    }
    let mut filter = String::new();
    if t.skip_soft_deleted
        && schema::column_exists(conn, table, "deleted_at").ctx(path, "read schema")?
    {
        filter.push_str(" AND t.deleted_at IS NULL");
    }
    // td's builtin board exists in every database and is never synced.
    if t.entity == EntityType::Boards
        && schema::column_exists(conn, table, "is_builtin").ctx(path, "read schema")?
    {
        filter.push_str(" AND t.is_builtin = 0");
    }
    let (aliases, creates) = t.lists();
    let sql = format!(
        "SELECT * FROM {table} t WHERE NOT EXISTS (\
             SELECT 1 FROM action_log al WHERE al.entity_id = t.id \
             AND al.entity_type IN ({aliases}) AND al.action_type IN ({creates}) AND al.undone = 0){filter}"
    );
    let decl = go_json::declared_types(conn, table).ctx(path, "read schema")?;
    let op = format!("backfill {table}");
    let rows = read_rows(conn, &sql, &decl, &[]).ctx(path, &op)?;
    let mut n = 0;
    for (mut fields, raw_times) in rows {
        let Some(id) = fields.get("id").map(value_text) else {
            continue;
        };
        if id.is_empty() {
            continue;
        }
        for f in t.entity.local_only_fields() {
            fields.remove(*f);
        }
        let when = entity_time(&raw_times).unwrap_or_else(now);
        let syn = Synthetic {
            entity_id: id,
            new_data: go_json::marshal(fields),
            timestamp: action_log_time(&when),
        };
        insert(conn, session_id, t.written_as, &syn).ctx(path, &op)?;
        n += 1;
    }
    Ok(n)
}

fn backfill_stale_issues(
    conn: &Connection,
    path: &std::path::Path,
    session_id: &str,
) -> Result<usize, TdDbError> {
    if !schema::table_exists(conn, "issues").ctx(path, "read schema")? {
        return Ok(0);
    }
    const OP: &str = "backfill stale issues";
    // Per issue: its newest event's time and data, whether a delete follows its last create,
    // and how many live events it has.
    let sql = "SELECT i.*, \
        (SELECT timestamp FROM action_log WHERE entity_id = i.id AND entity_type IN ('issue','issues') \
         ORDER BY timestamp DESC, rowid DESC LIMIT 1) AS last_ts, \
        (SELECT new_data FROM action_log WHERE entity_id = i.id AND entity_type IN ('issue','issues') \
         ORDER BY timestamp DESC, rowid DESC LIMIT 1) AS last_data, \
        (SELECT COUNT(*) FROM action_log WHERE entity_id = i.id AND entity_type IN ('issue','issues') \
         AND action_type = 'delete' AND undone = 0 AND rowid > COALESCE( \
           (SELECT MAX(rowid) FROM action_log WHERE entity_id = i.id \
            AND entity_type IN ('issue','issues') AND action_type = 'create' AND undone = 0), 0) \
        ) AS has_delete_after_create, \
        (SELECT COUNT(*) FROM action_log WHERE entity_id = i.id AND entity_type IN ('issue','issues') \
         AND undone = 0) AS active_event_count \
        FROM issues i";
    let decl = go_json::declared_types(conn, "issues").ctx(path, OP)?;
    let computed = [
        "last_ts",
        "last_data",
        "has_delete_after_create",
        "active_event_count",
    ];
    let rows = read_rows(conn, sql, &decl, &computed).ctx(path, OP)?;
    let mut n = 0;
    for (mut fields, raw) in rows {
        let last_ts = take_text(&mut fields, "last_ts");
        let last_data = take_text(&mut fields, "last_data");
        let delete_after_create = take_int(&mut fields, "has_delete_after_create");
        let active_events = take_int(&mut fields, "active_event_count");
        let Some(id) = fields.get("id").map(value_text) else {
            continue;
        };
        if id.is_empty() {
            continue;
        }
        let updated_at = raw.get("updated_at").and_then(|(typed, text)| {
            text.as_deref()
                .and_then(|t| td_time::parse_stored(*typed, t))
        });

        let mut stale = delete_after_create > 0;
        if !stale
            && let (Some(updated), Some(last)) =
                (updated_at, last_ts.as_deref().and_then(td_time::parse_td))
        {
            stale = updated > last + STALE_SLACK;
        }
        let status = fields.get("status").map(value_text).unwrap_or_default();
        if !stale && !status.is_empty() {
            stale = !status_matches(last_data.as_deref(), &status);
        }
        if !stale && active_events > 0 && !status.is_empty() {
            stale = !any_event_sets_status(conn, &id, &status);
        }
        if !stale {
            continue;
        }
        let syn = Synthetic {
            entity_id: id,
            new_data: go_json::marshal(fields),
            timestamp: action_log_time(&updated_at.unwrap_or_else(now)),
        };
        insert(conn, session_id, "issue", &syn).ctx(path, OP)?;
        n += 1;
    }
    Ok(n)
}

/// The raw text of time-ish columns, with whether each is time-typed (for td's time reading).
type RawTimes = HashMap<String, (bool, Option<String>)>;

/// Runs a `SELECT *`-style query and returns each row as td's JSON map (plus the raw text of
/// the columns backfill takes times from). Read fully before anything is written.
fn read_rows(
    conn: &Connection,
    sql: &str,
    decl: &HashMap<String, String>,
    computed: &[&str],
) -> rusqlite::Result<Vec<(Map<String, Value>, RawTimes)>> {
    let mut stmt = conn.prepare(sql)?;
    let names: Vec<String> = stmt.column_names().iter().map(|s| s.to_string()).collect();
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let mut fields = Map::new();
        let mut raw = RawTimes::new();
        for (i, name) in names.iter().enumerate() {
            let v = row.get_ref(i)?;
            // Computed columns have no declared type: the driver returns them as plain values.
            let ty = if computed.contains(&name.as_str()) {
                None
            } else {
                decl.get(name).map(String::as_str)
            };
            if matches!(
                name.as_str(),
                "created_at" | "timestamp" | "started_at" | "updated_at"
            ) {
                let typed = ty.is_some_and(|t| {
                    matches!(
                        t.trim().to_ascii_uppercase().as_str(),
                        "DATE" | "DATETIME" | "TIMESTAMP"
                    )
                });
                let text = match v {
                    ValueRef::Text(t) => Some(String::from_utf8_lossy(t).into_owned()),
                    _ => None,
                };
                raw.insert(name.clone(), (typed, text));
            }
            fields.insert(name.clone(), go_json::cell(ty, v));
        }
        out.push((fields, raw));
    }
    Ok(out)
}

/// td takes a synthetic event's time from the row's first readable creation-ish column.
fn entity_time(raw: &RawTimes) -> Option<DateTime<FixedOffset>> {
    ["created_at", "timestamp", "started_at"]
        .iter()
        .find_map(|k| {
            let (typed, text) = raw.get(*k)?;
            td_time::parse_stored(*typed, text.as_deref()?)
        })
}

/// td's canonical action_log time text: RFC 3339 with nanoseconds, UTC.
fn action_log_time(t: &DateTime<FixedOffset>) -> String {
    tdsync_protocol::timestamp::format_rfc3339_nano(&t.with_timezone(&chrono::Utc).fixed_offset())
}

fn now() -> DateTime<FixedOffset> {
    chrono::Utc::now().fixed_offset()
}

/// Whether the event data `data` (JSON text) carries `status` as its top-level status.
fn status_matches(data: Option<&str>, status: &str) -> bool {
    let Some(text) = data.filter(|t| !t.is_empty()) else {
        return false;
    };
    let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(text) else {
        return false;
    };
    match fields.get("status") {
        Some(Value::String(s)) => s == status,
        Some(Value::Number(n)) => tdsync_protocol::payload::go_number(n) == status,
        Some(Value::Bool(b)) => b.to_string() == status,
        _ => false,
    }
}

/// Whether some live event of the issue would set `status` on a receiver: a create carrying
/// it, or an update whose diff includes it (no previous image, or a different previous status).
/// Query failures count as "no" — td's rule, which errs towards backfilling.
fn any_event_sets_status(conn: &Connection, id: &str, status: &str) -> bool {
    let pattern = format!("%\"status\":\"{status}\"%");
    let creates: rusqlite::Result<Vec<Option<String>>> = conn
        .prepare_cached(
            "SELECT new_data FROM action_log WHERE entity_id = ?1 \
             AND entity_type IN ('issue','issues') AND undone = 0 \
             AND action_type = 'create' AND new_data LIKE ?2",
        )
        .and_then(|mut s| s.query_map(params![id, pattern], |r| r.get(0))?.collect());
    if let Ok(creates) = creates
        && creates.iter().any(|d| status_matches(d.as_deref(), status))
    {
        return true;
    }
    let updates: rusqlite::Result<Vec<Option<String>>> = conn
        .prepare_cached(
            "SELECT previous_data FROM action_log WHERE entity_id = ?1 \
             AND entity_type IN ('issue','issues') AND undone = 0 \
             AND action_type != 'create' AND new_data LIKE ?2",
        )
        .and_then(|mut s| s.query_map(params![id, pattern], |r| r.get(0))?.collect());
    updates.is_ok_and(|prevs| {
        prevs.iter().any(|p| match p.as_deref() {
            None | Some("") | Some("{}") => true,
            Some(prev) => !status_matches(Some(prev), status),
        })
    })
}

/// Writes one synthetic create with a fresh `al-` id (td's format), retrying on the unlikely
/// id collision.
fn insert(
    conn: &Connection,
    session_id: &str,
    entity_type: &str,
    syn: &Synthetic,
) -> rusqlite::Result<()> {
    let mut attempt = 0;
    loop {
        let id: String = conn.query_row("SELECT 'al-' || lower(hex(randomblob(4)))", [], |r| {
            r.get(0)
        })?;
        let taken = conn
            .prepare_cached("SELECT 1 FROM action_log WHERE id = ?1")?
            .query_row([&id], |_| Ok(()))
            .optional()?
            .is_some();
        attempt += 1;
        if taken && attempt < 8 {
            continue;
        }
        conn.prepare_cached(
            "INSERT INTO action_log \
             (id, session_id, action_type, entity_type, entity_id, new_data, previous_data, timestamp, undone) \
             VALUES (?1, ?2, 'create', ?3, ?4, ?5, '', ?6, 0)",
        )?
        .execute(params![id, session_id, entity_type, syn.entity_id, syn.new_data, syn.timestamp])?;
        return Ok(());
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "<nil>".into(),
        other => other.to_string(),
    }
}

fn take_text(fields: &mut Map<String, Value>, key: &str) -> Option<String> {
    match fields.remove(key) {
        Some(Value::String(s)) => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

fn take_int(fields: &mut Map<String, Value>, key: &str) -> i64 {
    fields.remove(key).and_then(|v| v.as_i64()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_match_reads_top_level_status_only() {
        assert!(status_matches(Some(r#"{"status":"open"}"#), "open"));
        assert!(!status_matches(Some(r#"{"status":"reopened"}"#), "open"));
        // Review wrappers hide the status: td then backfills the issue.
        assert!(!status_matches(
            Some(r#"{"issue":{"status":"open"}}"#),
            "open"
        ));
        assert!(!status_matches(Some(""), "open"));
        assert!(!status_matches(None, "open"));
        assert!(!status_matches(Some("not json"), "open"));
    }
}
