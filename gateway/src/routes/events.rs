//! `GET /v1/projects/{id}/events`: a project's changes as Server-Sent Events.
//!
//! Compatible with td-sync's stream — events `issue.upserted`, `issue.deleted` and `refresh`
//! with the body `{type, issue_id, change_token, timestamp}`, a `: ping` comment every 15 s, and
//! an immediate `refresh` when the client sends `Last-Event-ID` — plus what td-sync lacks: a
//! `change` event for every accepted push and every restore (the new head seq, the first seq,
//! the entities touched), and `id:` set to the head seq, so a client that reconnects with it is
//! sent what it missed. A subscriber that falls behind is sent `refresh` instead of slowing the
//! others down.

use std::{convert::Infallible, sync::Arc, time::Duration};

use axum::{
    extract::{Path, State},
    http::HeaderMap,
    response::sse::{Event, KeepAlive, Sse},
};
use futures_util::{Stream, StreamExt, stream};
use serde::Serialize;
use tdsync_acl::Action;
use tdsync_live::{Change, ChangeKind, Touched, hub::Subscription};
use tdsync_protocol::{
    ActionType, EntityType,
    wire::{PullQuery, PullResponse},
};
use tokio::sync::broadcast::error::RecvError;
use utoipa::ToSchema;

use super::live;
use crate::{
    auth::Caller, error::ApiError, openapi::schemas::ProjectIdSchema, state::AppState,
    state::blocking,
};

/// How often an idle stream sends `: ping` (td-sync's interval: proxies drop silent streams).
pub const PING: Duration = Duration::from_secs(15);
/// The longest `Last-Event-ID` accepted (a seq, or td-sync's change token, is far shorter).
const MAX_LAST_EVENT_ID: usize = 64;
/// Events a reconnecting client is sent from the log at most; past that, `refresh` says "pull".
const REPLAY: i64 = 1000;

/// td-sync's event body.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectEvent {
    /// `issue.upserted`, `issue.deleted` or `refresh`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issue_id: Option<String>,
    /// The head seq after the change (for `refresh`: the `Last-Event-ID` the client sent).
    pub change_token: String,
    /// RFC 3339, UTC.
    pub timestamp: String,
}

/// tdsync's `change` event body: one per accepted push or restore.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangeEvent {
    /// Always `change`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `push` or `restore`.
    pub cause: String,
    /// The head seq after the change: pull after your cursor up to here.
    pub head: i64,
    /// The seq of the change's first event.
    pub first: i64,
    #[schema(value_type = Vec<Object>)]
    pub touched: Vec<serde_json::Value>,
    pub change_token: String,
    pub timestamp: String,
}

