//! Stored text → model values, shared by both backends so they refuse damaged rows alike.

use std::collections::BTreeSet;

use crate::{
    ids::{InvitationId, ProjectId, TenantId, TokenId, UserId},
    model::{Actor, AuditAction, ProjectBinding},
    people::{InvitationStatus, LoginStatus},
    scope::{Scopes, TdRole},
    store::StoreError,
};

fn corrupt(what: &str, raw: &str) -> StoreError {
    StoreError::Corrupt(format!("{what} {raw:?}"))
}

pub(crate) fn tenant_id(raw: &str) -> Result<TenantId, StoreError> {
    TenantId::parse(raw).map_err(|_| corrupt("tenant id", raw))
}

pub(crate) fn project_id(raw: &str) -> Result<ProjectId, StoreError> {
    ProjectId::parse(raw).map_err(|_| corrupt("project id", raw))
}

pub(crate) fn token_id(raw: &str) -> Result<TokenId, StoreError> {
    TokenId::parse(raw).map_err(|_| corrupt("token id", raw))
}

pub(crate) fn scopes(raw: &str) -> Result<Scopes, StoreError> {
    Scopes::parse(raw).map_err(|_| corrupt("scope list", raw))
}

pub(crate) fn actor(raw: &str) -> Result<Actor, StoreError> {
    Actor::parse(raw).ok_or_else(|| corrupt("audit actor", raw))
}

pub(crate) fn audit_action(raw: &str) -> Result<AuditAction, StoreError> {
    AuditAction::parse(raw).ok_or_else(|| corrupt("audit action", raw))
}

pub(crate) fn detail(raw: &str) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(raw).map_err(|_| corrupt("audit detail", raw))
}

/// A binding from the `all_projects` flag and the `token_projects` rows.
pub(crate) fn binding(all: bool, projects: &[String]) -> Result<ProjectBinding, StoreError> {
    if all {
        return Ok(ProjectBinding::All);
    }
    let set = projects
        .iter()
        .map(|p| project_id(p))
        .collect::<Result<BTreeSet<_>, _>>()?;
    if set.is_empty() {
        return Err(StoreError::Corrupt(
            "a token bound to a project list has no project".into(),
        ));
    }
    Ok(ProjectBinding::Only(set))
}

pub(crate) fn user_id(raw: &str) -> Result<UserId, StoreError> {
    UserId::parse(raw).map_err(|_| corrupt("user id", raw))
}

pub(crate) fn invitation_id(raw: &str) -> Result<InvitationId, StoreError> {
    InvitationId::parse(raw).map_err(|_| corrupt("invitation id", raw))
}

pub(crate) fn role(raw: &str) -> Result<TdRole, StoreError> {
    TdRole::parse(raw).ok_or_else(|| corrupt("role", raw))
}

pub(crate) fn invitation_status(raw: &str) -> Result<InvitationStatus, StoreError> {
    InvitationStatus::parse(raw).ok_or_else(|| corrupt("invitation status", raw))
}

pub(crate) fn login_status(raw: &str) -> Result<LoginStatus, StoreError> {
    LoginStatus::parse(raw).ok_or_else(|| corrupt("login status", raw))
}

/// How the audit log names a person: their email, else their GitHub login.
pub(crate) fn person(email: Option<String>, github_login: Option<String>) -> Option<String> {
    email.or(github_login.map(|login| format!("github:{login}")))
}
