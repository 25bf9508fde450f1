//! The live layer's part in the sync routes: changes published after a push or a restore,
//! poll-interval advice, the long-poll offer and its `wait` parameter.

use std::{collections::HashMap, time::Duration};

use axum::http::{HeaderMap, HeaderValue};
use tdsync_live::{Change, ChangeKind, Head, MAX_WAIT, ProjectKey, Touched};
use tdsync_protocol::{
    ActionType, EntityType,
    wire::{PushRequest, PushResponse, SyncStatus},
};
use tdsync_tenants::{Project, Restored};

use super::query_int;
use crate::{error::ApiError, state::AppState};

/// The poll interval a client should keep (seconds), on pulls and status at the head.
pub const POLL_INTERVAL: &str = "x-poll-interval";
/// On every pull: the longest `wait` (seconds) this server holds a pull at the head for.
pub const LONG_POLL: &str = "x-tdsync-long-poll";

pub fn key(project: &Project) -> ProjectKey {
    ProjectKey::new(project.tenant(), project.id())
}

/// `wait=S` of a pull: absent or 0 answers at once; more than [`MAX_WAIT`] is held for
/// [`MAX_WAIT`]; negative is refused.
pub fn wait_param(params: &HashMap<String, String>) -> Result<Duration, ApiError> {
    match query_int(params, "wait")? {
        None => Ok(Duration::ZERO),
        Some(s) if s < 0 => Err(ApiError::bad_request(format!(
            "wait must be 0 to {} seconds, got {s}",
            MAX_WAIT.as_secs()
        ))),
        Some(s) => Ok(Duration::from_secs(s as u64).min(MAX_WAIT)),
    }
}

pub fn long_poll_offer() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(LONG_POLL, HeaderValue::from(MAX_WAIT.as_secs()));
    headers
}

/// `X-Poll-Interval` from the time of the project's last event.
pub fn poll_advice(headers: &mut HeaderMap, status: Option<SyncStatus>) {
    let last = status
        .and_then(|s| s.last_event_time)
        .and_then(|t| tdsync_protocol::timestamp::parse(&t))
        .map(|t| t.to_utc());
    let secs = tdsync_live::poll::advice(last, chrono::Utc::now());
    headers.insert(POLL_INTERVAL, HeaderValue::from(secs));
}

/// The project's head as other processes read it from the shared backend, written under the
/// lease `epoch` (a shard node's; none on a single node).
pub fn head(project: &Project, epoch: Option<i64>) -> Option<Head> {
    project.status_cached().map(|status| Head {
        epoch: epoch.unwrap_or(0),
        status,
    })
}

/// After a push: where the device is, and — when it logged events — the change, for every
/// subscriber, with the new head. On a shard node the answer waits for the head to be shared
/// (one round trip to Redis, skipped while it is down): once a push is acknowledged, every
/// gateway knows the head moved.
pub async fn pushed(
    state: &AppState,
    project: &Project,
    epoch: Option<i64>,
    request: &PushRequest,
    response: &PushResponse,
) {
    let key = key(project);
    let known = response
        .acks
        .iter()
        .map(|a| a.server_seq)
        .chain(response.rejected.iter().filter_map(|r| r.server_seq))
        .max();
    if let Some(seq) = known {
        state.live().record_cursor(&key, &request.device_id, seq);
    }
    let Some(first) = response.acks.iter().map(|a| a.server_seq).min() else {
        return;
    };
    let acked: std::collections::HashSet<i64> =
        response.acks.iter().map(|a| a.client_action_id).collect();
    let touched = request
        .events
        .iter()
        .filter(|e| acked.contains(&e.client_action_id))
        .map(|e| Touched {
            entity_type: EntityType::parse(&e.entity_type)
                .map_or_else(|| e.entity_type.clone(), |t| t.as_str().to_string()),
            entity_id: e.entity_id.clone(),
            action: ActionType::normalize_wire(&e.action_type)
                .as_str()
                .to_string(),
        })
        .collect();
    publish(state, project, epoch, key, ChangeKind::Push, first, touched).await;
}

/// After a restore: the change it made.
pub async fn restored(
    state: &AppState,
    project: &Project,
    epoch: Option<i64>,
    restored: &Restored,
) {
    let touched = vec![Touched {
        entity_type: restored.entity_type.clone(),
        entity_id: restored.entity_id.clone(),
        action: restored.action_type.clone(),
    }];
    let first = restored.server_seq;
    publish(
        state,
        project,
        epoch,
        key(project),
        ChangeKind::Restore,
        first,
        touched,
    )
    .await;
}

async fn publish(
    state: &AppState,
    project: &Project,
    epoch: Option<i64>,
    key: ProjectKey,
    kind: ChangeKind,
    first: i64,
    touched: Vec<Touched>,
) {
    // The head as published by the write (it may also hold events the server added, such as a
    // cycle repair, or a later push's).
    let shared = head(project, epoch);
    let change = Change {
        kind,
        head: shared
            .as_ref()
            .map_or(first, |h| h.status.last_server_seq.max(first)),
        first,
        touched,
        at: chrono::Utc::now(),
    };
    if state.ownership().is_some() {
        state.live().publish(&key, shared, change).await;
    } else {
        // Only a cluster's gateways read shared heads: a single node keeps the fan-out off
        // the answer.
        let live = state.live().clone();
        tokio::spawn(async move { live.publish(&key, shared, change).await });
    }
}
