//! `td create`, `td update`, `td delete`, `td restore`.

use super::{
    TdWriter,
    error::WriterError,
    history,
    issue::Issue,
    schema::Schema,
    spec::{
        IssueChange, IssueSpec, merge_labels, normalize_kind, normalize_priority, validate_points,
        validate_title,
    },
};

fn require_dates(schema: &Schema, defer: bool, due: bool) -> Result<(), WriterError> {
    if defer {
        schema.require_column("issues", "defer_until", "defer date")?;
    }
    if due {
        schema.require_column("issues", "due_date", "due date")?;
    }
    Ok(())
}

impl TdWriter<'_> {
    /// `td create`: the issue and its `create` event (and td's "created" session history).
    /// A sprint, which td's create cannot set, follows as a `td update --sprint` (a second
    /// event). Returns the new id.
    pub fn create_issue(&mut self, spec: &IssueSpec) -> Result<String, WriterError> {
        validate_title(&spec.title)?;
        let kind = normalize_kind(&spec.kind)?;
        let priority = normalize_priority(&spec.priority)?;
        validate_points(spec.points)?;
        let labels = merge_labels(&spec.labels);
        {
            let schema = self.current_schema()?;
            require_dates(schema, spec.defer_until.is_some(), spec.due_date.is_some())?;
            if !spec.sprint.is_empty() {
                schema.require_column("issues", "sprint", "sprint")?;
            }
        }
        self.write(|ctx| {
            let now = ctx.clock.now();
            let mut issue = Issue::new(String::new(), spec.title.clone(), now);
            issue.description = spec.description.clone();
            issue.kind = kind;
            issue.priority = priority;
            issue.points = spec.points;
            issue.labels = labels;
            issue.parent_id = spec.parent_id.clone();
            issue.acceptance = spec.acceptance.clone();
            issue.minor = spec.minor;
            issue.defer_until = spec.defer_until.clone();
            issue.due_date = spec.due_date.clone();
            issue.creator_session = ctx.session.to_string();
            ctx.create_issue_logged(&mut issue)?;
            ctx.record_session_action(&issue.id, history::CREATED)?;
            if !spec.sprint.is_empty() {
                let prev = ctx.live_issue(&issue.id)?;
                let mut next = prev.clone();
                next.sprint = spec.sprint.clone();
                ctx.update_issue_logged(next, &prev, "update")?;
            }
            Ok(issue.id)
        })
    }

    /// `td update <id> --title … --priority …`: one `update` event with both images (written
    /// even when nothing changed, as td does). Empty title/type/priority are ignored like
    /// td's empty flags.
    pub fn update_issue(&mut self, id: &str, change: &IssueChange) -> Result<(), WriterError> {
        let kind = match change.kind.as_deref().filter(|k| !k.is_empty()) {
            Some(k) => Some(normalize_kind(k)?),
            None => None,
        };
        let priority = match change.priority.as_deref().filter(|p| !p.is_empty()) {
            Some(p) => Some(normalize_priority(p)?),
            None => None,
        };
        if let Some(points) = change.points {
            validate_points(points)?;
        }
        {
            let schema = self.current_schema()?;
            require_dates(
                schema,
                change.defer_until.is_some(),
                change.due_date.is_some(),
            )?;
            if change.sprint.is_some() {
                schema.require_column("issues", "sprint", "sprint")?;
            }
        }
        self.write(|ctx| {
            let issue = ctx.live_issue(id)?;
            let mut next = issue.clone();
            if let Some(title) = change.title.as_deref().filter(|t| !t.is_empty()) {
                next.title = title.to_string();
            }
            if let Some(d) = &change.description {
                next.description = d.clone();
            }
            if let Some(a) = &change.acceptance {
                next.acceptance = a.clone();
            }
            if let Some(k) = kind {
                next.kind = k;
            }
            if let Some(p) = priority {
                next.priority = p;
            }
            if let Some(points) = change.points {
                next.points = points;
            }
            if let Some(labels) = &change.labels {
                next.labels = merge_labels(labels);
            }
            if let Some(s) = &change.sprint {
                next.sprint = s.clone();
            }
            if let Some(p) = &change.parent_id {
                next.parent_id = p.clone();
            }
            if let Some(m) = change.minor {
                next.minor = m;
            }
            if let Some(defer) = &change.defer_until {
                // td counts a deferral that moves the date later.
                if let (Some(new), Some(old)) = (defer, &issue.defer_until)
                    && new > old
                {
                    next.defer_count += 1;
                }
                next.defer_until = defer.clone();
            }
            if let Some(due) = &change.due_date {
                next.due_date = due.clone();
            }
            ctx.update_issue_logged(next, &issue, "update")?;
            Ok(())
        })
    }

    /// `td delete <id>`: td's soft delete (`delete` event, old image only).
    pub fn delete_issue(&mut self, id: &str) -> Result<(), WriterError> {
        self.write(|ctx| {
            ctx.live_issue(id)?;
            ctx.delete_issue_logged(id)
        })
    }

    /// `td restore <id>` of a soft-deleted issue (refused for a live one).
    pub fn restore_issue(&mut self, id: &str) -> Result<(), WriterError> {
        self.write(|ctx| {
            let issue =
                Issue::load(ctx.conn, id)?.ok_or_else(|| WriterError::issue_not_found(id))?;
            if issue.deleted_at.is_none() {
                return Err(WriterError::refused(format!("issue {id} is not deleted")));
            }
            ctx.restore_issue_logged(id)
        })
    }
}
