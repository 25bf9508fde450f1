//! Invitations by email, with td-sync's routes and shapes: a project owner invites an address
//! to a project with a role; the invitee logs in with `td auth login` (approving the emailed
//! link accepts their pending invitations) or, holding a token minted for them, accepts or
//! declines here. `td sync-project invite` (td's `POST …/members` with an email) creates one
//! too (`members::invite`).

use axum::{
    Json,
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
};
use serde::{Deserialize, Serialize};
use tdsync_acl::{
    Action, Actor, Invitation, InvitationId, Membership, TdRole, UserId, format_time,
};
use utoipa::ToSchema;

use crate::{
    auth::Caller,
    error::ApiError,
    openapi::schemas::{ProjectIdSchema, RoleSchema},
    state::AppState,
};

/// An invitation as td-sync shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InvitationBody {
    /// `inv_` and 12 lowercase letters or digits.
    pub id: String,
    pub project_id: String,
    /// Lowercased.
    pub email: String,
    #[schema(value_type = RoleSchema)]
    pub role: String,
    /// The token (or `cli`) that invited.
    pub invited_by: String,
    /// `pending`, `accepted`, `declined`, `revoked` or `expired` (a pending one past its
    /// expiry).
    pub status: String,
    pub created_at: String,
    pub expires_at: String,
    /// When it was accepted (omitted otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accepted_at: Option<String>,
}

/// `{"email","role"}`: who, and as what (`writer` when absent).
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct InvitationRequest {
    #[schema(value_type = crate::openapi::schemas::EmailSchema)]
    pub email: String,
    #[serde(default)]
    #[schema(value_type = Option<RoleSchema>)]
    pub role: Option<String>,
}

/// The membership an acceptance gives (td-sync's member shape).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MembershipBody {
    pub project_id: String,
    pub user_id: String,
    /// Always empty, as td-sync answers.
    pub email: String,
    #[schema(value_type = RoleSchema)]
    pub role: String,
    pub invited_by: String,
    pub created_at: String,
}

/// `{"status":"declined"}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Declined {
    pub status: String,
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub(crate) fn body(inv: &Invitation, now: chrono::DateTime<chrono::Utc>) -> InvitationBody {
    InvitationBody {
        id: inv.id.to_string(),
        project_id: inv.project.to_string(),
        email: inv.email.clone(),
        role: inv.role.as_str().to_string(),
        invited_by: inv.invited_by.to_string(),
        status: inv.status_at(now).as_str().to_string(),
        created_at: rfc3339(inv.created_at),
        expires_at: rfc3339(inv.expires_at),
        accepted_at: (inv.status == tdsync_acl::InvitationStatus::Accepted)
            .then_some(inv.closed_at)
            .flatten()
            .map(rfc3339),
    }
}

pub(crate) fn parse_request(body: &Bytes) -> Result<(String, TdRole), ApiError> {
    let request: InvitationRequest = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid json body: {e}")))?;
    let role = match request.role.as_deref() {
        None => TdRole::Writer,
        Some(raw) => TdRole::parse(raw).ok_or_else(|| {
            ApiError::bad_request(format!("role must be owner, writer or reader, got {raw:?}"))
        })?,
    };
    Ok((request.email, role))
}

/// Creates an invitation for a caller who may manage the project's members, and emails it.
/// An email that cannot be sent takes the invitation back (503).
pub(crate) async fn create(
    state: &AppState,
    caller: &Caller,
    project_id: &str,
    email: &str,
    role: TdRole,
) -> Result<Invitation, ApiError> {
    let project = state
        .project(caller, project_id, Action::ManageMembers)
        .await?
        .record;
    let actor = Actor::Token(caller.0.id.clone());
    let acl = state.acl();
    let invitation = acl
        .invite(&project, email, role, &actor, Some(caller.0.scopes))
        .await?;
    let people = state.people();
    let inviter = caller.0.name.clone();
    let (subject, text) = people.invitation_email(
        &project.name,
        role.as_str(),
        &inviter,
        &invitation.email,
        &format_time(invitation.expires_at),
    );
    if let Err(e) = people.send(&invitation.email, subject, text).await {
        tracing::error!(error = %format!("{e:#}"), invitation = %invitation.id, "invitation email not sent");
        acl.revoke_invitation(&project.tenant, &invitation.id, &Actor::System)
            .await?;
        return Err(ApiError::unavailable(
            "the invitation email could not be sent, so no invitation was made: try again later",
        )
        .with_retry_after(30));
    }
    Ok(invitation)
}

