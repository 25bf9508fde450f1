//! td's logged issue writes (`internal/db/issues_logged.go`): every issue change and its
//! action_log row, with the previous image re-read inside the transaction.

use super::{
    Ctx,
    action_log::Event,
    clock::sqlite_text,
    error::{Sql, WriterError},
    gojson::GoStruct,
    ids::IdGen,
    issue::{Issue, OPEN},
    reviews::review_invalidating,
};

impl Ctx<'_> {
    /// The issue a command acts on: missing and soft-deleted issues are not found.
    pub fn live_issue(&self, id: &str) -> Result<Issue, WriterError> {
        match Issue::load(self.conn, id)? {
            Some(issue) if issue.deleted_at.is_none() => Ok(issue),
            _ => Err(WriterError::issue_not_found(id)),
        }
    }

    /// A freshly minted id not yet used in `table` (td retries its random ids on a primary-key
    /// collision; short ids such as `ws-` + 4 hex do collide).
    pub fn unused_id(
        &mut self,
        table: &str,
        mint: impl Fn(&mut IdGen) -> String,
    ) -> Result<String, WriterError> {
        let sql = format!("SELECT EXISTS(SELECT 1 FROM {table} WHERE id = ?1)");
        for _ in 0..64 {
            let id = mint(self.ids);
            let taken: bool = self
                .conn
                .query_row(&sql, [&id], |r| r.get(0))
                .op("check id")?;
            if !taken {
                return Ok(id);
            }
        }
        Err(WriterError::refused(format!(
            "failed to generate a unique {table} id"
        )))
    }

    /// td's `CreateIssueLogged`: the row and a `create` event with the full Issue JSON.
    pub fn create_issue_logged(&mut self, issue: &mut Issue) -> Result<(), WriterError> {
        let now = self.clock.now();
        issue.created_at = now;
        issue.updated_at = now;
        issue.id = self.unused_id("issues", IdGen::issue)?;
        issue.insert(self.conn, self.schema)?;
        let json = issue.to_json(self.schema);
        self.log_own(
            Event {
                action: "create",
                entity: "issue",
                id: &issue.id,
                previous: "",
                new: &json,
            },
            &now,
        )?;
        Ok(())
    }

    /// td's logged update: an issue landing on open loses its claim, a change that voids a
    /// standing approval supersedes it (events first), then the full row is written and
    /// logged under `action` with before and after images.
    pub fn update_issue_logged(
        &mut self,
        mut next: Issue,
        prev: &Issue,
        action: &str,
    ) -> Result<Issue, WriterError> {
        release_claim_on_open(&mut next);
        if review_invalidating(prev, &next) {
            self.supersede_active_reviews(&next.id)?;
        }
        let previous = prev.to_json(self.schema);
        next.updated_at = self.clock.now();
        next.write_update(self.conn, self.schema)?;
        let new = next.to_json(self.schema);
        self.log_own(
            Event {
                action,
                entity: "issue",
                id: &next.id,
                previous: &previous,
                new: &new,
            },
            &next.updated_at.clone(),
        )?;
        Ok(next)
    }

    /// The review-aware variant (approve, close-after-review): new_data wraps the issue with
    /// the review ids undo needs; approval actions never supersede their own review.
    pub fn update_issue_logged_with_review_meta(
        &mut self,
        mut next: Issue,
        prev: &Issue,
        action: &str,
        created_review_id: &str,
        prior_active_review_id: &str,
    ) -> Result<Issue, WriterError> {
        release_claim_on_open(&mut next);
        let approval_action = matches!(
            action,
            "approve" | "review_approve" | "review_changes_requested" | "close_after_review"
        );
        if !approval_action && review_invalidating(prev, &next) {
            self.supersede_active_reviews(&next.id)?;
        }
        let previous = prev.to_json(self.schema);
        next.updated_at = self.clock.now();
        next.write_update(self.conn, self.schema)?;
        let mut wrapper = GoStruct::new();
        wrapper
            .raw("issue", &next.to_json(self.schema))
            .str_opt("created_review_id", created_review_id)
            .str_opt("prior_active_review_id", prior_active_review_id);
        let new = wrapper.finish();
        self.log_own(
            Event {
                action,
                entity: "issue",
                id: &next.id,
                previous: &previous,
                new: &new,
            },
            &next.updated_at.clone(),
        )?;
        Ok(next)
    }

    /// td's soft delete: deleted_at and updated_at set, a `delete` event with the old image.
    pub fn delete_issue_logged(&mut self, id: &str) -> Result<(), WriterError> {
        let prev = Issue::load(self.conn, id)?.ok_or_else(|| WriterError::issue_not_found(id))?;
        let previous = prev.to_json(self.schema);
        let now = self.clock.now();
        self.conn
            .execute(
                "UPDATE issues SET deleted_at = ?1, updated_at = ?1 WHERE id = ?2",
                [sqlite_text(&now), id.to_string()],
            )
            .op("soft-delete issue")?;
        self.log_own(
            Event {
                action: "delete",
                entity: "issue",
                id,
                previous: &previous,
                new: "",
            },
            &now,
        )?;
        Ok(())
    }

    /// td's restore: deleted_at cleared, a `restore` event with both images.
    pub fn restore_issue_logged(&mut self, id: &str) -> Result<(), WriterError> {
        let prev = Issue::load(self.conn, id)?.ok_or_else(|| WriterError::issue_not_found(id))?;
        let previous = prev.to_json(self.schema);
        let now = self.clock.now();
        self.conn
            .execute(
                "UPDATE issues SET deleted_at = NULL, updated_at = ?1 WHERE id = ?2",
                [sqlite_text(&now), id.to_string()],
            )
            .op("restore issue")?;
        let restored =
            Issue::load(self.conn, id)?.ok_or_else(|| WriterError::issue_not_found(id))?;
        let new = restored.to_json(self.schema);
        self.log_own(
            Event {
                action: "restore",
                entity: "issue",
                id,
                previous: &previous,
                new: &new,
            },
            &now,
        )?;
        Ok(())
    }
}

/// An issue landing on open is unclaimed work: td clears its implementer on every path.
fn release_claim_on_open(next: &mut Issue) {
    if next.status == OPEN {
        next.implementer_session.clear();
    }
}
