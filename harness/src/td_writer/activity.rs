//! Logs, comments and handoffs (`internal/db/activity.go`, `cmd/log.go`, `cmd/tree.go`
//! comment, `cmd/handoff.go`): append-only rows, each with a `create`-style event.

use serde_json::Value;

use super::{
    Ctx, TdWriter,
    action_log::Event,
    clock::{Instant, rfc3339_nano, rfc3339_secs, sqlite_text},
    error::{Sql, WriterError},
    gojson::{go_map, go_string_slice},
    issue::{IN_PROGRESS, Issue, OPEN},
    spec::{HandoffSpec, LogType},
};

/// A handoff's four lists; `None` is Go's nil slice (stored and sent as `null`).
pub(crate) struct Handoff<'h> {
    pub done: Option<&'h [String]>,
    pub remaining: Option<&'h [String]>,
    pub decisions: Option<&'h [String]>,
    pub uncertain: Option<&'h [String]>,
}

impl Ctx<'_> {
    /// One `logs` row and its `create`/`logs` event. td's `AddLog` stamps the event with a
    /// second `time.Now()`; its cascade helper reuses the log's own time (`same_time`).
    pub fn add_log_entry(
        &mut self,
        issue_id: &str,
        work_session_id: &str,
        message: &str,
        log_type: LogType,
        same_time: bool,
    ) -> Result<String, WriterError> {
        let id = self.ids.log();
        let at = self.clock.now();
        self.conn
            .execute(
                "INSERT INTO logs (id, issue_id, session_id, work_session_id, message, type, timestamp) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                rusqlite::params![
                    id,
                    issue_id,
                    self.session,
                    work_session_id,
                    message,
                    log_type.as_str(),
                    sqlite_text(&at)
                ],
            )
            .op("insert log")?;
        let json = go_map(vec![
            ("id", Value::from(id.as_str())),
            ("issue_id", Value::from(issue_id)),
            ("session_id", Value::from(self.session)),
            ("work_session_id", Value::from(work_session_id)),
            ("message", Value::from(message)),
            ("type", Value::from(log_type.as_str())),
            ("timestamp", Value::from(rfc3339_nano(&at))),
        ]);
        let ev = Event {
            action: "create",
            entity: "logs",
            id: &id,
            previous: "",
            new: &json,
        };
        if same_time {
            self.log_own(ev, &at)?;
        } else {
            self.log_own_now(ev)?;
        }
        Ok(id)
    }

    /// One `handoffs` row (lists stored as JSON text) and its `handoff`/`handoff` event.
    pub fn add_handoff_row(
        &mut self,
        issue_id: &str,
        h: &Handoff<'_>,
    ) -> Result<String, WriterError> {
        let id = self.ids.handoff();
        let at = self.clock.now();
        let done = go_string_slice(h.done);
        let remaining = go_string_slice(h.remaining);
        let decisions = go_string_slice(h.decisions);
        let uncertain = go_string_slice(h.uncertain);
        self.conn
            .execute(
                "INSERT INTO handoffs (id, issue_id, session_id, done, remaining, decisions, uncertain, timestamp) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                // td binds the marshalled lists as []byte, so SQLite stores BLOBs.
                rusqlite::params![
                    id,
                    issue_id,
                    self.session,
                    done.as_bytes(),
                    remaining.as_bytes(),
                    decisions.as_bytes(),
                    uncertain.as_bytes(),
                    sqlite_text(&at)
                ],
            )
            .op("insert handoff")?;
        let json = go_map(vec![
            ("id", Value::from(id.as_str())),
            ("issue_id", Value::from(issue_id)),
            ("session_id", Value::from(self.session)),
            ("done", Value::from(done)),
            ("remaining", Value::from(remaining)),
            ("decisions", Value::from(decisions)),
            ("uncertain", Value::from(uncertain)),
            ("timestamp", Value::from(rfc3339_secs(&at))),
        ]);
        self.log_own(
            Event {
                action: "handoff",
                entity: "handoff",
                id: &id,
                previous: "",
                new: &json,
            },
            &at,
        )?;
        Ok(id)
    }

    pub fn has_handoff(&self, issue_id: &str) -> Result<bool, WriterError> {
        self.conn
            .query_row(
                "SELECT EXISTS(SELECT 1 FROM handoffs WHERE issue_id = ?1)",
                [issue_id],
                |r| r.get(0),
            )
            .op("read handoffs")
    }

    /// `td review` without a handoff: td synthesises one from the issue's substantive logs.
    pub fn add_auto_review_handoff(&mut self, issue_id: &str) -> Result<(), WriterError> {
        const PLACEHOLDER: &str = "Auto-generated for review submission";
        let mut done = Vec::new();
        let mut decisions = Vec::new();
        for (message, log_type) in self.recent_logs(issue_id, 50)? {
            let message = message.trim();
            if !is_substantive(message, &log_type) {
                continue;
            }
            if log_type == "decision" {
                decisions.push(message.to_string());
            } else {
                done.push(message.to_string());
            }
        }
        if done.len() > 8 {
            done.drain(..done.len() - 8);
        }
        if done.is_empty() {
            done.push(PLACEHOLDER.to_string());
        }
        let remaining = if done[0] == PLACEHOLDER {
            Vec::new()
        } else {
            vec!["see session logs".to_string()]
        };
        let handoff = Handoff {
            done: Some(&done),
            remaining: Some(&remaining),
            decisions: (!decisions.is_empty()).then_some(decisions.as_slice()),
            uncertain: Some(&[]),
        };
        self.add_handoff_row(issue_id, &handoff)?;
        Ok(())
    }

    /// td's `GetLogs`: the issue's logs plus its work sessions' general logs, newest `limit`,
    /// oldest first. (message, type) pairs.
    fn recent_logs(
        &self,
        issue_id: &str,
        limit: i64,
    ) -> Result<Vec<(String, String)>, WriterError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT l.message, l.type FROM logs l WHERE l.issue_id = ?1 \
                 OR (l.issue_id = '' AND l.work_session_id IN \
                     (SELECT work_session_id FROM work_session_issues WHERE issue_id = ?1)) \
                 ORDER BY l.timestamp DESC LIMIT ?2",
            )
            .op("read logs")?;
        let rows = stmt
            .query_map(rusqlite::params![issue_id, limit], |r| {
                Ok((
                    r.get::<_, Option<String>>(0)?.unwrap_or_default(),
                    r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                ))
            })
            .op("read logs")?;
        let mut logs: Vec<_> = rows.collect::<Result<_, _>>().op("read logs")?;
        logs.reverse();
        Ok(logs)
    }

    /// td's `td handoff`: the handoff, a bump of the issue (an `update` event), and a cascaded
    /// handoff + log for each open or in-progress descendant that has none yet.
    pub fn handoff(&mut self, issue_id: &str, spec: &HandoffSpec) -> Result<String, WriterError> {
        let issue = self.live_issue(issue_id)?;
        let nil_if_empty =
            |v: &[String]| -> Option<Vec<String>> { (!v.is_empty()).then(|| v.to_vec()) };
        let (done, remaining, decisions, uncertain) = (
            nil_if_empty(&spec.done),
            nil_if_empty(&spec.remaining),
            nil_if_empty(&spec.decisions),
            nil_if_empty(&spec.uncertain),
        );
        let id = self.add_handoff_row(
            issue_id,
            &Handoff {
                done: done.as_deref(),
                remaining: remaining.as_deref(),
                decisions: decisions.as_deref(),
                uncertain: uncertain.as_deref(),
            },
        )?;
        let prev = self.live_issue(issue_id)?;
        self.update_issue_logged(issue, &prev, "update")?;
        for child in self.descendants(issue_id, &[OPEN, IN_PROGRESS])? {
            if self.has_handoff(&child.id)? {
                continue;
            }
            let done = vec![format!("Cascaded from {issue_id}")];
            self.add_handoff_row(
                &child.id,
                &Handoff {
                    done: Some(&done),
                    remaining: None,
                    decisions: None,
                    uncertain: None,
                },
            )?;
            let message = format!("Cascaded handoff from {issue_id}");
            self.add_log_entry(&child.id, "", &message, LogType::Progress, false)?;
        }
        Ok(id)
    }

    /// td's `AddComment`.
    pub fn add_comment_row(&mut self, issue_id: &str, text: &str) -> Result<String, WriterError> {
        let id = self.ids.comment();
        let at: Instant = self.clock.now();
        self.conn
            .execute(
                "INSERT INTO comments (id, issue_id, session_id, text, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                rusqlite::params![id, issue_id, self.session, text, sqlite_text(&at)],
            )
            .op("insert comment")?;
        let json = go_map(vec![
            ("id", Value::from(id.as_str())),
            ("issue_id", Value::from(issue_id)),
            ("session_id", Value::from(self.session)),
            ("text", Value::from(text)),
            ("created_at", Value::from(rfc3339_nano(&at))),
        ]);
        self.log_own_now(Event {
            action: "create",
            entity: "comments",
            id: &id,
            previous: "",
            new: &json,
        })?;
        Ok(id)
    }

    /// Live descendants (children, grandchildren, …) in td's breadth-first order, filtered by
    /// status.
    pub fn descendants(
        &self,
        issue_id: &str,
        statuses: &[&str],
    ) -> Result<Vec<Issue>, WriterError> {
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut queue = std::collections::VecDeque::from([issue_id.to_string()]);
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id FROM issues WHERE parent_id = ?1 AND deleted_at IS NULL ORDER BY rowid",
            )
            .op("read children")?;
        let mut ids = Vec::new();
        while let Some(current) = queue.pop_front() {
            if !seen.insert(current.clone()) {
                continue;
            }
            let children: Vec<String> = stmt
                .query_map([&current], |r| r.get(0))
                .op("read children")?
                .collect::<Result<_, _>>()
                .op("read children")?;
            ids.extend(children.iter().cloned());
            queue.extend(children);
        }
        for id in ids {
            if let Some(issue) = Issue::load(self.conn, &id)?
                && statuses.contains(&issue.status.as_str())
            {
                out.push(issue);
            }
        }
        Ok(out)
    }
}

