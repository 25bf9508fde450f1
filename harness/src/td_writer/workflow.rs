//! The status commands (`cmd/start.go`, `cmd/review.go`, `cmd/block.go`): td's transition
//! checks and review policy, the issue event, the log td writes with it, and td's cascades.

use super::{
    Ctx, TdWriter,
    error::WriterError,
    history,
    issue::{BLOCKED, CLOSED, IN_PROGRESS, IN_REVIEW, Issue, OPEN},
    policy::{Involvement, approve_refusal, close_refusal, valid_transition},
    reviews::{APPROVED, Review},
    spec::LogType,
};

fn invalid(verb: &str, issue: &Issue) -> WriterError {
    WriterError::refused(format!(
        "cannot {verb} {}: invalid transition from {}",
        issue.id, issue.status
    ))
}

impl Ctx<'_> {
    fn start_issue(&mut self, id: &str) -> Result<(), WriterError> {
        let issue = self.live_issue(id)?;
        if issue.status == IN_PROGRESS {
            return Err(WriterError::refused(
                if issue.implementer_session == self.session {
                    format!("already started {id}")
                } else {
                    format!("cannot start {id}: already in_progress")
                },
            ));
        }
        if !valid_transition(&issue.status, IN_PROGRESS) {
            return Err(invalid("start", &issue));
        }
        if issue.status == BLOCKED {
            return Err(WriterError::refused(format!(
                "cannot start blocked issue: {id} (use --force to override)"
            )));
        }
        let mut next = issue.clone();
        next.status = IN_PROGRESS.into();
        next.implementer_session = self.session.to_string();
        self.update_issue_logged(next, &issue, "start")?;
        self.record_session_action(id, history::STARTED)?;
        self.add_log_entry(id, "", "Started work", LogType::Progress, false)?;
        Ok(())
    }

    /// td's `submitIssueForReview`: the review event and its log.
    fn submit_for_review(&mut self, issue: Issue, message: &str) -> Result<(), WriterError> {
        if issue.status == IN_REVIEW {
            return Err(WriterError::refused(format!(
                "cannot review {}: already in review",
                issue.id
            )));
        }
        if !valid_transition(&issue.status, IN_REVIEW) {
            return Err(invalid("review", &issue));
        }
        let mut next = issue.clone();
        next.status = IN_REVIEW.into();
        if next.implementer_session.is_empty() {
            next.implementer_session = self.session.to_string();
        }
        next.review_requested_by_session = self.session.to_string();
        self.update_issue_logged(next, &issue, "review")?;
        self.add_log_entry(&issue.id, "", message, LogType::Progress, false)?;
        Ok(())
    }

    fn review_issue(&mut self, id: &str) -> Result<(), WriterError> {
        let issue = self.live_issue(id)?;
        // td writes the auto handoff before it validates; refusing first writes nothing.
        if issue.status == IN_REVIEW || !valid_transition(&issue.status, IN_REVIEW) {
            return self.submit_for_review(issue, "");
        }
        if !self.has_handoff(id)? {
            self.add_auto_review_handoff(id)?;
        }
        self.submit_for_review(issue, "Submitted for review")?;
        let message = format!("Cascaded review from {id}");
        for child in self.descendants(id, &[OPEN, IN_PROGRESS])? {
            // td skips a descendant it cannot submit and goes on.
            match self.submit_for_review(child, &message) {
                Ok(()) | Err(WriterError::Refused(_)) => {}
                Err(e) => return Err(e),
            }
        }
        self.cascade_up(id, IN_REVIEW)
    }

    fn approve_issue(&mut self, id: &str) -> Result<(), WriterError> {
        let issue = self.live_issue(id)?;
        if issue.status == CLOSED {
            return Err(WriterError::refused(format!(
                "already approved/closed {id}"
            )));
        }
        if let Some(active) = Review::active_approval(self.conn, self.schema, id)? {
            return self.close_after_review(issue, &active);
        }
        if !valid_transition(&issue.status, CLOSED) || issue.status != IN_REVIEW {
            return Err(invalid("approve", &issue));
        }
        let involved = !issue.minor && self.was_implementation_involved(id)?;
        if let Some(reason) = approve_refusal(&issue, self.session, involved) {
            return Err(WriterError::Refused(reason));
        }
        let now = self.clock.now();
        let mut next = issue.clone();
        next.status = CLOSED.into();
        next.reviewer_session = self.session.to_string();
        next.closed_by_session = self.session.to_string();
        next.reviewed_at = Some(now);
        next.closed_at = Some(now);
        if self.schema.has_table("issue_reviews") {
            let prior = Review::active_approval(self.conn, self.schema, id)?
                .map(|r| r.id)
                .unwrap_or_default();
            self.supersede_active_reviews(id)?;
            let review_id = self.create_review(id, APPROVED, &issue.review_requested_by_session)?;
            self.update_issue_logged_with_review_meta(next, &issue, "approve", &review_id, &prior)?;
        } else {
            self.update_issue_logged(next, &issue, "approve")?;
        }
        self.record_session_action(id, history::REVIEWED)?;
        self.add_log_entry(id, "", "Approved", LogType::Progress, false)?;
        self.cascade_up(id, CLOSED)?;
        self.unblock_dependents(id)
    }

    /// td's "Mode C": an approval is already recorded, so the issue closes on it. Without
    /// `--reason` td lets only the reviewer of record do that.
    fn close_after_review(&mut self, issue: Issue, active: &Review) -> Result<(), WriterError> {
        if issue.status != IN_REVIEW {
            return Err(invalid("approve", &issue));
        }
        if active.reviewer_session != self.session {
            return Err(WriterError::refused(format!(
                "close-using-recorded-approval requires --reason when closer ({}) != reviewer ({}) for {}",
                self.session, active.reviewer_session, issue.id
            )));
        }
        let mut next = issue.clone();
        next.status = CLOSED.into();
        next.closed_by_session = self.session.to_string();
        next.closed_at = Some(self.clock.now());
        self.update_issue_logged_with_review_meta(next, &issue, "close_after_review", "", "")?;
        self.record_session_action(&issue.id, history::CLOSED)?;
        let message = format!(
            "Closed after review {} (by {})",
            active.id, active.reviewer_session
        );
        self.add_log_entry(&issue.id, "", &message, LogType::Progress, false)?;
        self.cascade_up(&issue.id, CLOSED)?;
        self.unblock_dependents(&issue.id)
    }

    fn reject_issue(&mut self, id: &str) -> Result<(), WriterError> {
        let issue = self.live_issue(id)?;
        if issue.status == OPEN {
            return Err(WriterError::refused(format!("already reopened {id}")));
        }
        if issue.status != IN_REVIEW {
            return Err(WriterError::refused(format!(
                "cannot reject {id}: must be in_review (currently {})",
                issue.status
            )));
        }
        let mut next = issue.clone();
        next.status = OPEN.into();
        next.implementer_session.clear();
        next.reviewer_session.clear();
        next.reviewed_at = None;
        next.review_requested_by_session.clear();
        self.update_issue_logged(next, &issue, "reject")?;
        self.add_log_entry(id, "", "Rejected", LogType::Progress, false)?;
        Ok(())
    }

    fn block_issue(&mut self, id: &str) -> Result<(), WriterError> {
        let issue = self.live_issue(id)?;
        if issue.status == BLOCKED {
            return Err(WriterError::refused(format!("already blocked {id}")));
        }
        if !valid_transition(&issue.status, BLOCKED) {
            return Err(invalid("block", &issue));
        }
        let mut next = issue.clone();
        next.status = BLOCKED.into();
        self.update_issue_logged(next, &issue, "block")?;
        self.add_log_entry(id, "", "Blocked", LogType::Blocker, false)?;
        Ok(())
    }

    fn unblock_issue(&mut self, id: &str) -> Result<(), WriterError> {
        let issue = self.live_issue(id)?;
        if issue.status == OPEN {
            return Err(WriterError::refused(format!("already unblocked {id}")));
        }
        if !valid_transition(&issue.status, OPEN) {
            return Err(invalid("unblock", &issue));
        }
        if issue.status != BLOCKED {
            return Err(WriterError::refused(format!(
                "{id} is not blocked (status: {})",
                issue.status
            )));
        }
        let mut next = issue.clone();
        next.status = OPEN.into();
        next.implementer_session.clear();
        self.update_issue_logged(next, &issue, "unblock")?;
        self.add_log_entry(id, "", "Unblocked", LogType::Progress, false)?;
        Ok(())
    }

    fn close_issue(&mut self, id: &str) -> Result<(), WriterError> {
        let issue = self.live_issue(id)?;
        if issue.status == CLOSED {
            return Err(WriterError::refused(format!("already closed {id}")));
        }
        if !valid_transition(&issue.status, CLOSED) {
            return Err(invalid("close", &issue));
        }
        if issue.status == IN_REVIEW && !issue.minor {
            return Err(WriterError::refused(format!(
                "cannot close {id}: issue is in review; use 'td approve {id}' to close reviewed work"
            )));
        }
        let involvement = Involvement {
            any: self.was_involved(id)?,
            implementation: self.was_implementation_involved(id)?,
            issue_has_implementation: self.has_implementation_history(id)?,
        };
        if let Some(reason) = close_refusal(&issue, self.session, &involvement) {
            return Err(WriterError::Refused(reason));
        }
        let mut next = issue.clone();
        next.status = CLOSED.into();
        next.closed_by_session = self.session.to_string();
        next.closed_at = Some(self.clock.now());
        self.update_issue_logged(next, &issue, "close")?;
        self.add_log_entry(id, "", "Closed", LogType::Progress, false)?;
        self.cascade_up(id, CLOSED)?;
        self.unblock_dependents(id)
    }

    fn reopen_issue(&mut self, id: &str) -> Result<(), WriterError> {
        let issue = self.live_issue(id)?;
        if issue.status == OPEN {
            return Err(WriterError::refused(format!("already reopened {id}")));
        }
        if !valid_transition(&issue.status, OPEN) {
            return Err(invalid("reopen", &issue));
        }
        if issue.status != CLOSED {
            return Err(WriterError::refused(format!(
                "{id} is not closed (status: {})",
                issue.status
            )));
        }
        let mut next = issue.clone();
        next.status = OPEN.into();
        next.reviewer_session.clear();
        next.closed_at = None;
        next.implementer_session.clear();
        self.update_issue_logged(next, &issue, "reopen")?;
        self.add_log_entry(id, "", "Reopened", LogType::Progress, false)?;
        Ok(())
    }
}

