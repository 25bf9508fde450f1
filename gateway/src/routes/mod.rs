//! The route table: td's v1 routes, tdsync's extensions, and the service routes.

pub mod events;
pub mod github;
pub mod invitations;
pub(crate) mod live;
pub mod login;
pub mod members;
pub mod meta;
pub mod projects;
pub mod recovery;
pub mod sync;
pub mod tokens;

use std::collections::HashMap;

use axum::{
    Router,
    routing::{MethodRouter, any, delete, get, patch, post},
};

use crate::{error::ApiError, state::AppState};

/// An integer query parameter, read as td's server reads `after_server_seq` and `limit`: absent
/// or empty is `None`; otherwise a decimal `i64` (an optional sign, digits, nothing else), or
/// 400. Every integer query parameter is read here, so the document can say it once
/// (`allowEmptyValue`, see `openapi::refine`).
pub(crate) fn query_int(
    params: &HashMap<String, String>,
    name: &str,
) -> Result<Option<i64>, ApiError> {
    match params.get(name).map(String::as_str) {
        None | Some("") => Ok(None),
        Some(v) => v
            .parse::<i64>()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("{name} must be an integer, got {v:?}"))),
    }
}

/// Every route, with its handler (`--role all` and `shard`).
pub fn router() -> Router<AppState> {
    shard_routes()
        .into_iter()
        .fold(control_routes(), |router, (path, handler)| {
            router.route(path, handler)
        })
}

/// A gateway's routes (`--role gateway`): the control-plane routes answered here; pulls at the
/// head, statuses and event streams answered from the state shared through Redis when it can
/// (`proxy::at_head`, `proxy::events`); every other shard route forwarded to the project's
/// shard node.
pub fn gateway_router() -> Router<AppState> {
    use crate::proxy::{at_head, events, forward};
    shard_routes()
        .into_iter()
        .fold(control_routes(), |router, (path, _)| {
            let handler = match path {
                PULL => get(at_head::pull).fallback(forward),
                STATUS => get(at_head::status).fallback(forward),
                EVENTS => get(events::stream_events).fallback(forward),
                _ => any(forward),
            };
            router.route(path, handler)
        })
}

const PULL: &str = "/v1/projects/{id}/sync/pull";
const STATUS: &str = "/v1/projects/{id}/sync/status";
const EVENTS: &str = "/v1/projects/{id}/events";

/// Routes answered from the control plane alone (tenants, projects, tokens, members) and the
/// service routes.
fn control_routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(meta::health))
        .route("/metrics", get(meta::metrics))
        .route("/openapi.json", get(meta::openapi))
        .route("/v1/projects", post(projects::create).get(projects::list))
        .route("/v1/projects/{id}", get(projects::get))
        .route(
            "/v1/projects/{id}/members",
            get(members::list).post(members::invite),
        )
        .route(
            "/v1/projects/{id}/members/{user_id}",
            patch(members::set_role).delete(members::remove),
        )
        .route(
            "/v1/projects/{id}/invitations",
            post(invitations::invite).get(invitations::list),
        )
        .route(
            "/v1/projects/{id}/invitations/{invitation_id}",
            delete(invitations::revoke),
        )
        .route("/v1/invitations", get(invitations::mine))
        .route(
            "/v1/invitations/{invitation_id}/accept",
            post(invitations::accept),
        )
        .route(
            "/v1/invitations/{invitation_id}/decline",
            post(invitations::decline),
        )
        .route("/v1/auth/device/start", post(login::start))
        .route("/v1/auth/device/poll", post(login::poll))
        .route(
            "/auth/device/approve",
            get(login::approve_page).post(login::approve),
        )
        .route("/login/github", get(github::web_start))
        .route("/login/github/callback", get(github::web_callback))
        .route("/v1/auth/github/device/start", post(github::device_start))
        .route("/v1/auth/github/device/poll", post(github::device_poll))
        .route("/v1/tokens", post(tokens::mint).get(tokens::list))
        .route("/v1/tokens/{id}", delete(tokens::revoke))
}

/// The paths answered from a project's shard (in a cluster, by its shard node).
pub(crate) fn shard_paths() -> Vec<&'static str> {
    shard_routes().into_iter().map(|(path, _)| path).collect()
}

/// The routes answered from a project's shard.
fn shard_routes() -> Vec<(&'static str, MethodRouter<AppState>)> {
    vec![
        ("/v1/projects/{id}/sync/push", post(sync::push)),
        (PULL, get(sync::pull)),
        (STATUS, get(sync::status)),
        ("/v1/projects/{id}/sync/snapshot", get(sync::snapshot)),
        ("/v1/projects/{id}/sync/cursors", get(sync::cursors)),
        (EVENTS, get(events::stream_events)),
        ("/v1/projects/{id}/conflicts", get(recovery::conflicts)),
        (
            "/v1/projects/{id}/conflicts/{cid}/restore",
            post(recovery::restore),
        ),
        (
            "/v1/projects/{id}/history/{entity_type}/{entity_id}",
            get(recovery::history),
        ),
    ]
}
