//! td's project members, mapped onto tokens: the "members" of a project are the active tokens
//! that reach it, with td's role names (read = reader, write = writer, admin = owner). td's
//! invite-by-email (`td sync-project invite`) creates an invitation (`routes::invitations`):
//! the person joins when they log in with that email.

use axum::{
    Json,
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
};
use serde::{Deserialize, Serialize};
use tdsync_acl::{Action, Actor, Scopes, Target, TdRole, TokenGrant, TokenRecord, TokenState};
use utoipa::ToSchema;

use crate::{
    auth::Caller,
    error::ApiError,
    openapi::schemas::{ProjectIdSchema, TokenIdSchema},
    state::AppState,
};

/// td's member object; `user_id` is the token id, `email` the person's (a token minted for a
/// person) or the token's name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MemberResponse {
    pub project_id: String,
    pub user_id: String,
    pub email: String,
    #[schema(value_type = crate::openapi::schemas::RoleSchema)]
    pub role: String,
    /// The token this one was minted from, if any.
    pub invited_by: String,
    pub created_at: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct RoleChange {
    /// Exactly one of the names (400 otherwise).
    #[schema(value_type = crate::openapi::schemas::RoleSchema)]
    pub role: String,
}

/// td's answer to a role change: `{"status":"updated"}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StatusUpdated {
    pub status: Updated,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Updated {
    Updated,
}

/// `GET /v1/projects/{id}/members`
#[utoipa::path(
    get, path = "/v1/projects/{id}/members", tag = "members",
    params(("id" = ProjectIdSchema, Path, description = "Project id")),
    responses(
        (status = 200, description = "Active tokens that reach the project, with td role names", body = Vec<MemberResponse>),
        (status = 403, description = "The token may not read", body = tdsync_protocol::wire::ErrorBody),
        (status = 404, description = "No such project for this token", body = tdsync_protocol::wire::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<MemberResponse>>, ApiError> {
    let project = state
        .project(&caller, &id, Action::ReadEvents)
        .await?
        .record;
    let now = state.acl().now();
    let tokens = state.acl().tokens(&project.tenant).await?;
    let people: std::collections::HashMap<_, _> = state
        .acl()
        .members(&project.tenant)
        .await?
        .into_iter()
        .map(|(user, _)| (user.id.clone(), user.label()))
        .collect();
    // Members are the active tokens that may read the project (a token with only `mint` has
    // no td role and cannot).
    let reads = |t: &TokenRecord| {
        let target = Target::Project(&project.tenant, &project.id);
        state
            .acl()
            .decide(&TokenGrant::from(t), Action::ReadEvents, target)
            .is_ok()
    };
    let members = tokens
        .iter()
        .filter(|t| t.state(now) == TokenState::Active && reads(t))
        .filter_map(|t| {
            Some(MemberResponse {
                project_id: project.id.to_string(),
                user_id: t.id.to_string(),
                email: t
                    .user
                    .as_ref()
                    .and_then(|u| people.get(u).cloned())
                    .unwrap_or_else(|| t.name.clone()),
                role: TdRole::of(t.scopes)?.as_str().to_string(),
                invited_by: t
                    .parent
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                created_at: t
                    .created_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            })
        })
        .collect();
    Ok(Json(members))
}

/// `POST /v1/projects/{id}/members` with `{"email","role"}` (`td sync-project invite`): an
/// invitation, emailed. td prints `Added EMAIL as ROLE (user ID)`: the id is the invitation's.
#[utoipa::path(
    post, path = "/v1/projects/{id}/members", tag = "members",
    params(("id" = ProjectIdSchema, Path, description = "Project id")),
    request_body = crate::routes::invitations::InvitationRequest,
    responses(
        (status = 201, description = "Invited, and the invitation emailed: the person joins with the role when they log in with that email (`td auth login`). `user_id` is the invitation's id", body = MemberResponse),
        (status = 400, description = "Bad JSON, an email that is not an address, an unknown role, or a role above the caller's own", body = tdsync_protocol::wire::ErrorBody),
        (status = 403, description = "The token may not manage members (needs admin)", body = tdsync_protocol::wire::ErrorBody),
        (status = 404, description = "No such project for this token", body = tdsync_protocol::wire::ErrorBody),
        (status = 413, description = "Body over 16 MiB", body = tdsync_protocol::wire::ErrorBody),
        (status = 503, description = "The invitation email could not be sent: no invitation was made", body = tdsync_protocol::wire::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn invite(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<MemberResponse>), ApiError> {
    let (email, role) = crate::routes::invitations::parse_request(&body)?;
    let inv = crate::routes::invitations::create(&state, &caller, &id, &email, role).await?;
    Ok((
        StatusCode::CREATED,
        Json(MemberResponse {
            project_id: inv.project.to_string(),
            user_id: inv.id.to_string(),
            email: inv.email,
            role: inv.role.as_str().to_string(),
            invited_by: caller.0.id.to_string(),
            created_at: inv
                .created_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }),
    ))
}

/// `PATCH /v1/projects/{id}/members/{user_id}`: changes a token's role (its scopes).
#[utoipa::path(
    patch, path = "/v1/projects/{id}/members/{user_id}", tag = "members",
    params(("id" = ProjectIdSchema, Path, description = "Project id"), ("user_id" = TokenIdSchema, Path, description = "Token id")),
    request_body = RoleChange,
    responses(
        (status = 200, description = "Updated", body = StatusUpdated),
        (status = 400, description = "Bad JSON, an unknown role, or a role above what the member's parent token has", body = tdsync_protocol::wire::ErrorBody),
        (status = 403, description = "The token may not manage members (needs admin)", body = tdsync_protocol::wire::ErrorBody),
        (status = 404, description = "No such project, or no such member of it, for this token", body = tdsync_protocol::wire::ErrorBody),
        (status = 413, description = "Body over 16 MiB", body = tdsync_protocol::wire::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn set_role(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, user_id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<StatusUpdated>, ApiError> {
    let (project, token) = state.member(&caller, &id, &user_id).await?;
    let change: RoleChange = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid json body: {e}")))?;
    let role = TdRole::parse(&change.role).ok_or_else(|| {
        ApiError::bad_request(format!(
            "role must be owner, writer or reader, got {:?}",
            change.role
        ))
    })?;
    let actor = Actor::Token(caller.0.id.clone());
    state
        .acl()
        .set_token_scopes(
            &project.record.tenant,
            &token,
            Scopes::of(&[role.scope()]),
            &actor,
        )
        .await?;
    Ok(Json(StatusUpdated {
        status: Updated::Updated,
    }))
}

/// `DELETE /v1/projects/{id}/members/{user_id}`: revokes the token (and its children).
#[utoipa::path(
    delete, path = "/v1/projects/{id}/members/{user_id}", tag = "members",
    params(("id" = ProjectIdSchema, Path, description = "Project id"), ("user_id" = TokenIdSchema, Path, description = "Token id")),
    responses(
        (status = 204, description = "Revoked (with every token minted from it)"),
        (status = 403, description = "The token may not manage members (needs admin)", body = tdsync_protocol::wire::ErrorBody),
        (status = 404, description = "No such project, or no such member of it, for this token", body = tdsync_protocol::wire::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, user_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (_, token) = state.member(&caller, &id, &user_id).await?;
    state
        .acl()
        .revoke(&token, &Actor::Token(caller.0.id.clone()))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
