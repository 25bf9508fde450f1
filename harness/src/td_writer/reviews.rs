//! `issue_reviews` (schema >= 31): append-only review rows, superseded rather than edited, each
//! change with its own sync event (`internal/db/reviews.go`).

use rusqlite::{Connection, Row};

use super::{
    Ctx,
    action_log::Event,
    clock::{Instant, parse_stored, sqlite_text},
    error::{Sql, WriterError},
    gojson::GoStruct,
    issue::{CLOSED, IN_REVIEW, Issue, OPEN, zero_time},
    schema::Schema,
};

pub(crate) const APPROVED: &str = "approved";

#[derive(Debug, Clone)]
pub(crate) struct Review {
    pub id: String,
    pub issue_id: String,
    pub reviewer_session: String,
    pub decision: String,
    pub summary: String,
    pub requested_by_session: String,
    pub created_at: Instant,
    pub superseded_at: Option<Instant>,
    pub self_review: bool,
    pub reviewed_by: String,
}

impl Review {
    /// td's IssueReview JSON: declaration order, `omitempty` fields absent when empty.
    pub fn to_json(&self, schema: &Schema) -> String {
        let mut s = GoStruct::new();
        s.str("id", &self.id)
            .str("issue_id", &self.issue_id)
            .str("reviewer_session", &self.reviewer_session)
            .str("decision", &self.decision)
            .str_opt("summary", &self.summary)
            .str_opt("requested_by_session", &self.requested_by_session)
            .time("created_at", &self.created_at)
            .time_opt("superseded_at", self.superseded_at.as_ref());
        if schema.has("issue_reviews", "self_review") {
            s.bool("self_review", self.self_review);
        }
        if schema.has("issue_reviews", "reviewed_by") {
            s.str_opt("reviewed_by", &self.reviewed_by);
        }
        s.finish()
    }

    fn from_row(r: &Row<'_>) -> rusqlite::Result<Review> {
        let text = |i: usize| -> rusqlite::Result<String> {
            Ok(r.get::<_, Option<String>>(i)?.unwrap_or_default())
        };
        Ok(Review {
            id: text(0)?,
            issue_id: text(1)?,
            reviewer_session: text(2)?,
            decision: text(3)?,
            summary: text(4)?,
            requested_by_session: text(5)?,
            created_at: parse_stored(&text(6)?).unwrap_or_else(zero_time),
            superseded_at: r
                .get::<_, Option<String>>(7)?
                .and_then(|t| parse_stored(&t)),
            self_review: r.get::<_, Option<i64>>(8)?.unwrap_or(0) != 0,
            reviewed_by: text(9)?,
        })
    }

    fn select(schema: &Schema) -> String {
        let opt = |c: &str| {
            if schema.has("issue_reviews", c) {
                c.to_string()
            } else {
                "NULL".to_string()
            }
        };
        format!(
            "SELECT id, issue_id, reviewer_session, decision, summary, requested_by_session, \
             created_at, superseded_at, {}, {} FROM issue_reviews",
            opt("self_review"),
            opt("reviewed_by")
        )
    }

    /// All reviews of an issue, oldest first.
    pub fn for_issue(
        conn: &Connection,
        schema: &Schema,
        issue_id: &str,
    ) -> Result<Vec<Review>, WriterError> {
        let sql = format!(
            "{} WHERE issue_id = ?1 ORDER BY created_at ASC",
            Review::select(schema)
        );
        let mut stmt = conn.prepare(&sql).op("read issue_reviews")?;
        let rows = stmt
            .query_map([issue_id], Review::from_row)
            .op("read issue_reviews")?;
        rows.collect::<Result<_, _>>().op("read issue_reviews")
    }

    pub fn by_id(
        conn: &Connection,
        schema: &Schema,
        id: &str,
    ) -> Result<Option<Review>, WriterError> {
        let sql = format!("{} WHERE id = ?1", Review::select(schema));
        let mut stmt = conn.prepare(&sql).op("read issue_review")?;
        let mut rows = stmt
            .query_map([id], Review::from_row)
            .op("read issue_review")?;
        rows.next().transpose().op("read issue_review")
    }

    /// The current approval (td: newest non-superseded `approved` or cascade approval).
    pub fn active_approval(
        conn: &Connection,
        schema: &Schema,
        issue_id: &str,
    ) -> Result<Option<Review>, WriterError> {
        if !schema.has_table("issue_reviews") {
            return Ok(None);
        }
        let sql = format!(
            "{} WHERE issue_id = ?1 AND superseded_at IS NULL \
             AND decision IN ('approved', 'approved_by_parent_cascade') \
             ORDER BY created_at DESC LIMIT 1",
            Review::select(schema)
        );
        let mut stmt = conn.prepare(&sql).op("read active approval")?;
        let mut rows = stmt
            .query_map([issue_id], Review::from_row)
            .op("read active approval")?;
        rows.next().transpose().op("read active approval")
    }
}

/// Whether an issue change voids a standing approval (td's `reviewInvalidatingDiff`): content
/// edits, leaving review other than by closing, and reopening. Labels, sprint and dates don't.
pub(crate) fn review_invalidating(prev: &Issue, next: &Issue) -> bool {
    prev.description != next.description
        || prev.title != next.title
        || prev.kind != next.kind
        || prev.priority != next.priority
        || prev.minor != next.minor
        || prev.parent_id != next.parent_id
        || (prev.status == IN_REVIEW && next.status != IN_REVIEW && next.status != CLOSED)
        || (prev.status == CLOSED && next.status == OPEN)
}

