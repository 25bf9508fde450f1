//! td's automatic follow-ups (`internal/db/issue_relations.go`): an epic follows its children
//! into review or closed, and closing an issue unblocks dependents whose dependencies are all
//! closed. Each follow-up writes its own events and logs, as td's do.

use super::{
    Ctx,
    error::{Sql, WriterError},
    issue::{BLOCKED, CLOSED, IN_REVIEW, Issue, OPEN},
    spec::LogType,
};

impl Ctx<'_> {
    /// td's `CascadeUpParentStatus` towards `target` (in_review or closed), up the chain.
    pub fn cascade_up(&mut self, issue_id: &str, target: &str) -> Result<(), WriterError> {
        let mut current = issue_id.to_string();
        let mut visited = std::collections::HashSet::new();
        // A parent cycle would make td recurse forever; stop when an issue comes round again.
        while visited.insert(current.clone()) {
            let Some(issue) = Issue::load(self.conn, &current)? else {
                return Ok(());
            };
            if issue.parent_id.is_empty() {
                return Ok(());
            }
            let Some(parent) = Issue::load(self.conn, &issue.parent_id)? else {
                return Ok(());
            };
            if parent.kind != "epic" || parent.status == target || parent.status == CLOSED {
                return Ok(());
            }
            let children = self.direct_children_statuses(&parent.id)?;
            let done = |s: &str| s == CLOSED || (target == IN_REVIEW && s == IN_REVIEW);
            if children.is_empty() || !children.iter().all(|s| done(s)) {
                return Ok(());
            }
            let mut next = parent.clone();
            next.status = target.to_string();
            let action = if target == CLOSED {
                next.closed_at = Some(self.clock.now());
                "close"
            } else {
                "review"
            };
            self.update_issue_logged(next, &parent, action)?;
            let message = format!("Auto-cascaded to {target} (all children complete)");
            self.add_log_entry(&parent.id, "", &message, LogType::Progress, true)?;
            if target == CLOSED {
                self.unblock_dependents(&parent.id)?;
            }
            current = parent.id;
        }
        Ok(())
    }

    fn direct_children_statuses(&self, parent_id: &str) -> Result<Vec<String>, WriterError> {
        let mut stmt = self
            .conn
            .prepare("SELECT status FROM issues WHERE parent_id = ?1 AND deleted_at IS NULL")
            .op("read children")?;
        let rows = stmt
            .query_map([parent_id], |r| r.get::<_, Option<String>>(0))
            .op("read children")?;
        let statuses: Vec<Option<String>> = rows.collect::<Result<_, _>>().op("read children")?;
        Ok(statuses
            .into_iter()
            .map(Option::unwrap_or_default)
            .collect())
    }

    /// td's `CascadeUnblockDependents`: blocked issues depending on `closed_id` whose
    /// dependencies are now all closed go back to open (claim released).
    pub fn unblock_dependents(&mut self, closed_id: &str) -> Result<(), WriterError> {
        for dependent in self.depends_on_edges("depends_on_id", closed_id)? {
            let Some(issue) = Issue::load(self.conn, &dependent)? else {
                continue;
            };
            if issue.status != BLOCKED {
                continue;
            }
            let mut all_closed = true;
            for dep in self.depends_on_edges("issue_id", &dependent)? {
                match Issue::load(self.conn, &dep)? {
                    Some(d) if d.status == CLOSED => {}
                    _ => {
                        all_closed = false;
                        break;
                    }
                }
            }
            if !all_closed {
                continue;
            }
            let mut next = issue.clone();
            next.status = OPEN.to_string();
            next.implementer_session.clear();
            self.update_issue_logged(next, &issue, "unblock")?;
            let message = format!("Auto-unblocked (dependency {closed_id} closed)");
            self.add_log_entry(&dependent, "", &message, LogType::Progress, true)?;
        }
        Ok(())
    }

    /// The other ends of `depends_on` edges: dependents of an issue (`by` = depends_on_id) or
    /// its dependencies (`by` = issue_id), in the order td's unordered query yields them (the
    /// unique index on issue_id, depends_on_id).
    pub fn depends_on_edges(&self, by: &str, id: &str) -> Result<Vec<String>, WriterError> {
        let (select, filter) = if by == "issue_id" {
            ("depends_on_id", "issue_id")
        } else {
            ("issue_id", "depends_on_id")
        };
        let sql = format!(
            "SELECT {select} FROM issue_dependencies WHERE {filter} = ?1 \
             AND relation_type = 'depends_on' ORDER BY issue_id, depends_on_id"
        );
        let mut stmt = self.conn.prepare(&sql).op("read dependencies")?;
        let rows = stmt
            .query_map([id], |r| r.get::<_, String>(0))
            .op("read dependencies")?;
        rows.collect::<Result<_, _>>().op("read dependencies")
    }
}
