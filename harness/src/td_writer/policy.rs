//! td's status machine and review policy as the CLI applies them by default
//! (`internal/workflow`, `internal/reviewpolicy`; review_policy_mode resolves to "trusted",
//! and `td close` judges with the strict rules).

use super::issue::{BLOCKED, CLOSED, IN_PROGRESS, IN_REVIEW, Issue, OPEN};

/// The transitions td's state machine allows.
pub(crate) fn valid_transition(from: &str, to: &str) -> bool {
    matches!(
        (from, to),
        (OPEN, IN_PROGRESS | BLOCKED | IN_REVIEW | CLOSED)
            | (IN_PROGRESS, OPEN | BLOCKED | IN_REVIEW | CLOSED)
            | (BLOCKED, OPEN | IN_PROGRESS | CLOSED)
            | (IN_REVIEW, OPEN | IN_PROGRESS | CLOSED)
            | (CLOSED, OPEN)
    )
}

/// Why `td approve` (no flags, trusted mode) refuses this session, if it does: whoever
/// implemented the work must name a reviewer or acknowledge a self-review, which this API
/// does not offer. Minor issues are exempt.
pub(crate) fn approve_refusal(
    issue: &Issue,
    session: &str,
    implementation_involved: bool,
) -> Option<String> {
    if issue.minor {
        return None;
    }
    let is_implementer =
        !issue.implementer_session.is_empty() && issue.implementer_session == session;
    (is_implementer || implementation_involved).then(|| {
        format!(
            "cannot approve: you implemented {} (name a reviewer or acknowledge a self-review)",
            issue.id
        )
    })
}

/// What this session knows about its involvement with an issue (from issue_session_history).
pub(crate) struct Involvement {
    pub any: bool,
    pub implementation: bool,
    /// Any session ever started the issue.
    pub issue_has_implementation: bool,
}

/// Why `td close` (no --self-close-exception / --admin) refuses this session, if it does.
pub(crate) fn close_refusal(issue: &Issue, session: &str, inv: &Involvement) -> Option<String> {
    if issue.minor {
        return None;
    }
    let is_implementer =
        !issue.implementer_session.is_empty() && issue.implementer_session == session;
    let is_creator = !issue.creator_session.is_empty() && issue.creator_session == session;
    let id = &issue.id;
    if is_creator && issue.status == OPEN && !inv.implementation && !is_implementer {
        // The creator may close never-started work of their own…
        return inv
            .issue_has_implementation
            .then(|| format!("cannot close: {id} has implementation history and requires review"));
    }
    if is_implementer || inv.implementation {
        return Some(format!("cannot close own implementation: {id}"));
    }
    if is_creator {
        return Some(format!(
            "cannot close: you created {id} and it requires review"
        ));
    }
    inv.any
        .then(|| format!("cannot close: you previously worked on {id}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions() {
        assert!(valid_transition(OPEN, CLOSED));
        assert!(valid_transition(IN_REVIEW, IN_PROGRESS));
        assert!(!valid_transition(IN_REVIEW, BLOCKED));
        assert!(!valid_transition(CLOSED, IN_PROGRESS));
        assert!(!valid_transition(BLOCKED, IN_REVIEW));
    }
}
