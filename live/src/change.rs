//! What is fanned out: one committed change to one project.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tdsync_protocol::{
    ids::{ProjectId, TenantId},
    wire::SyncStatus,
};

/// A project, as the live layer names it (tenant and project ids, checked).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProjectKey {
    pub tenant: TenantId,
    pub project: ProjectId,
}

impl ProjectKey {
    pub fn new(tenant: &TenantId, project: &ProjectId) -> ProjectKey {
        ProjectKey {
            tenant: tenant.clone(),
            project: project.clone(),
        }
    }

    /// `tenant/project`: how shared backends name it (both ids are path-safe: no `/` inside).
    pub fn path(&self) -> String {
        format!("{}/{}", self.tenant, self.project)
    }

    /// The inverse of [`ProjectKey::path`].
    pub fn parse_path(path: &str) -> Option<ProjectKey> {
        let (t, p) = path.split_once('/')?;
        Some(ProjectKey {
            tenant: TenantId::parse(t).ok()?,
            project: ProjectId::parse(p).ok()?,
        })
    }
}

/// What made a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// A push that logged at least one event.
    Push,
    /// A conflict's clobbered version written back.
    Restore,
    /// Changes may have been missed (the shared backend's delivery broke and resumed): what
    /// a subscriber knows may be behind, so it should pull (an SSE stream sends `refresh`).
    Missed,
}

/// One entity a change touched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Touched {
    pub entity_type: String,
    pub entity_id: String,
    /// td's canonical action (`create`, `update`, `delete`, …).
    pub action: String,
}

/// One committed change to a project: its new head and what it touched (or, of kind
/// [`ChangeKind::Missed`], word that changes may have been missed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub kind: ChangeKind,
    /// The project's head after the change (the seq of its last event).
    pub head: i64,
    /// The seq of the change's first event (head when it logged one).
    pub first: i64,
    pub touched: Vec<Touched>,
    pub at: DateTime<Utc>,
}

/// A project's head as a shared backend keeps it for every process: what its status answers,
/// so a gateway can answer a status or a pull at the head without the shard node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The lease epoch of the node that wrote it (0 outside a cluster). A head of a newer epoch
    /// replaces an older one whatever its seq (a takeover may restore fewer events than a fenced
    /// owner logged); within an epoch only a higher seq replaces one.
    pub epoch: i64,
    pub status: SyncStatus,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_paths_round_trip_and_refuse_what_is_not_one() {
        let key = ProjectKey::new(
            &TenantId::parse("t_1").unwrap(),
            &ProjectId::parse("p_2").unwrap(),
        );
        assert_eq!(key.path(), "t_1/p_2");
        assert_eq!(ProjectKey::parse_path("t_1/p_2"), Some(key));
        for bad in ["", "t_1", "t_1/", "/p", "t/p/q", "t 1/p"] {
            assert_eq!(ProjectKey::parse_path(bad), None, "{bad}");
        }
    }
}
