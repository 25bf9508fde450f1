//! td's sync routes: push, pull, status and snapshot, field for field
//! (`../shared/reference/td-wire-protocol.md` §1.7–1.10, §4).

use std::collections::HashMap;

use axum::{
    Json,
    body::Bytes,
    extract::{Path, Query, State},
    http::{HeaderMap, HeaderValue, header},
    response::{IntoResponse, Response},
};
use tdsync_acl::Action;
use tdsync_protocol::wire::{
    PullQuery, PullResponse, PushRequest, PushResponse, SyncStatus, error_code,
};

use super::query_int;
use crate::{
    auth::Caller,
    error::ApiError,
    openapi::schemas::ProjectIdSchema,
    state::{AppState, blocking},
};

/// `POST /v1/projects/{id}/sync/push`
#[utoipa::path(
    post, path = "/v1/projects/{id}/sync/push", tag = "sync",
    params(("id" = ProjectIdSchema, Path, description = "Project id")),
    request_body = PushRequest,
    responses(
        (status = 200, description = "Events stored (acks) or already stored (duplicate rejections with their seq)", body = PushResponse),
        (status = 400, description = "Malformed push (nothing was stored)", body = tdsync_protocol::wire::ErrorBody),
        (status = 403, description = "The token may not write", body = tdsync_protocol::wire::ErrorBody),
        (status = 404, description = "No such project for this token", body = tdsync_protocol::wire::ErrorBody),
        (status = 413, description = "Body over 16 MiB", body = tdsync_protocol::wire::ErrorBody),
        (status = 503, description = "The control plane cannot be reached, or an event could not be applied for a reason that may pass (nothing was stored): try again", body = tdsync_protocol::wire::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn push(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<PushResponse>, ApiError> {
    let project = state.project(&caller, &id, Action::PushEvents).await?.shard;
    let request: PushRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid json body: {e}")))?;
    let response = blocking(move || project.push(&request)).await?;
    state.metrics().pushed(response.accepted.max(0) as u64);
    Ok(Json(response))
}

/// `GET /v1/projects/{id}/sync/pull?after_server_seq=&limit=&exclude_client=`
#[utoipa::path(
    get, path = "/v1/projects/{id}/sync/pull", tag = "sync",
    params(
        ("id" = ProjectIdSchema, Path, description = "Project id"),
        ("after_server_seq" = Option<i64>, Query, description = "Cursor: events after this seq (default 0; empty is the default)"),
        ("limit" = Option<i64>, Query, minimum = 1, description = "Page size, at least 1 (default 1000, also when empty; above 10000 is capped to 10000)"),
        ("exclude_client" = Option<String>, Query, description = "td's autosync sends its device id here. Accepted and ignored: the caller's own events are always returned, so td re-applies them in server order and ends with the same values as every other replica"),
    ),
    responses(
        (status = 200, description = "A page of events in server order", body = PullResponse),
        (status = 400, description = "A query parameter is not a 64-bit integer, or limit < 1", body = tdsync_protocol::wire::ErrorBody),
        (status = 403, description = "The token may not read", body = tdsync_protocol::wire::ErrorBody),
        (status = 404, description = "No such project for this token", body = tdsync_protocol::wire::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn pull(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<PullResponse>, ApiError> {
    let project = state.project(&caller, &id, Action::ReadEvents).await?.shard;
    let query = pull_query(&params)?;
    // At the head the answer is known without touching SQLite or leaving this worker.
    let page = match project.pull_cached(&query)? {
        Some(page) => page,
        None => blocking(move || project.pull(&query)).await?,
    };
    state.metrics().pulled(page.events.len() as u64);
    Ok(Json(page))
}

fn pull_query(params: &HashMap<String, String>) -> Result<PullQuery, ApiError> {
    Ok(PullQuery {
        after_server_seq: query_int(params, "after_server_seq")?.unwrap_or(0),
        limit: query_int(params, "limit")?,
        exclude_client: params
            .get("exclude_client")
            .filter(|d| !d.is_empty())
            .cloned(),
    })
}

/// `GET /v1/projects/{id}/sync/status`
#[utoipa::path(
    get, path = "/v1/projects/{id}/sync/status", tag = "sync",
    params(("id" = ProjectIdSchema, Path, description = "Project id")),
    responses(
        (status = 200, description = "Event count, head seq and the head's server time", body = SyncStatus),
        (status = 403, description = "The token may not read", body = tdsync_protocol::wire::ErrorBody),
        (status = 404, description = "No such project for this token", body = tdsync_protocol::wire::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn status(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<SyncStatus>, ApiError> {
    let project = state.project(&caller, &id, Action::ReadEvents).await?.shard;
    let status = match project.status_cached() {
        Some(status) => status,
        None => blocking(move || project.status()).await?,
    };
    Ok(Json(status))
}

/// `GET /v1/projects/{id}/sync/snapshot`: a td database of the projection at the head.
#[utoipa::path(
    get, path = "/v1/projects/{id}/sync/snapshot", tag = "sync",
    params(("id" = ProjectIdSchema, Path, description = "Project id")),
    responses(
        (status = 200, description = "A td schema-38 SQLite database", content_type = "application/x-sqlite3", body = Vec<u8>,
            headers(("X-Snapshot-Seq" = i64, description = "The last seq the snapshot contains"))),
        (status = 403, description = "The token may not read", body = tdsync_protocol::wire::ErrorBody),
        (status = 404, description = "No such project for this token, or no events yet (`no_events`: td falls back to a normal pull)", body = tdsync_protocol::wire::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn snapshot(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let project = state.project(&caller, &id, Action::ReadEvents).await?.shard;
    let snap = blocking(move || project.snapshot()).await?.ok_or_else(|| {
        ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            error_code::NO_EVENTS,
            format!("project {id} has no events yet"),
        )
    })?;
    let bytes = tokio::fs::read(&snap.path).await.map_err(|e| {
        ApiError::internal(format!("reading snapshot {}: {e}", snap.path.display()))
    })?;
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-sqlite3"),
    );
    headers.insert("X-Snapshot-Seq", HeaderValue::from(snap.seq));
    Ok((headers, bytes).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_parameters_are_checked() {
        let q = |pairs: &[(&str, &str)]| {
            pull_query(
                &pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            )
        };
        let ok = q(&[
            ("after_server_seq", "5"),
            ("limit", "100"),
            ("exclude_client", "dev"),
        ])
        .unwrap();
        assert_eq!(
            (ok.after_server_seq, ok.limit, ok.exclude_client.as_deref()),
            (5, Some(100), Some("dev"))
        );
        assert_eq!(q(&[]).unwrap().after_server_seq, 0);
        let err = q(&[("after_server_seq", "x")]).unwrap_err();
        assert_eq!(err.status, axum::http::StatusCode::BAD_REQUEST);
        assert!(err.message.contains("after_server_seq"));
        assert!(q(&[("limit", "1.5")]).is_err());
        // td's server's reading: empty is absent, anything but a plain integer is refused.
        assert_eq!(
            q(&[("limit", ""), ("after_server_seq", "")]).unwrap(),
            q(&[]).unwrap()
        );
        assert!(q(&[("limit", " 5")]).is_err());
        assert!(q(&[("after_server_seq", "9223372036854775808")]).is_err());
        assert_eq!(
            q(&[("after_server_seq", "-3")]).unwrap().after_server_seq,
            -3
        );
    }
}
