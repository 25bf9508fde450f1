//! Work sessions and their issue tags (`internal/db/work_sessions.go`, `cmd/ws.go`).

use rusqlite::OptionalExtension;
use serde_json::Value;
use tdsync_protocol::ids;

use super::{
    Ctx, TdWriter,
    action_log::Event,
    clock::{Instant, parse_stored, rfc3339_nano, sqlite_text},
    error::{Sql, WriterError},
    gojson::go_map,
    history,
    ids::IdGen,
    issue::{IN_PROGRESS, OPEN, zero_time},
    spec::LogType,
};

struct WorkSession {
    name: String,
    session_id: String,
    started_at: Instant,
    ended_at: Option<Instant>,
    start_sha: String,
}

fn time_value(t: Option<&Instant>) -> Value {
    t.map_or(Value::Null, |t| Value::from(rfc3339_nano(t)))
}

impl Ctx<'_> {
    fn work_session(&self, id: &str) -> Result<WorkSession, WriterError> {
        self.conn
            .query_row(
                "SELECT name, session_id, started_at, ended_at, start_sha FROM work_sessions WHERE id = ?1",
                [id],
                |r| {
                    let time = |i: usize| -> rusqlite::Result<Option<Instant>> {
                        Ok(r.get::<_, Option<String>>(i)?.and_then(|t| parse_stored(&t)))
                    };
                    Ok(WorkSession {
                        name: r.get::<_, Option<String>>(0)?.unwrap_or_default(),
                        session_id: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                        started_at: time(2)?.unwrap_or_else(zero_time),
                        ended_at: time(3)?,
                        start_sha: r.get::<_, Option<String>>(4)?.unwrap_or_default(),
                    })
                },
            )
            .optional()
            .op("read work session")?
            .ok_or_else(|| WriterError::NotFound {
                kind: "work session",
                id: id.to_string(),
            })
    }

    /// A work session this session may tag into (td only tags its own active one).
    fn own_open_work_session(&self, id: &str) -> Result<(), WriterError> {
        let ws = self.work_session(id)?;
        if ws.session_id != self.session {
            return Err(WriterError::refused(format!(
                "work session {id} belongs to session {}",
                ws.session_id
            )));
        }
        if ws.ended_at.is_some() {
            return Err(WriterError::refused(format!("work session {id} has ended")));
        }
        Ok(())
    }

    fn create_work_session(&mut self, name: &str) -> Result<String, WriterError> {
        let id = self.unused_id("work_sessions", IdGen::work_session)?;
        let started = self.clock.now();
        let mut cols = vec!["id", "name", "session_id", "started_at", "start_sha"];
        let started_text = sqlite_text(&started);
        let mut values: Vec<&dyn rusqlite::ToSql> =
            vec![&id, &name, &self.session, &started_text, &""];
        // Worktree identity is local-only (td scrubs it from every sync hop) but td records it.
        let worktree = self.worktree;
        if self.schema.has("work_sessions", "worktree_id") {
            cols.extend(["worktree_id", "worktree_root", "repo_root"]);
            values.extend([
                &worktree.id as &dyn rusqlite::ToSql,
                &worktree.root,
                &worktree.root,
            ]);
        }
        let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
        let sql = format!(
            "INSERT INTO work_sessions ({}) VALUES ({})",
            cols.join(", "),
            marks.join(", ")
        );
        self.conn
            .execute(&sql, values.as_slice())
            .op("insert work session")?;
        let json = go_map(vec![
            ("id", Value::from(id.as_str())),
            ("name", Value::from(name)),
            ("session_id", Value::from(self.session)),
            ("started_at", Value::from(rfc3339_nano(&started))),
            ("start_sha", Value::from("")),
        ]);
        self.log_own_now(Event {
            action: "create",
            entity: "work_sessions",
            id: &id,
            previous: "",
            new: &json,
        })?;
        Ok(id)
    }

    fn end_work_session(&mut self, id: &str) -> Result<(), WriterError> {
        let ws = self.work_session(id)?;
        if ws.ended_at.is_some() {
            return Err(WriterError::refused(format!("work session {id} has ended")));
        }
        if ws.session_id != self.session {
            return Err(WriterError::refused(format!(
                "work session {id} belongs to session {}",
                ws.session_id
            )));
        }
        let ended = self.clock.now();
        self.conn
            .execute(
                "UPDATE work_sessions SET name = ?1, ended_at = ?2, end_sha = '' WHERE id = ?3",
                rusqlite::params![ws.name, sqlite_text(&ended), id],
            )
            .op("end work session")?;
        let json = go_map(vec![
            ("id", Value::from(id)),
            ("name", Value::from(ws.name.as_str())),
            ("session_id", Value::from(ws.session_id.as_str())),
            ("started_at", time_value(Some(&ws.started_at))),
            ("ended_at", time_value(Some(&ended))),
            ("start_sha", Value::from(ws.start_sha.as_str())),
            ("end_sha", Value::from("")),
        ]);
        // td logs work-session updates without a previous image.
        self.log_own_now(Event {
            action: "update",
            entity: "work_sessions",
            id,
            previous: "",
            new: &json,
        })?;
        Ok(())
    }

    /// td's `ws tag`: the tag (re-tagging keeps the first row but logs again), the approval
    /// check, then an open issue is started within the work session.
    fn tag_issue(&mut self, ws_id: &str, issue_id: &str) -> Result<(), WriterError> {
        self.own_open_work_session(ws_id)?;
        let issue = self.live_issue(issue_id)?;
        let id = ids::work_session_issue(ws_id, issue_id);
        let now = self.clock.now();
        self.conn
            .execute(
                "INSERT OR IGNORE INTO work_session_issues (id, work_session_id, issue_id, tagged_at) \
                 VALUES (?1, ?2, ?3, ?4)",
                [&id, ws_id, issue_id, &sqlite_text(&now)],
            )
            .op("tag issue")?;
        let json = go_map(vec![
            ("id", Value::from(id.as_str())),
            ("work_session_id", Value::from(ws_id)),
            ("issue_id", Value::from(issue_id)),
            ("tagged_at", Value::from(rfc3339_nano(&now))),
        ]);
        self.log_own(
            Event {
                action: "work_session_tag",
                entity: "work_session_issues",
                id: &id,
                previous: "",
                new: &json,
            },
            &now,
        )?;
        self.supersede_approval_if_linked(issue_id)?;
        if issue.status != OPEN {
            return Ok(());
        }
        let prev = self.live_issue(issue_id)?;
        if prev.updated_at != issue.updated_at {
            // td's start carries the issue as loaded before tagging; an intervening write
            // (the approval cleanup) makes that start stale and td drops it.
            return Ok(());
        }
        let mut next = issue.clone();
        next.status = IN_PROGRESS.into();
        next.implementer_session = self.session.to_string();
        self.update_issue_logged(next, &prev, "start")?;
        self.record_session_action(issue_id, history::STARTED)?;
        self.add_log_entry(
            issue_id,
            ws_id,
            "Started (via work session)",
            LogType::Progress,
            false,
        )?;
        Ok(())
    }

    /// td's `ws untag`: delete (even of a missing tag) and a `work_session_untag` event.
    fn untag_issue(&mut self, ws_id: &str, issue_id: &str) -> Result<(), WriterError> {
        self.own_open_work_session(ws_id)?;
        self.live_issue(issue_id)?;
        let id = ids::work_session_issue(ws_id, issue_id);
        self.conn
            .execute("DELETE FROM work_session_issues WHERE id = ?1", [&id])
            .op("untag issue")?;
        let json = go_map(vec![
            ("id", Value::from(id.as_str())),
            ("work_session_id", Value::from(ws_id)),
            ("issue_id", Value::from(issue_id)),
        ]);
        self.log_own_now(Event {
            action: "work_session_untag",
            entity: "work_session_issues",
            id: &id,
            previous: "",
            new: &json,
        })?;
        self.supersede_approval_if_linked(issue_id)
    }
}

