//! `issue_session_history`: td's local record of which session created, started or reviewed
//! an issue. Never synced, but td's review and close policy reads it, so the writer keeps it.

use super::{
    Ctx,
    clock::sqlite_text,
    error::{Sql, WriterError},
};

pub(crate) const CREATED: &str = "created";
pub(crate) const STARTED: &str = "started";
pub(crate) const REVIEWED: &str = "reviewed";
pub(crate) const CLOSED: &str = "closed";

impl Ctx<'_> {
    pub fn record_session_action(
        &mut self,
        issue_id: &str,
        action: &str,
    ) -> Result<(), WriterError> {
        if !self.schema.has_table("issue_session_history") {
            return Ok(());
        }
        // td mints these with its issue-id generator.
        let id = self.ids.issue();
        let now = self.clock.now();
        self.conn
            .execute(
                "INSERT INTO issue_session_history (id, issue_id, session_id, action, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                rusqlite::params![id, issue_id, self.session, action, sqlite_text(&now)],
            )
            .op("insert issue_session_history")?;
        Ok(())
    }

    /// Whether this session ever touched the issue (any recorded action).
    pub fn was_involved(&self, issue_id: &str) -> Result<bool, WriterError> {
        self.count_history(issue_id, Some(self.session), false)
    }

    /// Whether this session ever started (or unstarted) the issue.
    pub fn was_implementation_involved(&self, issue_id: &str) -> Result<bool, WriterError> {
        self.count_history(issue_id, Some(self.session), true)
    }

    /// Whether any session ever started (or unstarted) the issue.
    pub fn has_implementation_history(&self, issue_id: &str) -> Result<bool, WriterError> {
        self.count_history(issue_id, None, true)
    }

    fn count_history(
        &self,
        issue_id: &str,
        session: Option<&str>,
        implementation_only: bool,
    ) -> Result<bool, WriterError> {
        if !self.schema.has_table("issue_session_history") {
            return Ok(false);
        }
        let mut sql =
            String::from("SELECT COUNT(*) FROM issue_session_history WHERE issue_id = ?1");
        if session.is_some() {
            sql.push_str(" AND session_id = ?2");
        }
        if implementation_only {
            sql.push_str(" AND action IN ('started', 'unstarted')");
        }
        let n: i64 = match session {
            Some(s) => self.conn.query_row(&sql, [issue_id, s], |r| r.get(0)),
            None => self.conn.query_row(&sql, [issue_id], |r| r.get(0)),
        }
        .op("read issue_session_history")?;
        Ok(n > 0)
    }
}
