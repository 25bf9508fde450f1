//! Minting rules: a child never exceeds its parent. Its scopes are within the parent's (after
//! implication), its projects within the parent's, its expiry no later than the parent's, its
//! tenant the parent's. A request that asks for more is refused, never silently narrowed, so an
//! agent learns at once that it asked for too much. What is not asked is inherited: no `--project`
//! gives the parent's projects, no `--ttl` the parent's expiry.

use chrono::{DateTime, TimeDelta, Utc};

use crate::{
    clock::format_time,
    decision::{Action, Denied, Target, TokenGrant, decide},
    ids::{ProjectId, TokenId},
    model::ProjectBinding,
    scope::{Scope, Scopes},
};

/// What a mint asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintRequest {
    /// A label for listings; a default is made up when absent.
    pub name: Option<String>,
    pub scopes: Scopes,
    /// `None`: a root token reaches all projects; a child, its parent's.
    pub projects: Option<ProjectBinding>,
    /// `None`: a root token never expires; a child expires with its parent.
    pub ttl: Option<TimeDelta>,
}

impl MintRequest {
    pub fn new(scopes: Scopes) -> MintRequest {
        MintRequest {
            name: None,
            scopes,
            projects: None,
            ttl: None,
        }
    }
}

/// What a permitted child will be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildSpec {
    pub scopes: Scopes,
    pub projects: ProjectBinding,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Why a mint was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MintError {
    #[error("cannot mint: {0}")]
    Denied(#[from] Denied),
    #[error(
        "refused: the child would exceed its parent {parent}: scope {scope} is not granted by the parent's scopes ({parent_scopes})"
    )]
    Scope {
        parent: TokenId,
        scope: Scope,
        parent_scopes: Scopes,
    },
    #[error(
        "refused: the child would exceed its parent {parent}: project {project} is not among the parent's projects ({parent_projects})"
    )]
    Project {
        parent: TokenId,
        project: ProjectId,
        parent_projects: ProjectBinding,
    },
    #[error(
        "refused: the child would exceed its parent {parent}: the parent is bound to projects {parent_projects}, so the child cannot reach all projects (name them with --project)"
    )]
    AllProjects {
        parent: TokenId,
        parent_projects: ProjectBinding,
    },
    #[error(
        "refused: the child would exceed its parent {parent}: it would expire at {}, after the parent ({})",
        format_time(*.asked), format_time(*.parent_expires)
    )]
    Expiry {
        parent: TokenId,
        asked: DateTime<Utc>,
        parent_expires: DateTime<Utc>,
    },
    #[error("refused: the ttl must be positive")]
    NonPositiveTtl,
    #[error("token {0} is revoked: it can no longer mint")]
    ParentRevoked(TokenId),
}

/// The child `parent` may mint for `request` at `now`, or why not.
pub fn check_child(
    parent: &TokenGrant,
    request: &MintRequest,
    now: DateTime<Utc>,
) -> Result<ChildSpec, MintError> {
    decide(
        parent,
        Action::MintChild,
        Target::Tenant(&parent.tenant),
        now,
    )?;
    let id = || parent.id.clone();
    if !request.scopes.within(parent.scopes) {
        return Err(MintError::Scope {
            parent: id(),
            scope: request
                .scopes
                .first_beyond(parent.scopes)
                .unwrap_or(Scope::Mint),
            parent_scopes: parent.scopes,
        });
    }
    let projects = request
        .projects
        .clone()
        .unwrap_or_else(|| parent.projects.clone());
    if let ProjectBinding::Only(parent_set) = &parent.projects {
        match &projects {
            ProjectBinding::All => {
                return Err(MintError::AllProjects {
                    parent: id(),
                    parent_projects: parent.projects.clone(),
                });
            }
            ProjectBinding::Only(set) => {
                if let Some(p) = set.iter().find(|p| !parent_set.contains(p)) {
                    return Err(MintError::Project {
                        parent: id(),
                        project: p.clone(),
                        parent_projects: parent.projects.clone(),
                    });
                }
            }
        }
    }
    let asked = match request.ttl {
        Some(ttl) if ttl <= TimeDelta::zero() => return Err(MintError::NonPositiveTtl),
        Some(ttl) => Some(
            now.checked_add_signed(ttl)
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        ),
        None => None,
    };
    let expires_at = match (asked, parent.expires_at) {
        (Some(asked), Some(parent_expires)) if asked > parent_expires => {
            return Err(MintError::Expiry {
                parent: id(),
                asked,
                parent_expires,
            });
        }
        (Some(asked), _) => Some(asked),
        (None, inherited) => inherited,
    };
    Ok(ChildSpec {
        scopes: request.scopes,
        projects,
        expires_at,
    })
}
