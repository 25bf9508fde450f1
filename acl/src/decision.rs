//! The one decision: may this token do ACTION on PROJECT of TENANT. Every permission check in
//! tdsync goes through [`decide`]; nothing else compares scopes or bindings.
//!
//! | action           | scope needed | reach                                   | td equivalent            |
//! |------------------|--------------|-----------------------------------------|--------------------------|
//! | `ReadEvents`     | read         | the project must be bound               | pull/status/snapshot: reader |
//! | `PushEvents`     | write        | the project must be bound               | push: writer             |
//! | `ListProjects`   | read         | the tenant (the list is filtered by the binding) | list projects   |
//! | `CreateProject`  | write        | all projects (a list-bound token could not reach it) | create project |
//! | `ManageMembers`  | admin        | the project must be bound               | members: owner           |
//! | `ReadCursors`    | admin        | the project must be bound               | admin's "who is behind"  |
//! | `ManageTokens`   | admin        | all projects (else it could mint its way out of its list) | —      |
//! | `Admin`          | admin        | all projects                            | —                        |
//! | `MintChild`      | mint         | the tenant (the child stays within the parent, see `mint`) | —     |
//!
//! Before any of that: the token must not be expired and must belong to the tenant.
//!
//! When the target is another token (td's members routes, `/v1/tokens`), the action is decided
//! on that token's tenant and, for a member, the project it is reached through; and the caller
//! must reach everything the target token reaches (a project's owner cannot change or revoke a
//! token that also reaches projects the owner does not).

use std::fmt;

use chrono::{DateTime, Utc};

use crate::{
    clock::format_time,
    ids::{ProjectId, TenantId, TokenId},
    model::{Project, ProjectBinding, TokenRecord},
    scope::{Scope, Scopes},
};

/// What a token may be asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    ReadEvents,
    PushEvents,
    CreateProject,
    ListProjects,
    ManageTokens,
    ManageMembers,
    ReadCursors,
    MintChild,
    Admin,
}

/// How far an action reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// One project, which the token's binding must cover.
    Project,
    /// The tenant as such; any binding.
    Tenant,
    /// Everything in the tenant; only an all-projects binding.
    AllProjects,
}

impl Action {
    pub const ALL: [Action; 9] = [
        Action::ReadEvents,
        Action::PushEvents,
        Action::CreateProject,
        Action::ListProjects,
        Action::ManageTokens,
        Action::ManageMembers,
        Action::ReadCursors,
        Action::MintChild,
        Action::Admin,
    ];

    /// The scope the action needs (implications apply: admin grants write and read).
    pub fn needs(self) -> Scope {
        match self {
            Action::ReadEvents | Action::ListProjects => Scope::Read,
            Action::PushEvents | Action::CreateProject => Scope::Write,
            Action::ManageTokens | Action::ManageMembers | Action::ReadCursors | Action::Admin => {
                Scope::Admin
            }
            Action::MintChild => Scope::Mint,
        }
    }