/// Whether a log says something a reviewer needs (td skips its own workflow boilerplate).
fn is_substantive(message: &str, log_type: &str) -> bool {
    if message.is_empty() {
        return false;
    }
    match log_type {
        "progress" | "orchestration" => !is_routine(message),
        _ => true,
    }
}

fn is_routine(message: &str) -> bool {
    let m = message.trim().to_lowercase();
    const EXACT: &[&str] = &[
        "",
        "started work",
        "submitted for review",
        "approved",
        "rejected",
        "closed",
    ];
    const PREFIXES: &[&str] = &[
        "submitted for review via ",
        "approved: ",
        "rejected: ",
        "closed: ",
        "cascaded review from ",
        "auto-unblocked (",
    ];
    EXACT.contains(&m.as_str()) || PREFIXES.iter().any(|p| m.starts_with(p))
}

impl TdWriter<'_> {
    /// `td log <issue> <message>` (a progress log, tied to this writer's active work session).
    pub fn add_log(&mut self, issue_id: &str, message: &str) -> Result<String, WriterError> {
        self.add_log_with_type(issue_id, message, LogType::Progress)
    }

    /// `td log --type <t> <issue> <message>`.
    pub fn add_log_with_type(
        &mut self,
        issue_id: &str,
        message: &str,
        log_type: LogType,
    ) -> Result<String, WriterError> {
        let ws = self.active_ws.clone().unwrap_or_default();
        self.write(|ctx| {
            ctx.live_issue(issue_id)?;
            ctx.add_log_entry(issue_id, &ws, message, log_type, false)
        })
    }

    /// `td comment <issue> <text>`.
    pub fn add_comment(&mut self, issue_id: &str, text: &str) -> Result<String, WriterError> {
        self.write(|ctx| {
            ctx.live_issue(issue_id)?;
            ctx.add_comment_row(issue_id, text)
        })
    }

    /// `td handoff <issue> --done … --remaining … --decision … --uncertain …`: the handoff,
    /// the issue's `update` event, and cascaded handoffs to descendants that have none.
    pub fn add_handoff(&mut self, issue_id: &str, h: &HandoffSpec) -> Result<String, WriterError> {
        self.write(|ctx| ctx.handoff(issue_id, h))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substantive_logs_as_td_judges_them() {
        assert!(!is_substantive("Started work", "progress"));
        assert!(!is_substantive("Cascaded review from td-1", "progress"));
        assert!(is_substantive("Blocked", "blocker"));
        assert!(is_substantive("Unblocked", "progress"));
        assert!(is_substantive("Approved", "decision"));
        assert!(!is_substantive("", "decision"));
    }
}
