//! tdsync's token routes (td never calls them): an agent holding a mint-capable token gets
//! itself a short-lived child (`POST /v1/tokens`); admin tokens list and revoke the tenant's
//! tokens. Secrets appear only in the mint response, once.

use axum::{
    Json,
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
};
use serde::{Deserialize, Serialize};
use tdsync_acl::{Action, Actor, MintRequest, ProjectBinding, ProjectId, Scopes, TokenRecord};
use utoipa::ToSchema;

use crate::{
    auth::Caller,
    error::ApiError,
    openapi::schemas::{
        DurationSchema, NameSchema, ProjectBindingSchema, ProjectIdSchema, ScopeSchema,
        ScopesInputSchema, TokenIdSchema, TokenStateSchema,
    },
    state::AppState,
};

/// A mint request for a child of the calling token.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct MintBody {
    /// Comma list or array of scopes: `read`, `write`, `admin`, `mint` (⊆ the caller's).
    #[schema(value_type = ScopesInputSchema)]
    pub scopes: ScopesInput,
    /// Projects the child reaches (⊆ the caller's, at least one); absent or null: the caller's
    /// binding.
    #[serde(default)]
    #[schema(value_type = Option<Vec<ProjectIdSchema>>, min_items = 1)]
    pub projects: Option<Vec<String>>,
    /// Lifetime (≤ the caller's remaining life); absent or null: the caller's.
    #[serde(default)]
    #[schema(value_type = Option<DurationSchema>)]
    pub ttl: Option<String>,
    /// A label for listings; absent or null: `child of <parent id>`.
    #[serde(default)]
    #[schema(value_type = Option<NameSchema>)]
    pub name: Option<String>,
}

/// `scopes` as sent: a comma list or an array of them (the document's `ScopesInput`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ScopesInput {
    List(Vec<String>),
    Text(String),
}

/// A token as listings show it (never its secret).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TokenView {
    pub id: String,
    pub name: String,
    #[schema(value_type = Vec<ScopeSchema>)]
    pub scopes: Vec<String>,
    #[schema(value_type = ProjectBindingSchema)]
    pub projects: serde_json::Value,
    pub expires_at: Option<String>,
    pub parent: Option<String>,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
    #[schema(value_type = TokenStateSchema)]
    pub state: String,
}

/// The one response that carries a secret.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MintedToken {
    pub id: String,
    /// Shown once; store it now.
    pub token: String,
    #[schema(value_type = Vec<ScopeSchema>)]
    pub scopes: Vec<String>,
    #[schema(value_type = ProjectBindingSchema)]
    pub projects: serde_json::Value,
    pub expires_at: Option<String>,
}

fn time(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn view(t: &TokenRecord, now: chrono::DateTime<chrono::Utc>) -> TokenView {
    TokenView {
        id: t.id.to_string(),
        name: t.name.clone(),
        scopes: t.scopes.names().into_iter().map(String::from).collect(),
        projects: t.projects.to_json(),
        expires_at: t.expires_at.as_ref().map(time),
        parent: t.parent.as_ref().map(ToString::to_string),
        created_at: time(&t.created_at),
        last_used_at: t.last_used_at.as_ref().map(time),
        revoked_at: t.revoked_at.as_ref().map(time),
        state: t.state(now).as_str().to_string(),
    }
}

/// `POST /v1/tokens`: mints a child of the calling token (needs the `mint` scope).
#[utoipa::path(
    post, path = "/v1/tokens", tag = "tokens",
    request_body = MintBody,
    responses(
        (status = 201, description = "The new token, shown once", body = MintedToken),
        (status = 400, description = "Bad JSON, or scopes, projects, ttl or name the rules refuse", body = tdsync_protocol::wire::ErrorBody),
        (status = 403, description = "Not mint-capable, or the child would exceed its parent", body = tdsync_protocol::wire::ErrorBody),
        (status = 404, description = "A project in `projects` is not one of the tenant's", body = tdsync_protocol::wire::ErrorBody),
        (status = 413, description = "Body over 16 MiB", body = tdsync_protocol::wire::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn mint(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<(StatusCode, Json<MintedToken>), ApiError> {
    let req: MintBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid json body: {e}")))?;
    let scopes_text = match &req.scopes {
        ScopesInput::List(list) => list.join(","),
        ScopesInput::Text(text) => text.clone(),
    };
    let scopes = Scopes::parse(&scopes_text).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let projects = match &req.projects {
        None => None,
        Some(ids) => Some(ProjectBinding::Only(
            ids.iter()
                .map(|p| ProjectId::parse(p).map_err(|e| ApiError::bad_request(e.to_string())))
                .collect::<Result<_, _>>()?,
        )),
    };
    let ttl = match &req.ttl {
        None => None,
        Some(t) => {
            Some(tdsync_acl::parse_duration(t).map_err(|e| ApiError::bad_request(e.to_string()))?)
        }
    };
    let request = MintRequest {
        name: req.name.clone(),
        scopes,
        projects,
        ttl,
    };
    let issued = state.acl().mint_child(&caller.0, request).await?;
    let r = &issued.record;
    Ok((
        StatusCode::CREATED,
        Json(MintedToken {
            id: r.id.to_string(),
            token: issued.token.expose().to_string(),
            scopes: r.scopes.names().into_iter().map(String::from).collect(),
            projects: r.projects.to_json(),
            expires_at: r.expires_at.as_ref().map(time),
        }),
    ))
}

/// `GET /v1/tokens`: the tenant's tokens (admin tokens only; never secrets).
#[utoipa::path(
    get, path = "/v1/tokens", tag = "tokens",
    responses(
        (status = 200, description = "The tenant's tokens, revoked and expired ones too", body = Vec<TokenView>),
        (status = 403, description = "The token may not manage tokens (needs admin)", body = tdsync_protocol::wire::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<TokenView>>, ApiError> {
    state.tenant_action(&caller, Action::ManageTokens)?;
    let now = state.acl().now();
    let tokens = state.acl().tokens(&caller.0.tenant).await?;
    Ok(Json(tokens.iter().map(|t| view(t, now)).collect()))
}

/// `DELETE /v1/tokens/{id}`: revokes a token of the caller's tenant and its children.
#[utoipa::path(
    delete, path = "/v1/tokens/{id}", tag = "tokens",
    params(("id" = TokenIdSchema, Path, description = "Token id (the part after `tds_`, before the secret)")),
    responses(
        (status = 204, description = "Revoked (with every token minted from it)"),
        (status = 403, description = "The token may not manage tokens (needs admin)", body = tdsync_protocol::wire::ErrorBody),
        (status = 404, description = "No such token for this token", body = tdsync_protocol::wire::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.tenant_action(&caller, Action::ManageTokens)?;
    let token = state
        .token(&caller, &id, Action::ManageTokens, None)
        .await?;
    state
        .acl()
        .revoke(&token, &Actor::Token(caller.0.id.clone()))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