impl TdWriter<'_> {
    /// `td ws start <name>`: becomes this writer's active work session. Refused while one is
    /// active.
    pub fn start_work_session(&mut self, name: &str) -> Result<String, WriterError> {
        if let Some(active) = &self.active_ws {
            return Err(WriterError::refused(format!(
                "work session already active: {active}"
            )));
        }
        let id = self.write(|ctx| ctx.create_work_session(name))?;
        self.active_ws = Some(id.clone());
        Ok(id)
    }

    /// `td ws end` for this session's work session `id`.
    pub fn end_work_session(&mut self, id: &str) -> Result<(), WriterError> {
        self.write(|ctx| ctx.end_work_session(id))?;
        if self.active_ws.as_deref() == Some(id) {
            self.active_ws = None;
        }
        Ok(())
    }

    /// `td ws tag <issue>` into this session's open work session `work_session_id`; an open
    /// issue is started too (td's default).
    pub fn tag(&mut self, work_session_id: &str, issue_id: &str) -> Result<(), WriterError> {
        self.write(|ctx| ctx.tag_issue(work_session_id, issue_id))
    }

    /// `td ws untag <issue>`.
    pub fn untag(&mut self, work_session_id: &str, issue_id: &str) -> Result<(), WriterError> {
        self.write(|ctx| ctx.untag_issue(work_session_id, issue_id))
    }
}
