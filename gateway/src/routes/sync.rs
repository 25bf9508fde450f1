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

use super::{live, query_int};
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
    let found = state.project(&caller, &id, Action::PushEvents).await?;
    let project = found.shard;
    let request: PushRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid json body: {e}")))?;
    let request = std::sync::Arc::new(request);
    let response = {
        let (project, request) = (project.clone(), request.clone());
        blocking(move || project.push(&request)).await?
    };
    state.metrics().pushed(response.accepted.max(0) as u64);
    live::pushed(&state, &project, found.epoch, &request, &response).await;
    if let Some(backup) = state.replicated() {
        replicated(backup, &project, &response).await?;
    }
    // A shard node acknowledges only while it still holds the project.
    if let (Some(ownership), Some(epoch)) = (state.ownership(), found.epoch) {
        ownership.still_owner(&project, epoch)?;
    }
    Ok(Json(response))
}

/// `--durability replicated`: the answer waits until every event it names (accepted, or a
/// duplicate of one logged earlier) is in a segment of the backup. When the shipment fails the
/// push is answered 503 with `Retry-After`: its events stay logged and ship later, and the
/// client's retry is answered as duplicates once they have.
async fn replicated(
    backup: &tdsync_backup::BackupService,
    project: &tdsync_tenants::Project,
    response: &PushResponse,
) -> Result<(), ApiError> {
    let newest = response
        .acks
        .iter()
        .map(|a| a.server_seq)
        .chain(response.rejected.iter().filter_map(|r| r.server_seq))
        .max();
    let Some(seq) = newest else {
        return Ok(());
    };
    backup
        .wait_shipped(project.tenant(), project.id(), seq)
        .await
        .map_err(|e| {
            ApiError::unavailable(format!(
                "the push is logged but not yet in the backup (--durability replicated), retry: {e}"
            ))
            .with_retry_after(5)
        })
}

/// `GET /v1/projects/{id}/sync/pull?after_server_seq=&limit=&exclude_client=`
#[utoipa::path(
    get, path = "/v1/projects/{id}/sync/pull", tag = "sync",
    params(
        ("id" = ProjectIdSchema, Path, description = "Project id"),
        ("after_server_seq" = Option<i64>, Query, description = "Cursor: events after this seq (default 0; empty is the default)"),
        ("limit" = Option<i64>, Query, minimum = 1, description = "Page size, at least 1 (default 1000, also when empty; above 10000 is capped to 10000)"),
        ("exclude_client" = Option<String>, Query, description = "td's autosync sends its device id here. Accepted and ignored for the answer: the caller's own events are always returned, so td re-applies them in server order and ends with the same values as every other replica. Recorded as that device's cursor (`sync/cursors`)"),
        ("wait" = Option<i64>, Query, minimum = 0, description = "A tdsync extension td ignores: at the head, hold the request until new events arrive or this many seconds pass (at most 25; more is held for 25), then answer as a normal pull. Absent, empty or 0 answers at once"),
    ),
    responses(
        (status = 200, description = "A page of events in server order", body = PullResponse,
            headers(
                ("X-Tdsync-Long-Poll" = i64, description = "The longest `wait` this server holds a pull for, in seconds (its offer of long polls)"),
                ("X-Poll-Interval" = i64, description = "On an empty page (at the head): seconds until it is worth asking again — about 1 while the project is busy, up to 15 when it is idle"),
            )),
        (status = 400, description = "A query parameter is not a 64-bit integer, limit < 1, or wait < 0", body = tdsync_protocol::wire::ErrorBody),
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
) -> Result<(HeaderMap, Json<PullResponse>), ApiError> {
    let project = state.project(&caller, &id, Action::ReadEvents).await?.shard;
    let query = pull_query(&params)?;
    let wait = live::wait_param(&params)?;
    let mut page = page(&project, &query).await?;
    if page.events.is_empty() && !wait.is_zero() {
        // Subscribed before looking again, so a push in between is not missed.
        let mut changes = state.live().subscribe(&live::key(&project));
        page = self::page(&project, &query).await?;
        if page.events.is_empty() {
            let deadline = std::time::Instant::now() + wait;
            tdsync_live::Live::wait_past(&mut changes, query.after_server_seq, deadline).await;
            page = self::page(&project, &query).await?;
        }
    }
    state.metrics().pulled(page.events.len() as u64);
    if let Some(device) = &query.exclude_client {
        state
            .live()
            .record_cursor(&live::key(&project), device, page.last_server_seq);
    }
    let mut headers = live::long_poll_offer();
    if page.events.is_empty() {
        live::poll_advice(&mut headers, project.status_cached());
    }
    Ok((headers, Json(page)))
}

