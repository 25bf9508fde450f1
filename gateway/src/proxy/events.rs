//! `GET …/events` on a gateway: the stream is served here from the changes shard nodes publish
//! through Redis (the same events, ids and pings as a node's); what a reconnecting client
//! missed is read from the owner with a pull. While Redis is down the stream is the owner's.

use std::collections::HashMap;

use axum::{
    body::Body,
    extract::{Path, Request, State},
    http::{HeaderMap, Method, header},
    response::{IntoResponse, Response},
};
use tdsync_acl::Action;
use tdsync_live::ProjectKey;
use tdsync_protocol::wire::{PullQuery, PullResponse};

use super::{Key, checked, forward_to, proxy};
use crate::{auth::Caller, error::ApiError, routes::events, state::AppState};

/// A replayed page's largest body (1000 events of td's size fit many times over).
const REPLAY_BODY_LIMIT: usize = 64 << 20;

pub async fn stream_events(
    State(state): State<AppState>,
    caller: Caller,
    Path(params): Path<HashMap<String, String>>,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, ApiError> {
    let last = events::last_event_id(&headers)?;
    let key = checked(&state, &caller, &params, Action::ReadEvents).await?;
    if !state.live().shared_up() {
        return forward_to(&state, key, request).await;
    }
    // Subscribed before the log is read, so nothing falls between the replay and the stream.
    let changes = state.live().subscribe(&ProjectKey::new(&key.0, &key.1));
    let mut opening = Vec::new();
    if let Some(last) = last {
        let page = match events::replay_query(&last) {
            Some(query) => replay(&state, &key, &query, &headers).await,
            None => None,
        };
        opening = events::opening(&last, page.as_ref());
    }
    proxy(&state)?.answered();
    Ok(events::stream(changes, opening).into_response())
}

/// The owner's page after the client's seq, with the client's own token; `None` when it cannot
/// be had (the stream then opens with `refresh` alone, which tells the client to pull).
async fn replay(
    state: &AppState,
    key: &Key,
    query: &PullQuery,
    headers: &HeaderMap,
) -> Option<PullResponse> {
    let uri = format!(
        "/v1/projects/{}/sync/pull?after_server_seq={}&limit={}",
        key.1,
        query.after_server_seq,
        query.limit.unwrap_or(1)
    );
    let mut request = Request::builder()
        .method(Method::GET)
        .uri(uri)
        .body(Body::empty())
        .ok()?;
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        request
            .headers_mut()
            .insert(header::AUTHORIZATION, auth.clone());
    }
    let answer = forward_to(state, key.clone(), request).await.ok()?;
    if !answer.status().is_success() {
        return None;
    }
    let body = axum::body::to_bytes(answer.into_body(), REPLAY_BODY_LIMIT)
        .await
        .ok()?;
    serde_json::from_slice(&body).ok()
}
