//! Who is calling, and which project they may touch. Every authenticated route takes a
//! [`Caller`] (the bearer token, verified by `acl`) and resolves its project through
//! [`AppState::project`], which makes the one decision for that action. A project of another
//! tenant — or one the token is not bound to — answers exactly like one that does not exist.

use std::sync::Arc;

use axum::{extract::FromRequestParts, http::request::Parts};
use tdsync_acl::{Action, Denied, TokenGrant};

use crate::{error::ApiError, state::AppState};

/// The verified token of the request.
#[derive(Debug, Clone)]
pub struct Caller(pub Arc<TokenGrant>);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Caller, ApiError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| ApiError::unauthorized("missing authorization header"))?;
        let value = header
            .to_str()
            .map_err(|_| ApiError::unauthorized("invalid authorization format"))?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::unauthorized("invalid authorization format: expected `Bearer <token>`")
            })?;
        let grant = state.acl().verify(token).await?;
        Ok(Caller(grant))
    }
}

/// A project the caller may act on, with the ids both stores use.
#[derive(Debug, Clone)]
pub struct ProjectRef {
    pub project: tdsync_acl::Project,
    pub shard_tenant: tdsync_tenants::TenantId,
    pub shard_project: tdsync_tenants::ProjectId,
}

impl AppState {
    /// Resolves project `id` for `action` by `caller`: 404 when it does not exist, belongs to
    /// another tenant, or the token is not bound to it; 403 when the token's scopes are short;
    /// 401 when it expired since it was verified.
    pub async fn project(
        &self,
        caller: &Caller,
        id: &str,
        action: Action,
    ) -> Result<ProjectRef, ApiError> {
        let pid = tdsync_acl::ProjectId::parse(id).map_err(|_| ApiError::no_such_project(id))?;
        let project = self
            .acl()
            .project(&pid)
            .await?
            .ok_or_else(|| ApiError::no_such_project(id))?;
        match self
            .acl()
            .decide(&caller.0, action, &project.tenant, Some(&project.id))
        {
            Ok(()) => {}
            Err(Denied::OtherTenant { .. } | Denied::ProjectNotBound { .. }) => {
                return Err(ApiError::no_such_project(id));
            }
            Err(Denied::Expired { .. }) => return Err(ApiError::unauthorized("token expired")),
            Err(other) => return Err(ApiError::forbidden(other.to_string())),
        }
        let shard_tenant = tdsync_tenants::TenantId::parse(project.tenant.as_str())?;
        let shard_project = tdsync_tenants::ProjectId::parse(project.id.as_str())?;
        Ok(ProjectRef {
            project,
            shard_tenant,
            shard_project,
        })
    }

    /// Decides a tenant-wide action (create or list projects, manage tokens) for `caller`.
    pub fn tenant_action(&self, caller: &Caller, action: Action) -> Result<(), ApiError> {
        match self.acl().decide(&caller.0, action, &caller.0.tenant, None) {
            Ok(()) => Ok(()),
            Err(Denied::Expired { .. }) => Err(ApiError::unauthorized("token expired")),
            Err(other) => Err(ApiError::forbidden(other.to_string())),
        }
    }
}