/// A pull page: from memory at the head (without leaving this worker), else from the shard.
async fn page(
    project: &tdsync_tenants::Project,
    query: &PullQuery,
) -> Result<PullResponse, ApiError> {
    match project.pull_cached(query)? {
        Some(page) => Ok(page),
        None => {
            let (project, query) = (project.clone(), query.clone());
            blocking(move || project.pull(&query)).await
        }
    }
}

pub(crate) fn pull_query(params: &HashMap<String, String>) -> Result<PullQuery, ApiError> {
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
        (status = 200, description = "Event count, head seq and the head's server time", body = SyncStatus,
            headers(("X-Poll-Interval" = i64, description = "Seconds until it is worth asking again: about 1 while the project is busy, up to 15 when it is idle"))),
        (status = 403, description = "The token may not read", body = tdsync_protocol::wire::ErrorBody),
        (status = 404, description = "No such project for this token", body = tdsync_protocol::wire::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn status(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(HeaderMap, Json<SyncStatus>), ApiError> {
    let project = state.project(&caller, &id, Action::ReadEvents).await?.shard;
    let status = match project.status_cached() {
        Some(status) => status,
        None => blocking(move || project.status()).await?,
    };
    let mut headers = HeaderMap::new();
    live::poll_advice(&mut headers, Some(status.clone()));
    Ok((headers, Json(status)))
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

/// Where one device is in a project's log.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct DeviceCursor {
    pub device_id: String,
    /// The highest seq the device pulled up to (with `exclude_client`, as td's autosync sends
    /// it) or was answered for a push.
    pub last_seq: i64,
    /// RFC 3339, UTC.
    pub last_seen: String,
    /// Events of the log past `last_seq`.
    pub behind: i64,
}

/// Who is behind: every device seen pulling or pushing, with the project's head.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Cursors {
    pub head: i64,
    pub devices: Vec<DeviceCursor>,
}

/// `GET /v1/projects/{id}/sync/cursors`: where each device is (admin scope).
#[utoipa::path(
    get, path = "/v1/projects/{id}/sync/cursors", tag = "sync",
    params(("id" = ProjectIdSchema, Path, description = "Project id")),
    responses(
        (status = 200, description = "Each device seen since the server started (with Redis: by any process), by device id", body = Cursors),
        (status = 403, description = "The token is not an admin of the project", body = tdsync_protocol::wire::ErrorBody),
        (status = 404, description = "No such project for this token", body = tdsync_protocol::wire::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn cursors(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Cursors>, ApiError> {
    let project = state
        .project(&caller, &id, Action::ReadCursors)
        .await?
        .shard;
    let head = match project.status_cached() {
        Some(status) => status.last_server_seq,
        None => {
            let project = project.clone();
            blocking(move || project.status()).await?.last_server_seq
        }
    };
    let devices = state
        .live()
        .cursors(&live::key(&project))
        .await
        .into_iter()
        .map(|c| DeviceCursor {
            behind: (head - c.last_seq).max(0),
            device_id: c.device_id,
            last_seq: c.last_seq,
            last_seen: c
                .last_seen
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        })
        .collect();
    Ok(Json(Cursors { head, devices }))
}