impl TdWriter<'_> {
    /// `td start <id>`: in_progress under this session, the `start` event, "Started work".
    pub fn start(&mut self, id: &str) -> Result<(), WriterError> {
        self.write(|ctx| ctx.start_issue(id))
    }

    /// `td review <id>`: an auto handoff if the issue has none, the `review` event and log,
    /// the same for open/in-progress descendants, and the epic cascade upwards.
    pub fn review(&mut self, id: &str) -> Result<(), WriterError> {
        self.write(|ctx| ctx.review_issue(id))
    }

    /// `td approve <id>`: a review row (schema >= 31), the `approve` event, "Approved", and the
    /// cascades of a close. Refused for the session that implemented a non-minor issue.
    pub fn approve(&mut self, id: &str) -> Result<(), WriterError> {
        self.write(|ctx| ctx.approve_issue(id))
    }

    /// `td reject <id>`: back to open, review stamps cleared.
    pub fn reject(&mut self, id: &str) -> Result<(), WriterError> {
        self.write(|ctx| ctx.reject_issue(id))
    }

    /// `td block <id>`.
    pub fn block(&mut self, id: &str) -> Result<(), WriterError> {
        self.write(|ctx| ctx.block_issue(id))
    }

    /// `td unblock <id>`.
    pub fn unblock(&mut self, id: &str) -> Result<(), WriterError> {
        self.write(|ctx| ctx.unblock_issue(id))
    }

    /// `td close <id>` (the admin close; td's policy refuses it for implementers, creators of
    /// started work and in-review issues).
    pub fn close(&mut self, id: &str) -> Result<(), WriterError> {
        self.write(|ctx| ctx.close_issue(id))
    }

    /// `td reopen <id>`.
    pub fn reopen(&mut self, id: &str) -> Result<(), WriterError> {
        self.write(|ctx| ctx.reopen_issue(id))
    }
}