/// `POST /v1/projects/{id}/invitations`
#[utoipa::path(
    post, path = "/v1/projects/{id}/invitations", tag = "invitations",
    params(("id" = ProjectIdSchema, Path, description = "Project id")),
    request_body = InvitationRequest,
    responses(
        (status = 201, description = "Invited, and the invitation emailed; it can be accepted for 7 days", body = InvitationBody),
        (status = 400, description = "Bad JSON, an email that is not an address, an unknown role, or a role above the caller's own", body = tdsync_protocol::wire::ErrorBody),
        (status = 403, description = "The token may not manage members (needs admin)", body = tdsync_protocol::wire::ErrorBody),
        (status = 404, description = "No such project for this token", body = tdsync_protocol::wire::ErrorBody),
        (status = 413, description = "Body over 16 MiB", body = tdsync_protocol::wire::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn invite(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    raw: Bytes,
) -> Result<(StatusCode, Json<InvitationBody>), ApiError> {
    let (email, role) = parse_request(&raw)?;
    let invitation = create(&state, &caller, &id, &email, role).await?;
    let now = state.acl().now();
    Ok((StatusCode::CREATED, Json(body(&invitation, now))))
}

/// `GET /v1/projects/{id}/invitations`
#[utoipa::path(
    get, path = "/v1/projects/{id}/invitations", tag = "invitations",
    params(("id" = ProjectIdSchema, Path, description = "Project id")),
    responses(
        (status = 200, description = "The project's invitations, newest first, whatever their status", body = Vec<InvitationBody>),
        (status = 403, description = "The token may not manage members (needs admin)", body = tdsync_protocol::wire::ErrorBody),
        (status = 404, description = "No such project for this token", body = tdsync_protocol::wire::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<InvitationBody>>, ApiError> {
    let project = state
        .project(&caller, &id, Action::ManageMembers)
        .await?
        .record;
    let now = state.acl().now();
    let all = state
        .acl()
        .invitations(&project.tenant, Some(&project.id))
        .await?;
    Ok(Json(all.iter().map(|i| body(i, now)).collect()))
}

/// `DELETE /v1/projects/{id}/invitations/{invitation_id}`
#[utoipa::path(
    delete, path = "/v1/projects/{id}/invitations/{invitation_id}", tag = "invitations",
    params(
        ("id" = ProjectIdSchema, Path, description = "Project id"),
        ("invitation_id" = String, Path, description = "Invitation id (`inv_…`)"),
    ),
    responses(
        (status = 204, description = "Revoked: it can no longer be accepted"),
        (status = 403, description = "The token may not manage members (needs admin)", body = tdsync_protocol::wire::ErrorBody),
        (status = 404, description = "No such project, or no such invitation to it, for this token", body = tdsync_protocol::wire::ErrorBody),
        (status = 409, description = "Already accepted, declined or revoked", body = tdsync_protocol::wire::ErrorBody),
        (status = 410, description = "Expired", body = tdsync_protocol::wire::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, invitation)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let project = state
        .project(&caller, &id, Action::ManageMembers)
        .await?
        .record;
    let missing = || ApiError::not_found(format!("invitation {invitation} not found"));
    let inv_id = InvitationId::parse(&invitation).map_err(|_| missing())?;
    let inv = state.acl().invitation_in(&project.tenant, &inv_id).await?;
    if inv.project != project.id {
        return Err(missing());
    }
    let actor = Actor::Token(caller.0.id.clone());
    state
        .acl()
        .revoke_invitation(&project.tenant, &inv_id, &actor)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The person the caller's token was minted for: invitations are answered by people.
async fn person(state: &AppState, caller: &Caller) -> Result<Option<UserId>, ApiError> {
    Ok(state.acl().token(&caller.0.id).await?.user)
}

fn needs_person() -> ApiError {
    ApiError::forbidden(
        "this token was not minted for a person: log in with `td auth login` (with the invited \
         email) to answer invitations",
    )
}

/// `GET /v1/invitations`
#[utoipa::path(
    get, path = "/v1/invitations", tag = "invitations",
    responses(
        (status = 200, description = "The pending, unexpired invitations addressed to the person the token was minted for (empty for a token minted for no one)", body = Vec<InvitationBody>),
    ),
    security(("bearer" = []))
)]
pub async fn mine(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<InvitationBody>>, ApiError> {
    let Some(user) = person(&state, &caller).await? else {
        return Ok(Json(Vec::new()));
    };
    let now = state.acl().now();
    let pending = state.acl().invitations_of(&user).await?;
    Ok(Json(pending.iter().map(|i| body(i, now)).collect()))
}

fn invitation_id(raw: &str) -> Result<InvitationId, ApiError> {
    InvitationId::parse(raw).map_err(|_| ApiError::not_found(format!("invitation {raw} not found")))
}

/// `POST /v1/invitations/{invitation_id}/accept`
#[utoipa::path(
    post, path = "/v1/invitations/{invitation_id}/accept", tag = "invitations",
    params(("invitation_id" = String, Path, description = "Invitation id (`inv_…`)")),
    responses(
        (status = 200, description = "Accepted: the person is a member of the project with the invited role. Tokens minted before do not grow: the next `td auth login` includes the project", body = MembershipBody),
        (status = 403, description = "The token was not minted for a person", body = tdsync_protocol::wire::ErrorBody),
        (status = 404, description = "No such invitation addressed to this person", body = tdsync_protocol::wire::ErrorBody),
        (status = 409, description = "Not pending, or a role other than the one the person holds in that tenant", body = tdsync_protocol::wire::ErrorBody),
        (status = 410, description = "Expired", body = tdsync_protocol::wire::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn accept(
    State(state): State<AppState>,
    caller: Caller,
    Path(invitation): Path<String>,
) -> Result<Json<MembershipBody>, ApiError> {
    let user = person(&state, &caller).await?.ok_or_else(needs_person)?;
    let id = invitation_id(&invitation)?;
    let (inv, membership): (Invitation, Membership) =
        state.acl().accept_invitation(&id, &user).await?;
    Ok(Json(MembershipBody {
        project_id: inv.project.to_string(),
        user_id: user.to_string(),
        email: String::new(),
        role: membership.role.as_str().to_string(),
        invited_by: inv.invited_by.to_string(),
        created_at: rfc3339(membership.created_at),
    }))
}

/// `POST /v1/invitations/{invitation_id}/decline`
#[utoipa::path(
    post, path = "/v1/invitations/{invitation_id}/decline", tag = "invitations",
    params(("invitation_id" = String, Path, description = "Invitation id (`inv_…`)")),
    responses(
        (status = 200, description = "Declined", body = Declined),
        (status = 403, description = "The token was not minted for a person", body = tdsync_protocol::wire::ErrorBody),
        (status = 404, description = "No such invitation addressed to this person", body = tdsync_protocol::wire::ErrorBody),
        (status = 409, description = "Not pending", body = tdsync_protocol::wire::ErrorBody),
        (status = 410, description = "Expired", body = tdsync_protocol::wire::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn decline(
    State(state): State<AppState>,
    caller: Caller,
    Path(invitation): Path<String>,
) -> Result<Json<Declined>, ApiError> {
    let user = person(&state, &caller).await?.ok_or_else(needs_person)?;
    let id = invitation_id(&invitation)?;
    state.acl().decline_invitation(&id, &user).await?;
    Ok(Json(Declined {
        status: "declined".into(),
    }))
}
