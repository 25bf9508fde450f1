//! The entity and action vocabulary of td's sync events, and the one normalisation table that
//! every hop (client push, server insert, apply) uses.
//!
//! td writes entity names both singular and plural and uses many legacy action names in its
//! action_log; on the wire only canonical names travel. Keeping the mapping in one place is the
//! lesson td learned the hard way ("aliases are fragile").

use std::fmt;

/// An entity type that td's taxonomy knows. The first twelve are the tables td syncs; the last
/// three are known to the reference server but never pushed or applied by td clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntityType {
    Issues,
    Logs,
    Comments,
    Handoffs,
    Boards,
    BoardIssuePositions,
    WorkSessions,
    WorkSessionIssues,
    IssueFiles,
    IssueDependencies,
    IssueReviews,
    Notes,
    Sessions,
    GitSnapshots,
    IssueSessionHistory,
}

impl EntityType {
    /// The twelve synced tables, parents before children (the order a fresh replica is filled in
    /// and the order dumps are compared in).
    pub const SYNCED: [EntityType; 12] = [
        EntityType::Issues,
        EntityType::Boards,
        EntityType::WorkSessions,
        EntityType::Notes,
        EntityType::Logs,
        EntityType::Comments,
        EntityType::Handoffs,
        EntityType::BoardIssuePositions,
        EntityType::WorkSessionIssues,
        EntityType::IssueFiles,
        EntityType::IssueDependencies,
        EntityType::IssueReviews,
    ];

    /// Every type the taxonomy accepts on push (td's server accepts all fifteen).
    pub const ALL: [EntityType; 15] = [
        EntityType::Issues,
        EntityType::Boards,
        EntityType::WorkSessions,
        EntityType::Notes,
        EntityType::Logs,
        EntityType::Comments,
        EntityType::Handoffs,
        EntityType::BoardIssuePositions,
        EntityType::WorkSessionIssues,
        EntityType::IssueFiles,
        EntityType::IssueDependencies,
        EntityType::IssueReviews,
        EntityType::Sessions,
        EntityType::GitSnapshots,
        EntityType::IssueSessionHistory,
    ];

    /// Canonical name: the plural table name that travels on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            EntityType::Issues => "issues",
            EntityType::Logs => "logs",
            EntityType::Comments => "comments",
            EntityType::Handoffs => "handoffs",
            EntityType::Boards => "boards",
            EntityType::BoardIssuePositions => "board_issue_positions",
            EntityType::WorkSessions => "work_sessions",
            EntityType::WorkSessionIssues => "work_session_issues",
            EntityType::IssueFiles => "issue_files",
            EntityType::IssueDependencies => "issue_dependencies",
            EntityType::IssueReviews => "issue_reviews",
            EntityType::Notes => "notes",
            EntityType::Sessions => "sessions",
            EntityType::GitSnapshots => "git_snapshots",
            EntityType::IssueSessionHistory => "issue_session_history",
        }
    }

    /// The table name in a td database (equal to the canonical name).
    pub const fn table(self) -> &'static str {
        self.as_str()
    }

    /// Every spelling td has used: the canonical plural and the legacy alias of each type (the
    /// one table [`EntityType::parse`] reads, and the API document's pattern is built from).
    pub const NAMES: [(&'static str, EntityType); 30] = [
        ("issue", EntityType::Issues),
        ("issues", EntityType::Issues),
        ("log", EntityType::Logs),
        ("logs", EntityType::Logs),
        ("comment", EntityType::Comments),
        ("comments", EntityType::Comments),
        ("handoff", EntityType::Handoffs),
        ("handoffs", EntityType::Handoffs),
        ("board", EntityType::Boards),
        ("boards", EntityType::Boards),
        ("board_position", EntityType::BoardIssuePositions),
        ("board_issue_positions", EntityType::BoardIssuePositions),
        ("work_session", EntityType::WorkSessions),
        ("work_sessions", EntityType::WorkSessions),
        ("work_session_issue", EntityType::WorkSessionIssues),
        ("work_session_issues", EntityType::WorkSessionIssues),
        ("file_link", EntityType::IssueFiles),
        ("issue_files", EntityType::IssueFiles),
        ("dependency", EntityType::IssueDependencies),
        ("issue_dependencies", EntityType::IssueDependencies),
        ("issue_review", EntityType::IssueReviews),
        ("issue_reviews", EntityType::IssueReviews),
        ("note", EntityType::Notes),
        ("notes", EntityType::Notes),
        ("session", EntityType::Sessions),
        ("sessions", EntityType::Sessions),
        ("git_snapshot", EntityType::GitSnapshots),
        ("git_snapshots", EntityType::GitSnapshots),
        ("issue_session_history", EntityType::IssueSessionHistory),
        ("issue_session_histories", EntityType::IssueSessionHistory),
    ];

    /// Parses any spelling td has used ([`EntityType::NAMES`]), ASCII case-insensitively.
    pub fn parse(name: &str) -> Option<EntityType> {
        EntityType::NAMES
            .iter()
            .find(|(spelling, _)| spelling.eq_ignore_ascii_case(name))
            .map(|&(_, ty)| ty)
    }

    /// Whether td clients push and apply this type.
    pub fn is_synced(self) -> bool {
        !matches!(
            self,
            EntityType::Sessions | EntityType::GitSnapshots | EntityType::IssueSessionHistory
        )
    }

    /// Columns that exist only on the writer's machine (worktree paths) and must be scrubbed at
    /// every hop: push, pull, apply and conflict records.
    pub fn local_only_fields(self) -> &'static [&'static str] {
        match self {
            EntityType::WorkSessions => &["worktree_id", "worktree_root", "repo_root"],
            _ => &[],
        }
    }
}