/// `GET /v1/projects/{id}/events`
#[utoipa::path(
    get, path = "/v1/projects/{id}/events", tag = "sync",
    params(
        ("id" = ProjectIdSchema, Path, description = "Project id"),
        ("Last-Event-ID" = Option<String>, Header, description = "The `id` of the last event received (a head seq): the stream starts with `refresh`, then the changes after that seq (up to 1000 events; past that `refresh` alone says to pull). At most 64 characters"),
    ),
    responses(
        (status = 200, description = "`text/event-stream`: `change` events (body ChangeEvent), td-sync's `issue.upserted` / `issue.deleted` / `refresh` (body ProjectEvent), each with `id:` the head seq; `: ping` every 15 s", content_type = "text/event-stream", body = String),
        (status = 400, description = "Last-Event-ID longer than 64 characters", body = tdsync_protocol::wire::ErrorBody),
        (status = 403, description = "The token may not read", body = tdsync_protocol::wire::ErrorBody),
        (status = 404, description = "No such project for this token", body = tdsync_protocol::wire::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn stream_events(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let last_id = last_event_id(&headers)?;
    let project = state.project(&caller, &id, Action::ReadEvents).await?.shard;
    // Subscribed before the log is read, so nothing falls between the replay and the stream.
    let changes = state.live().subscribe(&live::key(&project));
    let mut opening = Vec::new();
    if let Some(last) = last_id {
        let page = match replay_query(&last) {
            Some(query) => Some(match project.pull_cached(&query)? {
                Some(page) => page,
                None => blocking(move || project.pull(&query)).await?,
            }),
            None => None,
        };
        opening = self::opening(&last, page.as_ref());
    }
    Ok(stream(changes, opening))
}

/// The `Last-Event-ID` a reconnecting client sent, checked.
pub(crate) fn last_event_id(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get("last-event-id") else {
        return Ok(None);
    };
    let text = v
        .to_str()
        .map_err(|_| ApiError::bad_request("Last-Event-ID is not text"))?;
    if text.len() > MAX_LAST_EVENT_ID {
        return Err(ApiError::bad_request(format!(
            "Last-Event-ID is {} characters long; at most {MAX_LAST_EVENT_ID}",
            text.len()
        )));
    }
    Ok(Some(text.trim().to_string()))
}

/// The pull that replays what a client reconnecting with `last` missed (when `last` is a seq).
pub(crate) fn replay_query(last: &str) -> Option<PullQuery> {
    let after = last.parse::<i64>().ok().filter(|after| *after >= 0)?;
    Some(PullQuery {
        after_server_seq: after,
        limit: Some(REPLAY),
        exclude_client: None,
    })
}

/// What a reconnecting client is sent first: `refresh`, then the changes in `page` (the log
/// after its `last` seq) when they fit in one page.
pub(crate) fn opening(last: &str, page: Option<&PullResponse>) -> Vec<Event> {
    let mut opening = vec![refresh(last)];
    if let Some(page) = page.filter(|p| !p.events.is_empty() && !p.has_more) {
        opening.extend(events_of(&replayed(page)));
    }
    opening
}

/// The stream: `opening`, then every change delivered to `changes`, with `: ping` when idle.
pub(crate) fn stream(
    changes: Subscription,
    opening: Vec<Event>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let live = stream::unfold(changes, next_events).flat_map(stream::iter);
    let all = stream::iter(opening).chain(live).map(Ok);
    Sse::new(all).keep_alive(KeepAlive::new().interval(PING).text("ping"))
}

/// The next change's events, or `refresh` after falling behind or missing changes; the end
/// when the layer closes.
async fn next_events(mut changes: Subscription) -> Option<(Vec<Event>, Subscription)> {
    match changes.recv().await {
        Ok(change) if change.kind == ChangeKind::Missed => Some((vec![refresh("")], changes)),
        Ok(change) => Some((events_of(&change), changes)),
        Err(RecvError::Lagged(_)) => Some((vec![refresh("")], changes)),
        Err(RecvError::Closed) => None,
    }
}

/// What the log after a reconnecting client's seq holds, as one change.
fn replayed(page: &PullResponse) -> Arc<Change> {
    let touched = page
        .events
        .iter()
        .map(|e| Touched {
            entity_type: EntityType::parse(&e.entity_type)
                .map_or_else(|| e.entity_type.clone(), |t| t.as_str().to_string()),
            entity_id: e.entity_id.clone(),
            action: ActionType::normalize_wire(&e.action_type)
                .as_str()
                .to_string(),
        })
        .collect();
    Arc::new(Change {
        kind: ChangeKind::Push,
        head: page.last_server_seq,
        first: page.events.first().map_or(0, |e| e.server_seq),
        touched,
        at: chrono::Utc::now(),
    })
}

/// One `change` event, then td-sync's event for each issue it touched.
fn events_of(change: &Change) -> Vec<Event> {
    let token = change.head.to_string();
    let timestamp = time(change.at);
    let body = ChangeEvent {
        kind: "change",
        cause: match change.kind {
            ChangeKind::Push => "push".into(),
            ChangeKind::Restore => "restore".into(),
            // Sent as `refresh` before it gets here (`next_events`).
            ChangeKind::Missed => "missed".into(),
        },
        head: change.head,
        first: change.first,
        touched: change
            .touched
            .iter()
            .map(|t| serde_json::json!({"entity_type": t.entity_type, "entity_id": t.entity_id, "action": t.action}))
            .collect(),
        change_token: token.clone(),
        timestamp: timestamp.clone(),
    };
    let mut out = vec![event("change", &body, &token)];
    for t in change.touched.iter().filter(|t| t.entity_type == "issues") {
        let kind = match t.action.as_str() {
            "delete" | "soft_delete" => "issue.deleted",
            _ => "issue.upserted",
        };
        let body = ProjectEvent {
            kind,
            issue_id: Some(t.entity_id.clone()),
            change_token: token.clone(),
            timestamp: timestamp.clone(),
        };
        out.push(event(kind, &body, &token));
    }
    out
}

fn refresh(token: &str) -> Event {
    let body = ProjectEvent {
        kind: "refresh",
        issue_id: None,
        change_token: token.to_string(),
        timestamp: time(chrono::Utc::now()),
    };
    event("refresh", &body, token)
}

fn event(name: &str, body: &impl Serialize, id: &str) -> Event {
    let data = serde_json::to_string(body).unwrap_or_else(|_| "{}".into());
    let event = Event::default().event(name).data(data);
    // An id may not hold a newline; a header value cannot, and seqs are digits.
    if id.is_empty() { event } else { event.id(id) }
}

fn time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}
