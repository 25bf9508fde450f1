//! tdsync's recovery routes (td never calls them): the conflict log with restore, and every
//! entity's history with its state as of any seq.

use std::collections::HashMap;

use axum::{
    Json,
    extract::{Path, Query, State},
};
use serde::Serialize;
use tdsync_acl::Action;
use tdsync_protocol::{EntityType, openapi::EntityTypeName};
use tdsync_tenants::{Conflict, ConflictFilter, HistoryEntry, Restored};
use utoipa::ToSchema;

use super::query_int;
use crate::{
    auth::Caller,
    error::ApiError,
    openapi::schemas::ProjectIdSchema,
    state::{AppState, blocking},
};

fn entity(name: &str) -> Result<EntityType, ApiError> {
    EntityType::parse(name)
        .ok_or_else(|| ApiError::bad_request(format!("unknown entity type {name:?}")))
}

/// `GET /v1/projects/{id}/conflicts[?entity_type=&entity_id=&after=&limit=]`
#[utoipa::path(
    get, path = "/v1/projects/{id}/conflicts", tag = "recovery",
    params(
        ("id" = ProjectIdSchema, Path, description = "Project id"),
        ("entity_type" = Option<EntityTypeName>, Query, description = "Only this entity; entity_type and entity_id go together (one without the other is refused with 400)"),
        ("entity_id" = Option<String>, Query, description = "Only this entity; entity_type and entity_id go together (one without the other is refused with 400)"),
        ("after" = Option<i64>, Query, description = "Conflicts with an id above this (paging; default 0, also when empty)"),
        ("limit" = Option<i64>, Query, description = "At most this many (default 1000, also when empty); below 1 counts as 1, above 10000 as 10000"),
    ),
    responses(
        (status = 200, description = "Clobbered versions with both sides", body = Vec<Conflict>),
        (status = 400, description = "An unknown entity type, only one of entity_type and entity_id, or a number that is not a 64-bit integer", body = tdsync_protocol::wire::ErrorBody),
        (status = 403, description = "The token may not read", body = tdsync_protocol::wire::ErrorBody),
        (status = 404, description = "No such project for this token", body = tdsync_protocol::wire::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn conflicts(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Vec<Conflict>>, ApiError> {
    let project = state.project(&caller, &id, Action::ReadEvents).await?.shard;
    let filter_entity = match (params.get("entity_type"), params.get("entity_id")) {
        (Some(t), Some(e)) => Some((entity(t)?, e.clone())),
        (None, None) => None,
        _ => {
            return Err(ApiError::bad_request(
                "entity_type and entity_id go together",
            ));
        }
    };
    let filter = ConflictFilter {
        entity: filter_entity,
        after_id: query_int(&params, "after")?.unwrap_or(0),
        limit: query_int(&params, "limit")?,
    };
    Ok(Json(blocking(move || project.conflicts(&filter)).await?))
}

/// `POST /v1/projects/{id}/conflicts/{cid}/restore`: writes the clobbered version back as a
/// new event that every client pulls.
#[utoipa::path(
    post, path = "/v1/projects/{id}/conflicts/{cid}/restore", tag = "recovery",
    params(("id" = ProjectIdSchema, Path, description = "Project id"), ("cid" = i64, Path, description = "Conflict id")),
    responses(
        (status = 200, description = "The event that restored it", body = Restored),
        (status = 400, description = "The conflict id is not a 64-bit integer, or the conflict has no clobbered row to restore", body = tdsync_protocol::wire::ErrorBody),
        (status = 403, description = "The token may not write", body = tdsync_protocol::wire::ErrorBody),
        (status = 404, description = "No such project for this token, or no such conflict", body = tdsync_protocol::wire::ErrorBody),
        (status = 503, description = "The control plane cannot be reached, or the restore could not be applied for a reason that may pass (nothing was stored): try again", body = tdsync_protocol::wire::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn restore(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, cid)): Path<(String, String)>,
) -> Result<Json<Restored>, ApiError> {
    let found = state.project(&caller, &id, Action::PushEvents).await?;
    let project = found.shard;
    let cid: i64 = cid.parse().map_err(|_| {
        ApiError::bad_request(format!("conflict id must be an integer, got {cid:?}"))
    })?;
    let restored = {
        let project = project.clone();
        blocking(move || project.restore_conflict(cid)).await?
    };
    super::live::restored(&state, &project, found.epoch, &restored).await;
    // Like a push: a shard node answers only while it still holds the project.
    if let (Some(ownership), Some(epoch)) = (state.ownership(), found.epoch) {
        ownership.still_owner(&project, epoch)?;
    }
    Ok(Json(restored))
}

/// An entity's history, and optionally its state as of a seq.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HistoryBody {
    /// The canonical name.
    pub entity_type: String,
    pub entity_id: String,
    pub events: Vec<HistoryEntry>,
    /// With `?at=SEQ`: the projected row after every event up to SEQ (null if it did not exist).
    #[schema(value_type = Option<Object>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_at: Option<serde_json::Value>,
}

/// `GET /v1/projects/{id}/history/{entity_type}/{entity_id}[?at=SEQ]`
#[utoipa::path(
    get, path = "/v1/projects/{id}/history/{entity_type}/{entity_id}", tag = "recovery",
    params(
        ("id" = ProjectIdSchema, Path, description = "Project id"),
        ("entity_type" = EntityTypeName, Path, description = "e.g. issues, comments, notes (singular works too)"),
        ("entity_id" = String, Path, description = "The entity's id"),
        ("at" = Option<i64>, Query, description = "Also return the entity's state as of this seq (any seq; empty is absent)"),
    ),
    responses(
        (status = 200, body = HistoryBody),
        (status = 400, description = "An unknown entity type, or `at` is not a 64-bit integer", body = tdsync_protocol::wire::ErrorBody),
        (status = 403, description = "The token may not read", body = tdsync_protocol::wire::ErrorBody),
        (status = 404, description = "No such project for this token", body = tdsync_protocol::wire::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn history(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, entity_type, entity_id)): Path<(String, String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<HistoryBody>, ApiError> {
    let project = state.project(&caller, &id, Action::ReadEvents).await?.shard;
    let ty = entity(&entity_type)?;
    let at = query_int(&params, "at")?;
    let eid = entity_id.clone();
    let (events, state_at) = blocking(move || {
        let events = project.history(ty, &eid)?;
        let state_at = match at {
            Some(seq) => Some(
                project
                    .state_at(ty, &eid, seq)?
                    .unwrap_or(serde_json::Value::Null),
            ),
            None => None,
        };
        Ok((events, state_at))
    })
    .await?;
    Ok(Json(HistoryBody {
        entity_type: ty.as_str().to_string(),
        entity_id,
        events,
        state_at,
    }))
}