    fn reach(self) -> Reach {
        match self {
            Action::ReadEvents
            | Action::PushEvents
            | Action::ManageMembers
            | Action::ReadCursors => Reach::Project,
            Action::ListProjects | Action::MintChild => Reach::Tenant,
            Action::CreateProject | Action::ManageTokens | Action::Admin => Reach::AllProjects,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::ReadEvents => "read events",
            Action::PushEvents => "push events",
            Action::CreateProject => "create projects",
            Action::ListProjects => "list projects",
            Action::ManageTokens => "manage tokens",
            Action::ManageMembers => "manage members",
            Action::ReadCursors => "read device cursors",
            Action::MintChild => "mint child tokens",
            Action::Admin => "administer the tenant",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an action is done to.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// The tenant as such (create or list projects, manage tokens, mint).
    Tenant(&'a TenantId),
    /// One project, named with the tenant that owns it (from the project registry, never the
    /// token's own tenant, so a project id of another tenant is refused).
    Project(&'a TenantId, &'a ProjectId),
    /// Another token: a member of the project it is reached through (td's members routes), or
    /// of the whole tenant when none is given (`/v1/tokens`).
    Token(&'a TokenRecord, Option<&'a ProjectId>),
}

impl Target<'_> {
    fn tenant(&self) -> &TenantId {
        match self {
            Target::Tenant(t) | Target::Project(t, _) => t,
            Target::Token(record, _) => &record.tenant,
        }
    }

    fn project(&self) -> Option<&ProjectId> {
        match self {
            Target::Tenant(_) => None,
            Target::Project(_, p) => Some(p),
            Target::Token(_, via) => *via,
        }
    }
}

/// A verified token: what decisions are made on. It carries no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenGrant {
    pub id: TokenId,
    pub tenant: TenantId,
    pub name: String,
    pub scopes: Scopes,
    pub projects: ProjectBinding,
    pub expires_at: Option<DateTime<Utc>>,
    pub parent: Option<TokenId>,
}

impl From<&TokenRecord> for TokenGrant {
    fn from(record: &TokenRecord) -> TokenGrant {
        TokenGrant {
            id: record.id.clone(),
            tenant: record.tenant.clone(),
            name: record.name.clone(),
            scopes: record.scopes,
            projects: record.projects.clone(),
            expires_at: record.expires_at,
            parent: record.parent.clone(),
        }
    }
}

impl TokenGrant {
    /// The projects of a listing this token may see (for `ListProjects`).
    pub fn visible<'a>(&self, projects: &'a [Project]) -> Vec<&'a Project> {
        projects
            .iter()
            .filter(|p| p.tenant == self.tenant && self.projects.covers(&p.id))
            .collect()
    }
}

/// Why a decision said no. Messages name what is missing without revealing other tenants.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("token {token} expired at {}", format_time(*.at))]
    Expired { token: TokenId, at: DateTime<Utc> },
    #[error("token {token} belongs to another tenant")]
    OtherTenant { token: TokenId },
    #[error("token {token} may not {action}: it needs the {needs} scope and has {has}")]
    MissingScope {
        token: TokenId,
        action: Action,
        needs: Scope,
        has: Scopes,
    },
    #[error("token {token} is not bound to project {project}")]
    ProjectNotBound { token: TokenId, project: ProjectId },
    #[error("token {token} may not {action}: that needs a token bound to all projects")]
    NeedsAllProjects { token: TokenId, action: Action },
    #[error("to {action} a project must be named")]
    ProjectRequired { action: Action },
    /// The target token is not reached through the named project, or reaches projects the
    /// caller does not.
    #[error("token {token} cannot reach token {target}")]
    TokenOutOfReach { token: TokenId, target: TokenId },
}

/// May `token` do `action` on `target`, at `now`?
pub fn decide(
    token: &TokenGrant,
    action: Action,
    target: Target<'_>,
    now: DateTime<Utc>,
) -> Result<(), Denied> {
    let id = || token.id.clone();
    if let Some(at) = token.expires_at.filter(|at| *at <= now) {
        return Err(Denied::Expired { token: id(), at });
    }
    if token.tenant != *target.tenant() {
        return Err(Denied::OtherTenant { token: id() });
    }
    if !token.scopes.grants(action.needs()) {
        return Err(Denied::MissingScope {
            token: id(),
            action,
            needs: action.needs(),
            has: token.scopes,
        });
    }
    match action.reach() {
        Reach::Tenant => {}
        Reach::AllProjects if token.projects.is_all() => {}
        Reach::AllProjects => {
            return Err(Denied::NeedsAllProjects {
                token: id(),
                action,
            });
        }
        Reach::Project => match target.project() {
            None => return Err(Denied::ProjectRequired { action }),
            Some(p) if token.projects.covers(p) => {}
            Some(p) => {
                return Err(Denied::ProjectNotBound {
                    token: id(),
                    project: p.clone(),
                });
            }
        },
    }
    if let Target::Token(record, via) = target {
        let member = via.is_none_or(|p| record.projects.covers(p));
        if !member || !record.projects.within(&token.projects) {
            return Err(Denied::TokenOutOfReach {
                token: id(),
                target: record.id.clone(),
            });
        }
    }
    Ok(())
}
