//! Who is calling, and which project they may touch. Every authenticated route takes a
//! [`Caller`] (the bearer token, verified by `acl`) and resolves its project through
//! [`AppState::project`], which makes the one decision for that action. A project of another
//! tenant — or one the token is not bound to — answers exactly like one that does not exist.

use std::sync::Arc;

use axum::{
    extract::FromRequestParts,
    http::{HeaderMap, request::Parts},
};
use tdsync_acl::{AclError, Action, Denied, ProjectId, Target, TokenGrant, TokenId};

use crate::{error::ApiError, limits::Verified, state::AppState};

/// The verified token of the request.
#[derive(Debug, Clone)]
pub struct Caller(pub Arc<TokenGrant>);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Caller, ApiError> {
        let token = bearer(&parts.headers)?;
        // The rate limiter verified it already (`limits::enforce`), when limits are on.
        if let Some(Verified(outcome)) = parts.extensions.get::<Verified>() {
            return Ok(Caller(outcome.clone()?));
        }
        let grant = state.acl().verify(token).await?;
        Ok(Caller(grant))
    }
}

/// The bearer token of a request's `Authorization` header, or why there is none (401).
pub fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    let header = headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("missing authorization header"))?;
    let value = header
        .to_str()
        .map_err(|_| ApiError::unauthorized("invalid authorization format"))?;
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::unauthorized("invalid authorization format: expected `Bearer <token>`")
        })
}

/// A project the caller may act on: its control-plane record and its shard.
#[derive(Clone)]
pub struct ProjectRef {
    pub record: tdsync_acl::Project,
    pub shard: tdsync_tenants::Project,
    /// On a shard node, the lease epoch it serves the project under.
    pub epoch: Option<i64>,
}

impl AppState {
    /// Resolves project `id` for `action` by `caller`: 404 when it does not exist, belongs to
    /// another tenant, or the token is not bound to it; 403 when the token's scopes are short;
    /// 401 when it expired since it was verified; 503 when the control plane cannot answer.
    pub async fn project(
        &self,
        caller: &Caller,
        id: &str,
        action: Action,
    ) -> Result<ProjectRef, ApiError> {
        let pid = ProjectId::parse(id).map_err(|_| ApiError::no_such_project(id))?;
        let record = self
            .acl()
            .project(&pid)
            .await?
            .ok_or_else(|| ApiError::no_such_project(id))?;
        match self.acl().decide(
            &caller.0,
            action,
            Target::Project(&record.tenant, &record.id),
        ) {
            Ok(()) => {}
            Err(Denied::OtherTenant { .. } | Denied::ProjectNotBound { .. }) => {
                return Err(ApiError::no_such_project(id));
            }
            Err(other) => return Err(other.into()),
        }
        let shard = self.tenants().project(&record.tenant, &record.id);
        // Members are tokens (control plane): any node answers them.
        let epoch = match self.ownership() {
            Some(ownership) if action != Action::ManageMembers => {
                Some(ownership.ensure(&shard).await?)
            }
            _ => None,
        };
        Ok(ProjectRef {
            record,
            shard,
            epoch,
        })
    }

    /// Decides a tenant-wide action (create or list projects, manage tokens) for `caller`.
    pub fn tenant_action(&self, caller: &Caller, action: Action) -> Result<(), ApiError> {
        Ok(self
            .acl()
            .decide(&caller.0, action, Target::Tenant(&caller.0.tenant))?)
    }

    /// Project `id` and its member `user_id` (a token), for managing that member.
    pub async fn member(
        &self,
        caller: &Caller,
        id: &str,
        user_id: &str,
    ) -> Result<(ProjectRef, TokenId), ApiError> {
        let project = self.project(caller, id, Action::ManageMembers).await?;
        let token = self
            .token(
                caller,
                user_id,
                Action::ManageMembers,
                Some(&project.record),
            )
            .await?;
        Ok((project, token))
    }

    /// The token `id` as the target of `action` by `caller`, reached through `via` (a member of
    /// that project) or tenant-wide. A token the caller may not reach — of another tenant, not
    /// a member of the project, reaching projects the caller does not, or revoked — answers
    /// like one that does not exist (404), so token ids do not leak.
    pub async fn token(
        &self,
        caller: &Caller,
        id: &str,
        action: Action,
        via: Option<&tdsync_acl::Project>,
    ) -> Result<TokenId, ApiError> {
        let not_found = || match via {
            Some(p) => ApiError::not_found(format!("member {id} of project {} not found", p.id)),
            None => ApiError::not_found(format!("token {id} not found")),
        };
        let token = TokenId::parse(id).map_err(|_| not_found())?;
        let record = match self.acl().token(&token).await {
            Ok(record) => record,
            Err(AclError::NotFound(_)) => return Err(not_found()),
            Err(e) => return Err(e.into()),
        };
        if via.is_some() && record.revoked_at.is_some() {
            return Err(not_found());
        }
        match self.acl().decide(
            &caller.0,
            action,
            Target::Token(&record, via.map(|p| &p.id)),
        ) {
            Ok(()) => Ok(token),
            Err(
                Denied::OtherTenant { .. }
                | Denied::ProjectNotBound { .. }
                | Denied::TokenOutOfReach { .. },
            ) => Err(not_found()),
            Err(other) => Err(other.into()),
        }
    }
}
