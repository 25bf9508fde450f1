//! `POST /v1/projects`, `GET /v1/projects`, `GET /v1/projects/{id}`: the project objects td
//! reads (`id`, `name`, `description`, `created_at`, `updated_at`).

use axum::{
    Json,
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
};
use serde::{Deserialize, Serialize};
use tdsync_acl::{Action, Actor, Project};
use utoipa::ToSchema;

use crate::{auth::Caller, error::ApiError, openapi::schemas::ProjectIdSchema, state::AppState};

/// td's project object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProjectResponse {
    pub id: String,
    pub name: String,
    pub description: String,
    /// RFC 3339, second precision, UTC.
    pub created_at: String,
    pub updated_at: String,
}

impl From<&Project> for ProjectResponse {
    fn from(p: &Project) -> ProjectResponse {
        let t = |d: &chrono::DateTime<chrono::Utc>| {
            d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        };
        ProjectResponse {
            id: p.id.to_string(),
            name: p.name.clone(),
            description: p.description.clone(),
            created_at: t(&p.created_at),
            updated_at: t(&p.updated_at),
        }
    }
}

/// td's create-project body (`td sync init` always sends both keys).
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct CreateProject {
    #[schema(value_type = crate::openapi::schemas::NameSchema)]
    pub name: String,
    #[serde(default)]
    #[schema(value_type = crate::openapi::schemas::DescriptionSchema)]
    pub description: String,
}

/// `POST /v1/projects`: a new project in the caller's tenant (needs write on a tenant-wide
/// token).
#[utoipa::path(
    post, path = "/v1/projects", tag = "projects",
    request_body = CreateProject,
    responses(
        (status = 201, description = "Created", body = ProjectResponse),
        (status = 400, description = "Bad JSON, or a name or description the rules refuse", body = tdsync_protocol::wire::ErrorBody),
        (status = 403, description = "Needs write scope and a token bound to all projects", body = tdsync_protocol::wire::ErrorBody),
        (status = 409, description = "The tenant already has a project of that name", body = tdsync_protocol::wire::ErrorBody),
        (status = 413, description = "Body over 16 MiB", body = tdsync_protocol::wire::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<(StatusCode, Json<ProjectResponse>), ApiError> {
    state.tenant_action(&caller, Action::CreateProject)?;
    let req: CreateProject = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid json body: {e}")))?;
    if req.name.trim().is_empty() {
        return Err(ApiError::bad_request("name is required"));
    }
    let actor = Actor::Token(caller.0.id.clone());
    let project = state
        .acl()
        .create_project(&caller.0.tenant, &req.name, &req.description, &actor)
        .await?;
    Ok((StatusCode::CREATED, Json(ProjectResponse::from(&project))))
}

/// `GET /v1/projects`: the projects this token may read, oldest first.
#[utoipa::path(
    get, path = "/v1/projects", tag = "projects",
    responses(
        (status = 200, description = "Projects the token reaches", body = Vec<ProjectResponse>),
        (status = 403, description = "The token may not read (a `mint`-only token)", body = tdsync_protocol::wire::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<ProjectResponse>>, ApiError> {
    state.tenant_action(&caller, Action::ListProjects)?;
    let mut projects = state.acl().projects(&caller.0.tenant).await?;
    projects.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
    let visible = caller.0.visible(&projects);
    Ok(Json(
        visible.into_iter().map(ProjectResponse::from).collect(),
    ))
}

/// `GET /v1/projects/{id}`
#[utoipa::path(
    get, path = "/v1/projects/{id}", tag = "projects",
    params(("id" = ProjectIdSchema, Path, description = "Project id")),
    responses(
        (status = 200, body = ProjectResponse),
        (status = 403, description = "The token may not read", body = tdsync_protocol::wire::ErrorBody),
        (status = 404, description = "No such project for this token", body = tdsync_protocol::wire::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ProjectResponse>, ApiError> {
    let project = state.project(&caller, &id, Action::ReadEvents).await?;
    Ok(Json(ProjectResponse::from(&project.record)))
}
