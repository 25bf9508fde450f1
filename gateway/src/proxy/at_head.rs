//! What a gateway answers without a shard node: a pull at the head (and a long poll's wait
//! there) and a status, from the head the project's node shares through Redis
//! (`Live::head`). A head that is not shared, whose writer went quiet, or Redis being down
//! sends the request to the owner, as does a pull behind the head; so does a long poll once a
//! change arrives (the owner then answers at once with the new events).

use std::{collections::HashMap, time::Instant};

use axum::{
    Json,
    extract::{Path, Query, Request, State},
    http::HeaderMap,
    response::{IntoResponse, Response},
};
use tdsync_acl::Action;
use tdsync_live::{Live, ProjectKey};
use tdsync_protocol::wire::PullQuery;
use tdsync_tenants::pull_at_head;

use super::{Key, checked, forward_to, proxy};
use crate::{
    auth::Caller,
    error::ApiError,
    routes::{live, sync::pull_query},
    state::AppState,
};

/// `GET …/sync/pull` on a gateway.
pub async fn pull(
    State(state): State<AppState>,
    caller: Caller,
    Path(params): Path<HashMap<String, String>>,
    Query(query): Query<HashMap<String, String>>,
    request: Request,
) -> Result<Response, ApiError> {
    let key = checked(&state, &caller, &params, Action::ReadEvents).await?;
    let pull = pull_query(&query)?;
    let wait = live::wait_param(&query)?;
    match answer_at_head(&state, &key, &pull, wait).await? {
        Some(answer) => Ok(answer),
        None => forward_to(&state, key, request).await,
    }
}

/// The answer to `pull` when the shared head says it is at the head (after waiting up to
/// `wait` for a change that did not come); `None` when the owner must answer.
async fn answer_at_head(
    state: &AppState,
    key: &Key,
    pull: &PullQuery,
    wait: std::time::Duration,
) -> Result<Option<Response>, ApiError> {
    let live_key = ProjectKey::new(&key.0, &key.1);
    let Some(mut status) = state.live().head(&live_key).await else {
        return Ok(None);
    };
    let Some(page) = pull_at_head(pull, status.last_server_seq)? else {
        return Ok(None);
    };
    if !wait.is_zero() {
        // Subscribed before the head is read again, so a push in between is not missed.
        let mut changes = state.live().subscribe(&live_key);
        match state.live().head(&live_key).await {
            Some(now) if pull_at_head(pull, now.last_server_seq)?.is_some() => status = now,
            _ => return Ok(None),
        }
        let deadline = Instant::now() + wait;
        if Live::wait_past(&mut changes, pull.after_server_seq, deadline).await {
            return Ok(None);
        }
    }
    proxy(state)?.answered();
    state.metrics().pulled(0);
    if let Some(device) = &pull.exclude_client {
        state
            .live()
            .record_cursor(&live_key, device, page.last_server_seq);
    }
    let mut headers = live::long_poll_offer();
    live::poll_advice(&mut headers, Some(status));
    Ok(Some((headers, Json(page)).into_response()))
}

/// `GET …/sync/status` on a gateway.
pub async fn status(
    State(state): State<AppState>,
    caller: Caller,
    Path(params): Path<HashMap<String, String>>,
    request: Request,
) -> Result<Response, ApiError> {
    let key = checked(&state, &caller, &params, Action::ReadEvents).await?;
    let Some(status) = state.live().head(&ProjectKey::new(&key.0, &key.1)).await else {
        return forward_to(&state, key, request).await;
    };
    proxy(&state)?.answered();
    let mut headers = HeaderMap::new();
    live::poll_advice(&mut headers, Some(status.clone()));
    Ok((headers, Json(status)).into_response())
}