impl fmt::Display for EntityType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The five canonical sync verbs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ActionType {
    Create,
    Update,
    /// Hard delete.
    Delete,
    /// Sets `deleted_at`.
    SoftDelete,
    /// Clears `deleted_at`.
    Restore,
}

impl ActionType {
    pub const ALL: [ActionType; 5] = [
        ActionType::Create,
        ActionType::Update,
        ActionType::Delete,
        ActionType::SoftDelete,
        ActionType::Restore,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            ActionType::Create => "create",
            ActionType::Update => "update",
            ActionType::Delete => "delete",
            ActionType::SoftDelete => "soft_delete",
            ActionType::Restore => "restore",
        }
    }

    /// Exact canonical name only.
    pub fn parse_canonical(name: &str) -> Option<ActionType> {
        ActionType::ALL.into_iter().find(|a| a.as_str() == name)
    }

    /// Maps a td action_log `action_type` (local vocabulary) to the wire verb, as a td client
    /// does before pushing. Note that a local `delete` is a soft delete on the wire.
    pub fn from_action_log(name: &str) -> ActionType {
        match name.to_ascii_lowercase().as_str() {
            "create" | "handoff" | "add_dependency" | "link_file" | "board_create"
            | "board_update" | "board_add_issue" | "board_set_position" | "work_session_tag" => {
                ActionType::Create
            }
            "remove_dependency" | "unlink_file" | "board_delete" | "work_session_untag"
            | "review_delete" => ActionType::Delete,
            "delete" | "board_unposition" | "board_remove_issue" | "soft_delete" => {
                ActionType::SoftDelete
            }
            "restore" => ActionType::Restore,
            _ => ActionType::Update,
        }
    }

    /// Normalises an action name received on the wire, as td's server does: a name that is
    /// already canonical is kept (so a canonical `delete` never becomes `soft_delete`),
    /// anything else goes through the legacy table.
    pub fn normalize_wire(name: &str) -> ActionType {
        ActionType::parse_canonical(name).unwrap_or_else(|| ActionType::from_action_log(name))
    }
}

impl fmt::Display for ActionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_alias_maps_to_its_table() {
        let cases = [
            ("issue", EntityType::Issues),
            ("ISSUES", EntityType::Issues),
            ("logs", EntityType::Logs),
            ("handoff", EntityType::Handoffs),
            ("board_position", EntityType::BoardIssuePositions),
            ("dependency", EntityType::IssueDependencies),
            ("file_link", EntityType::IssueFiles),
            ("work_session_issue", EntityType::WorkSessionIssues),
            ("note", EntityType::Notes),
            ("issue_session_histories", EntityType::IssueSessionHistory),
        ];
        for (name, want) in cases {
            assert_eq!(EntityType::parse(name), Some(want), "{name}");
        }
        assert_eq!(EntityType::parse("widgets"), None);
        for ty in EntityType::ALL {
            assert_eq!(EntityType::parse(ty.as_str()), Some(ty));
        }
    }

    #[test]
    fn twelve_synced_tables() {
        assert_eq!(
            EntityType::SYNCED.iter().filter(|t| t.is_synced()).count(),
            12
        );
        assert!(!EntityType::Sessions.is_synced());
    }

    #[test]
    fn canonical_delete_is_never_turned_into_soft_delete() {
        assert_eq!(ActionType::normalize_wire("delete"), ActionType::Delete);
        assert_eq!(
            ActionType::from_action_log("delete"),
            ActionType::SoftDelete
        );
        assert_eq!(
            ActionType::normalize_wire("board_delete"),
            ActionType::Delete
        );
        assert_eq!(ActionType::normalize_wire("handoff"), ActionType::Create);
        assert_eq!(
            ActionType::normalize_wire("board_update"),
            ActionType::Create
        );
        assert_eq!(
            ActionType::normalize_wire("board_unposition"),
            ActionType::SoftDelete
        );
        assert_eq!(ActionType::normalize_wire("approve"), ActionType::Update);
        assert_eq!(ActionType::normalize_wire("restore"), ActionType::Restore);
    }
}