impl Ctx<'_> {
    /// Supersedes every active review of the issue, one sync event each (td writes them
    /// without events when it has no session).
    pub fn supersede_active_reviews(&mut self, issue_id: &str) -> Result<(), WriterError> {
        if !self.schema.has_table("issue_reviews") {
            return Ok(());
        }
        let now = self.clock.now();
        if self.session.is_empty() {
            self.conn
                .execute(
                    "UPDATE issue_reviews SET superseded_at = ?1 WHERE issue_id = ?2 AND superseded_at IS NULL",
                    [sqlite_text(&now), issue_id.to_string()],
                )
                .op("supersede reviews")?;
            return Ok(());
        }
        for previous in Review::for_issue(self.conn, self.schema, issue_id)? {
            if previous.superseded_at.is_some() {
                continue;
            }
            self.conn
                .execute(
                    "UPDATE issue_reviews SET superseded_at = ?1 WHERE id = ?2 AND superseded_at IS NULL",
                    [sqlite_text(&now), previous.id.clone()],
                )
                .op("supersede review")?;
            let mut next = previous.clone();
            next.superseded_at = Some(now);
            let (prev_json, next_json) = (previous.to_json(self.schema), next.to_json(self.schema));
            self.log_own_now(Event {
                action: "update",
                entity: "issue_reviews",
                id: &previous.id,
                previous: &prev_json,
                new: &next_json,
            })?;
        }
        Ok(())
    }

    /// Appends a review row and its `create` event; returns its id.
    pub fn create_review(
        &mut self,
        issue_id: &str,
        decision: &str,
        requested_by: &str,
    ) -> Result<String, WriterError> {
        let id = self.ids.review();
        let created_at = self.clock.now();
        let review = Review {
            id: id.clone(),
            issue_id: issue_id.to_string(),
            reviewer_session: self.session.to_string(),
            decision: decision.to_string(),
            summary: String::new(),
            requested_by_session: requested_by.to_string(),
            created_at,
            superseded_at: None,
            self_review: false,
            reviewed_by: String::new(),
        };
        let mut cols = vec![
            "id",
            "issue_id",
            "reviewer_session",
            "decision",
            "summary",
            "requested_by_session",
            "created_at",
        ];
        let created = sqlite_text(&created_at);
        let mut values: Vec<&dyn rusqlite::ToSql> = vec![
            &review.id,
            &review.issue_id,
            &review.reviewer_session,
            &review.decision,
            &review.summary,
            &review.requested_by_session,
            &created,
        ];
        if self.schema.has("issue_reviews", "self_review") {
            cols.push("self_review");
            values.push(&review.self_review);
        }
        if self.schema.has("issue_reviews", "reviewed_by") {
            cols.push("reviewed_by");
            values.push(&review.reviewed_by);
        }
        let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
        let sql = format!(
            "INSERT INTO issue_reviews ({}) VALUES ({})",
            cols.join(", "),
            marks.join(", ")
        );
        self.conn
            .execute(&sql, values.as_slice())
            .op("insert issue_review")?;
        let json = review.to_json(self.schema);
        self.log_own_now(Event {
            action: "create",
            entity: "issue_reviews",
            id: &id,
            previous: "",
            new: &json,
        })?;
        Ok(id)
    }

    /// Undo's removal of a review an action created (`review_delete`, a hard delete).
    pub fn delete_review_logged(&mut self, review_id: &str) -> Result<(), WriterError> {
        let Some(previous) = Review::by_id(self.conn, self.schema, review_id)? else {
            return Ok(());
        };
        self.conn
            .execute("DELETE FROM issue_reviews WHERE id = ?1", [review_id])
            .op("delete issue_review")?;
        let json = previous.to_json(self.schema);
        self.log_own_now(Event {
            action: "review_delete",
            entity: "issue_reviews",
            id: review_id,
            previous: &json,
            new: "",
        })?;
        Ok(())
    }

    /// Undo's reactivation of an approval the undone action had superseded.
    pub fn clear_review_superseded_logged(&mut self, review_id: &str) -> Result<(), WriterError> {
        let Some(previous) = Review::by_id(self.conn, self.schema, review_id)? else {
            return Ok(());
        };
        if previous.superseded_at.is_none() {
            return Ok(());
        }
        self.conn
            .execute(
                "UPDATE issue_reviews SET superseded_at = NULL WHERE id = ?1",
                [review_id],
            )
            .op("reactivate issue_review")?;
        let mut next = previous.clone();
        next.superseded_at = None;
        let (prev_json, next_json) = (previous.to_json(self.schema), next.to_json(self.schema));
        self.log_own_now(Event {
            action: "update",
            entity: "issue_reviews",
            id: review_id,
            previous: &prev_json,
            new: &next_json,
        })?;
        Ok(())
    }

    /// After a dependency, file-link or work-session-tag change: a standing approval no longer
    /// covers the issue, so td supersedes it and clears the issue's review stamp (logged).
    pub fn supersede_approval_if_linked(&mut self, issue_id: &str) -> Result<(), WriterError> {
        if Review::active_approval(self.conn, self.schema, issue_id)?.is_none() {
            return Ok(());
        }
        self.supersede_active_reviews(issue_id)?;
        let Some(prev) = Issue::load(self.conn, issue_id)? else {
            return Ok(());
        };
        if prev.reviewer_session.is_empty() && prev.reviewed_at.is_none() {
            return Ok(());
        }
        let mut next = prev.clone();
        next.reviewer_session.clear();
        next.reviewed_at = None;
        self.update_issue_logged(next, &prev, "update")?;
        Ok(())
    }
}
